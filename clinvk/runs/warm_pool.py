# -*- test-case-name: tests.runs.test_warm_pool -*-
"""
Processes started ahead for new conversations
(docs/design/live-sessions.md#warm-pool): C{backends.<name>.warm} live
processes per backend, started with the options a new conversation gets
when it asks for nothing else.  A new conversation started that way takes
one, which has paid the CLI's start-up already, and a replacement starts
at once; one started any other way starts its own process.

A warm process that ends before it is taken is replaced after a pause
that doubles each time, up to L{LONGEST_PAUSE}: a CLI that cannot start
is not restarted in a tight loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from attrs import define

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from clinvk.errors import ShuttingDown
from clinvk.runs.live import LiveProcess, LiveState

log = Logger()

# Seconds before the first replacement of a warm process that ended
# untaken, and the most it grows to.
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 300.0


@define
class _Kept:
    """The warm processes of one backend."""

    signature: tuple[str, ...]
    count: int
    start: Callable[[], LiveProcess]
    waiting: list[LiveProcess]
    failures: int = 0
    refill: IDelayedCall | None = None


class WarmPool:
    """
    @param clock: Times the pauses between replacements.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._kept: dict[str, _Kept] = {}
        self.taken = 0

    @property
    def waiting(self) -> int:
        """Warm processes waiting for a conversation."""
        return sum(len(kept.waiting) for kept in self._kept.values())

    def keep(
        self, backend: str, signature: tuple[str, ...], count: int, start: Callable[[], LiveProcess]
    ) -> None:
        """
        Keep C{count} processes of C{backend} warm, each started by
        C{start} and serving turns that ask for C{signature}
        (L{clinvk.runs.live_pool.LiveLaunch.signature}).

        @param start: Starts a live process; it may raise L{ShuttingDown}.
        """
        self.stop(backend)
        self._kept[backend] = _Kept(signature, count, start, [])
        self._fill(backend)

    def take(self, backend: str, signature: tuple[str, ...]) -> LiveProcess | None:
        """
        A warm process of C{backend} started as C{signature} asks, no
        longer warm (the caller holds it now); L{None} when there is none.
        A replacement starts at once.
        """
        kept = self._kept.get(backend)
        if kept is None or kept.signature != signature:
            return None
        for process in kept.waiting:
            if process.state in (LiveState.STARTING, LiveState.IDLE):
                kept.waiting.remove(process)
                process.on_state = lambda changed: None
                kept.failures = 0
                self.taken += 1
                self._clock.callLater(0, self._fill, backend)
                return process
        return None

    def stop(self, backend: str) -> None:
        """Keep no process of C{backend} warm any more: end those waiting."""
        kept = self._kept.pop(backend, None)
        if kept is None:
            return
        if kept.refill is not None and kept.refill.active():
            kept.refill.cancel()
        waiting, kept.waiting = kept.waiting, []
        for process in waiting:
            process.close()

    def stop_all(self) -> None:
        """Keep no process warm any more (the server is stopping)."""
        for backend in list(self._kept):
            self.stop(backend)

    def _fill(self, backend: str) -> None:
        """Start processes until C{backend} has as many warm as it keeps."""
        kept = self._kept.get(backend)
        if kept is None:
            return
        kept.refill = None
        while len(kept.waiting) < kept.count:
            try:
                process = kept.start()
            except ShuttingDown:
                self.stop(backend)
                return
            if process.state is LiveState.GONE:
                self._lost(backend, kept)
                return
            process.on_state = partial(self._changed, backend, kept)
            kept.waiting.append(process)

    def _changed(self, backend: str, kept: _Kept, process: LiveProcess) -> None:
        if process.state is LiveState.GONE and process in kept.waiting:
            kept.waiting.remove(process)
            if self._kept.get(backend) is kept:
                self._lost(backend, kept)

    def _lost(self, backend: str, kept: _Kept) -> None:
        """A warm process of C{backend} ended untaken: replace it after a pause."""
        pause = min(FIRST_PAUSE * 2**kept.failures, LONGEST_PAUSE)
        kept.failures += 1
        log.warn(
            "A warm process ended before a conversation took it backend={backend} retry_secs={pause}",
            backend=backend,
            pause=pause,
        )
        if kept.refill is None or not kept.refill.active():
            kept.refill = self._clock.callLater(pause, self._fill, backend)
