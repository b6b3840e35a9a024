"""
Record what the real C{claude}, C{codex} and C{gemini} print for the
command lines clinvk runs, into this folder (see README.md).

Run by hand, from the repository root::

    .venv/bin/python tests/data/recordings/record.py /path/to/node_modules/.bin [CASE ...]

The CLIs talk to L{clinvk.testing.model_server}, which this program runs
on 127.0.0.1 on a reactor of its own thread, and they run with a
throwaway C{HOME} (as C{tests/realcli/_harness.py} sets them up), so no
account or network is needed.  Each case writes C{<case>.stdout}, and
C{<case>.stderr} when the CLI wrote any, with volatile values (ids,
times, durations, temporary paths, the server's port) replaced by stable
placeholders; C{manifest.json} lists each case's command line, prompt,
model script and exit status.  With C{CASE} names only those cases are
recorded again.

A standalone development tool rather than server code: it blocks, and
uses C{subprocess}.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen

from twisted.internet import reactor as global_reactor
from twisted.internet.threads import blockingCallFromThread

from clinvk.backends.gemini_live import GeminiLiveSession
from clinvk.model import LiveStep
from clinvk.testing import model_server
from clinvk.testing.model_server import ModelServer, Reply

HERE = Path(__file__).resolve().parent

# The global reactor, run in a thread of its own (its interfaces are not
# all in its static type).
reactor: Any = global_reactor


PROMPT = "Say hello"

CLAUDE_STREAM = ["--output-format", "stream-json", "--verbose", "--include-partial-messages"]
CODEX_EXEC = ["exec", "--json"]
CODEX_TAIL = ["--skip-git-repo-check", "-"]
GEMINI_TAIL = ["--skip-trust"]

SHELL = {
    "claude": ("Bash", {"command": "echo hi", "description": "Print hi"}),
    "codex": ("exec_command", {"cmd": "echo hi"}),
    "gemini": ("run_shell_command", {"command": "echo hi", "description": "Print hi"}),
}


@frozen
class Case:
    """
    One recording: a CLI, its arguments (after the executable), and what
    the model server answers its turns.

    @ivar before: A case to run first, in the same C{HOME}, whose
        session id replaces C{{session}} in C{args} (a resumed session).
    """

    name: str
    cli: str
    args: list[str]
    replies: list[Reply]
    note: str
    before: str = ""


def _tool(cli: str) -> list[Reply]:
    name, arguments = SHELL[cli]
    return [model_server.tool_call(name, arguments), model_server.text("The command printed hi.")]


CASES = [
    Case(
        "claude-json",
        "claude",
        ["--print", "--output-format", "json"],
        [model_server.text("Hello there.")],
        "a plain answer, --output-format json",
    ),
    Case(
        "claude-stream-json",
        "claude",
        ["--print", *CLAUDE_STREAM],
        [model_server.text("Hello there, friend.", chunks=3)],
        "a plain answer streamed in three deltas",
    ),
    Case(
        "claude-text",
        "claude",
        ["--print", "--output-format", "text"],
        [model_server.text("Hello there.")],
        "a plain answer, --output-format text",
    ),
    Case(
        "claude-tool-stream-json",
        "claude",
        ["--print", "--permission-mode", "dontAsk", *CLAUDE_STREAM],
        _tool("claude"),
        "the model calls Bash (echo hi), which the CLI runs, then answers;"
        " --permission-mode dontAsk is what clinvk maps approval none to",
    ),
    Case(
        "claude-bypass-stream-json",
        "claude",
        ["--print", "--permission-mode", "bypassPermissions", *CLAUDE_STREAM],
        _tool("claude"),
        "the same with --permission-mode bypassPermissions, which the CLI refuses when run as root",
    ),
    Case(
        "claude-error-json",
        "claude",
        ["--print", "--output-format", "json"],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400",
    ),
    Case(
        "claude-error-stream-json",
        "claude",
        ["--print", *CLAUDE_STREAM],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400, streamed",
    ),
    Case(
        "claude-error-text",
        "claude",
        ["--print", "--output-format", "text"],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400, text",
    ),
    Case(
        "claude-retry-stream-json",
        "claude",
        ["--print", *CLAUDE_STREAM],
        [model_server.failure(529, "scripted overload"), model_server.text("Hello after a retry.")],
        "the API answers 529 once, the CLI retries",
    ),
    Case(
        "codex-json",
        "codex",
        [*CODEX_EXEC, *CODEX_TAIL],
        [model_server.text("Hello there.")],
        "a plain answer, exec --json",
    ),
    Case(
        "codex-resume-json",
        "codex",
        [*CODEX_EXEC, "resume", "{session}", *CODEX_TAIL],
        [model_server.text("Hello again.")],
        "exec --json resume <id> of the session codex-json started",
        before="codex-json",
    ),
    Case(
        "codex-tool-json",
        "codex",
        [*CODEX_EXEC, "--sandbox", "danger-full-access", *CODEX_TAIL],
        _tool("codex"),
        "the model calls exec_command (echo hi), which the CLI runs, then answers",
    ),
    Case(
        "codex-approval-json",
        "codex",
        [*CODEX_EXEC, "--ask-for-approval", "never", *CODEX_TAIL],
        [model_server.text("Hello there.")],
        "the approval flag clinvk maps (--ask-for-approval), which exec refuses",
    ),
    Case(
        "codex-error-json",
        "codex",
        [*CODEX_EXEC, *CODEX_TAIL],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400",
    ),
    Case(
        "gemini-json",
        "gemini",
        ["--output-format", "json", *GEMINI_TAIL],
        [model_server.text("Hello there.")],
        "a plain answer, --output-format json",
    ),
    Case(
        "gemini-stream-json",
        "gemini",
        ["--output-format", "stream-json", *GEMINI_TAIL],
        [model_server.text("Hello there, friend.", chunks=3)],
        "a plain answer streamed in three chunks",
    ),
    Case(
        "gemini-text",
        "gemini",
        ["--output-format", "text", *GEMINI_TAIL],
        [model_server.text("Hello there.")],
        "a plain answer, --output-format text",
    ),
    Case(
        "gemini-tool-stream-json",
        "gemini",
        ["--output-format", "stream-json", "--yolo", *GEMINI_TAIL],
        _tool("gemini"),
        "the model calls run_shell_command (echo hi), which the CLI runs, then answers",
    ),
    Case(
        "gemini-tool-json",
        "gemini",
        ["--output-format", "json", "--yolo", *GEMINI_TAIL],
        _tool("gemini"),
        "the same, --output-format json",
    ),
    Case(
        "gemini-error-json",
        "gemini",
        ["--output-format", "json", *GEMINI_TAIL],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400",
    ),
    Case(
        "gemini-error-stream-json",
        "gemini",
        ["--output-format", "stream-json", *GEMINI_TAIL],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400, streamed",
    ),
    Case(
        "gemini-error-text",
        "gemini",
        ["--output-format", "text", *GEMINI_TAIL],
        [model_server.failure(400, "scripted bad request")],
        "the API answers 400, text",
    ),
]


class Normalizer:
    """
    Replaces the volatile values of one case's output with placeholders:
    the same value gets the same placeholder everywhere in the case.
    """

    def __init__(self, paths: dict[str, str], url: str) -> None:
        self._paths = sorted(paths.items(), key=lambda item: -len(item[0]))
        self._url = url
        self._seen: dict[str, str] = {}

    def _numbered(self, kind: str) -> Callable[[re.Match[str]], str]:
        def replace(found: re.Match[str]) -> str:
            value = found.group(0)
            if value not in self._seen:
                count = sum(1 for name in self._seen.values() if name.startswith(f"<{kind}-"))
                self._seen[value] = f"<{kind}-{count + 1}>"
            return self._seen[value]

        return replace

    PATTERNS = (
        ("uuid", re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")),
        ("msg", re.compile(r"\bmsg_[0-9a-zA-Z]{20,}")),
        ("toolu", re.compile(r"\btoolu_[0-9a-zA-Z]{20,}")),
        ("call", re.compile(r"\bcall_[0-9a-zA-Z]{20,}")),
        ("req", re.compile(r"\breq_[0-9a-zA-Z]{10,}")),
    )
    TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d[:-]\d\d[:-]\d\d(?:[.-]\d+)?Z")
    MILLISECONDS = re.compile(r"(?<=_)1\d{12}(?=_)")
    VOLATILE_NUMBERS = re.compile(r"(?i)(duration|latency|ttft|time_to|elapsed|_ms$|Ms$)")

    def text(self, value: str) -> str:
        value = value.replace(self._url, "http://127.0.0.1:<port>")
        for path, name in self._paths:
            value = value.replace(path, name)
        for kind, pattern in self.PATTERNS:
            value = pattern.sub(self._numbered(kind), value)
        value = self.MILLISECONDS.sub("<millis>", value)
        return self.TIMESTAMP.sub("<timestamp>", value)

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {name: self.value(item, name) for name, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        if (
            isinstance(value, float | int)
            and not isinstance(value, bool)
            and self.VOLATILE_NUMBERS.search(key)
        ):
            return 0
        return value

    def output(self, raw: str) -> str:
        """Each JSON line, or the whole JSON document, normalized; other text as text."""
        try:
            whole = json.loads(raw)
        except ValueError:
            pass
        else:
            if isinstance(whole, dict | list) and raw.lstrip().startswith(("{", "[")):
                indent = 2 if "\n" in raw.strip() else None
                separators = None if indent else (",", ":")
                ending = raw[len(raw.rstrip()) :]
                return json.dumps(self.value(whole), indent=indent, separators=separators) + ending
        lines = []
        for line in raw.split("\n"):
            try:
                data = json.loads(line)
            except ValueError:
                lines.append(self.text(line))
                continue
            if isinstance(data, dict):
                lines.append(json.dumps(self.value(data), separators=(",", ":")))
            else:
                lines.append(self.text(line))
        return "\n".join(lines)


def environment(home: Path, url: str, clis: Path) -> dict[str, str]:
    """What makes the CLIs run headless against the model server at C{url}."""
    return {
        **model_server.cli_environment(url, home),
        "PATH": f"{clis}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
    }


def session_of(cli: str, stdout: str) -> str:
    """The native session id a run's output reports."""
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            found = data.get("thread_id") or data.get("session_id")
            if isinstance(found, str):
                return found
    raise SystemExit(f"no session id in the {cli} output:\n{stdout}")


class Recorder:
    """Runs the cases against one model server."""

    def __init__(self, clis: Path, scratch: Path) -> None:
        self.clis = clis
        self.scratch = scratch
        self.server = ModelServer(reactor)
        self.manifest: dict[str, Any] = {}
        path = HERE / "manifest.json"
        if path.exists():
            self.manifest = json.loads(path.read_text())

    def start(self) -> None:
        thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
        thread.start()
        blockingCallFromThread(reactor, self.server.listen)

    def stop(self) -> None:
        blockingCallFromThread(reactor, self.server.stop)
        reactor.callFromThread(reactor.stop)

    def run(self, case: Case, home: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
        blockingCallFromThread(reactor, self.server.reset)
        blockingCallFromThread(reactor, self.server.script, case.cli, *case.replies)
        workdir = home / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        env = environment(home, self.server.url, self.clis)
        return subprocess.run(
            [str(self.clis / case.cli), *args],
            input=PROMPT + "\n",
            capture_output=True,
            text=True,
            cwd=workdir,
            env=env,
            timeout=300,
            check=False,
        )

    def record(self, case: Case) -> None:
        home = self.scratch / case.name
        shutil.rmtree(home, ignore_errors=True)
        args = case.args
        if case.before:
            first = self.run(CASES_BY_NAME[case.before], home, CASES_BY_NAME[case.before].args)
            args = [arg.replace("{session}", session_of(case.cli, first.stdout)) for arg in args]
        done = self.run(case, home, args)
        paths = {
            str(home / "work"): "<workdir>",
            str(home / "work").replace("/", "-"): "<workdir-slug>",
            str(home): "<home>",
            str(self.scratch): "<scratch>",
            str(self.clis.parent): "<node_modules>",
        }
        normal = Normalizer(paths, self.server.url)
        stdout, stderr = normal.output(done.stdout), normal.output(done.stderr)
        (HERE / f"{case.name}.stdout").write_text(stdout)
        error_file = HERE / f"{case.name}.stderr"
        if stderr:
            error_file.write_text(stderr)
        elif error_file.exists():
            error_file.unlink()
        turns = blockingCallFromThread(reactor, self.server.turns)
        tools = _declared_tools(turns[0].body) if turns else {}
        shell = SHELL[case.cli][0]
        self.manifest[case.name] = {
            "cli": case.cli,
            "args": [normal.text(arg) for arg in args],
            "stdin": PROMPT + "\n",
            "exit_code": done.returncode,
            "model_script": [_describe(reply) for reply in case.replies],
            "turn_requests": len(turns),
            "declared_tools": sorted(tools),
            # Where the model calls the shell tool: what the CLI declared for it.
            "shell_tool_parameters": tools.get(shell) if _calls_tool(case) else None,
            "note": case.note,
        }
        print(f"{case.name}: exit {done.returncode}, {len(turns)} turn requests", flush=True)

    def save(self) -> None:
        ordered = {case.name: self.manifest[case.name] for case in CASES if case.name in self.manifest}
        (HERE / "manifest.json").write_text(json.dumps(ordered, indent=2) + "\n")


def _declared_tools(body: Any) -> dict[str, Any]:
    """
    The tools a turn request declares, by name, with their parameters:
    wherever they sit in the body (Anthropic's C{tools}, Gemini's
    C{functionDeclarations}, Codex's namespaces of C{additional_tools}).
    """
    found: dict[str, Any] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            name = value.get("name")
            schema = value.get("input_schema", value.get("parameters", value.get("parametersJsonSchema")))
            if isinstance(name, str) and (schema is not None or value.get("type") in ("function", "custom")):
                found[name] = schema
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    if isinstance(body, dict):
        walk(body.get("tools"))
        walk(body.get("input"))
    return found


def _calls_tool(case: Case) -> bool:
    return any(reply.tool_call is not None for reply in case.replies)


def _describe(reply: Reply) -> str:
    if reply.status != 200:
        return f"failure({reply.status}, {reply.message!r})"
    if reply.tool_call is not None:
        return f"tool_call({reply.tool_call.name!r}, {reply.tool_call.arguments!r})"
    return f"text({reply.text!r}, chunks={reply.chunks})"


CASES_BY_NAME = {case.name: case for case in CASES}


# -- long-lived modes (docs/design/live-sessions.md#live-protocol)


@frozen
class LiveTurn:
    """
    One turn of a live case: what it says, what the model server answers,
    and when (seconds after it was sent) clinvk interrupts it, if it does.
    """

    text: str
    replies: list[Reply]
    interrupt_after: float = 0.0


@frozen
class LiveCase:
    """
    A conversation with a CLI's long-lived mode, driven by clinvk's own
    session state machine: the lines clinvk wrote go to C{<case>.stdin},
    the CLI's to C{<case>.stdout}.

    @ivar before: A case of L{CASES} to run first, in the same C{HOME},
        whose session this one continues.
    @ivar allow_tools: How clinvk answers the CLI's permission requests.
    """

    name: str
    cli: str
    args: list[str]
    turns: list[LiveTurn]
    note: str
    before: str = ""
    allow_tools: bool = False


def _slow(answer: str) -> Reply:
    return model_server.text(answer, first_byte_delay=30)


LIVE_CASES = [
    LiveCase(
        "gemini-acp-turns",
        "gemini",
        ["--acp", *GEMINI_TAIL],
        [
            LiveTurn("Say hello", [model_server.text("Hello there, friend.", chunks=3)]),
            LiveTurn("Say hello again", [model_server.text("Hello again.")]),
        ],
        "a new session, then two turns: an answer in three chunks, then a follow-up",
    ),
    LiveCase(
        "gemini-acp-tool",
        "gemini",
        ["--acp", "--yolo", *GEMINI_TAIL],
        [LiveTurn("Say hello", _tool("gemini"))],
        "the model calls run_shell_command (echo hi), which the CLI runs (--yolo), then answers",
        allow_tools=True,
    ),
    LiveCase(
        "gemini-acp-permission",
        "gemini",
        ["--acp", *GEMINI_TAIL],
        [
            LiveTurn(
                "Say hello",
                [
                    model_server.tool_call("write_file", {"file_path": "hello.txt", "content": "hello"}),
                    model_server.text("I did not write the file."),
                ],
            )
        ],
        "the model calls write_file, which needs approval in the default mode: the CLI asks"
        " (session/request_permission) and clinvk rejects it",
    ),
    LiveCase(
        "gemini-acp-interrupt",
        "gemini",
        ["--acp", *GEMINI_TAIL],
        [
            LiveTurn("Say hello slowly", [_slow("Too late.")], interrupt_after=2.0),
            LiveTurn("Say hello", [model_server.text("Hello after all.")]),
        ],
        "a turn interrupted (session/cancel) while the model has not answered, then a turn",
    ),
    LiveCase(
        "gemini-acp-error",
        "gemini",
        ["--acp", *GEMINI_TAIL],
        [
            LiveTurn("Say hello", [model_server.failure(400, "scripted bad request")]),
            LiveTurn("Say hello", [model_server.text("Hello after an error.")]),
        ],
        "the API answers 400: the prompt's answer is a JSON-RPC error; the session goes on",
    ),
    LiveCase(
        "gemini-acp-load",
        "gemini",
        ["--acp", *GEMINI_TAIL],
        [LiveTurn("Say hello again", [model_server.text("Hello again.")])],
        "session/load of the session a cold gemini-stream-json run started (in a later UTC"
        " minute: see docs/design/live-sessions.md#live-gemini), its history replayed, then a turn",
        before="gemini-stream-json",
    ),
]


class _Live:
    """One live process: its transcript, and the state machine reading it."""

    def __init__(self, argv: list[str], workdir: Path, env: dict[str, str], session: Any) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,
            env=env,
        )
        self.session = session
        self.written: list[str] = []
        self.read: list[str] = []
        self.stderr: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._errors, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _errors(self) -> None:
        assert self.process.stderr is not None
        self.stderr += self.process.stderr

    def write(self, lines: Any) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.written.append(line)
            self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def until(self, done: Callable[[LiveStep], bool], timeout: float, at: float = 0.0) -> Any:
        """
        Feed lines to the session until a step is C{done}; write
        C{interrupt()} once C{at} seconds have passed (when not 0).
        """
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            wait = 0.1 if at else timeout
            try:
                line = self.lines.get(timeout=wait)
            except queue.Empty:
                if at and time.monotonic() - start >= at:
                    self.write(self.session.interrupt())
                    at = 0.0
                continue
            if line is None:
                raise SystemExit(f"the CLI ended early:\n{''.join(self.stderr)}")
            if not line.strip():
                continue
            self.read.append(line)
            step = self.session.feed(line)
            self.write(step.replies)
            if step.failure:
                raise SystemExit(f"the session failed: {step.failure}\n{''.join(self.stderr)}")
            if done(step):
                return step
        raise SystemExit(f"no answer in {timeout}s")

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=60)


def _next_minute(after: float) -> None:
    """
    Wait until the UTC minute after the one of C{after}: gemini erases a
    session that session/load loads in the minute it was created in.
    """
    while int(time.time() // 60) == int(after // 60):
        time.sleep(1)


class LiveRecorder(Recorder):
    """Runs the live cases."""

    def record_live(self, case: LiveCase) -> None:
        home = self.scratch / case.name
        shutil.rmtree(home, ignore_errors=True)
        resume = ""
        if case.before:
            first = self.run(CASES_BY_NAME[case.before], home, CASES_BY_NAME[case.before].args)
            resume = session_of(case.cli, first.stdout)
            _next_minute(time.time())
        blockingCallFromThread(reactor, self.server.reset)
        workdir = home / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        session = GeminiLiveSession(str(workdir), resume, allow_tools=case.allow_tools)
        live = _Live(
            [str(self.clis / case.cli), *case.args],
            workdir,
            environment(home, self.server.url, self.clis),
            session,
        )
        live.write(session.opening())
        live.until(lambda step: step.ready, 180)
        answers = []
        for turn in case.turns:
            blockingCallFromThread(reactor, self.server.script, case.cli, *turn.replies)
            live.write(session.turn(turn.text))
            step = live.until(lambda step: step.ended is not None, 120, turn.interrupt_after)
            answers.append(step.ended)
        status = live.close()
        paths = {
            str(workdir): "<workdir>",
            str(workdir).replace("/", "-"): "<workdir-slug>",
            str(home): "<home>",
            str(self.scratch): "<scratch>",
            str(self.clis.parent): "<node_modules>",
        }
        normal = Normalizer(paths, self.server.url)
        # One normalizer for both sides, so an id gets the same placeholder in each.
        (HERE / f"{case.name}.stdin").write_text(normal.output("\n".join(live.written) + "\n"))
        (HERE / f"{case.name}.stdout").write_text(normal.output("\n".join(live.read) + "\n"))
        stderr = normal.output("".join(live.stderr))
        error_file = HERE / f"{case.name}.stderr"
        if stderr:
            error_file.write_text(stderr)
        elif error_file.exists():
            error_file.unlink()
        turns = blockingCallFromThread(reactor, self.server.turns)
        self.live_manifest[case.name] = {
            "cli": case.cli,
            "args": [normal.text(arg) for arg in case.args],
            "resumes": case.before,
            "turns": [
                {
                    "text": turn.text,
                    "model_script": [_describe(reply) for reply in turn.replies],
                    "interrupt_after": turn.interrupt_after,
                    "answer": answer.content if answer else "",
                    "error": answer.error if answer else "",
                }
                for turn, answer in zip(case.turns, answers, strict=True)
            ],
            "turn_requests": len(turns),
            "exit_code": status,
            "note": case.note,
        }
        print(f"{case.name}: exit {status}, {len(turns)} turn requests", flush=True)

    @property
    def live_manifest(self) -> dict[str, Any]:
        if not hasattr(self, "_live_manifest"):
            path = HERE / "manifest-live.json"
            self._live_manifest: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return self._live_manifest

    def save(self) -> None:
        super().save()
        ordered = {
            case.name: self.live_manifest[case.name] for case in LIVE_CASES if case.name in self.live_manifest
        }
        (HERE / "manifest-live.json").write_text(json.dumps(ordered, indent=2) + "\n")


LIVE_CASES_BY_NAME = {case.name: case for case in LIVE_CASES}


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    clis = Path(argv[0]).resolve()
    wanted = argv[1:] or [*CASES_BY_NAME, *LIVE_CASES_BY_NAME]
    unknown = [name for name in wanted if name not in CASES_BY_NAME and name not in LIVE_CASES_BY_NAME]
    if unknown:
        sys.stderr.write(f"unknown cases: {', '.join(unknown)}\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="clinvk-recording-") as scratch:
        recorder = LiveRecorder(clis, Path(scratch))
        recorder.start()
        try:
            for name in wanted:
                if name in LIVE_CASES_BY_NAME:
                    recorder.record_live(LIVE_CASES_BY_NAME[name])
                else:
                    recorder.record(CASES_BY_NAME[name])
        finally:
            recorder.save()
            recorder.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
