# -*- test-case-name: tests.sessions.test_service -*-
"""
The service that owns the session store's lifetime: its thread pool and
the retention clean-up (docs/design/session-store.md#retention).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.responses import ResponseStore

RETENTION_INTERVAL_SECONDS = 24 * 60 * 60


class SessionStoreService(Service):
    """
    Starts the store's thread pool, if any, and deletes sessions older than
    the retention period at start-up and every 24 hours after (the
    reference does it only at start-up).  A failed clean-up is logged and
    tried again next time; it never stops the server.

    @param store: The store to clean.
    @param clock: Times the clean-ups and says what "now" is.
    @param retention_days: Sessions last used longer ago are deleted;
        C{<= 0} disables the clean-up.
    @param after_clean: Called after each clean-up (the metrics recount);
        a L{Deferred} it returns belongs to the clean-up, which ends (and
        lets the service stop) only once it has fired.
    @param pool: The thread pool the store runs its work in, started and
        stopped with this service.
    @param responses: The Responses API's stored responses, cleaned with
        the same retention (docs/design/responses-api.md#responses-store).
    """

    name = "session-store"
    log = Logger()

    def __init__(
        self,
        store: ISessionStore,
        clock: IReactorTime,
        retention_days: int,
        pool: ThreadPool | None = None,
        after_clean: Callable[[], object] = lambda: None,
        responses: ResponseStore | None = None,
    ) -> None:
        self._store = store
        self._responses = responses
        self._after_clean = after_clean
        self._clock = clock
        self._retention_days = retention_days
        self._pool = pool
        self._loop: LoopingCall | None = None
        self._looping: Deferred[LoopingCall] | None = None

    def startService(self) -> None:
        super().startService()
        if self._pool is not None:
            self._pool.start()
        if self._retention_days > 0:
            self._loop = LoopingCall(self._clean)
            self._loop.clock = self._clock
            self._looping = self._loop.start(RETENTION_INTERVAL_SECONDS, now=True)

    def stopService(self) -> Deferred[None]:
        """
        Stop the clean-ups, wait for one in progress, then stop the pool
        (which finishes its queued work first).

        @return: A L{Deferred} firing once all of that is done.
        """
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        loop, looping = self._loop, self._looping
        self._loop = self._looping = None
        try:
            if loop is not None and looping is not None:
                if loop.running:
                    loop.stop()
                # Fires once a clean-up in progress has finished.
                await looping
            if self._pool is not None and IReactorFromThreads.providedBy(self._clock):
                # Wait, without blocking, until the work queued so far is
                # done; stopping the idle pool then joins at once.
                await deferToThreadPool(cast("IReactorFromThreads", self._clock), self._pool, lambda: None)
        finally:
            # Whatever went wrong, a running pool thread would keep the
            # process alive after the reactor stops.
            if self._pool is not None:
                self._pool.stop()

    def _clean(self) -> Deferred[None]:
        cutoff = datetime.fromtimestamp(self._clock.seconds(), UTC) - timedelta(days=self._retention_days)

        def cleaned(deleted: int) -> Deferred[None]:
            # What after_clean starts is part of the clean-up: the loop,
            # and so stopService, waits for it.
            after = maybeDeferred(self._after_clean).addCallbacks(lambda ignored: None, after_clean_failed)
            if deleted:
                self.log.info(
                    "cleaned old sessions deleted={deleted} retention_days={retention_days}",
                    deleted=deleted,
                    retention_days=self._retention_days,
                )
            return after

        def after_clean_failed(failure: Failure) -> None:
            self.log.failure("Failed after cleaning old sessions", failure)

        def failed(failure: Failure) -> None:
            # Retention is housekeeping: report it and carry on (the loop
            # would stop for good on a failure).
            self.log.warn("failed to clean old sessions error={error}", error=failure.getErrorMessage())

        cleaning = maybeDeferred(self._store.clean, cutoff).addCallbacks(cleaned, failed)
        if self._responses is not None:
            cleaning.addCallback(lambda ignored: self._clean_responses(cutoff))
        return cleaning

    def _clean_responses(self, cutoff: datetime) -> Deferred[None]:
        assert self._responses is not None

        def cleaned(deleted: int) -> None:
            if deleted:
                self.log.info(
                    "cleaned old responses deleted={deleted} retention_days={retention_days}",
                    deleted=deleted,
                    retention_days=self._retention_days,
                )

        def failed(failure: Failure) -> None:
            self.log.warn("failed to clean old responses error={error}", error=failure.getErrorMessage())

        return self._responses.clean(cutoff).addCallbacks(cleaned, failed)
