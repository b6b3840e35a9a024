# -*- test-case-name: tests.testing.test_live_recordings -*-
"""
The long-lived mode of the fake C{gemini}: C{gemini --acp}, the Agent
Client Protocol on stdin and stdout, in the shapes the real CLI prints
(C{tests/data/recordings/gemini-acp-*}; docs/design/live-sessions.md#live-gemini).

Each C{session/prompt} is a turn, answered like the fake's cold runs
(L{clinvk.testing.fake_cli.FakeRun}): C{gemini answers: <first line>},
steered by the C{#fake} directives of the prompt and of C{CLINVK_FAKE}:
C{chunks}, C{chunk_delay}, C{delay}, C{hold} (wait for C{SIGUSR1}),
C{tool}, C{fail=api} (the turn fails, the process lives), C{crash} (the
process exits 1 in mid-turn), C{hang} (the turn ends only when
cancelled) and C{session=ID} (the id C{session/new} answers).  A turn
waiting or streaming stops at a C{session/cancel}.  Two directives of
C{CLINVK_FAKE} act on the process: C{start_fail} (it exits 1 before
answering C{initialize}, as the real one does when it cannot start) and
C{start_delay=S} (it answers C{initialize} S seconds late).

Stdin is read on a thread of its own into a queue, so that a waiting turn
sees a cancel; at the end of stdin the process exits 0, after the turn
under way.  With C{CLINVK_FAKE_RECORD} set, the record of the process
(L{FakeRun.record}) is written at the start and after every turn, with
the turns' texts so far, the session it loaded (C{resumed}) and
C{live: true}.

Only the standard library is used.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
from typing import Any

from clinvk.testing.fake_cli import GEMINI_API_ERROR, SHELL_COMMAND, FakeRun, parse_directives

VERSION = "0.61.0"

# Seconds between two looks at stdin while a turn waits.
POLL = 0.01

MODES = [
    {"id": "default", "name": "Default", "description": "Prompts for approval"},
    {"id": "autoEdit", "name": "Auto Edit", "description": "Auto-approves edit tools"},
    {"id": "yolo", "name": "YOLO", "description": "Auto-approves all tools"},
    {"id": "plan", "name": "Plan", "description": "Read-only mode"},
]

COMMANDS = [
    {"name": "memory", "description": "Manage memory."},
    {"name": "about", "description": "Show version info"},
]

AUTH_METHODS = [
    {"id": "oauth-personal", "name": "Log in with Google", "description": "Log in with your Google account"},
    {
        "id": "gemini-api-key",
        "name": "Gemini API key",
        "description": "Use an API key with Gemini Developer API",
        "_meta": {"api-key": {"provider": "google"}},
    },
    {"id": "vertex-ai", "name": "Vertex AI", "description": "Use an API key with Vertex AI GenAI API"},
    {
        "id": "gateway",
        "name": "AI API Gateway",
        "description": "Use a custom AI API Gateway",
        "_meta": {"gateway": {"protocol": "google", "restartRequired": "false"}},
    },
]

SESSION_CONTEXT = "<session_context>\nThis is the Gemini CLI. We are setting up the context for our chat.\n"


def wants(args: list[str]) -> bool:
    """Whether C{args} start the long-lived mode."""
    return "--acp" in args or "--experimental-acp" in args


class _Released:
    """What the SIGUSR1 handler puts on the queue: the end of a C{hold}."""


class _Crash(Exception):
    """The C{crash} directive: the process dies in mid-turn."""


class _Cancelled(Exception):
    """The turn was cancelled (C{session/cancel})."""


class FakeAgent:
    """One C{gemini --acp} process."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.directives, _ = parse_directives(os.environ.get("CLINVK_FAKE", ""))
        self.model = _value(args, "--model") or "gemini-2.5-pro"
        self.mode = "yolo" if "--yolo" in args else _mode(_value(args, "--approval-mode"))
        self.session = ""
        self.resumed = ""
        self.turns: list[str] = []
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.ended = False
        # Requests read while a turn waited, handled after it.
        self.later: list[dict[str, Any]] = []
        self.run = FakeRun("gemini", args, "")

    # -- plumbing

    def line(self, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", **message}, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def update(self, update: dict[str, Any]) -> None:
        self.line({"method": "session/update", "params": {"sessionId": self.session, "update": update}})

    def chunk(self, kind: str, text: str) -> None:
        self.update({"sessionUpdate": kind, "content": {"type": "text", "text": text}})

    def read_stdin(self) -> None:
        for raw in sys.stdin:
            if raw.strip():
                try:
                    self.inbox.put(json.loads(raw))
                except ValueError:
                    sys.stderr.write(f"Failed to parse JSON message: {raw.strip()}\n")
        self.inbox.put(None)

    def next_message(self, timeout: float | None = None) -> Any:
        """The next message, L{None} at the end of stdin; raise L{queue.Empty} after C{timeout}."""
        if self.ended:
            return None
        message = self.inbox.get(timeout=timeout)
        if message is None:
            self.ended = True
        return message

    def wait(self, seconds: float, until_released: bool = False) -> None:
        """
        Wait C{seconds} (or for ever, for C{until_released}, until
        SIGUSR1), reading stdin: raise L{_Cancelled} on a cancel.  Other
        requests wait for the turn's end, as the real CLI answers them
        concurrently (only cancel matters here).
        """
        deadline = time.monotonic() + seconds
        while until_released or time.monotonic() < deadline:
            timeout = POLL if until_released else max(0.0, min(POLL, deadline - time.monotonic()))
            try:
                message = self.next_message(timeout)
            except queue.Empty:
                continue
            if message is None:
                # The real CLI finishes the turn under way at the end of stdin.
                time.sleep(POLL if until_released else max(0.0, min(POLL, deadline - time.monotonic())))
                continue
            if isinstance(message, _Released):
                return
            if message.get("method") == "session/cancel":
                raise _Cancelled()
            self.later.append(message)

    # -- the protocol

    def serve(self) -> int:
        if "start_fail" in self.directives:
            sys.stderr.write("Fatal error: Failed to start the CLI process (clinvk fake).\n")
            return 1
        signal.signal(signal.SIGUSR1, lambda *_: self.inbox.put(_Released()))
        self.record()
        threading.Thread(target=self.read_stdin, daemon=True).start()
        while True:
            message = self.later.pop(0) if self.later else self.next_message()
            if message is None:
                return 0
            if isinstance(message, _Released) or not isinstance(message, dict):
                continue
            try:
                self.handle(message)
            except _Crash:
                sys.stderr.write("Error: fake gemini crashed\n")
                return 1

    def handle(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params") or {}
        if "id" not in message or method is None:
            # A notification (a cancel between turns) or an answer nobody awaits.
            return
        request_id = message["id"]
        if method == "initialize":
            if self.run.seconds("start_delay"):
                time.sleep(self.run.seconds("start_delay"))
            self.line({"id": request_id, "result": self.capabilities()})
        elif method == "session/new":
            self.session = self.directives.get("session") or str(uuid.uuid4())
            self.line({"id": request_id, "result": {"sessionId": self.session, **self.state()}})
            self.update({"sessionUpdate": "available_commands_update", "availableCommands": COMMANDS})
        elif method == "session/load":
            self.session = self.resumed = str(params.get("sessionId", ""))
            # The answer comes after the first replayed update, the rest of
            # the replay after it, then the available commands.
            self.chunk("user_message_chunk", SESSION_CONTEXT)
            self.line({"id": request_id, "result": self.state()})
            self.update({"sessionUpdate": "available_commands_update", "availableCommands": COMMANDS})
            self.record()
        elif method == "session/prompt":
            self.prompt(request_id, params)
        else:
            error = {"code": -32601, "message": f'"Method not found": {method}', "data": {"method": method}}
            self.line({"id": request_id, "error": error})

    def capabilities(self) -> dict[str, Any]:
        return {
            "protocolVersion": 1,
            "authMethods": AUTH_METHODS,
            "agentInfo": {"name": "gemini-cli", "title": "Gemini CLI", "version": VERSION},
            "agentCapabilities": {
                "loadSession": True,
                "promptCapabilities": {"image": True, "audio": True, "embeddedContext": True},
                "mcpCapabilities": {"http": True, "sse": True},
            },
        }

    def state(self) -> dict[str, Any]:
        models = [{"modelId": self.model, "name": self.model, "description": f"{self.model} (clinvk fake)"}]
        return {
            "modes": {"availableModes": MODES, "currentModeId": self.mode},
            "models": {"availableModels": models, "currentModelId": self.model},
        }

    def prompt(self, request_id: Any, params: dict[str, Any]) -> None:
        if params.get("sessionId") != self.session or not self.session:
            error = {"code": -32602, "message": f"Session not found: {params.get('sessionId')}"}
            self.line({"id": request_id, "error": error})
            return
        text = "".join(
            str(block.get("text", ""))
            for block in params.get("prompt") or ()
            if isinstance(block, dict) and block.get("type") == "text"
        )
        self.turns.append(text)
        # Recorded as it starts, so that a test sees a turn that never ends.
        self.record()
        run = FakeRun("gemini", self.args, text)
        try:
            answer = self.answer(run)
        except _Cancelled:
            self.line({"id": request_id, "result": {"stopReason": "cancelled"}})
        else:
            self.line({"id": request_id, **answer})
        self.record()

    def answer(self, run: FakeRun) -> dict[str, Any]:
        """Stream turn C{run}; return its answer's C{result} or C{error} member."""
        self.wait(run.seconds("delay"))
        if "hold" in run.directives and run.directives["hold"] != "rest":
            self.wait(0, until_released=True)
        failed = run.directives.get("fail")
        if failed == "crash" or "crash" in run.directives:
            raise _Crash()
        if failed in ("api", "auth"):
            message = GEMINI_API_ERROR if failed == "api" else "Authentication required."
            return {"error": {"code": 400 if failed == "api" else -32000, "message": message}}
        if "hang" in run.directives:
            self.wait(0, until_released=True)
        if "tool" in run.directives:
            call = f"run_shell_command__run_shell_command_{int(time.time() * 1000)}_0"
            tool = {"toolCallId": call, "title": SHELL_COMMAND, "locations": [], "kind": "execute"}
            context = {
                "type": "content",
                "content": {"type": "text", "text": f"[current working directory {os.getcwd()}]"},
            }
            self.update({"sessionUpdate": "tool_call", **tool, "status": "in_progress", "content": [context]})
            self.update({"sessionUpdate": "tool_call_update", **tool, "status": "completed", "content": []})
        pieces = run.pieces()
        for index, piece in enumerate(pieces):
            self.chunk("agent_message_chunk", piece)
            if index + 1 < len(pieces):
                if run.directives.get("hold") == "rest" and index == 0:
                    self.wait(0, until_released=True)
                self.wait(run.seconds("chunk_delay"))
        tokens = {"input_tokens": 20, "output_tokens": max(1, len(run.answer) // 4)}
        usage = [{"model": self.model, "token_count": tokens}]
        return {
            "result": {
                "stopReason": "end_turn",
                "_meta": {"quota": {"token_count": tokens, "model_usage": usage}},
            }
        }

    def record(self) -> None:
        self.run.record(turns=list(self.turns), resumed=self.resumed, live=True)


def _value(args: list[str], flag: str) -> str:
    """The value of C{flag} in C{args} (C{--flag value} or C{--flag=value}), or C{""}."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
    return ""


def _mode(approval: str) -> str:
    return {"auto_edit": "autoEdit", "yolo": "yolo", "plan": "plan"}.get(approval, "default")


def run(args: list[str]) -> int:
    """Serve C{gemini --acp} on stdin and stdout until stdin ends; the exit status."""
    return FakeAgent(args).serve()
