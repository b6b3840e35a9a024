# -*- test-case-name: tests.process.test_admission -*-
"""
Admission control (docs/design/decisions.md#d4-admission-control): a fixed number of backend processes run
at once; the runs beyond wait in a bounded first-come-first-served queue,
each for a limited time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from attrs import define

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from clinvk.errors import RateLimited


@define
class _Waiter:
    admitted: Deferred[None]
    since: float
    timer: IDelayedCall | None = None


class Admission:
    """
    @param clock: Times the waits.
    @param max_running: Slots; C{0} or less for no limit.
    @param max_queued: Runs that may wait for a slot.
    @param queue_timeout: Seconds a run may wait.
    @param observe_wait: Told how many seconds each admitted run waited
        (for the metrics).
    @ivar running: Slots taken.
    """

    def __init__(
        self,
        clock: IReactorTime,
        max_running: int,
        max_queued: int,
        queue_timeout: float,
        observe_wait: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self._clock = clock
        self._observe_wait = observe_wait
        self._max_running = max_running
        self._max_queued = max_queued
        self._queue_timeout = queue_timeout
        self._queue: deque[_Waiter] = deque()
        self.running = 0

    @classmethod
    def unlimited(cls, clock: IReactorTime) -> Admission:
        """Admission that never makes a run wait."""
        return cls(clock, 0, 0, 0)

    @property
    def queued(self) -> int:
        """Runs waiting for a slot."""
        return len(self._queue)

    def acquire(self) -> Deferred[None]:
        """
        A Deferred firing once the caller holds a slot, which it must give
        back with L{release}.  Cancelling it leaves the queue.

        @raise RateLimited: (as the Deferred's failure) when the queue is
            full or the wait timed out.
        """
        if self._max_running <= 0 or self.running < self._max_running:
            self.running += 1
            self._observe_wait(0.0)
            return succeed(None)
        if len(self._queue) >= self._max_queued:
            return fail(RateLimited("too many runs in progress, please retry later"))
        waiter = _Waiter(Deferred(lambda _: self._leave(waiter)), self._clock.seconds())
        if self._queue_timeout > 0:
            waiter.timer = self._clock.callLater(self._queue_timeout, self._expire, waiter)
        self._queue.append(waiter)
        return waiter.admitted

    def _leave(self, waiter: _Waiter) -> None:
        if waiter in self._queue:
            self._queue.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()

    def _expire(self, waiter: _Waiter) -> None:
        waiter.timer = None
        self._leave(waiter)
        waiter.admitted.errback(RateLimited("no run slot became free in time, please retry later"))

    def release(self) -> None:
        """Give a slot back; the longest waiting run gets it."""
        self.running -= 1
        if self._queue:
            waiter = self._queue.popleft()
            if waiter.timer is not None and waiter.timer.active():
                waiter.timer.cancel()
            self.running += 1
            self._observe_wait(self._clock.seconds() - waiter.since)
            waiter.admitted.callback(None)
