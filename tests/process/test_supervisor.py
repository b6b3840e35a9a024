"""
Tests for L{clinvk.process.supervisor}.
"""

from __future__ import annotations

import signal

from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import ShuttingDown
from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessRunner, ProcessSpec, StopReason
from clinvk.process.spawn import Launcher
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.testing.reactor import FakeProcessReactor


class SupervisorTests(SynchronousTestCase):
    """Owning every live run."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        runner = ProcessRunner(
            self.reactor, launcher=Launcher(), signal_group=self.reactor.signal_group, kill_grace=5
        )
        self.supervisor = ProcessSupervisor(runner)
        self.supervisor.startService()

    def start(self) -> object:
        return self.supervisor.start(
            ProcessSpec(argv=["/bin/x"], env={}), BufferedCapture(10), label="claude"
        )

    def test_registry(self) -> None:
        """Live runs are counted until they end."""
        run = self.start()
        self.start()
        self.assertEqual(self.supervisor.live, 2)
        self.reactor.spawned[0].exit(0)
        self.assertEqual(self.supervisor.live, 1)
        self.assertTrue(run.ended.called)  # type: ignore[attr-defined]

    def test_refuses_when_stopping(self) -> None:
        """No new run once stopping has begun, nor before starting."""
        self.supervisor.stopService()
        self.assertRaises(ShuttingDown, self.start)
        fresh = ProcessSupervisor(self.supervisor._runner)
        self.assertRaises(
            ShuttingDown, fresh.start, ProcessSpec(argv=["/bin/x"], env={}), BufferedCapture(10)
        )

    def test_stop_reaps_everything(self) -> None:
        """Stopping TERMs every group, KILLs stragglers after the grace period, and waits for all."""
        quick, stubborn = self.start(), self.start()
        self.reactor.spawned[1].on_term = "ignore"
        stopped = self.supervisor.stopService()
        self.assertTrue(quick.ended.called)  # type: ignore[attr-defined]
        self.assertNoResult(stopped)
        self.reactor.advance(5)
        self.successResultOf(stopped)
        self.assertEqual(self.supervisor.live, 0)
        self.assertEqual(self.successResultOf(stubborn.ended).reason, StopReason.SHUTDOWN)  # type: ignore[attr-defined]
        self.assertIn((self.reactor.spawned[1].pid, signal.SIGKILL), self.reactor.signals)

    def test_stop_with_nothing_running(self) -> None:
        """Stopping with no runs fires at once."""
        self.successResultOf(self.supervisor.stopService())
