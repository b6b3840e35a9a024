"""
Tests for L{clinvk.backends.codex_live}: codex's long-lived mode, C{codex
app-server} (docs/design/live-sessions.md#live-codex).  The session is fed
what the real CLI printed when clinvk drove it
(C{tests/data/recordings/codex-live*}, see their README.md) and must write
what clinvk wrote then; smaller cases are made-up lines of the same
shapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk._version import __version__
from clinvk.backends.codex import FLAGS, CodexBackend
from clinvk.backends.codex_live import CodexLiveSession, live_launch
from clinvk.backends.flags import mapped_flags
from clinvk.interfaces import ILiveMode, ILiveSession
from clinvk.model import LiveStep, ParsedResponse, TokenUsage, UnifiedEvent
from tests.backends.helpers import options

RECORDINGS = Path(__file__).parent.parent / "data" / "recordings"
MANIFEST: dict[str, Any] = json.loads((RECORDINGS / "live-codex.json").read_text())
WORKDIR = "<workdir>"


def recorded_lines(name: str, stream: str) -> list[str]:
    return (RECORDINGS / f"{name}.{stream}").read_text().splitlines()


@frozen
class Replay:
    """What the session wrote and made of a recording's output."""

    written: list[str]
    ended: list[ParsedResponse]
    events: list[list[UnifiedEvent]]
    failure: str


def session_for(name: str) -> CodexLiveSession:
    entry = MANIFEST[name]
    resume = "<uuid-1>" if entry["resumes"] else ""
    session = CodexBackend().live_session(options("codex", **entry["request"]), resume, WORKDIR)
    assert isinstance(session, CodexLiveSession)
    return session


def interrupt_case() -> tuple[CodexLiveSession, list[str], int]:
    """
    The recorded interrupt: a session past its handshake (the first three
    lines) with its turn sent, the CLI's lines, and the index of the
    C{turn/started} among them.
    """
    session = session_for("codex-live-interrupt")
    session.opening()
    lines = recorded_lines("codex-live-interrupt", "stdout")
    for line in lines[:3]:
        session.feed(line)
    session.turn("Take your time")
    turn_started = next(index for index, line in enumerate(lines) if '"turn/started"' in line)
    return session, lines, turn_started


def replay(name: str) -> Replay:
    """
    Drive a session with the recorded output of C{name}, as the recorder
    drove the real CLI: the turns once ready and after each end, and the
    interrupt when the manifest says.
    """
    entry = MANIFEST[name]
    session = session_for(name)
    interrupt = tuple(entry["interrupt"]) if entry["interrupt"] else None
    written = session.opening()
    pending = list(entry["turns"])
    ended: list[ParsedResponse] = []
    found: list[list[UnifiedEvent]] = []
    failure = ""
    for line in recorded_lines(name, "stdout"):
        step = session.feed(line)
        written += step.replies
        if found and len(ended) < len(found):
            found[-1] += step.events
        failure = failure or step.failure
        if step.ended is not None:
            ended.append(step.ended)
        if (step.ready or step.ended is not None) and pending:
            found.append([])
            written += session.turn(pending.pop(0))
            if interrupt == (len(found) - 1, "sent"):
                written += session.interrupt()
        if interrupt == (len(found) - 1, "started") and json.loads(line).get("method") == "turn/started":
            written += session.interrupt()
    return Replay(written, ended, found, failure)


def shapes(events: Sequence[UnifiedEvent]) -> list[tuple[str, dict[str, Any]]]:
    return [(event.type, dict(event.content)) for event in events]


def init(model: str = "gpt-6.2-sol") -> tuple[str, dict[str, Any]]:
    return ("init", {"model": model, "backend_session_id": "<uuid-1>", "working_dir": WORKDIR})


STARTED = ("progress", {"stage": "turn_started", "message": "Processing..."})


def message(text: str) -> tuple[str, dict[str, Any]]:
    return ("message", {"text": text, "role": "assistant"})


def done(input_tokens: int, output_tokens: int) -> tuple[str, dict[str, Any]]:
    return ("done", {"token_usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})


class RecordingReplayTests(SynchronousTestCase):
    """The session fed the real CLI's output writes what it wrote then, and reads the turns right."""

    def assert_written(self, name: str, written: list[str]) -> None:
        expected = [json.loads(line) for line in recorded_lines(name, "stdin")]
        expected[0]["params"]["clientInfo"]["version"] = __version__
        self.assertEqual([json.loads(line) for line in written], expected)

    def test_every_recording_replays(self) -> None:
        """Every live recording's stdin is what the session writes for its stdout, and no turn fails to end."""
        names = [name for name, entry in MANIFEST.items() if (RECORDINGS / f"{name}.stdin").exists()]
        self.assertEqual(len(names), 8)
        for name in names:
            result = replay(name)
            self.assert_written(name, result.written)
            self.assertEqual(len(result.ended), len(MANIFEST[name]["turns"]), name)
            self.assertEqual(result.failure, "", name)

    def test_handshake_and_turns(self) -> None:
        """
        initialize, initialized and thread/start; ready with the thread's
        id; each turn: init first, the completed message (its deltas left
        out), then done with the turn's own tokens; the answer is the
        completed message.
        """
        session = session_for("codex-live")
        opening = [json.loads(line) for line in session.opening()]
        self.assertEqual(
            opening,
            [
                {
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "clientInfo": {"name": "clinvk", "title": "clinvk", "version": __version__},
                        "capabilities": {
                            "optOutNotificationMethods": [
                                "account/rateLimits/updated",
                                "remoteControl/status/changed",
                                "item/commandExecution/outputDelta",
                                "item/fileChange/outputDelta",
                                "command/exec/outputDelta",
                            ]
                        },
                    },
                }
            ],
        )
        lines = recorded_lines("codex-live", "stdout")
        step = session.feed(lines[0])
        self.assertEqual(
            [json.loads(reply) for reply in step.replies],
            [
                {"method": "initialized"},
                {"id": 2, "method": "thread/start", "params": {"approvalPolicy": "never", "cwd": WORKDIR}},
            ],
        )
        self.assertEqual(session.native_session_id, "")
        self.assertEqual(session.feed(lines[1]), LiveStep())  # configWarning, before any turn
        self.assertEqual(session.feed(lines[2]), LiveStep(ready=True))
        self.assertEqual(session.native_session_id, "<uuid-1>")

        result = replay("codex-live")
        self.assertEqual(
            shapes(result.events[0]),
            [init(), STARTED, message("Hello there, friend."), done(20, 5)],
        )
        self.assertEqual(shapes(result.events[1]), [init(), STARTED, message("Hello again."), done(20, 3)])
        self.assertEqual(
            result.ended,
            [
                ParsedResponse("Hello there, friend.", "<uuid-1>", TokenUsage(20, 5), ""),
                ParsedResponse("Hello again.", "<uuid-1>", TokenUsage(20, 3), ""),
            ],
        )

    def test_sequence_numbers(self) -> None:
        """A turn's events are numbered by its lines, from 1 (the line after the thread/started one)."""
        events = replay("codex-live").events[0]
        # thread/started is the turn's line 1, the turn/start answer 2,
        # thread/status/changed 3, turn/started 4, the user message 5 and
        # 6, the agent message's start 7, its deltas 8 to 10, its completion 11.
        self.assertEqual([event.sequence for event in events], [1, 4, 11, 14])

    def test_tool(self) -> None:
        """A command execution: tool_use when it starts, tool_result when it is done; usage of both model calls."""
        result = replay("codex-live-tool")
        self.assertEqual(
            shapes(result.events[0]),
            [
                init(),
                STARTED,
                (
                    "tool_use",
                    {
                        "tool_id": "<call-1>",
                        "tool_name": "command_execution",
                        "input": {"command": "/bin/bash -lc 'echo hi'"},
                    },
                ),
                ("tool_result", {"tool_id": "<call-1>", "tool_name": "command_execution", "output": "hi\n"}),
                message("It printed hi."),
                done(40, 4),
            ],
        )
        self.assertEqual(result.ended[0].usage, TokenUsage(40, 4))
        start = json.loads(result.written[2])
        self.assertEqual(start["params"]["sandbox"], "danger-full-access")

    def test_approval_declined(self) -> None:
        """
        The CLI's request to approve a command is declined: the command
        is not run (a failed tool_result), and the turn goes on.
        """
        result = replay("codex-live-approval")
        request = next(
            json.loads(line)
            for line in recorded_lines("codex-live-approval", "stdout")
            if '"item/commandExecution/requestApproval"' in line
        )
        self.assertIn(
            json.dumps({"id": request["id"], "result": {"decision": "decline"}}, separators=(",", ":")),
            result.written,
        )
        self.assertEqual(json.loads(result.written[2])["params"]["approvalPolicy"], "untrusted")
        self.assertEqual(
            shapes(result.events[0])[3],
            ("tool_result", {"tool_id": "<call-1>", "tool_name": "command_execution", "is_error": True}),
        )
        self.assertEqual(result.ended[0].content, "Declined.")

    def test_failed_turn(self) -> None:
        """
        An API error fails the turn with the API's message, once; the
        process serves the next turn.
        """
        result = replay("codex-live-error")
        self.assertEqual(
            shapes(result.events[0]),
            [init(), STARTED, ("error", {"message": "scripted bad request"}), done(0, 0)],
        )
        self.assertEqual(
            result.ended[0], ParsedResponse("", "<uuid-1>", TokenUsage(), "scripted bad request")
        )
        self.assertEqual(result.ended[1].content, "Hello after all.")

    def test_interrupt_after_start(self) -> None:
        """An interrupt once the turn has started is turn/interrupt with its id; the turn ends interrupted."""
        session, lines, turn_started = interrupt_case()
        for line in lines[3:turn_started]:
            self.assertEqual(session.feed(line).replies, ())
        self.assertEqual(session.interrupt(), [])  # not started yet
        step = session.feed(lines[turn_started])
        self.assertEqual(
            [json.loads(reply) for reply in step.replies],
            [{"id": 4, "method": "turn/interrupt", "params": {"threadId": "<uuid-1>", "turnId": "<uuid-2>"}}],
        )
        result = replay("codex-live-interrupt")
        self.assertEqual(
            shapes(result.events[0]),
            [init(), STARTED, ("error", {"code": "interrupted", "message": "turn interrupted"}), done(0, 0)],
        )
        self.assertEqual(result.ended[0].error, "turn interrupted")
        self.assertEqual(result.ended[1].content, "Hello after the interrupt.")

    def test_interrupt_once_started(self) -> None:
        """After turn/started, interrupt() writes turn/interrupt at once."""
        session, lines, turn_started = interrupt_case()
        for line in lines[3 : turn_started + 1]:
            session.feed(line)
        self.assertEqual(
            [json.loads(line) for line in session.interrupt()],
            [{"id": 4, "method": "turn/interrupt", "params": {"threadId": "<uuid-1>", "turnId": "<uuid-2>"}}],
        )

    def test_interrupt_before_turn_known(self) -> None:
        """
        An interrupt asked for before the CLI answered turn/start goes
        once the turn has started: the CLI refuses an earlier one.
        """
        result = replay("codex-live-interrupt-early")
        interrupts = [json.loads(line) for line in result.written if "turn/interrupt" in line]
        self.assertEqual(
            interrupts,
            [{"id": 4, "method": "turn/interrupt", "params": {"threadId": "<uuid-1>", "turnId": "<uuid-2>"}}],
        )
        self.assertEqual(result.ended[0].error, "turn interrupted")
        self.assertEqual(result.ended[1].content, "Hello after the interrupt.")

    def test_resume(self) -> None:
        """
        A resumed thread: thread/resume (without its history); the turn's
        own tokens, not the thread's (which the CLI reports after
        resuming).
        """
        result = replay("codex-live-resume")
        self.assertEqual(
            json.loads(result.written[2]),
            {
                "id": 2,
                "method": "thread/resume",
                "params": {
                    "threadId": "<uuid-1>",
                    "approvalPolicy": "never",
                    "cwd": WORKDIR,
                    "excludeTurns": True,
                },
            },
        )
        self.assertEqual(result.ended, [ParsedResponse("Hello, resumed.", "<uuid-1>", TokenUsage(20, 3), "")])
        self.assertEqual(shapes(result.events[0])[-1], done(20, 3))
        cold = replay("codex-live-resume-cold")
        self.assertEqual(cold.ended, [ParsedResponse("Hello, live.", "<uuid-1>", TokenUsage(20, 3), "")])

    def test_resume_usage_reported_after_turn_sent(self) -> None:
        """
        The resumed thread's stored totals may arrive after the turn was
        sent (a turn sent as soon as the handshake is done): they still
        count as what the thread had before the turn.
        """
        lines = recorded_lines("codex-live-resume", "stdout")
        session = session_for("codex-live-resume")
        session.opening()
        ready = next(index for index, line in enumerate(lines) if session.feed(line).ready)
        session.turn("Say hello once more")
        ended = [step.ended for step in map(session.feed, lines[ready + 1 :]) if step.ended is not None]
        self.assertEqual(ended[0].usage if ended[0] else None, TokenUsage(20, 3))


def rpc(message: dict[str, Any]) -> str:
    return json.dumps(message)


THREAD = "thread-1"


def ready_session(thread: dict[str, str] | None = None, resume: str = "") -> CodexLiveSession:
    """A session whose handshake is done, for made-up lines."""
    session = CodexLiveSession(thread or {"approvalPolicy": "never"}, resume, "/work")
    session.opening()
    session.feed(rpc({"id": 1, "result": {}}))
    step = session.feed(rpc({"id": 2, "result": {"thread": {"id": THREAD}, "model": "m", "cwd": "/work"}}))
    assert step.ready
    return session


def notification(method: str, **params: Any) -> str:
    return rpc({"method": method, "params": {"threadId": THREAD, **params}})


def tokens(total_in: int, total_out: int, turn: str) -> str:
    usage = {"inputTokens": total_in, "outputTokens": total_out, "cachedInputTokens": 0}
    return notification("thread/tokenUsage/updated", turnId=turn, tokenUsage={"total": usage, "last": usage})


def started(session: CodexLiveSession, turn: str = "turn-1") -> None:
    """Send a turn and feed its answer and turn/started."""
    session.turn("hi")
    session.feed(rpc({"id": 3, "result": {"turn": {"id": turn, "status": "inProgress"}}}))
    session.feed(notification("turn/started", turn={"id": turn}))


def completed(status: str = "completed", **turn: Any) -> str:
    return notification("turn/completed", turn={"id": "turn-1", "status": status, "items": [], **turn})


class SessionTests(SynchronousTestCase):
    """The session on made-up lines of the recorded shapes."""

    def test_provides(self) -> None:
        """The backend provides ILiveMode, its sessions ILiveSession."""
        backend = CodexBackend()
        verifyObject(ILiveMode, backend)
        verifyObject(ILiveSession, backend.live_session(options("codex"), "", "/work"))
        self.assertFalse(backend.live_session(options("codex"), "", "/work").ready_at_start())
        self.assertTrue(backend.live_resumable(100.0, 100.0))

    def test_handshake_refused(self) -> None:
        """An error answer to initialize, thread/start or thread/resume fails the process."""
        session = CodexLiveSession({}, "", "/work")
        session.opening()
        step = session.feed(rpc({"id": 1, "error": {"code": -32603, "message": "no"}}))
        self.assertEqual(step, LiveStep(failure="codex app-server refused initialize: no"))
        session = CodexLiveSession({}, "gone", "/work")
        session.opening()
        replies = session.feed(rpc({"id": 1, "result": {}})).replies
        self.assertEqual(json.loads(replies[1])["method"], "thread/resume")
        message = "no rollout found for thread id gone"
        step = session.feed(rpc({"error": {"code": -32600, "message": message}, "id": 2}))
        self.assertEqual(step.failure, f"codex app-server refused thread/resume: {message}")
        self.assertFalse(step.ready)

    def test_nothing_outside_turns(self) -> None:
        """Notifications outside a turn give no events; lines that are not JSON objects are ignored."""
        session = ready_session()
        self.assertEqual(session.feed(notification("turn/started", turn={"id": "x"})), LiveStep())
        self.assertEqual(session.feed("not json"), LiveStep())
        self.assertEqual(session.feed("[1]"), LiveStep())
        self.assertEqual(session.interrupt(), [])

    def test_server_requests_answered(self) -> None:
        """
        The CLI's requests are answered at once, in or out of a turn:
        approvals declined, elicitations cancelled, the others refused,
        unknown ones not found.
        """
        session = ready_session()
        answers: dict[str, dict[str, Any]] = {
            "item/commandExecution/requestApproval": {"result": {"decision": "decline"}},
            "item/fileChange/requestApproval": {"result": {"decision": "decline"}},
            "execCommandApproval": {"result": {"decision": "denied"}},
            "applyPatchApproval": {"result": {"decision": "denied"}},
            "mcpServer/elicitation/request": {"result": {"action": "cancel"}},
            "item/permissions/requestApproval": {
                "error": {
                    "code": -32000,
                    "message": "item/permissions/requestApproval is not supported by clinvk",
                }
            },
            "item/tool/requestUserInput": {
                "error": {"code": -32000, "message": "item/tool/requestUserInput is not supported by clinvk"}
            },
            "item/tool/call": {
                "error": {"code": -32000, "message": "item/tool/call is not supported by clinvk"}
            },
            "no/such": {"error": {"code": -32601, "message": "method not found: no/such"}},
        }
        for number, (method, answer) in enumerate(answers.items()):
            if number == 4:
                started(session)
            step = session.feed(rpc({"method": method, "id": number, "params": {}}))
            self.assertEqual([json.loads(reply) for reply in step.replies], [{"id": number, **answer}])
            self.assertEqual(step.ended, None)
        step = session.feed(rpc({"method": "item/tool/call", "id": "text-id", "params": {}}))
        self.assertEqual(json.loads(step.replies[0])["id"], "text-id")

    def test_turn_start_refused(self) -> None:
        """An error answer to turn/start ends the turn with that error."""
        session = ready_session()
        session.turn("hi")
        step = session.feed(rpc({"error": {"code": -32600, "message": "thread not found: x"}, "id": 3}))
        self.assertEqual(step.ended, ParsedResponse("", THREAD, TokenUsage(), "thread not found: x"))
        self.assertEqual(
            shapes(step.events),
            [
                ("init", {"model": "m", "backend_session_id": THREAD, "working_dir": "/work"}),
                ("error", {"message": "thread not found: x"}),
                done(0, 0),
            ],
        )

    def test_interrupt_waits_for_start(self) -> None:
        """An interrupt asked for before turn/started is a reply to it; once started, it goes at once."""
        session = ready_session()
        session.turn("hi")
        self.assertEqual(session.interrupt(), [])
        session.feed(rpc({"id": 3, "result": {"turn": {"id": "turn-1"}}}))
        step = session.feed(notification("turn/started", turn={"id": "turn-1"}))
        self.assertEqual(
            [json.loads(reply) for reply in step.replies],
            [{"id": 4, "method": "turn/interrupt", "params": {"threadId": THREAD, "turnId": "turn-1"}}],
        )
        self.assertEqual(len(session.interrupt()), 1)
        self.assertEqual(session.feed(rpc({"id": 4, "result": {}})), LiveStep())
        step = session.feed(completed("interrupted"))
        self.assertEqual(step.ended and step.ended.error, "turn interrupted")
        self.assertEqual(session.interrupt(), [])

    def test_retry_and_errors(self) -> None:
        """
        A retry notice is progress, not a failure; an error that does not
        retry fails the turn, and its turn/completed does not repeat it.
        """
        session = ready_session()
        started(session)
        retry = {"message": "Reconnecting... 1/5", "additionalDetails": "stream disconnected"}
        step = session.feed(notification("error", turnId="turn-1", willRetry=True, error=retry))
        self.assertEqual(
            shapes(step.events),
            [("progress", {"stage": "reconnecting", "message": "Reconnecting... 1/5 (stream disconnected)"})],
        )
        step = session.feed(notification("item/agentMessage/delta", itemId="m1", delta="Hel"))
        step = session.feed(completed())
        self.assertEqual(step.ended and step.ended.error, "")
        session.turn("again")
        session.feed(notification("turn/started", turn={"id": "turn-2"}))
        failure = {"message": "high demand", "additionalDetails": None}
        step = session.feed(notification("error", turnId="turn-2", willRetry=False, error=failure))
        self.assertEqual(shapes(step.events), [("error", {"message": "high demand"})])
        step = session.feed(completed("failed", id="turn-2", error=failure))
        self.assertEqual(shapes(step.events), [done(0, 0)])
        self.assertEqual(step.ended and step.ended.error, "high demand")

    def test_failed_without_error_notification(self) -> None:
        """A failed turn without an error notification says its own error."""
        session = ready_session()
        started(session)
        step = session.feed(completed("failed", error={"message": "boom", "additionalDetails": "more"}))
        self.assertEqual(shapes(step.events), [("error", {"message": "boom (more)"}), done(0, 0)])
        session.turn("again")
        step = session.feed(completed("failed", id="turn-2", error=None))
        self.assertEqual(step.ended and step.ended.error, "turn failed")

    def test_whole_messages(self) -> None:
        """
        Messages are whole, when completed: a delta is nothing, since a
        reconnect can void it (the text a client gets is the answer's);
        the answer joins the messages.
        """
        session = ready_session()
        started(session)
        item = {"type": "agentMessage", "id": "m1", "text": "One."}
        step = session.feed(notification("item/completed", turnId="turn-1", item=item))
        self.assertEqual(shapes(step.events), [message("One.")])
        self.assertEqual(
            session.feed(notification("item/agentMessage/delta", itemId="m2", delta="Tw")).events, ()
        )
        retry = {"message": "Reconnecting... 1/5", "additionalDetails": "stream disconnected"}
        session.feed(notification("error", turnId="turn-1", willRetry=True, error=retry))
        step = session.feed(
            notification("item/completed", item={"type": "agentMessage", "id": "m3", "text": "Two."})
        )
        self.assertEqual(shapes(step.events), [message("Two.")])
        step = session.feed(completed())
        self.assertEqual(step.ended and step.ended.content, "One.\nTwo.")

    def test_answer_from_turn_items(self) -> None:
        """When no agentMessage item was reported, the answer is taken from turn/completed's items."""
        session = ready_session()
        started(session)
        step = session.feed(completed(items=[{"type": "agentMessage", "id": "m", "text": "Late."}]))
        self.assertEqual(step.ended and step.ended.content, "Late.")

    def test_reasoning(self) -> None:
        """Reasoning summaries are thinking, whole when completed (their deltas are nothing)."""
        session = ready_session()
        started(session)
        step = session.feed(notification("item/reasoning/summaryTextDelta", itemId="r1", delta="Hmm"))
        self.assertEqual(step.events, ())
        item = {"type": "reasoning", "id": "r2", "summary": ["A", "B"], "content": []}
        step = session.feed(notification("item/completed", item=item))
        self.assertEqual(shapes(step.events), [("thinking", {"text": "A\nB"})])
        item = {"type": "reasoning", "id": "r3", "summary": [" "], "content": ["raw"]}
        self.assertEqual(session.feed(notification("item/completed", item=item)).events, ())

    def test_other_tools(self) -> None:
        """File changes, MCP tool calls and web searches are tool results with the item as details."""
        session = ready_session()
        started(session)
        change = {
            "type": "fileChange",
            "id": "p1",
            "changes": [{"path": "a", "kind": {"type": "add"}, "diff": "+x"}],
            "status": "declined",
        }
        mcp = {
            "type": "mcpToolCall",
            "id": "c1",
            "server": "s",
            "tool": "t",
            "arguments": {},
            "status": "completed",
        }
        search = {"type": "webSearch", "id": "w1", "query": "q"}
        found = [
            session.feed(notification("item/completed", item=item)).events[0]
            for item in (change, mcp, search)
        ]
        self.assertEqual(
            shapes(found),
            [
                (
                    "tool_result",
                    {
                        "tool_id": "p1",
                        "tool_name": "file_change",
                        "output": '{"changes":[{"path":"a","kind":{"type":"add"},"diff":"+x"}],"status":"declined"}',
                        "is_error": True,
                    },
                ),
                (
                    "tool_result",
                    {
                        "tool_id": "c1",
                        "tool_name": "s.t",
                        "output": '{"server":"s","tool":"t","arguments":{},"status":"completed"}',
                    },
                ),
                ("tool_result", {"tool_id": "w1", "tool_name": "web_search", "output": '{"query":"q"}'}),
            ],
        )
        failed = {
            "type": "commandExecution",
            "id": "x",
            "command": "false",
            "status": "completed",
            "exitCode": 1,
        }
        step = session.feed(notification("item/completed", item=failed))
        self.assertEqual(dict(step.events[0].content)["is_error"], True)
        self.assertEqual(
            session.feed(notification("item/started", item={"type": "fileChange", "id": "p"})).events, ()
        )

    def test_warnings(self) -> None:
        """Configuration and deprecation notices and a rerouted model warn; the model-metadata warning is dropped."""
        session = ready_session()
        started(session)
        step = session.feed(
            notification("configWarning", summary="No bubblewrap", details="use the bundled one")
        )
        self.assertEqual(
            (shapes(step.events), step.events[0].warning),
            ([("error", {"code": "warning", "message": "No bubblewrap (use the bundled one)"})], True),
        )
        step = session.feed(notification("model/rerouted", fromModel="a", toModel="b", reason="capacity"))
        self.assertEqual(dict(step.events[0].content)["message"], "model rerouted: a -> b (capacity)")
        step = session.feed(notification("warning", message="Model metadata for `x` not found."))
        self.assertEqual(step.events, ())
        step = session.feed(completed())
        self.assertEqual(step.ended and step.ended.error, "")

    def test_usage_per_turn(self) -> None:
        """
        A turn's tokens are the thread's total at its end less the total
        before it, whichever order the reports came in.
        """
        session = ready_session(resume="thread-1")
        session.feed(tokens(100, 10, "old"))  # what a resumed thread used before
        session.turn("hi")
        session.feed(tokens(120, 15, "turn-1"))  # before the answer to turn/start
        session.feed(rpc({"id": 3, "result": {"turn": {"id": "turn-1"}}}))
        session.feed(notification("turn/started", turn={"id": "turn-1"}))
        session.feed(tokens(140, 20, "turn-1"))
        step = session.feed(completed())
        self.assertEqual(step.ended and step.ended.usage, TokenUsage(40, 10))
        session.turn("again")
        session.feed(tokens(150, 22, "turn-2"))
        step = session.feed(completed(id="turn-2"))
        self.assertEqual(step.ended and step.ended.usage, TokenUsage(10, 2))

    def test_usage_stored_totals_after_turn_sent(self) -> None:
        """Stored totals reported after the turn was sent, under an older turn's id, are the turn's base."""
        session = ready_session(resume="thread-1")
        session.turn("hi")
        session.feed(tokens(100, 10, "old"))
        session.feed(rpc({"id": 3, "result": {"turn": {"id": "turn-1"}}}))
        session.feed(tokens(130, 14, "turn-1"))
        step = session.feed(completed())
        self.assertEqual(step.ended and step.ended.usage, TokenUsage(30, 4))


class LaunchTests(SynchronousTestCase):
    """The live command line and the thread's settings from the cold flags."""

    def setUp(self) -> None:
        self.backend = CodexBackend()

    def test_plain(self) -> None:
        """app-server alone; approvals never asked for, as codex exec."""
        self.assertEqual(self.backend.live_command("codex", options("codex"), ""), ["codex", "app-server"])
        self.assertEqual(
            self.backend.live_command("codex", options("codex"), "thread-9"), ["codex", "app-server"]
        )
        self.assertEqual(live_launch([], "").thread, {"approvalPolicy": "never"})

    def test_modes_and_model(self) -> None:
        """Approval and sandbox modes map as the cold table maps them; the model is resolved from its alias."""
        found = options("codex", approval_mode="auto", sandbox_mode="workspace", model="best")
        self.assertEqual(self.backend.live_command("codex", found, ""), ["codex", "app-server"])
        session = self.backend.live_session(found, "", "/work")
        session.opening()
        replies = session.feed(rpc({"id": 1, "result": {}})).replies
        self.assertEqual(
            json.loads(replies[1])["params"],
            {
                "approvalPolicy": "on-request",
                "sandbox": "workspace-write",
                "model": "gpt-5-codex",
                "cwd": "/work",
            },
        )
        always = live_launch(self.mapped(approval_mode="always", sandbox_mode="full"), "")
        self.assertEqual(always.thread, {"approvalPolicy": "untrusted", "sandbox": "danger-full-access"})
        self.assertEqual(
            live_launch(self.mapped(sandbox_mode="read-only"), "").thread["sandbox"], "read-only"
        )

    def mapped(self, **request: Any) -> list[str]:
        return mapped_flags(FLAGS, options("codex", **request))

    def test_dry_run(self) -> None:
        """A dry run is read-only, whatever the sandbox mode."""
        launch = live_launch(self.mapped(sandbox_mode="full", dry_run=True), "")
        self.assertEqual(launch.thread["sandbox"], "read-only")

    def test_extra_flags(self) -> None:
        """
        Configuration overrides and features stay on the command line;
        model, sandbox and approval flags set the thread; the flags of
        exec alone are dropped with their values.
        """
        extra = [
            "--skip-git-repo-check",
            "-c",
            'model_reasoning_effort="low"',
            "--config=a.b=1",
            "--enable",
            "web_search",
            "--disable=shell",
            "--strict-config",
            "--json",
            "--profile",
            "work",
            "--color",
            "never",
            "--model",
            "o3",
            "-s",
            "workspace-write",
            "--ask-for-approval=on-failure",
            "--ephemeral",
            "--config-dir",
            "/x",
            "-c",
        ]
        found = options("codex", {"backends": {"codex": {"extra_flags": extra}}})
        self.assertEqual(
            self.backend.live_command("codex", found, ""),
            [
                "codex",
                "app-server",
                "-c",
                'model_reasoning_effort="low"',
                "--config",
                "a.b=1",
                "--enable",
                "web_search",
                "--disable",
                "shell",
                "--strict-config",
            ],
        )
        self.assertEqual(
            live_launch(self.mapped(extra=["--full-auto"]), "m").thread,
            {"approvalPolicy": "never", "model": "m", "sandbox": "workspace-write"},
        )
        launch = live_launch(
            ["--dangerously-bypass-approvals-and-sandbox", "-m", "x", "--ask-for-approval", "untrusted"], ""
        )
        self.assertEqual(
            launch.thread, {"approvalPolicy": "untrusted", "sandbox": "danger-full-access", "model": "x"}
        )
        self.assertEqual(
            live_launch(extra, "").thread,
            {"approvalPolicy": "on-failure", "model": "o3", "sandbox": "workspace-write"},
        )
