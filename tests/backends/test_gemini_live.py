"""
Tests for gemini's long-lived mode (docs/design/live-sessions.md#live-gemini):
L{GeminiBackend.live_command} and the ACP state machine of
L{clinvk.backends.gemini_live}, fed the lines the real C{gemini --acp}
printed (tests/data/recordings/gemini-acp-*.stdout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.backends.gemini import GeminiBackend
from clinvk.backends.gemini_live import GeminiLiveSession
from clinvk.interfaces import ILiveMode, ILiveSession
from clinvk.model import LiveStep, ParsedResponse, TokenUsage
from tests.backends.helpers import options

RECORDINGS = Path(__file__).parent.parent / "data" / "recordings"

# The working directory and session id of the recordings, as normalized.
WORKDIR = "<workdir>"
SESSION = "<uuid-1>"


def recorded(case: str, side: str = "stdout") -> list[str]:
    """The lines of recording C{case}: what gemini printed, or (C{stdin}) what clinvk wrote."""
    return [line for line in (RECORDINGS / f"{case}.{side}").read_text().splitlines() if line.strip()]


def message(line: str) -> dict[str, Any]:
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


def update(which: str, session: str = SESSION, **content: Any) -> str:
    params = {"sessionId": session, "update": {"sessionUpdate": which, **content}}
    return json.dumps({"jsonrpc": "2.0", "method": "session/update", "params": params})


def text_update(kind: str, text: str, session: str = SESSION) -> str:
    return update(kind, session, content={"type": "text", "text": text})


def response(request_id: int, **member: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, **member})


class Conversation:
    """
    Drives a session over a recording's output as clinvk's I/O layer
    would: feeds every line, writes the replies, sends the next turn once
    the session is ready or the last turn ended.
    """

    def __init__(self, session: GeminiLiveSession, turns: list[str], interrupt: bool = False) -> None:
        self.session = session
        self.turns = list(turns)
        self.interrupt = interrupt
        self.written: list[str] = list(session.opening())
        self.steps: list[LiveStep] = []
        self.events: list[list[tuple[str, int, dict[str, Any]]]] = []
        self.ended: list[ParsedResponse] = []

    def _next_turn(self) -> None:
        if self.turns:
            self.written += self.session.turn(self.turns.pop(0))
            self.events.append([])
            if self.interrupt:
                self.written += self.session.interrupt()
                self.interrupt = False

    def feed(self, lines: list[str]) -> Conversation:
        for line in lines:
            step = self.session.feed(line)
            self.steps.append(step)
            self.written += step.replies
            if self.events:
                self.events[-1] += [(e.type, e.sequence, dict(e.content)) for e in step.events]
            elif step.events:
                raise AssertionError(f"events outside a turn: {step.events}")
            if step.ready:
                self._next_turn()
            if step.ended is not None:
                self.ended.append(step.ended)
                self._next_turn()
        return self


def ready_session(**new_session: Any) -> GeminiLiveSession:
    """A session past its handshake: C{initialize}, then C{session/new} answered with session C{s}."""
    session = GeminiLiveSession(WORKDIR)
    session.opening()
    session.feed(response(1, result={}))
    session.feed(response(2, result={"sessionId": "s", **new_session}))
    return session


def turns_of(case: str) -> list[str]:
    """The texts of the turns clinvk sent in recording C{case}."""
    found = []
    for line in recorded(case, "stdin"):
        data = message(line)
        if data.get("method") == "session/prompt":
            found.append(data["params"]["prompt"][0]["text"])
    return found


def replay(case: str, resume: str = "", allow_tools: bool = False, interrupt: bool = False) -> Conversation:
    """Run recording C{case} through a new session."""
    session = GeminiLiveSession(WORKDIR, resume, model="", allow_tools=allow_tools)
    return Conversation(session, turns_of(case), interrupt).feed(recorded(case))


class LiveCommandTests(SynchronousTestCase):
    """The argv of a live process: the cold command's model and flags, no output format."""

    def setUp(self) -> None:
        self.backend = GeminiBackend()

    def test_provides(self) -> None:
        """The backend provides ILiveMode, and its sessions ILiveSession."""
        verifyObject(ILiveMode, self.backend)
        verifyObject(ILiveSession, self.backend.live_session(options("gemini"), "", "/w"))

    def test_plain(self) -> None:
        """With nothing asked for: C{--acp} alone (no output format, no prompt)."""
        self.assertEqual(self.backend.live_command("gemini", options("gemini"), ""), ["gemini", "--acp"])

    def test_model_and_flags(self) -> None:
        """The model alias is resolved; approval and sandbox map as in cold runs; extra flags follow."""
        argv = self.backend.live_command(
            "/bin/gemini",
            options(
                "gemini",
                {"backends": {"gemini": {"extra_flags": ["--skip-trust"]}}},
                model="fast",
                approval_mode="none",
                sandbox_mode="read-only",
                streaming=True,
            ),
            "",
        )
        self.assertEqual(
            argv,
            ["/bin/gemini", "--acp", "--model", "gemini-2.5-flash", "--yolo", "--sandbox", "--skip-trust"],
        )

    def test_approval_auto(self) -> None:
        """Approval C{auto} is C{--approval-mode auto_edit}, which C{--acp} honours."""
        argv = self.backend.live_command("gemini", options("gemini", approval_mode="auto"), "")
        self.assertEqual(argv, ["gemini", "--acp", "--approval-mode", "auto_edit"])

    def test_no_output_format(self) -> None:
        """An output format in the extra flags, in either spelling, is dropped."""
        for extra in (["--output-format", "json"], ["--output-format=json"]):
            argv = self.backend.live_command("gemini", options("gemini", extra=[*extra, "--debug"]), "")
            self.assertEqual(argv, ["gemini", "--acp", "--debug"])

    def test_resume_not_on_argv(self) -> None:
        """A stored session is loaded in the handshake, not named on argv."""
        self.assertEqual(self.backend.live_command("gemini", options("gemini"), "abc"), ["gemini", "--acp"])

    def test_session_options(self) -> None:
        """The session gets the resolved model, and allows tools only for approval C{none}."""
        session = self.backend.live_session(options("gemini", model="fast", approval_mode="none"), "x", "/w")
        assert isinstance(session, GeminiLiveSession)
        self.assertEqual(session.native_session_id, "x")
        self.assertTrue(session._allow_tools)
        self.assertEqual(session._model, "gemini-2.5-flash")
        session = self.backend.live_session(options("gemini", approval_mode="auto"), "", "/w")
        assert isinstance(session, GeminiLiveSession)
        self.assertFalse(session._allow_tools)


class HandshakeTests(SynchronousTestCase):
    """initialize, then session/new or session/load."""

    def test_new(self) -> None:
        """
        The opening is C{initialize}; its answer gets C{session/new} for the
        working directory; that answer makes the session ready, with its id.
        """
        session = GeminiLiveSession(WORKDIR)
        self.assertFalse(session.ready_at_start())
        self.assertEqual(session.native_session_id, "")
        written = recorded("gemini-acp-turns", "stdin")
        self.assertEqual(session.opening(), written[:1])
        output = recorded("gemini-acp-turns")
        step = session.feed(output[0])
        self.assertEqual(list(step.replies), written[1:2])
        self.assertEqual(message(written[1])["params"], {"cwd": WORKDIR, "mcpServers": []})
        self.assertFalse(step.ready)
        step = session.feed(output[1])
        self.assertTrue(step.ready)
        self.assertEqual(session.native_session_id, SESSION)
        # The available commands that follow are no event and no second readiness.
        self.assertEqual(session.feed(output[2]), LiveStep())

    def test_load_replay_never_leaks(self) -> None:
        """
        A stored session is loaded; the history gemini replays around the
        answer to C{session/load} yields no event, and the session is ready
        only at the available commands that follow the replay; the turn
        after it answers only its own text.
        """
        stored = message(recorded("gemini-acp-load", "stdin")[1])["params"]["sessionId"]
        conversation = replay("gemini-acp-load", resume=stored)
        self.assertEqual(conversation.written, recorded("gemini-acp-load", "stdin"))
        self.assertEqual(message(conversation.written[1])["method"], "session/load")
        kinds = [
            (message(line).get("params") or {}).get("update", {}).get("sessionUpdate")
            for line in recorded("gemini-acp-load")
        ]
        ready_at = [index for index, step in enumerate(conversation.steps) if step.ready]
        self.assertEqual(ready_at, [kinds.index("available_commands_update")])
        [ended] = conversation.ended
        self.assertEqual(ended.content, "Hello again.")
        self.assertEqual(ended.session_id, stored)
        [turn] = conversation.events
        self.assertEqual([kind for kind, _, _ in turn], ["init", "message", "done"])

    def test_replay_running_into_the_turn_fails(self) -> None:
        """A replayed user message during the first turn after a load fails the process."""
        session = GeminiLiveSession(WORKDIR, "stored")
        session.opening()
        session.feed(response(1, result={"agentCapabilities": {"loadSession": True}}))
        session.feed(text_update("user_message_chunk", "<session_context>", "stored"))
        self.assertEqual(session.feed(response(2, result={})), LiveStep())
        self.assertTrue(
            session.feed(update("available_commands_update", "stored", availableCommands=[])).ready
        )
        session.turn("next")
        step = session.feed(text_update("user_message_chunk", "an old question", "stored"))
        self.assertIn("replays on session/load", step.failure)

    def test_no_load_capability(self) -> None:
        """A resume against an agent that cannot load sessions fails at once."""
        session = GeminiLiveSession(WORKDIR, "stored")
        session.opening()
        step = session.feed(response(1, result={"agentCapabilities": {}}))
        self.assertIn("loadSession", step.failure)
        self.assertEqual(step.replies, ())

    def test_initialize_refused(self) -> None:
        """An error answer to C{initialize} is a failure, and nothing more is read."""
        session = GeminiLiveSession(WORKDIR)
        session.opening()
        step = session.feed(response(1, error={"code": -32000, "message": "Authentication required."}))
        self.assertEqual(step.failure, "gemini refused initialize: Authentication required.")
        self.assertEqual(session.feed(response(2, result={"sessionId": "s"})), LiveStep())

    def test_load_refused(self) -> None:
        """
        gemini's answer to a C{session/load} it cannot do names the reason
        in C{data.details}, which the failure carries.
        """
        session = GeminiLiveSession(WORKDIR, "gone")
        session.opening()
        session.feed(response(1, result={"agentCapabilities": {"loadSession": True}}))
        error = {
            "code": -32603,
            "message": "Internal error",
            "data": {"details": "No previous sessions found for this project."},
        }
        step = session.feed(response(2, error=error))
        self.assertEqual(
            step.failure,
            "gemini refused session/load: Internal error: No previous sessions found for this project.",
        )

    def test_turn_before_ready(self) -> None:
        """A turn is refused until the handshake is complete, and while one runs."""
        session = GeminiLiveSession(WORKDIR)
        session.opening()
        self.assertRaises(RuntimeError, session.turn, "too soon")
        session.feed(response(1, result={}))
        session.feed(response(2, result={"sessionId": "s"}))
        session.turn("one")
        self.assertRaises(RuntimeError, session.turn, "two")

    def test_noise(self) -> None:
        """A line that is not a JSON object is nothing."""
        session = GeminiLiveSession(WORKDIR)
        session.opening()
        self.assertEqual(session.feed("Ripgrep is not available."), LiveStep())
        self.assertEqual(session.feed("[1, 2]"), LiveStep())


class TurnTests(SynchronousTestCase):
    """A turn's events and answer, as the cold stream's."""

    def test_first_and_follow_up(self) -> None:
        """
        Each turn starts with C{init} (model, session id, working
        directory), streams its chunks as partial messages and ends with
        C{done} and the turn's own tokens; sequence numbers count the
        turn's lines from 1 (the first turn's first line here is the
        available commands gemini sends after C{session/new}).
        """
        conversation = replay("gemini-acp-turns")
        self.assertEqual(conversation.written, recorded("gemini-acp-turns", "stdin"))
        first, second = conversation.events
        init = {"model": "auto", "backend_session_id": SESSION, "working_dir": WORKDIR}
        self.assertEqual(
            first,
            [
                ("init", 1, init),
                ("message", 2, {"text": "Hello t", "role": "assistant", "is_partial": True}),
                ("message", 3, {"text": "here, f", "role": "assistant", "is_partial": True}),
                ("message", 4, {"text": "riend.", "role": "assistant", "is_partial": True}),
                ("done", 5, {"token_usage": {"input_tokens": 20, "output_tokens": 5}}),
            ],
        )
        self.assertEqual(
            [(kind, number) for kind, number, _ in second], [("init", 1), ("message", 1), ("done", 2)]
        )
        self.assertEqual(
            conversation.ended,
            [
                ParsedResponse("Hello there, friend.", SESSION, TokenUsage(20, 5), ""),
                ParsedResponse("Hello again.", SESSION, TokenUsage(20, 3), ""),
            ],
        )

    def test_tool(self) -> None:
        """A tool call is a C{tool_use}, its completion a C{tool_result}, named after gemini's tool."""
        conversation = replay("gemini-acp-tool", allow_tools=True)
        [turn] = conversation.events
        kinds = [kind for kind, _, _ in turn]
        self.assertEqual(kinds, ["init", "tool_use", "tool_result", "message", "done"])
        use, result = turn[1][2], turn[2][2]
        self.assertEqual(use["tool_name"], "run_shell_command")
        self.assertEqual(use["input"], {"title": "echo hi", "kind": "execute"})
        self.assertEqual(result["tool_id"], use["tool_id"])
        self.assertEqual(result["tool_name"], "run_shell_command")
        self.assertNotIn("is_error", result)
        self.assertEqual(conversation.ended[0].content, "The command printed hi.")

    def test_permission_rejected(self) -> None:
        """
        gemini's C{session/request_permission} is answered at once: rejected
        (its C{reject_once} option) unless tools are allowed.
        """
        conversation = replay("gemini-acp-permission")
        self.assertEqual(conversation.written, recorded("gemini-acp-permission", "stdin"))
        answer = message(conversation.written[3])
        self.assertEqual(answer["id"], 0)
        self.assertEqual(answer["result"], {"outcome": {"outcome": "selected", "optionId": "cancel"}})
        self.assertEqual(conversation.ended[0].content, "I did not write the file.")

    def test_permission_allowed(self) -> None:
        """With tools allowed, the same request gets its C{allow_once} option."""
        [request] = [line for line in recorded("gemini-acp-permission") if "request_permission" in line]
        session = GeminiLiveSession(WORKDIR, allow_tools=True)
        [reply] = session.feed(request).replies
        self.assertEqual(
            message(reply),
            {
                "jsonrpc": "2.0",
                "id": 0,
                "result": {"outcome": {"outcome": "selected", "optionId": "proceed_once"}},
            },
        )

    def test_permission_without_options(self) -> None:
        """A permission request without a fitting option is answered cancelled."""
        request = json.dumps(
            {"jsonrpc": "2.0", "id": 7, "method": "session/request_permission", "params": {"options": []}}
        )
        [reply] = GeminiLiveSession(WORKDIR).feed(request).replies
        self.assertEqual(message(reply)["result"], {"outcome": {"outcome": "cancelled"}})

    def test_unknown_request(self) -> None:
        """Any other request of the agent gets JSON-RPC's method-not-found error."""
        request = json.dumps({"jsonrpc": "2.0", "id": "r1", "method": "fs/read_text_file", "params": {}})
        [reply] = GeminiLiveSession(WORKDIR).feed(request).replies
        self.assertEqual(message(reply)["id"], "r1")
        self.assertEqual(message(reply)["error"]["code"], -32601)

    def test_interrupt(self) -> None:
        """
        C{interrupt()} is a C{session/cancel} notification; the turn ends
        with gemini's C{cancelled} stop as an error; the next turn runs.
        """
        session = GeminiLiveSession(WORKDIR)
        self.assertEqual(session.interrupt(), [])
        conversation = Conversation(session, turns_of("gemini-acp-interrupt"), interrupt=True)
        conversation.feed(recorded("gemini-acp-interrupt"))
        self.assertEqual(conversation.written, recorded("gemini-acp-interrupt", "stdin"))
        first, _ = conversation.events
        self.assertEqual(
            first,
            [
                ("init", 1, {"model": "auto", "backend_session_id": SESSION, "working_dir": WORKDIR}),
                ("error", 2, {"code": "cancelled", "message": "the turn was cancelled"}),
                ("done", 2, {"token_usage": {"input_tokens": 0, "output_tokens": 0}}),
            ],
        )
        self.assertEqual(conversation.ended[0].error, "the turn was cancelled")
        self.assertEqual(conversation.ended[1].content, "Hello after all.")
        self.assertEqual(session.interrupt(), [])

    def test_api_error(self) -> None:
        """
        The API's refusal is the prompt's JSON-RPC error: an C{error} event
        with the API's message, C{done}, and the turn's error; the process
        goes on.
        """
        conversation = replay("gemini-acp-error")
        first, _ = conversation.events
        self.assertEqual(
            first[1:], [("error", 2, {"code": "400", "message": "scripted bad request"}), ("done", 2, {})]
        )
        self.assertEqual(conversation.ended[0], ParsedResponse("", SESSION, None, "scripted bad request"))
        self.assertEqual(conversation.ended[1].content, "Hello after an error.")
        self.assertFalse(any(step.failure for step in conversation.steps))

    def test_lost_session(self) -> None:
        """A prompt answered C{Session not found} ends the turn and fails the process."""
        session = ready_session()
        session.turn("hello")
        step = session.feed(response(3, error={"code": -32602, "message": "Session not found: s"}))
        assert step.ended is not None
        self.assertEqual(step.ended.error, "Session not found: s")
        self.assertEqual(step.failure, "gemini lost the session: Session not found: s")

    def test_notices_and_thoughts(self) -> None:
        """
        A C{[MODE_UPDATE]} chunk is no answer, a thought is C{thinking},
        other sessions' and unknown updates are nothing, and updates
        between turns are dropped.
        """
        session = ready_session(models={"currentModelId": "gemini-2.5-pro"})
        self.assertEqual(session.feed(text_update("agent_message_chunk", "between turns", "s")), LiveStep())
        session.turn("hello")
        self.assertEqual(
            session.feed(text_update("agent_message_chunk", "[MODE_UPDATE] yolo", "s")), LiveStep()
        )
        self.assertEqual(session.feed(text_update("agent_message_chunk", "elsewhere", "other")), LiveStep())
        self.assertEqual(session.feed(update("plan", "s", entries=[])), LiveStep())
        step = session.feed(text_update("agent_thought_chunk", "**Plan**\nthink", "s"))
        self.assertEqual(
            [(e.type, e.sequence, dict(e.content)) for e in step.events],
            [
                ("init", 1, {"model": "gemini-2.5-pro", "backend_session_id": "s", "working_dir": WORKDIR}),
                ("thinking", 4, {"text": "**Plan**\nthink", "is_partial": True}),
            ],
        )
        step = session.feed(response(3, result={"stopReason": "end_turn"}))
        assert step.ended is not None
        self.assertEqual(step.ended.content, "")
        self.assertEqual([e.type for e in step.events], ["done"])

    def test_failed_tool(self) -> None:
        """A tool call that failed is a C{tool_result} with its error."""
        session = ready_session()
        session.turn("hello")
        content = [{"type": "content", "content": {"type": "text", "text": "no such file"}}]
        step = session.feed(
            update(
                "tool_call",
                "s",
                toolCallId="read_file-1-1",
                status="failed",
                kind="read",
                title="r",
                content=content,
            )
        )
        self.assertEqual(
            [(e.type, dict(e.content)) for e in step.events][1:],
            [
                (
                    "tool_use",
                    {
                        "tool_id": "read_file-1-1",
                        "tool_name": "read",
                        "input": {"title": "r", "kind": "read"},
                    },
                ),
                (
                    "tool_result",
                    {
                        "tool_id": "read_file-1-1",
                        "tool_name": "read",
                        "output": "no such file",
                        "is_error": True,
                        "error_message": "no such file",
                    },
                ),
            ],
        )


class ResumableTests(SynchronousTestCase):
    """
    gemini 0.61.0 wipes a conversation loaded in the UTC minute it was
    created (docs/design/live-sessions.md#live-gemini): no live resume in
    the minute of its last turn.
    """

    def test_same_minute(self) -> None:
        self.assertFalse(GeminiBackend().live_resumable(1_800_000_000.0, 1_800_000_059.0))

    def test_later_minute(self) -> None:
        self.assertTrue(GeminiBackend().live_resumable(1_800_000_059.0, 1_800_000_061.0))
