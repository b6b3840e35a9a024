"""
Tests for L{clinvk.process.reaper}: what the server tells its group
reaper, and how it keeps one running.  The helper script itself runs for
real in tests/integration/test_group_reaper.py.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.process.protocol import BufferedCapture
from clinvk.process.reaper import RESTART_DELAY, GroupReaper
from clinvk.process.runner import ProcessRunner, ProcessSpec
from clinvk.process.spawn import Launcher
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.testing.reactor import FakeProcessReactor

ARGV = ("/bin/setsid", "/bin/sh", "-c", "script", "clinvk-reaper", "5")


class GroupReaperTests(SynchronousTestCase):
    """The helper learns every group, and runs as long as the server."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.reaper = GroupReaper(self.reactor, self.reactor, ARGV)
        self.reaper.start()

    def test_started_with_first_group(self) -> None:
        """No helper runs until there is a group to watch."""
        self.assertEqual(self.reactor.spawned, [])
        self.reaper.add(4242)
        [helper] = self.reactor.spawned
        self.assertEqual(helper.argv, list(ARGV))
        self.assertEqual(helper.stdin, b"+ 4242\n")

    def test_told(self) -> None:
        """Groups that start and end are written to the helper's stdin."""
        self.reaper.add(4242)
        self.reaper.add(4243)
        self.reaper.remove(4242)
        self.reaper.remove(9999)
        [helper] = self.reactor.spawned
        self.assertEqual(helper.stdin, b"+ 4242\n+ 4243\n- 4242\n")
        self.assertEqual(self.reaper.groups, {4243})

    def test_stop(self) -> None:
        """Stopping closes the helper's stdin and fires once it has ended."""
        self.reaper.add(4242)
        self.reaper.remove(4242)
        [helper] = self.reactor.spawned
        helper.exits_with_stdin = False
        stopped = self.reaper.stop()
        self.assertTrue(helper.stdin_closed)
        self.assertNoResult(stopped)
        helper.exit(0)
        self.successResultOf(stopped)
        self.reactor.advance(RESTART_DELAY * 2)
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_stop_unstarted(self) -> None:
        """Stopping a reaper whose helper never started fires at once."""
        self.successResultOf(self.reaper.stop())
        self.reaper.add(4242)
        self.assertEqual(self.reactor.spawned, [])

    def test_restart(self) -> None:
        """A helper that ends on its own is started again, and told the live groups."""
        self.reaper.add(4242)
        self.reactor.spawned[0].die(9)
        self.assertEqual(len(self.reactor.spawned), 1)
        self.reactor.advance(RESTART_DELAY)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(self.reactor.spawned[1].stdin, b"+ 4242\n")

    def test_cannot_start(self) -> None:
        """A helper that cannot start is logged; runs go on without it."""
        self.reactor.spawn_error = OSError("no shell")
        self.reaper.add(4242)
        self.reaper.add(4243)
        self.assertEqual(self.reactor.spawned, [])
        self.successResultOf(self.reaper.stop())


class SupervisedReaperTests(SynchronousTestCase):
    """The supervisor keeps its runner's reaper informed."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()

    def supervisor(self, launcher: Launcher) -> ProcessSupervisor:
        runner = ProcessRunner(
            self.reactor, launcher=launcher, signal_group=self.reactor.signal_group, kill_grace=5
        )
        supervisor = ProcessSupervisor(runner)
        supervisor.startService()
        return supervisor

    def test_groups(self) -> None:
        """Each run's group is told when it starts and when it is gone; the reaper stops last."""
        supervisor = self.supervisor(Launcher((), ARGV))
        run = supervisor.start(ProcessSpec(argv=["/bin/x"], env={}), BufferedCapture(10))
        cli, helper = self.reactor.spawned
        self.assertEqual(helper.stdin, f"+ {run.pid}\n".encode())
        cli.exit(0)
        self.assertEqual(helper.stdin, f"+ {run.pid}\n- {run.pid}\n".encode())
        self.successResultOf(supervisor.stopService())
        self.assertTrue(helper.stdin_closed and helper.ended)

    def test_without_reaper(self) -> None:
        """A launcher without a reaper starts none."""
        supervisor = self.supervisor(Launcher())
        supervisor.start(ProcessSpec(argv=["/bin/x"], env={}), BufferedCapture(10))
        self.assertEqual([transport.argv for transport in self.reactor.spawned], [["/bin/x"]])
        self.reactor.spawned[0].exit(0)
        self.successResultOf(supervisor.stopService())
