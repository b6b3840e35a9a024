"""
Tests for L{clinvk.orchestration.turns}: the active-sessions gauge.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from clinvk.metrics import Metrics
from clinvk.orchestration import recount_active_sessions
from clinvk.sessions import ACTIVE, COMPLETED, PAUSED, ISessionStore
from clinvk.sessions.memory import MemorySessionStore
from tests.sessions.helpers import record


def gauge(metrics: Metrics) -> float:
    return cast("float", metrics.active_sessions._value.get())


class RecountTests(SynchronousTestCase):
    """recount_active_sessions sets the gauge from the store."""

    def test_active_and_paused(self) -> None:
        """Sessions active or paused count; others do not."""
        store = MemorySessionStore()
        for number, status in enumerate((ACTIVE, PAUSED, COMPLETED, ACTIVE)):
            self.successResultOf(store.create(record(number, status=status)))
        metrics = Metrics()
        self.successResultOf(Deferred.fromCoroutine(recount_active_sessions(metrics, store)))
        self.assertEqual(gauge(metrics), 3)

    def test_unreadable_store(self) -> None:
        """A store that cannot be read leaves the gauge as it was, with a warning."""

        class Broken:
            async def list(self, **filters: Any) -> Any:
                raise OSError("disk gone")

        events: list[LogEvent] = []
        observer = cast("ILogObserver", events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        metrics = Metrics()
        metrics.active_sessions.set(5)
        store = cast("ISessionStore", Broken())
        self.successResultOf(Deferred.fromCoroutine(recount_active_sessions(metrics, store)))
        self.assertEqual(gauge(metrics), 5)
        [warning] = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertEqual(warning["error"], "disk gone")
