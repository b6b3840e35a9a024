"""
The fake C{codex}'s long-lived mode: C{codex app-server}, JSON-RPC
without the C{"jsonrpc"} member on stdin and stdout, printing the lines
the real one prints (recorded in C{tests/data/recordings/codex-live*},
which C{tests/testing/test_live_recordings_codex.py} holds this fake to;
docs/design/live-sessions.md#live-codex).

It answers a turn as the cold fake answers a run (C{codex answers: <the
first line>}), steered by the turn's C{#fake} directives and
C{CLINVK_FAKE}'s:

  - C{chunks=N}, C{chunk_delay=S}: the answer in N deltas;
  - C{delay=S}: answer S seconds late; C{hold}: answer once sent
    C{SIGUSR1} (C{hold=rest}: the first delta at once, the rest then);
    C{hang}: never answer.  An interrupt (C{turn/interrupt}) ends any
    of these waits, and the turn, as the real CLI does;
  - C{fail=api} (or C{fail=auth}): the API refuses the turn, which
    fails; the process serves the next one;
  - C{crash} (or C{fail=crash}): the process exits 1 in the middle of
    the turn;
  - C{tool}: the model first runs C{echo hi}, which the CLI asks the
    client to approve when the thread's approval policy is not C{never}
    (a declined command is not run);
  - C{exit=N}: exit with N after the turn;
  - C{session=ID}: the id of a new thread.

For the process as a whole, from C{CLINVK_FAKE} only: C{start_fail}
(C{initialize} is refused), C{start_delay=S} (C{initialize} is answered S
seconds late), C{ignore_term} and C{grandchild} as for a cold run.  The
end of stdin ends the process at once with status 0, abandoning a turn
under way, as the real one does.

The record (C{CLINVK_FAKE_RECORD}) is written at start and after every
turn, with the turns served so far and the thread resumed.  Only the
standard library is used.
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
from collections import deque
from typing import IO, Any

from clinvk.testing.fake_cli import SHELL_COMMAND, SHELL_OUTPUT, FakeRun, Usage, parse_directives

# What the real CLI calls its version and its default model.
CLI_VERSION = "0.171.0"
DEFAULT_MODEL = "gpt-6.2-sol"

WITH_VALUE = {"-c", "--config", "--enable", "--disable", "--listen"}
SWITCHES = {"--strict-config", "--stdio"}

NOT_INITIALIZED = -32600
INVALID_REQUEST = -32600
BAD_REQUEST_BODY = json.dumps(
    {
        "error": {
            "message": "scripted bad request",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
)
UNAUTHORIZED = "unexpected status 401 Unauthorized: Missing bearer authentication in header"


def wants(args: list[str]) -> bool:
    """Whether C{args} start the long-lived mode."""
    return args[:1] == ["app-server"]


def run(args: list[str]) -> int:
    """Serve stdin until it ends."""
    try:
        server = LiveCodex(args[1:], sys.stdin, sys.stdout)
    except Usage as e:
        sys.stderr.write(f"error: {e}\n\nUsage: codex app-server [OPTIONS] [COMMAND]\n")
        return 2
    return server.serve()


class _Ended(Exception):
    """Stdin ended: the process exits at once."""


class _Crash(Exception):
    """The process dies in the middle of a turn."""


def _check_flags(args: list[str]) -> None:
    index = 0
    while index < len(args):
        name, equals, _value = args[index].partition("=")
        if name in WITH_VALUE and not equals:
            if index + 1 >= len(args):
                raise Usage(f"a value is required for '{name}' but none was supplied")
            index += 1
        elif name not in WITH_VALUE and name not in SWITCHES:
            raise Usage(f"unexpected argument '{args[index]}' found")
        index += 1


def _now_ms() -> int:
    return int(time.time() * 1000)


def _usage(input_tokens: int, cached: int, output: int) -> dict[str, int]:
    return {
        "totalTokens": input_tokens + output,
        "inputTokens": input_tokens,
        "cachedInputTokens": cached,
        "cacheWriteInputTokens": 0,
        "outputTokens": output,
        "reasoningOutputTokens": 0,
    }


class LiveCodex:
    """
    One fake C{codex app-server} process.

    @param args: The arguments after C{app-server}.
    @param stdin: Where requests come from, read on a thread of its own
        so that an interrupt is seen while a turn runs.
    @param stdout: Where everything is written.
    """

    def __init__(self, args: list[str], stdin: IO[str], stdout: IO[str]) -> None:
        _check_flags(args)
        self.args = ["app-server", *args]
        self.out = stdout
        self.directives, _answer = parse_directives(os.environ.get("CLINVK_FAKE", ""))
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.deferred: deque[dict[str, Any]] = deque()
        self.answers: dict[Any, dict[str, Any]] = {}
        self.released = threading.Event()
        self.opted_out: set[str] = set()
        self.initialized = False
        self.thread_id = ""
        self.thread: dict[str, Any] = {}
        self.resumed = ""
        self.turns: list[str] = []
        self.total = (0, 0, 0)
        self.server_requests = 0
        self.turn_id = ""
        self.approval = "on-request"
        self.asked: set[Any] = set()
        self.grandchildren: list[int] = []
        threading.Thread(target=self._read, args=(stdin,), daemon=True).start()

    # -- I/O

    def _read(self, stdin: IO[str]) -> None:
        for raw in stdin:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict):
                self.inbox.put(data)
        self.inbox.put(None)

    def line(self, data: dict[str, Any]) -> None:
        self.out.write(json.dumps(data, separators=(",", ":")) + "\n")
        self.out.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        if method not in self.opted_out:
            self.line({"method": method, "params": params, "emittedAtMs": _now_ms()})

    def result(self, request_id: Any, result: dict[str, Any]) -> None:
        self.line({"id": request_id, "result": result})

    def error(self, request_id: Any, code: int, message: str) -> None:
        self.line({"error": {"code": code, "message": message}, "id": request_id})

    def record(self) -> None:
        run = FakeRun("codex", self.args, self.turns[-1] if self.turns else "")
        run.grandchildren = self.grandchildren
        run.record(turns=self.turns, resumed=self.resumed, live=True)

    def take(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message, L{None} after C{timeout}; raises L{_Ended} at the end of stdin."""
        try:
            data = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if data is None:
            raise _Ended()
        return data

    def wait(self, seconds: float | None, *, release: bool = False) -> bool:
        """
        Wait C{seconds} (L{None}: for ever), or until C{SIGUSR1} when
        C{release}, in the middle of a turn; whether the turn was
        interrupted meanwhile.  Other requests wait for the turn's end.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            if release and self.released.is_set():
                self.released.clear()
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            data = self.take(0.05 if left is None else min(left, 0.05))
            if data is None:
                continue
            if self.interrupting(data):
                return True
            if "method" not in data and data.get("id") in self.asked:
                self.answers[data["id"]] = data
            else:
                self.deferred.append(data)

    def interrupting(self, data: dict[str, Any]) -> bool:
        """Whether C{data} interrupts the running turn (answered when it does)."""
        if data.get("method") != "turn/interrupt":
            return False
        params = data.get("params") or {}
        if params.get("turnId") != self.turn_id:
            self.error(data.get("id"), INVALID_REQUEST, "no active turn to interrupt")
            return False
        self.result(data.get("id"), {})
        return True

    # -- the handshake

    def serve(self) -> int:
        if "ignore_term" in self.directives:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if "grandchild" in self.directives:
            self.grandchild()
        signal.signal(signal.SIGUSR1, lambda number, frame: self.released.set())
        self.record()
        sys.stderr.write(
            "WARNING: proceeding, even though we could not create PATH aliases: "
            'Refusing to create helper binaries under temporary dir "/tmp"\n'
        )
        try:
            while True:
                data = self.deferred.popleft() if self.deferred else self.take(None)
                if data is None:
                    continue
                status = self.handle(data)
                if status is not None:
                    return status
        except _Ended:
            return 0
        except _Crash:
            sys.stderr.write("thread 'main' panicked at src/main.rs:1: fake codex crashed\n")
            return 1

    def grandchild(self) -> None:
        pid = os.fork()
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        self.grandchildren.append(pid)

    def handle(self, data: dict[str, Any]) -> int | None:
        method = data.get("method")
        request_id = data.get("id")
        params = data.get("params") or {}
        if not isinstance(method, str):
            return None
        if "id" not in data:
            return None  # initialized, and other notifications
        if method == "initialize":
            self.initialize(request_id, params)
        elif not self.initialized:
            self.error(request_id, NOT_INITIALIZED, "Not initialized")
        elif method in ("thread/start", "thread/resume"):
            self.open_thread(request_id, method, params)
        elif method == "turn/start":
            return self.turn(request_id, params)
        elif method == "turn/interrupt":
            self.error(request_id, INVALID_REQUEST, "no active turn to interrupt")
        else:
            self.error(request_id, INVALID_REQUEST, f"Invalid request: unknown variant `{method}`")
        return None

    def initialize(self, request_id: Any, params: dict[str, Any]) -> None:
        if self.directives.get("start_delay"):
            self.wait(float(self.directives["start_delay"]))
        if "start_fail" in self.directives:
            self.error(request_id, -32603, "fake codex could not start")
            return
        capabilities = params.get("capabilities") or {}
        self.opted_out = set(capabilities.get("optOutNotificationMethods") or [])
        client = params.get("clientInfo") or {}
        name, version = client.get("name", ""), client.get("version", "")
        self.initialized = True
        self.result(
            request_id,
            {
                "userAgent": f"{name}/{CLI_VERSION} (clinvk fake) unknown ({name}; {version})",
                "codexHome": os.environ.get("CODEX_HOME", os.path.expanduser("~/.codex")),
                "platformFamily": "unix",
                "platformOs": "linux",
            },
        )
        self.notify(
            "configWarning",
            {"summary": "Codex could not find bubblewrap on PATH (clinvk fake).", "details": None},
        )

    def open_thread(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        if self.thread_id:
            self.error(request_id, INVALID_REQUEST, "the fake serves one thread a process")
            return
        resuming = method == "thread/resume"
        self.thread_id = str(params.get("threadId") or "") if resuming else ""
        if resuming and not self.thread_id:
            self.error(request_id, INVALID_REQUEST, "missing field `threadId`")
            return
        self.thread_id = self.thread_id or self.directives.get("session") or str(uuid.uuid4())
        self.resumed = self.thread_id if resuming else ""
        cwd = str(params.get("cwd") or os.getcwd())
        model = str(params.get("model") or DEFAULT_MODEL)
        self.thread = {
            "id": self.thread_id,
            "environments": [{"environmentId": "local", "cwd": cwd, "runtimeWorkspaceRoots": [cwd]}],
            "extra": None,
            "sessionId": self.thread_id,
            "forkedFromId": None,
            "attachedToThreadId": None,
            "parentThreadId": None,
            "preview": "",
            "ephemeral": False,
            "section": None,
            "sectionEnteredAt": None,
            "projectId": None,
            "historyMode": "paginated",
            "modelProvider": "clinvk-test",
            "model": model,
            "reasoningEffort": None,
            "createdAt": int(time.time()),
            "updatedAt": int(time.time()),
            "recencyAt": int(time.time()),
            "status": {"type": "idle"},
            "path": f"{os.environ.get('CODEX_HOME', '~/.codex')}/sessions/rollout-{self.thread_id}.jsonl",
            "cwd": cwd,
            "cliVersion": CLI_VERSION,
            "originator": "clinvk",
            "source": "vscode",
            "canAcceptDirectInput": True,
            "threadSource": None,
            "agentNickname": None,
            "agentRole": None,
            "gitInfo": None,
            "name": None,
            "daybreakEnabled": None,
            "turns": [],
        }
        self.approval = str(params.get("approvalPolicy") or "on-request")
        sandbox = str(params.get("sandbox") or "read-only")
        policy = {
            "read-only": {"type": "readOnly", "networkAccess": False},
            "workspace-write": {"type": "workspaceWrite", "writableRoots": [], "networkAccess": False},
            "danger-full-access": {"type": "dangerFullAccess"},
        }.get(sandbox, {"type": "readOnly", "networkAccess": False})
        answer: dict[str, Any] = {
            "thread": self.thread,
            "model": model,
            "modelProvider": "clinvk-test",
            "serviceTier": None,
            "disabledPluginIds": [],
            "cwd": cwd,
            "runtimeWorkspaceRoots": [cwd],
            "instructionSources": [],
            "approvalPolicy": self.approval,
            "approvalsReviewer": "user",
            "sandbox": policy,
            "activePermissionProfile": {"id": f":{sandbox}", "extends": None},
            "reasoningEffort": None,
            "multiAgentMode": "explicitRequestOnly",
        }
        if not resuming:
            self.result(request_id, answer)
            self.notify("thread/started", {"thread": self.thread})
            return
        # A resumed thread: the CLI reports the tokens it used so far (as
        # if one turn had run before).
        self.total = (24, 8, 6)
        self.notify("thread/status/changed", {"threadId": self.thread_id, "status": {"type": "idle"}})
        mode = {"model": model, "reasoning_effort": None, "developer_instructions": None}
        answer["collaborationMode"] = {"mode": "default", "settings": mode}
        answer["initialTurnsPage"] = None
        answer["turnsBackwardsCursor"] = None
        answer["itemsBackwardsCursor"] = None
        self.result(request_id, answer)
        self.usage(str(uuid.uuid4()), (24, 8, 6))
        self.notify("thread/goal/cleared", {"threadId": self.thread_id})

    # -- turns

    def usage(self, turn_id: str, last: tuple[int, int, int]) -> None:
        self.notify(
            "thread/tokenUsage/updated",
            {
                "threadId": self.thread_id,
                "turnId": turn_id,
                "tokenUsage": {
                    "total": _usage(*self.total),
                    "last": _usage(*last),
                    "modelContextWindow": 258400,
                },
            },
        )

    def status(self, kind: str, flags: list[str] | None = None) -> None:
        status: dict[str, Any] = {"type": kind}
        if flags is not None:
            status["activeFlags"] = flags
        self.notify("thread/status/changed", {"threadId": self.thread_id, "status": status})

    def item(self, method: str, item: dict[str, Any]) -> None:
        params: dict[str, Any] = {"item": item, "threadId": self.thread_id, "turnId": self.turn_id}
        if method == "item/started":
            params["startedAtMs"] = _now_ms()
        else:
            params["contentTokenCount"] = None
            params["completedAtMs"] = _now_ms()
        self.notify(method, params)

    def turn_object(
        self, status: str, items: list[dict[str, Any]], error: Any = None, *, started: bool = True
    ) -> dict[str, Any]:
        return {
            "id": self.turn_id,
            "rootTurnId": self.turn_id,
            "items": items,
            "itemsView": "summary" if items else "notLoaded",
            "status": status,
            "error": error,
            "startedAt": int(time.time()) if started else None,
            "completedAt": int(time.time()) if status != "inProgress" else None,
            "durationMs": 1 if status != "inProgress" else None,
        }

    def turn(self, request_id: Any, params: dict[str, Any]) -> int | None:
        if params.get("threadId") != self.thread_id:
            self.error(request_id, INVALID_REQUEST, f"thread not found: {params.get('threadId')}")
            return None
        texts = [str(part.get("text", "")) for part in params.get("input") or [] if isinstance(part, dict)]
        text = "\n".join(texts)
        self.turns.append(text)
        # Recorded as it starts, so that a test sees a turn that never ends.
        self.record()
        self.turn_id = str(uuid.uuid4())
        run = FakeRun("codex", self.args, text)
        self.result(request_id, {"turn": self.turn_object("inProgress", [], started=False)})
        self.status("active", [])
        self.notify("turn/started", {"threadId": self.thread_id, "turn": self.turn_object("inProgress", [])})
        content = [{"type": "text", "text": text, "text_elements": []}]
        user: dict[str, Any] = {
            "type": "userMessage",
            "id": str(uuid.uuid4()),
            "clientId": None,
            "content": content,
        }
        self.item("item/started", {**user, "startedAtMs": _now_ms(), "completedAtMs": None})
        self.item("item/completed", {**user, "startedAtMs": _now_ms(), "completedAtMs": _now_ms()})
        if not self.answer(run):
            self.status("idle")
            self.completed(self.turn_object("interrupted", []))
        self.turn_id = ""
        self.record()
        if "exit" in run.directives:
            return int(run.directives["exit"] or 0)
        return None

    def answer(self, run: FakeRun) -> bool:
        """Play the turn; whether it ran to its end (rather than being interrupted)."""
        directives = run.directives
        failed = directives.get("fail")
        if "crash" in directives or failed == "crash":
            raise _Crash()
        hold = directives.get("hold")
        if "hang" in directives:
            return not self.wait(None)
        if run.seconds("delay") and self.wait(run.seconds("delay")):
            return False
        if hold == "1" and self.wait(None, release=True):
            return False
        if failed in ("api", "auth"):
            error = {
                "message": BAD_REQUEST_BODY if failed == "api" else UNAUTHORIZED,
                "codexErrorInfo": "other",
                "additionalDetails": None,
                "misalignment": None,
            }
            self.status("systemError")
            self.notify(
                "error",
                {"error": error, "willRetry": False, "threadId": self.thread_id, "turnId": self.turn_id},
            )
            self.completed(self.turn_object("failed", [], error))
            return True
        if "tool" in directives and not self.tool():
            return False
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        message: dict[str, Any] = {
            "type": "agentMessage",
            "moderation": None,
            "id": message_id,
            "text": "",
            "phase": None,
            "memoryCitation": None,
            "delivery": None,
            "questions": None,
            "startedAtMs": _now_ms(),
            "completedAtMs": None,
        }
        self.item("item/started", message)
        pieces = run.pieces()
        for index, piece in enumerate(pieces):
            self.notify(
                "item/agentMessage/delta",
                {"threadId": self.thread_id, "turnId": self.turn_id, "itemId": message_id, "delta": piece},
            )
            if index == len(pieces) - 1:
                break
            if hold == "rest" and index == 0 and self.wait(None, release=True):
                return False
            if run.seconds("chunk_delay") and self.wait(run.seconds("chunk_delay")):
                return False
        done = {**message, "text": run.answer, "completedAtMs": _now_ms()}
        self.item("item/completed", done)
        self.spend((24, 8, max(1, len(run.answer) // 4)))
        self.status("idle")
        self.completed(self.turn_object("completed", [done]))
        return True

    def completed(self, turn: dict[str, Any]) -> None:
        self.notify("turn/completed", {"threadId": self.thread_id, "turn": turn})

    def spend(self, tokens: tuple[int, int, int]) -> None:
        self.total = (self.total[0] + tokens[0], self.total[1] + tokens[1], self.total[2] + tokens[2])
        self.usage(self.turn_id, tokens)

    def tool(self) -> bool:
        """
        The model runs C{echo hi}, asking the client first unless the
        approval policy is C{never}; whether the turn goes on (rather than
        being interrupted).
        """
        call = f"call_{uuid.uuid4().hex[:24]}"
        command = f"/bin/bash -lc '{SHELL_COMMAND}'"
        actions = [{"type": "unknown", "command": SHELL_COMMAND}]
        item: dict[str, Any] = {
            "type": "commandExecution",
            "id": call,
            "pluginId": None,
            "scriptPath": None,
            "command": command,
            "cwd": self.thread["cwd"],
            "processId": None,
            "source": "agent",
            "status": "inProgress",
            "commandActions": actions,
            "aggregatedOutput": None,
            "exitCode": None,
            "durationMs": None,
            "startedAtMs": _now_ms(),
            "completedAtMs": None,
        }
        decision = "accept"
        if self.approval != "never":
            self.status("active", ["waitingOnApproval"])
            self.item("item/started", item)
            request_id = self.server_requests
            self.server_requests += 1
            self.asked.add(request_id)
            self.line(
                {
                    "method": "item/commandExecution/requestApproval",
                    "id": request_id,
                    "params": {
                        "kind": "command",
                        "threadId": self.thread_id,
                        "turnId": self.turn_id,
                        "itemId": call,
                        "startedAtMs": item["startedAtMs"],
                        "environmentId": "local",
                        "command": command,
                        "cwd": self.thread["cwd"],
                        "commandActions": actions,
                        "proposedExecpolicyAmendment": SHELL_COMMAND.split(),
                        "availableDecisions": [
                            "accept",
                            {
                                "acceptWithExecpolicyAmendment": {
                                    "execpolicy_amendment": SHELL_COMMAND.split()
                                }
                            },
                            "cancel",
                        ],
                    },
                }
            )
            while request_id not in self.answers:
                if self.wait(0.05):
                    return False
            answer = self.answers.pop(request_id)
            decision = str((answer.get("result") or {}).get("decision", "")) if "result" in answer else ""
            self.notify("serverRequest/resolved", {"threadId": self.thread_id, "requestId": request_id})
        else:
            item["source"] = "unifiedExecStartup"
            item["processId"] = str(os.getpid())
            self.item("item/started", item)
        finished = {**item, "completedAtMs": _now_ms()}
        if decision in ("accept", "acceptForSession"):
            finished.update(
                status="completed", aggregatedOutput=SHELL_OUTPUT + "\n", exitCode=0, durationMs=1
            )
        else:
            finished["status"] = "declined" if decision else "failed"
        self.item("item/completed", finished)
        if self.approval != "never":
            self.status("active", [])
        self.spend((24, 8, 1))
        return True
