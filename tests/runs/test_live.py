"""
Tests for live turns (L{clinvk.runs.live}, L{clinvk.runs.live_pool} and
their use by L{clinvk.runs.runtime.BackendRuntime}) on a fake process
reactor, with Claude's live protocol (docs/design/live-sessions.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.model import RunRequest, RunResult, UnifiedEvent
from clinvk.process.admission import Admission
from clinvk.runs.channel import StreamChannel
from clinvk.runs.live_pool import memory_sized_limit
from clinvk.runs.runtime import BackendRuntime, EventChannel
from clinvk.testing.reactor import FakeProcessReactor, FakeProcessTransport
from tests.backends.helpers import config
from tests.helpers import fake_which, started_supervisor

CLAUDE = "/usr/local/bin/claude"
LIVE_ARGV = [
    CLAUDE,
    "--print",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
]


def init(native_id: str) -> bytes:
    line = {"type": "system", "subtype": "init", "session_id": native_id, "model": "claude-sonnet-4-5"}
    return json.dumps(line).encode() + b"\n"


def delta(native_id: str, text: str) -> bytes:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return json.dumps({"type": "stream_event", "event": event, "session_id": native_id}).encode() + b"\n"


def result(native_id: str, text: str, *, subtype: str = "success", is_error: bool = False) -> bytes:
    line = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "result": text,
        "session_id": native_id,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    return json.dumps(line).encode() + b"\n"


def answer(child: FakeProcessTransport, native_id: str, text: str) -> None:
    """The live CLI answers the turn it was sent."""
    child.emit_stdout(init(native_id) + delta(native_id, text) + result(native_id, text))


def turns_written(child: FakeProcessTransport) -> list[Any]:
    """The JSON lines written to C{child}'s stdin."""
    return [json.loads(line) for line in child.stdin.decode().splitlines()]


class LiveTestCase(SynchronousTestCase):
    raw: dict[str, Any] = {}

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.reactor.advance(1_700_000_000)
        home = FilePath(self.mktemp())
        home.makedirs()
        self.supervisor = started_supervisor(self.reactor, kill_grace=5)
        self.admission = Admission(self.reactor, 4, 4, 60)
        self.runtime = self.make_runtime(self.raw)

    def make_runtime(self, raw: dict[str, Any]) -> BackendRuntime:
        return BackendRuntime(
            config=config(raw),
            backends=build_backends(),
            supervisor=self.supervisor,
            availability=BackendAvailability(self.reactor, which=fake_which({"claude", "codex", "gemini"})),
            clock=self.reactor,
            environ={"PATH": "/usr/local/bin"},
            home=self.mktemp(),
            admission=self.admission,
        )

    def turn(self, conversation: str, prompt: str = "hi", **request: Any) -> Deferred[RunResult]:
        prepared = self.runtime.prepare(RunRequest(backend="claude", prompt=prompt, **request))
        return Deferred.fromCoroutine(self.runtime.execute(prepared, conversation))

    def stream(
        self, conversation: str, prompt: str = "hi", **request: Any
    ) -> tuple[EventChannel, Deferred[RunResult]]:
        prepared = self.runtime.prepare(
            RunRequest(backend="claude", prompt=prompt, **request), streaming=True
        )
        channel: EventChannel = StreamChannel()
        return channel, self.runtime.feed(prepared, channel, conversation)

    def child(self, index: int = -1) -> FakeProcessTransport:
        return self.reactor.spawned[index]


class TurnTests(LiveTestCase):
    """docs/design/live-sessions.md#live-turns."""

    def test_first_turn(self) -> None:
        """
        A conversation's first turn starts a live process: the stream-json
        argv, the prompt as a user line on stdin, which stays open.  The
        turn ends with the result line, answer, native id and usage as a
        cold run reports them.
        """
        running = self.turn("s1", "hello")
        child = self.child()
        self.assertEqual(child.argv, LIVE_ARGV)
        self.assertFalse(child.stdin_closed)
        self.assertEqual(
            turns_written(child),
            [
                {
                    "type": "user",
                    "message": {"role": "user", "content": "hello"},
                    "parent_tool_use_id": None,
                    "session_id": "",
                }
            ],
        )
        self.assertNoResult(running)
        answer(child, "n1", "Hello!")
        done = self.successResultOf(running)
        self.assertEqual((done.exit_code, done.output, done.native_session_id), (0, "Hello!", "n1"))
        self.assertEqual((done.usage.input_tokens, done.usage.output_tokens), (3, 2))  # type: ignore[union-attr]
        self.assertFalse(child.exited)
        self.assertEqual(self.admission.running, 0)

    def test_follow_up_reuses(self) -> None:
        """The next turn of the conversation goes to the same process: nothing is spawned."""
        running = self.turn("s1", "one")
        answer(self.child(), "n1", "1")
        self.successResultOf(running)
        running = self.turn("s1", "two", resume_id="n1")
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual([line["message"]["content"] for line in turns_written(self.child())], ["one", "two"])
        answer(self.child(), "n1", "2")
        self.assertEqual(self.successResultOf(running).output, "2")
        counts = self.runtime.live.counts()
        self.assertEqual((counts.live, counts.idle, counts.cold_starts, counts.reused), (1, 1, 1, 1))

    def test_conversations_apart(self) -> None:
        """Each conversation has its own process."""
        self.turn("s1")
        self.turn("s2")
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(self.runtime.live.counts().live, 2)

    def test_stream(self) -> None:
        """A streamed turn's events reach the channel as the CLI prints them, stamped."""
        channel, running = self.stream("s1")
        self.successResultOf(channel.started())
        self.reactor.advance(1)
        answer(self.child(), "n1", "Hi")
        done = self.successResultOf(running)
        self.assertEqual(done.output, "Hi")
        channel.close(done)
        found: list[UnifiedEvent] = self.successResultOf(Deferred.fromCoroutine(_collect(channel)))
        self.assertEqual([event.type for event in found], ["init", "message", "done"])
        self.assertEqual(found[1].content["text"], "Hi")
        self.assertEqual(found[0].timestamp, self.reactor.seconds())

    def test_failed_turn(self) -> None:
        """A turn the CLI reports failed is a failed result; the process stays for the next."""
        running = self.turn("s1")
        child = self.child()
        child.emit_stdout(init("n1") + result("n1", "API Error: 400 bad", is_error=True))
        done = self.successResultOf(running)
        self.assertEqual((done.exit_code, done.error, done.output), (1, "API Error: 400 bad", ""))
        self.assertFalse(child.exited)

    def test_changed_options(self) -> None:
        """
        A turn started differently (another system prompt) needs another
        process: the old one is closed, the new one resumes the conversation.
        """
        running = self.turn("s1")
        answer(self.child(), "n1", "1")
        self.successResultOf(running)
        first = self.child()
        self.turn("s1", system_prompt="Be terse.", resume_id="n1")
        self.assertTrue(first.stdin_closed)
        self.assertEqual(self.child().argv[:3], [CLAUDE, "--resume", "n1"])
        self.assertIn("--system-prompt", self.child().argv)


class ColdTests(LiveTestCase):
    """What still runs one process per turn (docs/design/live-sessions.md#live-fallback)."""

    def assert_cold(self, running: Deferred[RunResult]) -> None:
        child = self.child()
        self.assertNotIn("--input-format", child.argv)
        self.assertTrue(child.stdin_closed)

    def test_no_conversation(self) -> None:
        """A run that is no turn of a conversation runs cold."""
        self.assert_cold(self.turn(""))

    def test_ephemeral(self) -> None:
        """An ephemeral run runs cold."""
        self.assert_cold(self.turn("s1", ephemeral=True))

    def test_turned_off(self) -> None:
        """live_idle_secs 0, or the backend's live set false, runs every turn cold, and says so."""
        for raw, status in (
            ({"server": {"live_idle_secs": 0}}, "off: server.live_idle_secs is 0"),
            ({"backends": {"claude": {"live": False}}}, "off: backends.claude.live is false"),
        ):
            self.runtime = self.make_runtime(raw)
            self.assert_cold(self.turn("s1"))
            self.assertEqual(self.runtime.live.status(self.runtime.backends["claude"]), status)

    def test_output_schema(self) -> None:
        """
        A turn held to a schema runs cold: the CLI takes the schema on its
        command line (docs/design/structured-output.md#structured-cold).
        """
        self.assert_cold(self.turn("s1", output_schema='{"type":"object"}'))
        self.assertIn("--json-schema", self.child().argv)

    def test_protocol_flag(self) -> None:
        """An extra flag that would change the live protocol runs that turn cold."""
        self.assert_cold(self.turn("s1", extra=["--output-format", "text"]))

    def test_never_served(self) -> None:
        """
        A new live process that ends before printing anything for its
        first turn: the turn runs cold, and the backend's turns run cold
        from then on, saying why.
        """
        running = self.turn("s1")
        live = self.child()
        live.emit_stderr(b"error: unknown option '--input-format'\n")
        live.exit(1)
        cold = self.child()
        self.assertIsNot(cold, live)
        self.assertNotIn("--input-format", cold.argv)
        cold.emit_stdout(result("n1", "cold answer"))
        cold.exit(0)
        self.assertEqual(self.successResultOf(running).output, "cold answer")
        status = self.runtime.live.status(self.runtime.backends["claude"])
        self.assertTrue(
            status.startswith("off: its live process failed: the live claude process ended (exit code 1)")
        )
        self.assertIn("unknown option", status)
        self.turn("s2")
        self.assertNotIn("--input-format", self.child().argv)

    def test_full(self) -> None:
        """With every live process busy and no room for another, a turn runs cold."""
        self.runtime = self.make_runtime({"server": {"max_live_processes": 1}})
        self.turn("s1")
        self.turn("s2")
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assert_cold(self.turn("s2"))


class LifeTests(LiveTestCase):
    """docs/design/live-sessions.md#live-pool: idleness, eviction, deaths and interrupts."""

    raw = {"server": {"live_idle_secs": 300, "max_live_processes": 2}}

    def setUp(self) -> None:
        super().setUp()
        self.children: dict[str, FakeProcessTransport] = {}

    def finished_turn(self, conversation: str, native_id: str, **request: Any) -> FakeProcessTransport:
        """A turn of C{conversation}, answered; the process that served it."""
        spawned = len(self.reactor.spawned)
        running = self.turn(conversation, **request)
        if len(self.reactor.spawned) > spawned:
            self.children[conversation] = self.child()
        child = self.children[conversation]
        answer(child, native_id, "ok")
        self.successResultOf(running)
        return child

    def cancelled_turn(self, conversation: str) -> None:
        running = self.turn(conversation)
        running.cancel()
        self.failureResultOf(running, CancelledError)

    def test_idle_expiry(self) -> None:
        """
        An idle process ends live_idle_secs after its last turn: its stdin
        is closed, and it is stopped if still there a grace period later.
        The next turn resumes the conversation in a new process.
        """
        child = self.finished_turn("s1", "n1")
        self.reactor.advance(299)
        self.assertFalse(child.stdin_closed)
        self.reactor.advance(1)
        self.assertTrue(child.stdin_closed)
        self.reactor.advance(5)
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)
        self.assertEqual(self.runtime.live.counts().expired, 1)
        self.turn("s1", resume_id="n1")
        self.assertEqual(self.child().argv[:3], [CLAUDE, "--resume", "n1"])

    def test_polite_exit(self) -> None:
        """A closed process that exits on its own is not signalled."""
        child = self.finished_turn("s1", "n1")
        self.reactor.advance(300)
        self.reactor.advance(4)
        self.assertEqual(self.reactor.signals, [])
        child.exit(0)
        self.reactor.advance(10)
        # Only the usual TERM to what the leader may have left in its group.
        self.assertEqual(self.reactor.signals[:1], [(child.pid, signal.SIGTERM)])
        self.assertNotIn((child.pid, signal.SIGKILL), self.reactor.signals)
        self.assertEqual(self.runtime.live.counts().live, 0)

    def test_turn_resets_idleness(self) -> None:
        """A turn restarts the idle time."""
        self.finished_turn("s1", "n1")
        self.reactor.advance(200)
        self.finished_turn("s1", "n1", resume_id="n1")
        self.reactor.advance(200)
        self.assertFalse(self.child().stdin_closed)

    def test_eviction(self) -> None:
        """With max_live_processes reached, the least recently used idle process makes room."""
        first = self.finished_turn("s1", "n1")
        self.reactor.advance(1)
        second = self.finished_turn("s2", "n2")
        self.reactor.advance(1)
        self.finished_turn("s1", "n1", resume_id="n1")  # s2 is now the least recently used
        self.turn("s3")
        self.assertTrue(second.stdin_closed)
        self.assertFalse(first.stdin_closed)
        self.assertEqual(self.runtime.live.counts().evicted, 1)

    def test_killed_while_idle(self) -> None:
        """A process that dies between turns loses nothing: the next turn resumes in a new one."""
        child = self.finished_turn("s1", "n1")
        child.die(signal.SIGKILL)
        self.assertEqual(self.runtime.live.counts().live, 0)
        running = self.turn("s1", resume_id="n1")
        self.assertEqual(self.child().argv[:3], [CLAUDE, "--resume", "n1"])
        answer(self.child(), "n1", "again")
        self.assertEqual(self.successResultOf(running).output, "again")

    def test_dies_mid_turn(self) -> None:
        """A process that dies in the middle of a turn fails the turn, saying how it ended."""
        running = self.turn("s1")
        child = self.child()
        child.emit_stdout(init("n1"))
        child.emit_stderr(b"Segmentation fault\n")
        child.exit(139)
        done = self.successResultOf(running)
        self.assertEqual(done.exit_code, -1)
        self.assertEqual(done.error, "the live claude process ended (exit code 139): Segmentation fault")
        self.assertEqual(done.native_session_id, "n1")

    def test_cancel_interrupts(self) -> None:
        """
        A cancelled turn (its client gone) is interrupted, not killed: the
        process ends the turn and serves the next one.
        """
        _channel, running = self.stream("s1")
        child = self.child()
        child.emit_stdout(init("n1"))
        running.cancel()
        self.failureResultOf(running, CancelledError)
        interrupt = turns_written(child)[-1]
        self.assertEqual(
            (interrupt["type"], interrupt["request"]), ("control_request", {"subtype": "interrupt"})
        )
        child.emit_stdout(result("n1", "", subtype="error_during_execution", is_error=True))
        self.reactor.advance(10)
        self.assertFalse(child.exited)
        self.children["s1"] = child
        self.finished_turn("s1", "n1", resume_id="n1")
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_cancel_unanswered(self) -> None:
        """An interrupt the CLI does not answer within the grace period stops the process."""
        self.cancelled_turn("s1")
        child = self.child()
        self.reactor.advance(5)
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)

    def test_next_turn_waits_for_interrupt(self) -> None:
        """A turn sent while an interrupted one is ending waits for its end."""
        self.cancelled_turn("s1")
        child = self.child()
        running = self.turn("s1", "after", resume_id="n1")
        self.assertEqual(len(turns_written(child)), 2)  # the first turn and the interrupt
        child.emit_stdout(result("n1", "", subtype="error_during_execution", is_error=True))
        self.assertEqual(turns_written(child)[-1]["message"]["content"], "after")
        answer(child, "n1", "after it")
        self.assertEqual(self.successResultOf(running).output, "after it")

    def test_turn_timeout(self) -> None:
        """command_timeout_secs bounds each turn: it is interrupted and fails with the cold run's text."""
        self.runtime = self.make_runtime({"unified_flags": {"command_timeout_secs": 30}})
        running = self.turn("s1")
        child = self.child()
        self.reactor.advance(30)
        self.assertEqual(turns_written(child)[-1]["type"], "control_request")
        child.emit_stdout(result("n1", "", subtype="error_during_execution", is_error=True))
        done = self.successResultOf(running)
        self.assertEqual((done.exit_code, done.error), (-1, "backend command timed out after 30s"))
        self.assertFalse(child.exited)

    def test_idle_watchdog_per_turn(self) -> None:
        """output_idle_timeout_secs applies within a turn, not between turns."""
        self.runtime = self.make_runtime({"server": {"output_idle_timeout_secs": 20}})
        child = self.finished_turn("s1", "n1")
        self.reactor.advance(100)
        self.assertEqual(len(turns_written(child)), 1)
        running = self.turn("s1", resume_id="n1")
        self.reactor.advance(20)
        self.assertEqual(turns_written(child)[-1]["type"], "control_request")
        child.emit_stdout(result("n1", "", subtype="error_during_execution", is_error=True))
        self.assertEqual(self.successResultOf(running).error, "backend produced no output for 20s")

    def test_run_slot(self) -> None:
        """A running turn holds a run slot; an idle live process holds none."""
        self.turn("s1")
        self.assertEqual(self.admission.running, 1)
        answer(self.child(), "n1", "ok")
        self.assertEqual(self.admission.running, 0)

    def test_end(self) -> None:
        """Ending a conversation (its session deleted) closes its process."""
        child = self.finished_turn("s1", "n1")
        self.runtime.live.end("s1")
        self.assertTrue(child.stdin_closed)

    def test_shutdown(self) -> None:
        """The supervisor's stop ends live processes like any run; a turn under way says why it failed."""
        child = self.finished_turn("s1", "n1")
        running = self.turn("s1", resume_id="n1")
        child.emit_stdout(init("n1"))
        self.supervisor.stopService()
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)
        child.die(signal.SIGTERM)
        self.assertEqual(self.successResultOf(running).error, "server is shutting down")


class SizingTests(SynchronousTestCase):
    """max_live_processes 0 sizes the pool from memory."""

    def test_memory_sized(self) -> None:
        gib = 1 << 30
        self.assertEqual(
            [memory_sized_limit(size) for size in (0, gib // 2, 3 * gib, 64 * gib)], [1, 1, 3, 8]
        )


async def _collect(channel: EventChannel) -> list[UnifiedEvent]:
    return [event async for event in channel]


class ResumableTests(LiveTestCase):
    """A CLI that cannot resume a conversation live so soon resumes it cold (gemini)."""

    raw = {"backends": {"gemini": {"extra_flags": ["--skip-trust"]}}}

    def gemini_turn(self, resumed_at: float) -> FakeProcessTransport:
        prepared = self.runtime.prepare(
            RunRequest(backend="gemini", prompt="hi", resume_id="g1", resumed_at=resumed_at)
        )
        Deferred.fromCoroutine(self.runtime.execute(prepared, "s1"))
        return self.child()

    def test_too_soon(self) -> None:
        """In the minute of the conversation's last turn, its turn runs cold."""
        self.assertNotIn("--acp", self.gemini_turn(self.reactor.seconds() - 1).argv)

    def test_later(self) -> None:
        """A minute later, a live process resumes it."""
        self.assertIn("--acp", self.gemini_turn(self.reactor.seconds() - 61).argv)


class NotReadyTests(LiveTestCase):
    """A turn waiting for its process's handshake (codex, gemini)."""

    def test_cancel_before_ready(self) -> None:
        """Cancelled before the process was ready, the turn is dropped: the process starts on, unharmed."""
        prepared = self.runtime.prepare(RunRequest(backend="codex", prompt="hi"))
        running = Deferred.fromCoroutine(self.runtime.execute(prepared, "s1"))
        child = self.child()
        self.assertEqual(child.argv[1], "app-server")
        self.assertEqual(
            [json.loads(line)["method"] for line in child.stdin.decode().splitlines()], ["initialize"]
        )
        running.cancel()
        self.failureResultOf(running, CancelledError)
        self.reactor.advance(10)
        self.assertEqual(self.reactor.signals, [])
        self.assertEqual(self.admission.running, 0)
        self.assertEqual(self.runtime.live.counts().live, 1)


class ReleaseTests(LiveTestCase):
    """A turn of a live conversation that must run cold waits for its live process to be gone."""

    def test_cold_turn_after_live(self) -> None:
        running = self.turn("s1")
        live = self.child()
        answer(live, "n1", "ok")
        self.successResultOf(running)
        running = self.turn("s1", resume_id="n1", extra=["--output-format", "text"])
        self.assertTrue(live.stdin_closed)
        self.assertIs(self.child(), live)
        live.exit(0)
        cold = self.child()
        self.assertIsNot(cold, live)
        self.assertEqual(cold.argv[:3], [CLAUDE, "--resume", "n1"])


class FolderCheckTests(LiveTestCase):
    """
    A long-lived mode that skips a folder check of the one-shot command
    runs only where that check would pass; elsewhere the turn runs cold,
    and the CLI makes its check (docs/design/live-sessions.md#live-turns).
    """

    def first_turn(self, backend: str, workdir: str) -> FakeProcessTransport:
        prepared = self.runtime.prepare(RunRequest(backend=backend, prompt="hi", workdir=workdir))
        Deferred.fromCoroutine(self.runtime.execute(prepared, "s1"))
        return self.child()

    def test_codex_outside_git(self) -> None:
        """codex runs live in a Git repository, or anywhere with --skip-git-repo-check."""
        outside = tempfile.mkdtemp(prefix="clinvk-no-git-")
        self.addCleanup(shutil.rmtree, outside)
        self.assertEqual(self.first_turn("codex", outside).argv[1], "exec")
        repository = FilePath(tempfile.mkdtemp(prefix="clinvk-git-"))
        self.addCleanup(shutil.rmtree, repository.path)
        repository.child(".git").makedirs()
        self.assertEqual(self.first_turn("codex", repository.path).argv[1], "app-server")
        self.runtime = self.make_runtime({"backends": {"codex": {"extra_flags": ["--skip-git-repo-check"]}}})
        self.assertEqual(self.first_turn("codex", outside).argv[1], "app-server")

    def test_gemini_trust(self) -> None:
        """gemini runs live only with --skip-trust: --acp does not check the folder's trust."""
        folder = self.mktemp()
        os.makedirs(folder)
        self.assertNotIn("--acp", self.first_turn("gemini", os.path.abspath(folder)).argv)
        self.runtime = self.make_runtime({"backends": {"gemini": {"extra_flags": ["--skip-trust"]}}})
        self.assertIn("--acp", self.first_turn("gemini", os.path.abspath(folder)).argv)


class HandshakeOptionTests(LiveTestCase):
    """Options a CLI takes in its handshake, not on argv (codex's model), need a process of their own."""

    def test_other_model(self) -> None:
        prepared = self.runtime.prepare(RunRequest(backend="codex", prompt="hi", model="gpt-5.1-codex"))
        Deferred.fromCoroutine(self.runtime.execute(prepared, "s1")).addErrback(lambda failure: None)
        first = self.child()
        self.assertEqual(first.argv[1], "app-server")
        self.assertFalse(self.runtime.live.serving("s1", ()))
        prepared = self.runtime.prepare(
            RunRequest(backend="codex", prompt="hi", model="gpt-5.2", resume_id="t")
        )
        launch = self.runtime._launch(prepared, self.runtime.live.mode(prepared.backend))  # type: ignore[arg-type]
        assert launch is not None
        self.assertNotIn("gpt-5.2", launch.argv)
        self.assertFalse(self.runtime.live.serving("s1", launch.signature))
