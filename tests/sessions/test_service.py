"""
Tests for L{clinvk.sessions.service}: retention at start-up and every day,
and stopping.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from attrs import evolve

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.memory import MemorySessionStore
from clinvk.sessions.record import StoreError
from clinvk.sessions.responses import ResponseFiles, ResponseStore, StoredResponse
from clinvk.sessions.service import SessionStoreService
from tests.sessions.helpers import record, session_id

DAY = 24 * 60 * 60
# "Now" on the test clock: 40 days after the records' T0.
NOW = datetime(2025, 4, 13, 10, 2, 11, 518204, tzinfo=UTC)


class FailingStore(MemorySessionStore):
    """A store whose clean-up fails, or hangs until told to finish."""

    def __init__(self) -> None:
        super().__init__()
        self.cleans: list[datetime] = []
        self.results: list[Deferred[int]] = []

    def clean(self, older_than: datetime) -> Deferred[int]:
        self.cleans.append(older_than)
        if self.results:
            return self.results.pop(0)
        return fail(StoreError("sessions directory is gone"))


class RaisingStore(MemorySessionStore):
    """A store whose clean-up raises instead of failing its Deferred."""

    def clean(self, older_than: datetime) -> Deferred[int]:
        raise OSError("no such thing")


class RecordingPool(ThreadPool):
    """A thread pool that starts no threads and records its life."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


class SessionStoreServiceTests(SynchronousTestCase):
    """Retention runs at start-up and daily, logs what it did, and never fails the service."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW.timestamp())
        self.store = MemorySessionStore()
        self.events = EventLoggingObserver.createWithCleanup(cast("TestCase", self), globalLogPublisher)

    def service(
        self, retention_days: int = 30, store: ISessionStore | None = None, **kwargs: Any
    ) -> SessionStoreService:
        service = SessionStoreService(store or self.store, self.clock, retention_days, **kwargs)
        return service

    def create(self, n: int, days_ago: float) -> None:
        moment = NOW - timedelta(days=days_ago)
        self.successResultOf(self.store.create(evolve(record(n), created_at=moment, last_used=moment)))

    def remaining(self) -> list[str]:
        return sorted(item.id for item in self.successResultOf(self.store.list()).sessions)

    def logged(self, level: LogLevel) -> list[dict[str, Any]]:
        return [event for event in self.events if event["log_level"] == level]

    def test_name(self) -> None:
        """The service is named C{session-store}."""
        self.assertEqual(self.service().name, "session-store")

    def test_clean_at_start_and_daily(self) -> None:
        """Sessions older than the retention period are deleted at start-up, then every 24 hours."""
        self.create(1, days_ago=31)
        self.create(2, days_ago=29.5)
        self.create(3, days_ago=1)
        service = self.service()
        service.startService()
        self.assertEqual(self.remaining(), [session_id(2), session_id(3)])
        [info] = self.logged(LogLevel.info)
        self.assertEqual(
            (info["log_format"], info["deleted"], info["retention_days"]),
            ("cleaned old sessions deleted={deleted} retention_days={retention_days}", 1, 30),
        )
        self.clock.advance(DAY - 1)
        self.assertEqual(self.remaining(), [session_id(2), session_id(3)])
        self.clock.advance(1)
        self.assertEqual(self.remaining(), [session_id(3)])
        self.assertEqual(len(self.logged(LogLevel.info)), 2)
        self.successResultOf(service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothing_to_clean(self) -> None:
        """A clean-up that deletes nothing logs nothing."""
        self.create(1, days_ago=1)
        service = self.service()
        service.startService()
        self.clock.advance(DAY)
        self.assertEqual(self.remaining(), [session_id(1)])
        self.assertEqual(self.logged(LogLevel.info), [])
        self.successResultOf(service.stopService())

    def test_disabled(self) -> None:
        """A retention of zero or fewer days cleans nothing, ever."""
        self.create(1, days_ago=1000)
        for days in (0, -1):
            service = self.service(retention_days=days)
            service.startService()
            self.clock.advance(DAY * 2)
            self.assertEqual(self.clock.getDelayedCalls(), [])
            self.successResultOf(service.stopService())
        self.assertEqual(self.remaining(), [session_id(1)])

    def test_failure_logged(self) -> None:
        """A failed clean-up is logged as a warning; the service runs on and tries again next day."""
        store = FailingStore()
        service = self.service(store=store)
        service.startService()
        self.assertTrue(service.running)
        [warning] = self.logged(LogLevel.warn)
        self.assertEqual(warning["log_format"], "failed to clean old sessions error={error}")
        self.assertEqual(warning["error"], "sessions directory is gone")
        self.assertEqual(store.cleans, [NOW - timedelta(days=30)])
        self.clock.advance(DAY)
        self.assertEqual(len(store.cleans), 2)
        self.assertEqual(len(self.logged(LogLevel.warn)), 2)
        self.successResultOf(service.stopService())

    def test_raising_store(self) -> None:
        """Even a store that raises synchronously does not stop the start-up."""
        service = self.service(store=RaisingStore())
        service.startService()
        [warning] = self.logged(LogLevel.warn)
        self.assertEqual(warning["error"], "no such thing")
        self.successResultOf(service.stopService())

    def test_stop_waits_for_clean(self) -> None:
        """Stopping waits for a clean-up in progress, then stops the pool."""
        store = FailingStore()
        cleaning: Deferred[int] = Deferred()
        store.results.append(cleaning)
        pool = RecordingPool()
        service = self.service(store=store, pool=pool)
        service.startService()
        self.assertEqual(pool.events, ["start"])
        stopped = service.stopService()
        self.assertNoResult(stopped)
        self.assertEqual(pool.events, ["start"])
        cleaning.callback(0)
        self.successResultOf(stopped)
        self.assertEqual(pool.events, ["start", "stop"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(service.running)

    def test_pool_without_retention(self) -> None:
        """The pool is started and stopped with the service even when retention is off."""
        pool = RecordingPool()
        service = self.service(retention_days=0, pool=pool)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(pool.events, ["start", "stop"])

    def test_restart(self) -> None:
        """A stopped service can be started again."""
        store = FailingStore()
        store.results.extend([succeed(0), succeed(0)])
        service = self.service(store=store)
        service.startService()
        self.successResultOf(service.stopService())
        service.startService()
        self.assertEqual(len(store.cleans), 2)
        self.successResultOf(service.stopService())

    def test_stop_waits_for_after_clean(self) -> None:
        """
        What after_clean starts (the metrics recount) belongs to the
        clean-up: stopping waits for it, and the next clean-up too.
        """
        recounting: list[Deferred[None]] = []

        def recount() -> Deferred[None]:
            recounting.append(Deferred())
            return recounting[-1]

        pool = RecordingPool()
        service = self.service(pool=pool, after_clean=recount)
        service.startService()
        self.assertEqual(len(recounting), 1)
        self.clock.advance(DAY)
        # The first recount has not ended: no second clean-up yet.
        self.assertEqual(len(recounting), 1)
        recounting[0].callback(None)
        self.assertEqual(len(recounting), 1)
        self.clock.advance(DAY)
        self.assertEqual(len(recounting), 2)
        stopped = service.stopService()
        self.assertNoResult(stopped)
        self.assertEqual(pool.events, ["start"])
        recounting[1].callback(None)
        self.successResultOf(stopped)
        self.assertEqual(pool.events, ["start", "stop"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_after_clean_failure_logged(self) -> None:
        """A failed after_clean is logged, not left in a forgotten Deferred; the clean-ups go on."""
        calls: list[None] = []

        def recount() -> Deferred[None]:
            calls.append(None)
            return fail(RuntimeError("recount broke"))

        service = self.service(after_clean=recount)
        service.startService()
        self.clock.advance(DAY)
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        said = [e["log_format"] for e in self.events if "log_failure" in e]
        self.assertEqual(said, ["Failed after cleaning old sessions"] * 2)
        self.successResultOf(service.stopService())

    def test_stored_responses(self) -> None:
        """Stored responses older than the retention period go too, and say so."""
        directory = self.mktemp()
        files = ResponseFiles(directory)
        old, recent = "resp_" + "0" * 24, "resp_" + "1" * 24
        for response_id, days_ago in ((old, 31), (recent, 1)):
            files.save(StoredResponse({"id": response_id}, ()))
            moment = (NOW - timedelta(days=days_ago)).timestamp()
            os.utime(os.path.join(directory, f"{response_id}.json"), (moment, moment))
        service = self.service(responses=ResponseStore(files))
        service.startService()
        self.assertIsNone(files.load(old))
        self.assertIsNotNone(files.load(recent))
        [info] = self.logged(LogLevel.info)
        self.assertEqual((info["log_format"].split()[1], info["deleted"]), ("old", 1))
        self.assertIn("responses", info["log_format"])
        self.successResultOf(service.stopService())
