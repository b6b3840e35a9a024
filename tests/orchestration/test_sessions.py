"""
Tests for the sessions API of L{clinvk.orchestration.Orchestrator}:
listing, reading and deleting, with the store's errors passed on.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import NotFound, SessionNotFound
from clinvk.metrics import Metrics
from clinvk.sessions import COMPLETED
from tests.helpers import Server
from tests.sessions.helpers import record, session_id


def gauge(metrics: Metrics) -> float:
    return cast("float", metrics.active_sessions._value.get())


class SessionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = Server(config={"server": {"metrics_enabled": True}})
        self.orchestrator = self.server.orchestrator
        for number in range(3):
            status = COMPLETED if number == 2 else "active"
            self.successResultOf(self.server.store.create(record(number, minutes=number, status=status)))

    def test_list(self) -> None:
        """A filtered page, most recently used first, with the total of matches."""
        page = self.successResultOf(self.orchestrator.list_sessions(status="active", limit=1))
        self.assertEqual(([s.id for s in page.sessions], page.total), ([session_id(1)], 2))

    def test_session(self) -> None:
        """An id names a session; a prefix that names none fails with a 404 of the hierarchy."""
        found = self.successResultOf(self.orchestrator.session(session_id(2)))
        self.assertEqual(found.id, session_id(2))
        failure = self.failureResultOf(self.orchestrator.session("ffff"), SessionNotFound)
        self.assertIsInstance(failure.value, NotFound)
        self.assertEqual(str(failure.value), "no session found with prefix: ffff")

    def test_delete_recounts(self) -> None:
        """A deletion removes the session and sets the active-sessions gauge afresh."""
        metrics = self.server.metrics
        assert metrics is not None
        metrics.active_sessions.set(99)
        self.successResultOf(self.orchestrator.delete_session(session_id(0)))
        self.failureResultOf(self.orchestrator.session(session_id(0)), SessionNotFound)
        self.assertEqual(gauge(metrics), 1)
