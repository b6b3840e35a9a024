"""
Tests for L{clinvk.process.runner}: the life of one child on a fake
process reactor and clock.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessOutcome, ProcessRunner, ProcessSpec, RunningProcess, StopReason
from clinvk.process.spawn import Launcher
from clinvk.testing.reactor import FakeProcessReactor, FakeProcessTransport

TERM, KILL = signal.SIGTERM, signal.SIGKILL


class RunnerTests(SynchronousTestCase):
    """Spawning, deadlines and the kill protocol."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.runner = ProcessRunner(
            self.reactor,
            launcher=Launcher(("/bin/leader",)),
            signal_group=self.reactor.signal_group,
            kill_grace=5,
        )

    def start(self, **spec: Any) -> tuple[RunningProcess, FakeProcessTransport]:
        arguments: dict[str, Any] = {"argv": ["/bin/cli", "-x"], "env": {"K": "V"}, **spec}
        run = self.runner.start(ProcessSpec(**arguments), BufferedCapture(1000))
        return run, self.reactor.spawned[-1]

    def signals(self) -> list[int]:
        return [sig for _, sig in self.reactor.signals]

    def test_spawn(self) -> None:
        """argv goes through the launcher; env, cwd and stdin are as given."""
        run, child = self.start(stdin=b"prompt", path="/srv")
        self.assertEqual(child.argv, ["/bin/leader", "/bin/cli", "-x"])
        self.assertEqual(
            (child.env, child.path, child.stdin, child.stdin_closed), ({"K": "V"}, "/srv", b"prompt", True)
        )
        self.assertEqual(run.pid, child.pid)

    def test_exit(self) -> None:
        """A child that exits on its own ends the run with its status."""
        run, child = self.start()
        waiting = run.wait()
        child.exit(7)
        outcome = self.successResultOf(waiting)
        self.assertEqual(
            (outcome.exit_code, outcome.reason, outcome.reported_exit_code), (7, StopReason.EXITED, 7)
        )
        # The group is probed for leftovers once; nothing else is sent.
        self.assertEqual(self.signals(), [TERM])

    def test_cancel_term_then_kill(self) -> None:
        """Cancelling sends TERM to the group, then KILL after the grace period."""
        run, child = self.start()
        child.on_term = "ignore"
        waiting = run.wait()
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(self.signals(), [TERM])
        self.reactor.advance(4.9)
        self.assertEqual(self.signals(), [TERM])
        self.reactor.advance(0.1)
        self.assertEqual(self.signals(), [TERM, KILL])
        outcome = self.successResultOf(run.ended)
        self.assertEqual(
            (outcome.reason, outcome.signal, outcome.reported_exit_code), (StopReason.CANCELLED, KILL, -1)
        )

    def test_term_obeyed(self) -> None:
        """
        A group that goes on TERM within the grace period gets no KILL,
        and the run is finished as soon as its child has ended.
        """
        run, child = self.start()
        child.on_term = 1.0
        run.stop()
        self.reactor.advance(1)
        self.assertEqual(self.successResultOf(run.ended).signal, TERM)
        self.successResultOf(run.finished)
        # Signal 0 found the group gone.
        self.assertEqual(self.signals(), [TERM, 0])
        self.reactor.advance(10)
        self.assertEqual(self.signals(), [TERM, 0])

    def test_timeout(self) -> None:
        """The overall deadline stops the run."""
        run, _ = self.start(timeout=30.0)
        self.reactor.advance(29.9)
        self.assertNoResult(run.ended)
        self.reactor.advance(0.1)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.TIMEOUT)

    def test_idle_watchdog(self) -> None:
        """Output resets the idle watchdog; silence stops the run."""
        run, child = self.start(idle_timeout=10.0)
        self.reactor.advance(9)
        child.emit_stdout(b"tick")
        self.reactor.advance(9)
        self.assertNoResult(run.ended)
        self.reactor.advance(1)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.IDLE)

    def test_output_limit(self) -> None:
        """Output past the cap stops the run."""
        run, child = self.start()
        child.emit_stdout(b"x" * 1001)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.OUTPUT_LIMIT)

    def test_stop_is_idempotent(self) -> None:
        """Stopping twice sends TERM once and keeps the first reason."""
        run, child = self.start()
        child.on_term = "ignore"
        run.stop(StopReason.TIMEOUT)
        run.stop(StopReason.CANCELLED)
        self.assertEqual(self.signals(), [TERM])
        self.reactor.advance(5)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.TIMEOUT)

    def test_lingering_group(self) -> None:
        """Leftovers in the group after the leader exits get TERM, then KILL; the pipes they hold close."""
        run, child = self.start()
        child.lingering = True
        child.exit(0)
        self.assertEqual(self.signals(), [TERM])
        self.assertNoResult(run.ended)
        self.reactor.advance(5)
        self.assertEqual(self.signals(), [TERM, KILL])
        outcome = self.successResultOf(run.ended)
        self.assertEqual((outcome.exit_code, outcome.reason), (0, StopReason.EXITED))

    def test_pipes_closed_when_group_will_not_go(self) -> None:
        """If pipes stay open even after KILL, they are closed after another grace period."""
        run, child = self.start()
        child.lingering = True
        child.on_term = "ignore"
        run.stop()
        child.exit(0)
        # A KILL that the fake group survives (a process in uninterruptible sleep).
        child._signalled = lambda signum: True  # type: ignore[method-assign]
        self.reactor.advance(5)
        self.assertNoResult(run.ended)
        self.reactor.advance(5)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.CANCELLED)

    def test_early_reap(self) -> None:
        """A child reaped inside spawnProcess never makes the runner signal group 0."""
        self.reactor.exit_during_spawn = 0
        run, _child = self.start()
        self.assertEqual(run.pid, 4001)
        self.assertEqual(self.successResultOf(run.ended).exit_code, 0)
        self.assertNotIn(0, [pgid for pgid, _ in self.reactor.signals])

    def test_stopped_run_reports_minus_one(self) -> None:
        """A run the server stopped reports -1 even if the CLI then exited 0."""
        run, child = self.start()
        child.on_term = "ignore"
        run.stop(StopReason.TIMEOUT)
        child.exit(0)
        outcome = self.successResultOf(run.ended)
        self.assertEqual((outcome.exit_code, outcome.reported_exit_code), (0, -1))

    def test_grandchildren_get_their_grace(self) -> None:
        """
        After a stop, a group with members left is KILLed only after the
        grace period, even once the CLI is gone.
        """
        run, child = self.start()
        child.straggler = True
        run.stop()
        self.successResultOf(run.ended)
        self.assertNoResult(run.finished)
        self.assertEqual(self.signals(), [TERM, 0])
        self.reactor.advance(4.9)
        self.assertNoResult(run.finished)
        self.reactor.advance(0.1)
        self.assertEqual(self.signals(), [TERM, 0, KILL])
        self.successResultOf(run.finished)

    def test_straggler_after_own_exit(self) -> None:
        """A CLI that exits on its own leaving a member in its group: TERM, the grace period, KILL."""
        run, child = self.start()
        child.straggler = True
        child.exit(0)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.EXITED)
        self.assertNoResult(run.finished)
        self.reactor.advance(5)
        self.assertEqual(self.signals(), [TERM, 0, KILL])
        self.successResultOf(run.finished)

    def test_kill_now(self) -> None:
        """kill_now skips the rest of the grace period."""
        run, child = self.start()
        child.straggler = True
        run.stop()
        self.assertNoResult(run.finished)
        run.kill_now()
        self.assertEqual(self.signals(), [TERM, 0, KILL])
        self.successResultOf(run.finished)

    def test_paused_reader_is_not_idle(self) -> None:
        """While the consumer holds reading paused, the idle watchdog does not run."""
        run, _child = self.start(idle_timeout=10.0)
        run.pause()
        self.reactor.advance(60)
        self.assertNoResult(run.ended)
        run.resume()
        self.reactor.advance(10)
        self.assertEqual(self.successResultOf(run.ended).reason, StopReason.IDLE)

    def test_stop_resumes_reading(self) -> None:
        """Stopping a paused run reads on, so its last output and end are seen at once."""
        run, child = self.start()
        run.pause()
        child.emit_stdout(b"last words")
        run.stop()
        self.assertFalse(child.paused)
        self.successResultOf(run.ended)

    def test_timers_cancelled(self) -> None:
        """Once the run has ended no timer is left on the clock."""
        run, child = self.start(timeout=30.0, idle_timeout=5.0)
        child.exit(0)
        self.successResultOf(run.ended)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_spawn_failure(self) -> None:
        """A spawn that raises ends the run at once as a start failure."""
        self.reactor.spawn_error = OSError(2, "No such file or directory")
        run = self.runner.start(ProcessSpec(argv=["/nope"], env={}), BufferedCapture(10))
        outcome = self.successResultOf(run.wait())
        self.assertEqual(
            outcome,
            ProcessOutcome(None, None, StopReason.START_FAILED, "[Errno 2] No such file or directory"),
        )
        self.assertEqual(outcome.reported_exit_code, 1)

    def test_pause_resume(self) -> None:
        """Backpressure reaches the child's transport."""
        run, child = self.start()
        run.pause()
        self.assertTrue(child.paused)
        run.resume()
        self.assertFalse(child.paused)

    def test_waiters_independent(self) -> None:
        """Each caller gets its own Deferred."""
        run, child = self.start()
        first, second = run.wait(), run.wait()
        self.assertIsNot(first, second)
        child.exit(0)
        self.assertEqual(self.successResultOf(first), self.successResultOf(second))
