# -*- test-case-name: tests.sessions.test_disk -*-
"""
The asynchronous session store of the server: L{DiskSessionStore} runs the
blocking work of L{SessionFiles} through a runner, in production a
one-thread pool, so the reactor thread never waits for the disk and the
operations of one process never overlap
(docs/design/session-store.md#store-locking); it shares and briefly reuses
its health checks (docs/design/session-store.md#store-health).

What the store is built from (L{SessionFiles}, L{sessions_directory},
L{RunBlocking}, L{in_thread_pool}) can be imported from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from clinvk.sessions.blocking import RunBlocking, in_thread_pool, synchronously
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.record import SessionPage, SessionRecord, StoreHealth

__all__ = [
    "HEALTH_MAX_AGE",
    "DiskSessionStore",
    "RunBlocking",
    "SessionFiles",
    "in_thread_pool",
    "sessions_directory",
]

_T = TypeVar("_T")

# How long a health check's answer is reused (see DiskSessionStore).
HEALTH_MAX_AGE = 1.0


@implementer(ISessionStore)
class DiskSessionStore:
    """
    The L{ISessionStore} of the server: L{SessionFiles} run through
    C{run_blocking}.

    @param files: The files of the sessions directory.
    @param run_blocking: Runs each blocking operation; for example
        L{in_thread_pool} with a one-thread pool.  By default the work runs
        at once in the calling thread, which suits tests.
    @param clock: When given, a health check's answer is reused for
        L{HEALTH_MAX_AGE} seconds, and concurrent checks share one look at
        the files: a load balancer asking many times a second costs one
        pass over the store, not one each.  A change made through this
        store is seen at once; one made by another process (the
        command-line tool) within that time.
    """

    def __init__(
        self,
        files: SessionFiles,
        run_blocking: RunBlocking | None = None,
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        self._files = files
        self._run: RunBlocking = run_blocking or synchronously
        self._clock = clock
        self._health: tuple[float, StoreHealth] | None = None
        self._health_waiters: list[Deferred[StoreHealth]] | None = None

    def _changed(self, result: _T) -> _T:
        # Whatever health was read, or is being read, may predate the change.
        self._health = None
        self._health_waiters = None
        return result

    def create(self, record: SessionRecord) -> Deferred[None]:
        return self._run(lambda: self._files.create(record)).addBoth(self._changed)

    def get(self, session_id: str) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.get(session_id))

    def resolve(self, prefix: str) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.resolve(prefix))

    def update(
        self, session_id: str, change: Callable[[SessionRecord], SessionRecord]
    ) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.update(session_id, change)).addBoth(self._changed)

    def list(
        self, *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0
    ) -> Deferred[SessionPage]:
        return self._run(lambda: self._files.list(backend=backend, status=status, limit=limit, offset=offset))

    def delete(self, prefix: str) -> Deferred[str]:
        return self._run(lambda: self._files.delete(prefix)).addBoth(self._changed)

    def clean(self, older_than: datetime) -> Deferred[int]:
        return self._run(lambda: self._files.clean(older_than)).addBoth(self._changed)

    def health(self) -> Deferred[StoreHealth]:
        if self._clock is None:
            return self._run(self._files.health)
        now = self._clock.seconds()
        if self._health is not None and now - self._health[0] < HEALTH_MAX_AGE:
            return succeed(self._health[1])
        waiter: Deferred[StoreHealth] = Deferred()
        if self._health_waiters is not None:
            self._health_waiters.append(waiter)
            return waiter
        waiters = self._health_waiters = [waiter]

        def deliver(result: StoreHealth | Failure) -> None:
            if self._health_waiters is waiters:
                self._health_waiters = None
                if isinstance(result, StoreHealth):
                    self._health = (now, result)
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)

        self._run(self._files.health).addBoth(deliver)
        return waiter
