"""How a failed run is told to the compatibility APIs' clients."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.runs import CompatRunner, failure_text
from clinvk.model import RunRequest, RunResult
from clinvk.runs.runtime import EventChannel
from tests.helpers import Server


class FailureTextTests(SynchronousTestCase):
    def test_error_and_output(self) -> None:
        """The error, then what the CLI printed."""
        result = RunResult(exit_code=1, error="backend exited with status 1", output="Usage: claude ...")
        self.assertEqual(failure_text(result), "backend exited with status 1: Usage: claude ...")

    def test_said_once(self) -> None:
        """An error that is (in) the output is said once (Claude prints its complaint as its answer)."""
        result = RunResult(exit_code=1, error="API Error: 400 Refused.", output="API Error: 400 Refused.\n")
        self.assertEqual(failure_text(result), "API Error: 400 Refused.")
        result = RunResult(exit_code=1, error="Refused.", output="Warning: x\nRefused.")
        self.assertEqual(failure_text(result), "Refused.")

    def test_streamed(self) -> None:
        """A stream's text stands in for the output."""
        result = RunResult(exit_code=1, error="boom")
        self.assertEqual(failure_text(result, streamed="partial"), "boom: partial")

    def test_nothing_said(self) -> None:
        self.assertEqual(failure_text(RunResult(exit_code=3)), "backend exited with status 3")


class StreamTests(SynchronousTestCase):
    def test_cancelled_while_queued(self) -> None:
        """
        A stream given up while it waits for a run slot never starts its
        CLI, even once a slot frees.
        """
        server = Server(config={"server": {"max_concurrent_runs": 1, "max_queued_runs": 1}})
        runner = CompatRunner(server.runtime)

        def stream(prompt: str) -> Deferred[EventChannel]:
            prepared = runner.prepare(
                RunRequest(backend="claude", prompt=prompt, ephemeral=True), streaming=True
            )
            return Deferred.fromCoroutine(runner.stream(prepared))

        first = self.successResultOf(stream("a"))
        queued = stream("b")
        self.assertNoResult(queued)
        queued.cancel()
        self.failureResultOf(queued, CancelledError)
        server.reactor.spawned[-1].exit(0)
        self.successResultOf(first.result())
        self.assertEqual(len(server.reactor.spawned), 1)
