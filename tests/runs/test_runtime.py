"""
Tests for L{clinvk.runs.runtime} on a fake process reactor: pre-flight,
dry runs, runs, streams, cancellation and ephemeral clean-up.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.errors import ShuttingDown
from clinvk.model import RunRequest, RunResult, TokenUsage, UnifiedEvent
from clinvk.process.runner import ProcessRunner
from clinvk.process.spawn import Launcher
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.channel import HIGH_WATER
from clinvk.runs.cleanup import NativeSessionCleanup
from clinvk.runs.runtime import (
    LOGGED_ERROR_LIMIT,
    BackendRuntime,
    EventChannel,
    PreflightError,
)
from clinvk.testing.reactor import FakeProcessReactor, FakeProcessTransport
from tests.backends.helpers import config, sample
from tests.helpers import fake_which, started_supervisor


class _RuntimeTestCase(SynchronousTestCase):
    installed = {"claude", "codex", "gemini"}

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.reactor.advance(1_700_000_000)
        self.home = FilePath(self.mktemp())
        self.home.makedirs()
        self.supervisor = started_supervisor(self.reactor)
        self.runtime = self.make_runtime()

    environ = {"PATH": "/usr/local/bin", "ANTHROPIC_API_KEY": "k"}

    def make_runtime(self, raw: dict[str, Any] | None = None) -> BackendRuntime:
        return BackendRuntime(
            config=config(raw),
            backends=build_backends(),
            supervisor=self.supervisor,
            availability=BackendAvailability(self.reactor, which=fake_which(self.installed)),
            clock=self.reactor,
            environ=self.environ,
            home=self.home.path,
        )

    def run_request(self, runtime: BackendRuntime | None = None, **request: Any) -> Deferred[RunResult]:
        return Deferred.fromCoroutine(
            (runtime or self.runtime).run(RunRequest(**{"prompt": "hi", **request}))
        )

    def child(self, index: int = -1) -> FakeProcessTransport:
        return self.reactor.spawned[index]


class PreflightTests(_RuntimeTestCase):
    """docs/design/cli-runs.md#preflight: the checks, their texts and their order."""

    installed = {"claude", "codex"}

    def error(self, **request: Any) -> str:
        result = self.successResultOf(self.run_request(**request))
        self.assertEqual((result.exit_code, result.ran), (1, False))
        self.assertEqual(self.reactor.spawned, [])
        return result.error

    def test_output_format(self) -> None:
        """The requested format is checked first, as given."""
        self.assertEqual(
            self.error(backend="nope", output_format="XML", workdir="relative"),
            'invalid output_format "XML": must be one of default, text, json, stream-json',
        )
        self.assertEqual(
            self.successResultOf(
                self.run_request(backend="claude", output_format=" Stream-JSON ", dry_run=True)
            ).exit_code,
            0,
        )

    def test_workdir_before_backend(self) -> None:
        """The working directory is checked before the backend name."""
        self.assertEqual(
            self.error(backend="nope", workdir="relative"), "invalid work directory: must be an absolute path"
        )

    def test_unknown_backend(self) -> None:
        """Unknown and differently cased names are refused, listing the backends sorted."""
        for name in ("llama", "Claude"):
            self.assertEqual(
                self.error(backend=name), f'unknown backend "{name}" (available: [claude codex gemini])'
            )

    def test_extra(self) -> None:
        """Disallowed extra flags are refused before availability."""
        self.assertEqual(
            self.error(backend="gemini", extra=["--json"]), "flag not allowed for gemini: --json"
        )

    def test_unavailable(self) -> None:
        """A backend whose CLI is not on PATH is not available, dry run or not."""
        self.assertEqual(self.error(backend="gemini"), 'backend "gemini" is not available')
        self.assertEqual(self.error(backend="gemini", dry_run=True), 'backend "gemini" is not available')

    def test_prepare_raises(self) -> None:
        """prepare raises PreflightError with the same text."""
        with self.assertRaises(PreflightError) as raised:
            self.runtime.prepare(RunRequest(backend="x", prompt="p"))
        self.assertEqual(str(raised.exception), 'unknown backend "x" (available: [claude codex gemini])')


class DryRunTests(_RuntimeTestCase):
    """docs/design/cli-runs.md#dry-runs, with the standard input's size."""

    def test_rendering(self) -> None:
        """Nothing is spawned; the output names the command and the stdin size."""
        result = self.successResultOf(
            self.run_request(backend="claude", prompt="héllo", ephemeral=True, dry_run=True)
        )
        self.assertEqual(
            result.output,
            "Would execute: /usr/local/bin/claude [--print --output-format json --no-session-persistence] < stdin (6 bytes)",
        )
        self.assertEqual((result.exit_code, result.error, result.usage, result.dry_run), (0, "", None, True))
        self.assertEqual(self.reactor.spawned, [])

    def test_codex_dry_run_flags(self) -> None:
        """Codex shows its dry-run sandbox flag."""
        result = self.successResultOf(self.run_request(backend="codex", dry_run=True))
        self.assertIn("[exec --json --sandbox read-only -]", result.output)

    def test_configured_dry_run(self) -> None:
        """unified_flags.dry_run turns every run into a dry run."""
        runtime = self.make_runtime({"unified_flags": {"dry_run": True}})
        self.assertTrue(self.successResultOf(self.run_request(runtime, backend="gemini")).dry_run)

    def test_stream(self) -> None:
        """A streaming dry run is two events without sequence (7.4)."""
        stream = self.runtime.stream(
            self.runtime.prepare(RunRequest(backend="gemini", prompt="p", dry_run=True), streaming=True)
        )
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual(
            [(e.type, dict(e.content), e.sequence) for e in found],
            [
                (
                    "message",
                    {
                        "text": "Would execute: /usr/local/bin/gemini [--output-format stream-json] < stdin (1 bytes)",
                        "role": "assistant",
                    },
                    0,
                ),
                ("done", {}, 0),
            ],
        )
        self.assertEqual(self.successResultOf(stream.result()).exit_code, 0)


async def collect(stream: EventChannel) -> list[UnifiedEvent]:
    return [event async for event in stream]


class RunTests(_RuntimeTestCase):
    """Non-streaming runs (docs/design/cli-runs.md#capture, docs/design/cli-runs.md#output-parsing)."""

    def test_spawn(self) -> None:
        """argv, environment, working directory and stdin (docs/design/decisions.md#d1-prompts-on-stdin)."""
        workdir = self.home.child("project")
        workdir.makedirs()
        self.run_request(
            backend="codex", prompt="-x fix it", system_prompt="Be terse.", workdir=workdir.path, model="fast"
        )
        child = self.child()
        self.assertEqual(
            child.argv, ["/usr/local/bin/codex", "exec", "--model", "gpt-4.1-mini", "--json", "-"]
        )
        self.assertEqual(child.env, {"PATH": "/usr/local/bin", "ANTHROPIC_API_KEY": "k"})
        self.assertEqual(child.path, workdir.path)
        self.assertEqual(child.stdin, b"Be terse.\n\n-x fix it")
        self.assertTrue(child.stdin_closed)

    def test_success(self) -> None:
        """The parsed answer, native id and usage make the result."""
        running = self.run_request(backend="claude")
        self.child().emit_stdout(sample("claude/result.json").encode())
        self.child().exit(0)
        result = self.successResultOf(running)
        self.assertTrue(result.succeeded)
        self.assertEqual(result.output, "The capital of France is Paris.")
        self.assertEqual(result.usage, TokenUsage(12, 42, 13250))
        self.assertEqual(result.command[0], "/usr/local/bin/claude")

    def test_claude_stderr_merged(self) -> None:
        """Claude's stderr noise is read with its stdout and skipped."""
        running = self.run_request(backend="claude")
        self.child().emit_stderr(b"(node) warning\n")
        self.child().emit_stdout(sample("claude/result.json").encode())
        self.child().exit(0)
        self.assertEqual(self.successResultOf(running).output, "The capital of France is Paris.")

    def test_timeout(self) -> None:
        """command_timeout_secs kills the process group; the result says why."""
        runtime = self.make_runtime({"unified_flags": {"command_timeout_secs": 5}})
        running = self.run_request(runtime, backend="gemini")
        self.reactor.advance(4.9)
        self.assertEqual(self.reactor.signals, [])
        self.reactor.advance(0.1)
        self.assertEqual(self.reactor.signals[0], (self.child().pid, signal.SIGTERM))
        result = self.successResultOf(running)
        self.assertEqual((result.exit_code, result.error), (-1, "backend command timed out after 5s"))

    def test_cancel(self) -> None:
        """Cancelling the run (a client gone) stops the process group."""
        running = self.run_request(backend="claude")
        self.child().straggler = True  # something the CLI started stays in its group
        running.cancel()
        self.failureResultOf(running, CancelledError)
        self.assertIn((self.child().pid, signal.SIGTERM), self.reactor.signals)
        self.assertEqual(self.supervisor.live, 1)  # its group has its grace period
        self.reactor.advance(5)
        self.assertEqual(self.supervisor.live, 0)

    def test_start_failure(self) -> None:
        """A process that cannot start is a result with exit code 1 and the OS error."""
        self.reactor.spawn_error = PermissionError(13, "Permission denied")
        result = self.successResultOf(self.run_request(backend="codex"))
        self.assertEqual((result.exit_code, result.error), (1, "[Errno 13] Permission denied"))

    def test_output_limit(self) -> None:
        """Output past max_run_output_bytes stops the run with a clear error."""
        runtime = self.make_runtime({"server": {"max_run_output_bytes": 100}})
        running = self.run_request(runtime, backend="claude")
        self.child().emit_stdout(b"x" * 101)
        result = self.successResultOf(running)
        self.assertEqual(result.exit_code, -1)
        self.assertIn("maximum size limit of 100 bytes", result.error)

    def test_shutting_down(self) -> None:
        """Once the supervisor stops, runs are refused."""
        self.supervisor.stopService()
        self.failureResultOf(self.run_request(backend="claude"), ShuttingDown)

    def test_allowed_tools_warning_once(self) -> None:
        """allowed_tools on another backend is ignored with one warning per backend."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        runtime = self.make_runtime({"backends": {"codex": {"allowed_tools": "Read"}}})
        for _ in range(2):
            runtime.prepare(RunRequest(backend="codex", prompt="p"))
        warnings = [e for e in events if "allowed_tools option is only supported" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)


class CleanupTests(_RuntimeTestCase):
    """Ephemeral runs remove their native sessions (docs/design/cli-runs.md#ephemeral-cleanup)."""

    def test_gemini_delete_session(self) -> None:
        """
        gemini --delete-session <id> runs after an ephemeral run, without
        holding its result back (it is a CLI start of seconds); the
        runtime counts it until it ends.
        """
        running = self.run_request(backend="gemini", ephemeral=True)
        self.child().emit_stdout(sample("gemini/success.json").encode())
        self.child().exit(0)
        self.assertEqual(self.successResultOf(running).output, "Paris is the capital of France.")
        self.assertEqual(
            self.child().argv,
            ["/usr/local/bin/gemini", "--delete-session", "0f3c9a52-5e0b-4c7e-9d1e-2f6a8b7c4d10"],
        )
        self.assertEqual(self.runtime.cleanups, 1)
        settled = self.runtime.settled()
        self.assertNoResult(settled)
        self.child().exit(0)
        self.assertEqual(self.runtime.cleanups, 0)
        self.successResultOf(settled)

    def test_shutdown_skips_cleanup(self) -> None:
        """During shutdown the clean-up is skipped; the run still has its result."""
        running = self.run_request(backend="gemini", ephemeral=True)
        child = self.child()
        child.on_term = "ignore"
        self.supervisor.stopService()
        child.emit_stdout(sample("gemini/success.json").encode())
        child.exit(0)
        result = self.successResultOf(running)
        self.assertEqual(result.error, "server is shutting down")
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_not_for_kept_sessions(self) -> None:
        """A non-ephemeral run leaves its native session alone."""
        running = self.run_request(backend="gemini")
        self.child().emit_stdout(sample("gemini/success.json").encode())
        self.child().exit(0)
        self.successResultOf(running)
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_codex_session_file(self) -> None:
        """The codex session file is deleted: today's directory first, else the whole tree."""
        thread = "0199a213-81c0-7800-8aa1-bbab2a035a53"
        today = time.localtime(self.reactor.seconds())
        dated = self.home.descendant(
            [".codex", "sessions", f"{today.tm_year:04d}", f"{today.tm_mon:02d}", f"{today.tm_mday:02d}"]
        )
        dated.makedirs()
        todays = dated.child(f"rollout-{thread}.jsonl")
        todays.setContent(b"{}")
        older = self.home.descendant([".codex", "sessions", "2020", "01", "02", f"rollout-{thread}.jsonl"])
        older.parent().makedirs()
        older.setContent(b"{}")
        for expected_gone in (todays, older):
            running = self.run_request(backend="codex", ephemeral=True)
            self.child().emit_stdout(sample("codex/exec.jsonl").encode())
            self.child().exit(0)
            self.successResultOf(running)
            while self.runtime.cleanups:
                self.reactor.advance(0)
            self.assertFalse(os.path.exists(expected_gone.path))


class StreamTests(_RuntimeTestCase):
    """Streaming runs (docs/design/cli-runs.md#stream-reading)."""

    def start(
        self, backend: str = "claude", runtime: BackendRuntime | None = None, **request: Any
    ) -> EventChannel:
        runtime = runtime or self.runtime
        return runtime.stream(
            runtime.prepare(RunRequest(backend=backend, prompt="p", **request), streaming=True)
        )

    def test_events(self) -> None:
        """Lines become events as they arrive, numbered and stamped on the reactor clock."""
        stream = self.start("gemini")
        self.child().emit_stdout(sample("gemini/stream.jsonl").encode())
        self.child().exit(0)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual(
            [e.type for e in found],
            ["init", "tool_use", "tool_result", "tool_result", "error", "message", "message", "done"],
        )
        self.assertEqual(found[0].sequence, 1)
        self.assertEqual(found[0].timestamp, self.reactor.seconds())
        result = self.successResultOf(stream.result())
        self.assertEqual((result.exit_code, result.error), (0, ""))
        self.assertEqual(result.native_session_id, "0f3c9a52-5e0b-4c7e-9d1e-2f6a8b7c4d10")

    def test_delivered_as_produced(self) -> None:
        """A consumer gets each event before the child has finished."""
        stream = self.start("codex")
        received: list[UnifiedEvent] = []

        async def consume() -> None:
            async for event in stream:
                received.append(event)

        consuming = Deferred.fromCoroutine(consume())
        self.child().emit_stdout(
            b'{"type":"thread.started","thread_id":"t"}\n{"type":"item.completed","item":{"type":"agent_message","text":"hi"}}\n'
        )
        self.assertEqual([e.type for e in received], ["init", "message"])
        self.assertNoResult(consuming)
        self.child().exit(0)
        self.successResultOf(consuming)

    def test_backpressure(self) -> None:
        """A consumer that falls behind pauses the child; catching up resumes it."""
        stream = self.start("codex")
        line = b'{"type":"item.completed","item":{"type":"agent_message","text":"x"}}\n'
        self.child().emit_stdout(line * HIGH_WATER)
        self.assertTrue(self.child().paused)
        iterator = stream.__aiter__()
        for _ in range(HIGH_WATER - 16):
            self.successResultOf(Deferred.fromCoroutine(iterator.__anext__()))
        self.assertFalse(self.child().paused)

    def test_failure_without_error_event(self) -> None:
        """A non-zero exit the CLI did not explain ends with an exit_<N> error event."""
        stream = self.start("codex")
        self.child().emit_stderr(b"error: unexpected argument '--ask-for-approval' found\n")
        self.child().exit(2)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual(
            [(e.type, dict(e.content)) for e in found],
            [
                (
                    "error",
                    {"code": "exit_2", "message": "error: unexpected argument '--ask-for-approval' found"},
                )
            ],
        )

    def test_merged_plain_text_failure(self) -> None:
        """
        A CLI whose stderr is merged into its stream (claude) and that fails
        in plain text has that text as its error, not only its status.
        """
        stream = self.start("claude")
        self.child().emit_stdout(b'{"type":"system","subtype":"init","session_id":"s"}\n')
        self.child().emit_stderr(b"Error: \x1b[31mInvalid model name\x1b[0m\n")
        self.child().exit(1)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual(dict(found[-1].content), {"code": "exit_1", "message": "Error: Invalid model name"})
        self.assertEqual(self.successResultOf(stream.result()).error, "Error: Invalid model name")

    def test_error_event_not_repeated(self) -> None:
        """When the CLI reported its failure, no second error event is added."""
        stream = self.start("gemini")
        self.child().emit_stdout(sample("gemini/stream_error.jsonl").encode())
        self.child().exit(1)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual([e.type for e in found].count("error"), 1)
        self.assertEqual(self.successResultOf(stream.result()).error, "Quota exceeded for model")

    def test_line_too_long(self) -> None:
        """A line past the cap stops the run with stream_line_too_long, then the exit error."""
        runtime = self.make_runtime({"server": {"max_run_output_bytes": 50}})
        stream = self.start("claude", runtime)
        self.child().emit_stdout(b"x" * 51)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual([e.content.get("code") for e in found], ["stream_line_too_long"])
        self.assertEqual(self.successResultOf(stream.result()).exit_code, -1)

    def test_cancel(self) -> None:
        """Cancelling the stream stops the process group and fails its result."""
        stream = self.start("claude")
        stream.cancel()
        self.assertIn((self.child().pid, signal.SIGTERM), self.reactor.signals)
        self.failureResultOf(stream.result(), CancelledError)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(collect(stream))), [])


class FailureLogTests(_RuntimeTestCase):
    """
    A failed run is logged once, at warning level, with what the CLI said
    and its secrets redacted (issue 16).
    """

    environ = {"PATH": "/usr/local/bin", "GEMINI_API_KEY": "opaque-gemini-secret"}

    def setUp(self) -> None:
        super().setUp()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]

    def failures(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("log_format", "").startswith("Backend run failed ")]

    def test_failed_run(self) -> None:
        """Backend, exit status, reason and message; the secrets in the message redacted."""
        running = self.run_request(backend="codex")
        self.child().emit_stderr(
            b"error: 401 Unauthorized: Incorrect API key provided: sk-proj-abcdef123456 "
            b"(key opaque-gemini-secret)\n"
        )
        self.child().exit(3)
        result = self.successResultOf(running)
        [event] = self.failures()
        self.assertEqual(event["log_level"], LogLevel.warn)
        self.assertEqual((event["backend"], event["exit_code"], event["reason"]), ("codex", 3, "exited"))
        self.assertEqual(
            event["error"],
            "error: 401 Unauthorized: Incorrect API key provided: sk-[REDACTED] (key [REDACTED])",
        )
        # The result itself is what the CLI said.
        self.assertIn("sk-proj-abcdef123456", result.error)
        self.assertNotIn("opaque-gemini-secret", formatEvent(event))

    def test_success_not_logged(self) -> None:
        running = self.run_request(backend="claude")
        self.child().emit_stdout(sample("claude/result.json").encode())
        self.child().exit(0)
        self.assertTrue(self.successResultOf(running).succeeded)
        self.assertEqual(self.failures(), [])

    def test_stopped_by_the_server(self) -> None:
        """A timeout and a start failure are failures too, with their reason."""
        runtime = self.make_runtime({"unified_flags": {"command_timeout_secs": 5}})
        running = self.run_request(runtime, backend="gemini")
        self.reactor.advance(5)
        self.successResultOf(running)
        self.reactor.spawn_error = PermissionError(13, "Permission denied")
        self.successResultOf(self.run_request(backend="claude"))
        self.assertEqual(
            [(e["backend"], e["exit_code"], e["reason"], e["error"]) for e in self.failures()],
            [
                ("gemini", -1, "timeout", "backend command timed out after 5s"),
                ("claude", 1, "start_failed", "[Errno 13] Permission denied"),
            ],
        )

    def test_not_the_cli_fault(self) -> None:
        """A run cancelled (its client gone) or stopped by a shutdown is not logged as failed."""
        running = self.run_request(backend="claude")
        running.cancel()
        self.failureResultOf(running, CancelledError)
        running = self.run_request(backend="claude")
        self.supervisor.stopService()
        self.reactor.advance(5)
        self.assertEqual(self.successResultOf(running).error, "server is shutting down")
        self.assertEqual(self.failures(), [])

    def test_stream(self) -> None:
        """A stream that fails is logged once too."""
        prepared = self.runtime.prepare(RunRequest(backend="gemini", prompt="p"), streaming=True)
        stream = self.runtime.stream(prepared)
        self.child().emit_stdout(sample("gemini/stream_error.jsonl").encode())
        self.child().exit(1)
        self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.successResultOf(stream.result())
        self.assertEqual(
            [(e["backend"], e["exit_code"], e["error"]) for e in self.failures()],
            [("gemini", 1, "Quota exceeded for model")],
        )

    def test_long_message(self) -> None:
        """A long message is cut, so that one failure is one readable line."""
        running = self.run_request(backend="codex")
        self.child().emit_stderr(b"x" * (LOGGED_ERROR_LIMIT + 100))
        self.child().exit(1)
        self.successResultOf(running)
        [event] = self.failures()
        self.assertEqual(event["error"], "x" * LOGGED_ERROR_LIMIT + "...")


class SessionFilesTests(TestCase):
    """The search for codex session files never blocks long: it yields between directories."""

    def test_many_directories(self) -> None:
        """A tree with many directories is searched across reactor turns, not in one go."""
        reactor = FakeProcessReactor()
        home = FilePath(self.mktemp())
        for index in range(30):
            home.descendant([".codex", "sessions", f"d{index}"]).makedirs()
        target = home.descendant([".codex", "sessions", "d29", "rollout-abc.jsonl"])
        target.setContent(b"")
        cleanup = NativeSessionCleanup(
            ProcessSupervisor(
                ProcessRunner(reactor, launcher=Launcher(), signal_group=reactor.signal_group, kill_grace=1)
            ),
            reactor,
            {},
            home.path,
        )
        deleting = Deferred.fromCoroutine(
            cleanup._delete_session_file(os.path.join(home.path, ".codex", "sessions"), "abc")
        )
        self.assertNoResult(deleting)
        self.assertTrue(os.path.exists(target.path))
        reactor.advance(0)
        self.successResultOf(deleting)
        self.assertFalse(os.path.exists(target.path))


class ResumedUsageTests(_RuntimeTestCase):
    """A CLI that reports a resumed conversation's running total (codex) has the earlier turns taken off."""

    RESUMED = (
        '{"type":"thread.started","thread_id":"t"}\n'
        '{"type":"turn.completed","usage":{"input_tokens":60,"cached_input_tokens":10,"output_tokens":9}}\n'
    )

    def test_run(self) -> None:
        """A resumed codex turn reports its own tokens."""
        running = self.run_request(backend="codex", resume_id="t", resumed_usage=TokenUsage(40, 6, 4))
        self.child().emit_stdout(self.RESUMED.encode())
        self.child().exit(0)
        self.assertEqual(self.successResultOf(running).usage, TokenUsage(20, 3, 6))

    def test_stream(self) -> None:
        """The done event of a resumed codex stream carries the turn's own tokens."""
        prepared = self.runtime.prepare(
            RunRequest(backend="codex", prompt="p", resume_id="t", resumed_usage=TokenUsage(40, 6, 4)),
            streaming=True,
        )
        stream = self.runtime.stream(prepared)
        self.child().emit_stdout(self.RESUMED.encode())
        self.child().exit(0)
        found = self.successResultOf(Deferred.fromCoroutine(collect(stream)))
        self.assertEqual(
            found[-1].content["token_usage"], {"input_tokens": 20, "output_tokens": 3, "cached_tokens": 6}
        )
        self.assertEqual(self.successResultOf(stream.result()).usage, TokenUsage(20, 3, 6))

    def test_other_backends_unchanged(self) -> None:
        """Claude reports a turn's own tokens: nothing is taken off."""
        running = self.run_request(backend="claude", resume_id="s", resumed_usage=TokenUsage(40, 6, 4))
        self.child().emit_stdout(sample("claude/result.json").encode())
        self.child().exit(0)
        self.assertEqual(self.successResultOf(running).usage, TokenUsage(12, 42, 13250))
