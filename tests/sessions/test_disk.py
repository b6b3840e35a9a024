"""
Tests for L{clinvk.sessions.disk}: the asynchronous store runs the files'
work through its runner, and shares its health checks.  The store's
behaviour is tested in L{tests.sessions.test_contract}, its files in
L{tests.sessions.test_files}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from clinvk.sessions.disk import HEALTH_MAX_AGE, DiskSessionStore
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.record import SessionNotFound
from tests.sessions.helpers import T0, record, session_id

_T = TypeVar("_T")


class DiskSessionStoreTests(SynchronousTestCase):
    """L{DiskSessionStore} runs every operation through its runner."""

    def test_runner(self) -> None:
        """Every method hands its work to C{run_blocking} and returns its Deferred."""
        ran: list[object] = []

        def run(work: Callable[[], _T], /) -> Deferred[_T]:
            result = work()
            ran.append(result)
            return succeed(result)

        store = DiskSessionStore(SessionFiles(sessions_directory(self.mktemp())), run)
        self.successResultOf(store.create(record(1)))
        self.successResultOf(store.get(session_id(1)))
        self.successResultOf(store.resolve("0"))
        self.successResultOf(store.update(session_id(1), lambda r: r))
        self.successResultOf(store.list())
        self.successResultOf(store.health())
        self.successResultOf(store.delete("0"))
        self.successResultOf(store.clean(T0))
        self.assertEqual(len(ran), 8)

    def test_failures(self) -> None:
        """Errors of the blocking work become failures of the Deferred."""
        store = DiskSessionStore(SessionFiles(sessions_directory(self.mktemp())))
        failure = self.failureResultOf(store.get("a/b"), SessionNotFound)
        self.assertEqual(str(failure.value), "invalid session ID: contains path characters")


class HealthReuseTests(SynchronousTestCase):
    """With a clock, health checks share and reuse one look at the files."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.pending: list[tuple[Callable[[], object], Deferred[object]]] = []

        def run(work: Callable[[], _T], /) -> Deferred[_T]:
            waiting: Deferred[Any] = Deferred()
            self.pending.append((work, waiting))
            return waiting

        self.directory = sessions_directory(self.mktemp())
        self.store = DiskSessionStore(SessionFiles(self.directory), run, clock=self.clock)

    def finish(self) -> None:
        """Run the queued work, in order, as the one-thread pool would."""
        while self.pending:
            work, waiting = self.pending.pop(0)
            waiting.callback(work())

    def test_shared_and_reused(self) -> None:
        """Concurrent checks share one pass; within the age limit, its answer is reused."""
        first, second = self.store.health(), self.store.health()
        self.assertEqual(len(self.pending), 1)
        self.finish()
        self.assertEqual(self.successResultOf(first), self.successResultOf(second))
        self.clock.advance(HEALTH_MAX_AGE / 2)
        self.successResultOf(self.store.health())
        self.assertEqual(self.pending, [])
        self.clock.advance(HEALTH_MAX_AGE)
        later = self.store.health()
        self.assertEqual(len(self.pending), 1)
        self.finish()
        self.successResultOf(later)

    def test_own_changes_seen(self) -> None:
        """A change made through the store is counted by the next check."""
        checked = self.store.health()
        self.finish()
        self.assertEqual(self.successResultOf(checked).session_count, 0)
        created = self.store.create(record(1))
        self.finish()
        self.successResultOf(created)
        recounted = self.store.health()
        self.finish()
        self.assertEqual(self.successResultOf(recounted).session_count, 1)

    def test_check_during_change(self) -> None:
        """A check that began before a change is not reused after it."""
        before = self.store.health()
        created = self.store.create(record(1))
        self.finish()
        self.assertEqual(self.successResultOf(before).session_count, 0)
        self.successResultOf(created)
        after = self.store.health()
        self.finish()
        self.assertEqual(self.successResultOf(after).session_count, 1)

    def test_failure_not_kept(self) -> None:
        """A check that fails fails every waiter, and is not reused."""
        first, second = self.store.health(), self.store.health()
        _, waiting = self.pending.pop()
        waiting.errback(RuntimeError("broken pool"))
        self.failureResultOf(first, RuntimeError)
        self.failureResultOf(second, RuntimeError)
        self.store.health()
        self.assertEqual(len(self.pending), 1)
