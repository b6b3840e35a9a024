# -*- test-case-name: tests.runs.test_live_pool -*-
"""
The live processes of the conversations in use
(docs/design/live-sessions.md#live-pool): at most one per conversation, at
most C{server.max_live_processes} in all (the least recently used idle one
ended to make room), each ended after C{server.live_idle_secs} without a
turn.  An ended process loses nothing: its conversation is the CLI's
stored session, which the next turn resumes from cold.

Whether a backend runs live at all (docs/design/live-sessions.md#live-fallback)
is decided here too: a CLI whose live process could not serve its first
turn runs one process per turn from then on, and says why.  The pool holds
the warm processes of new conversations too (L{clinvk.runs.warm_pool}).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from attrs import frozen

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from clinvk.config import ClinvkConfig
from clinvk.interfaces import IBackend, ILiveMode
from clinvk.metrics import LiveCounts
from clinvk.process.runner import ProcessSpec
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.live import LiveProcess, LiveState
from clinvk.runs.preflight import PreparedRun
from clinvk.runs.warm_pool import WarmPool

log = Logger()

# Memory a live process is counted at when the pool is sized from the
# machine: the CLIs measured 150 to 290 MB each (docs/performance.md).
BYTES_PER_LIVE_PROCESS = 1 << 30
MOST_LIVE_PROCESSES = 8


def memory_sized_limit(physical_bytes: int | None = None) -> int:
    """One live process per GiB of memory, at least 1, at most L{MOST_LIVE_PROCESSES}."""
    if physical_bytes is None:
        try:
            physical_bytes = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            physical_bytes = 0
    return max(1, min(MOST_LIVE_PROCESSES, physical_bytes // BYTES_PER_LIVE_PROCESS))


def configured_status(config: ClinvkConfig, backend: IBackend) -> str:
    """
    Whether the configuration lets C{backend}'s conversations run live:
    C{live}, or C{off: } and why (docs/design/live-sessions.md#live-fallback).
    """
    if not ILiveMode.providedBy(backend):
        return "off: the CLI has no long-lived mode"
    if config.server.live_idle_secs <= 0:
        return "off: server.live_idle_secs is 0"
    if not config.backends.get(backend.name).live:
        return f"off: backends.{backend.name}.live is false"
    return "live"


@frozen
class LiveLaunch:
    """
    How to start the live process of one turn.

    @ivar argv: Its command line (with a resumed conversation, for a CLI
        that takes it there).
    @ivar signature: What a process must have been started with to serve
        the turn: its argv for a new conversation, its directory, and the
        options a CLI may take in its handshake instead of on argv.
    @ivar cwd: Its absolute working directory.
    @ivar path: The directory to start it in, or L{None} for the server's.
    """

    argv: tuple[str, ...]
    signature: tuple[str, ...]
    cwd: str
    path: str | None


class LivePool:
    """
    @param config: The server's configuration.
    @param supervisor: Starts and owns the processes.
    @param clock: Times idleness.
    @param environ: The processes' environment.
    @ivar started: Live processes started for a turn (each a cold start).
    @ivar reused: Turns served by a process that was already live.
    @ivar evicted: Idle processes ended to make room for another.
    @ivar expired: Processes ended after C{server.live_idle_secs} without a turn.
    """

    def __init__(
        self,
        *,
        config: ClinvkConfig,
        supervisor: ProcessSupervisor,
        clock: IReactorTime,
        environ: Mapping[str, str],
    ) -> None:
        self._config = config
        self._supervisor = supervisor
        self._clock = clock
        self._environ = dict(environ)
        server = config.server
        self.idle_seconds = float(server.live_idle_secs)
        self.max_processes = server.max_live_processes or memory_sized_limit()
        self._processes: dict[str, LiveProcess] = {}
        self._expiry: dict[str, IDelayedCall] = {}
        self._off: dict[str, str] = {}
        self._warm = WarmPool(clock)
        self.started = 0
        self.reused = 0
        self.evicted = 0
        self.expired = 0

    # -- what runs live

    def mode(self, backend: IBackend) -> ILiveMode | None:
        """C{backend}'s long-lived mode, if its turns run live now."""
        if self.status(backend) != "live":
            return None
        return ILiveMode(backend)

    def status(self, backend: IBackend) -> str:
        """
        Whether C{backend}'s conversations run live, in a few words:
        C{live}, or why not (docs/design/live-sessions.md#live-fallback).
        """
        configured = configured_status(self._config, backend)
        if configured == "live" and backend.name in self._off:
            return f"off: {self._off[backend.name]}"
        return configured

    def failed_to_serve(self, backend: IBackend, why: str) -> None:
        """C{backend}'s new live process never served its first turn: run it cold from now on."""
        if backend.name not in self._off:
            log.warn(
                "Live sessions are off for backend={backend}: its live process failed: {why}",
                backend=backend.name,
                why=why,
            )
            self._off[backend.name] = f"its live process failed: {why}" if why else "its live process failed"
            self._warm.stop(backend.name)

    # -- counts

    @property
    def live(self) -> int:
        """Live processes (starting, idle or busy)."""
        return len(self._processes)

    @property
    def idle(self) -> int:
        """Live processes waiting for a turn."""
        return sum(1 for process in self._processes.values() if process.state is LiveState.IDLE)

    def counts(self) -> LiveCounts:
        """The figures of docs/design/live-sessions.md#live-metrics."""
        return LiveCounts(
            live=self.live,
            idle=self.idle,
            warm=self._warm.waiting,
            warm_taken=self._warm.taken,
            cold_starts=self.started,
            reused=self.reused,
            evicted=self.evicted,
            expired=self.expired,
        )

    # -- processes

    def serving(self, conversation: str, signature: tuple[str, ...]) -> bool:
        """Whether C{conversation} has a live process started as C{signature} asks, to reuse."""
        process = self._processes.get(conversation)
        return (
            process is not None and process.signature == signature and process.state is not LiveState.CLOSING
        )

    async def take(
        self, conversation: str, prepared: PreparedRun, launch: LiveLaunch
    ) -> tuple[LiveProcess, bool] | None:
        """
        The live process for the next turn of C{conversation}: its own if
        it was started the same way, otherwise a warm one for a new
        conversation that asks for what it was started with, otherwise a
        new one (resuming the conversation C{prepared} continues, if any).

        @return: The process and whether it is new (a warm one included:
            it has served no turn yet); L{None} when there is
            no room for another (every process busy), and the turn runs cold.
        @raise ShuttingDown: When the supervisor takes no more runs.
        """
        existing = self._processes.get(conversation)
        if existing is not None:
            self._cancel_expiry(conversation)
            if existing.state is LiveState.BUSY:
                # An interrupted turn is ending: it takes a moment.
                await existing.idle()
            if existing.signature == launch.signature and existing.state in (
                LiveState.STARTING,
                LiveState.IDLE,
            ):
                self.reused += 1
                return existing, False
            self._retire(conversation)
        if self.live >= self.max_processes and not self._evict():
            return None
        process = None
        if not prepared.request.resume_id:
            process = self._warm.take(prepared.backend.name, launch.signature)
        if process is None:
            process = self._start(prepared, launch)
            self.started += 1
        process.on_state = lambda changed: self._changed(conversation, changed)
        if process.state is not LiveState.GONE:
            self._processes[conversation] = process
        return process, True

    def _start(self, prepared: PreparedRun, launch: LiveLaunch) -> LiveProcess:
        """
        Start a live process for C{prepared} as C{launch} says.

        @raise ShuttingDown: When the supervisor takes no more runs.
        """
        backend = prepared.backend
        session = ILiveMode(backend).live_session(prepared.options, prepared.request.resume_id, launch.cwd)
        process = LiveProcess(
            backend=backend,
            session=session,
            signature=launch.signature,
            clock=self._clock,
            kill_grace=float(self._config.server.kill_grace_secs),
            line_limit=self._config.server.max_run_output_bytes,
        )
        spec = ProcessSpec(argv=launch.argv, env=self._environ, path=launch.path, keep_stdin=True)
        process.start(self._supervisor, spec)
        return process

    # -- warm processes (docs/design/live-sessions.md#warm-pool)

    def keep_warm(self, prepared: PreparedRun, launch: LiveLaunch, count: int) -> None:
        """
        Keep C{count} processes started as C{launch} says warm for the
        new conversations of C{prepared}'s backend that ask for the same.
        """
        self._warm.keep(prepared.backend.name, launch.signature, count, lambda: self._start(prepared, launch))

    def stop_warming(self) -> None:
        """Keep no process warm any more, ending those waiting (the server is stopping)."""
        self._warm.stop_all()

    def _changed(self, conversation: str, process: LiveProcess) -> None:
        if self._processes.get(conversation) is not process:
            return
        if process.state is LiveState.IDLE:
            self._cancel_expiry(conversation)
            self._expiry[conversation] = self._clock.callLater(self.idle_seconds, self._expire, conversation)
        elif process.state is LiveState.BUSY:
            self._cancel_expiry(conversation)
        elif process.state is LiveState.GONE:
            self._cancel_expiry(conversation)
            del self._processes[conversation]

    def _expire(self, conversation: str) -> None:
        self._expiry.pop(conversation, None)
        process = self._processes.get(conversation)
        if process is not None and process.state is LiveState.IDLE:
            self.expired += 1
            log.info(
                "Ending an idle live process backend={backend} pid={pid}",
                backend=process.backend.name,
                pid=process.pid,
            )
            self._retire(conversation)

    def _evict(self) -> bool:
        """End the least recently used idle process; whether there was one."""
        idle = [
            (process.last_used, key)
            for key, process in self._processes.items()
            if process.state is LiveState.IDLE
        ]
        if not idle:
            return False
        _last_used, conversation = min(idle)
        self.evicted += 1
        self._retire(conversation)
        return True

    def _retire(self, conversation: str) -> None:
        """Forget C{conversation}'s process and end it politely."""
        self._cancel_expiry(conversation)
        process = self._processes.pop(conversation, None)
        if process is not None:
            process.close()

    def _cancel_expiry(self, conversation: str) -> None:
        timer = self._expiry.pop(conversation, None)
        if timer is not None and timer.active():
            timer.cancel()

    def release(self, conversation: str) -> Deferred[None]:
        """
        End C{conversation}'s live process, if it has one, and fire once
        it is gone: its turn is about to run cold, and a CLI may let only
        one process at a time hold a conversation (codex).
        """
        process = self._processes.get(conversation)
        self._retire(conversation)
        if process is None:
            return succeed(None)
        return process.gone.wait().addCallback(lambda outcome: None)

    def end(self, conversation: str) -> None:
        """End C{conversation}'s live process, if it has one (the session was deleted)."""
        self._retire(conversation)
