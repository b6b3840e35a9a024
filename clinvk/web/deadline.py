# -*- test-case-name: tests.web.test_deadline -*-
"""
The request deadline (docs/design/http.md#request-deadline): a handler still working after
C{request_timeout_secs} is cancelled, which stops its CLIs; the client gets
a 504, or, once a stream has started, the stream's own timeout error.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakSet

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from clinvk.errors import RunTimedOut

_expired: WeakSet[Any] = WeakSet()


def deadline_passed(request: IRequest) -> bool:
    """Whether C{request} was cancelled by its deadline (rather than by its client)."""
    return request in _expired


class RequestDeadline:
    """
    @param clock: Times the deadline.
    @param seconds: The deadline; 0 or less for none.
    """

    def __init__(self, clock: IReactorTime, seconds: float) -> None:
        self._clock = clock
        self.seconds = seconds

    def message(self) -> str:
        """What a client whose deadline passed is told."""
        return f"request timed out after {self.seconds:g}s"

    def now(self) -> float:
        """The time on the deadline's clock."""
        return self._clock.seconds()

    def limit(self, request: IRequest, work: Deferred[Any]) -> Deferred[Any]:
        """
        Cancel C{work} if it is still running at the deadline; its
        cancellation then fails it with L{RunTimedOut}.
        """
        if self.seconds <= 0 or work.called:
            return work

        def expire() -> None:
            _expired.add(request)
            work.cancel()

        timer = self._clock.callLater(self.seconds, expire)

        def settle(result: object) -> object:
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure) and result.check(CancelledError) and deadline_passed(request):
                return Failure(RunTimedOut(self.message()))
            return result

        return work.addBoth(settle)
