# -*- test-case-name: tests.web.test_inflight -*-
"""
The requests in progress, so that a shutdown can let them finish
(docs/design/decisions.md#d6-no-orphans) while refusing new work.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request


class InFlight:
    """
    Counts requests from their arrival until their response has ended or
    their client has gone.

    @ivar draining: Whether the server is shutting down: new work is
        refused and C{/health} says so.
    """

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle: list[Deferred[None]] = []

    def track(self, request: Request) -> None:
        """Count C{request} until it ends."""
        self.count += 1
        request.notifyFinish().addBoth(self._ended)

    def _ended(self, result: object) -> None:
        self.count -= 1
        if self.count == 0:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)

    def drain(self) -> Deferred[None]:
        """Refuse new work from now on; fire once no request is in progress."""
        self.draining = True
        if self.count == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle.append(waiter)
        return waiter
