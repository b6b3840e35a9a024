"""
Tests for L{clinvk.backends.availability}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.availability import BackendAvailability
from tests.helpers import fake_which


class AvailabilityTests(SynchronousTestCase):
    """Cached and uncached checks (docs/design/cli-runs.md#availability)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.installed = {"claude"}
        self.lookups: list[str] = []
        which = fake_which(self.installed)

        def counting_which(name: str) -> str | None:
            self.lookups.append(name)
            return which(name)

        self.availability = BackendAvailability(self.clock, which=counting_which)

    def test_sorted_names(self) -> None:
        """Every backend is reported, sorted by name."""
        self.assertEqual(self.availability.cached(), [("claude", True), ("codex", False), ("gemini", False)])

    def test_cache_lifetime(self) -> None:
        """Each backend is looked up at most once per 30 seconds of reactor time."""
        self.availability.cached()
        self.clock.advance(29)
        self.availability.cached()
        self.assertEqual(self.lookups, ["claude", "codex", "gemini"])
        self.clock.advance(1)
        self.availability.cached()
        self.assertEqual(len(self.lookups), 6)

    def test_uncached_sees_changes_at_once(self) -> None:
        """is_available checks afresh, as executions need."""
        self.availability.cached()
        self.installed.add("codex")
        self.assertTrue(self.availability.is_available("codex"))
        self.assertEqual(dict(self.availability.cached())["codex"], False)
