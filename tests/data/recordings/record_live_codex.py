"""
Record what the real C{codex app-server} prints when clinvk drives it
(clinvk/backends/codex_live.py) into this folder (see README.md, "Live
processes").

Run by hand, from the repository root::

    .venv/bin/python tests/data/recordings/record_live_codex.py /path/to/node_modules/.bin [CASE ...]

Like C{record.py}, whose model server, environment and normalization it
uses, it runs the CLI offline against the model server with a throwaway
C{HOME}.  The CLI is started with the argv of
L{CodexBackend.live_command} and spoken to by a L{CodexLiveSession}:
each case writes C{<case>.stdin} (what clinvk wrote), C{<case>.stdout}
(what the CLI printed) and its entry in C{live-codex.json}: the turns,
when clinvk interrupted, the model script, the user texts each model
request carried (the history the model saw) and what the session made of
each turn.

A standalone development tool rather than server code: it blocks, and
uses C{subprocess}.
"""

from __future__ import annotations

import json
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

from attrs import asdict, field, frozen

from twisted.internet.threads import blockingCallFromThread

from clinvk._version import __version__
from clinvk.backends.codex import CodexBackend
from clinvk.backends.options import unified_options
from clinvk.config import config_from_mapping
from clinvk.model import ParsedResponse, RunRequest, UnifiedEvent
from clinvk.testing import model_server
from clinvk.testing.model_server import Reply
from tests.data.recordings.record import (
    CASES_BY_NAME,
    HERE,
    Normalizer,
    Recorder,
    environment,
    reactor,
    session_of,
)

MANIFEST = HERE / "live-codex.json"

# A model reply slow enough for clinvk to interrupt the turn first.
SLOW = model_server.text("Too late.", first_byte_delay=60)


@frozen
class LiveCase:
    """
    One recording of a live process.

    @ivar turns: The texts of its turns, in order.
    @ivar request: The request's options (approval and sandbox modes).
    @ivar interrupt: Which turn clinvk interrupts (its index), and when:
        C{"sent"} as soon as the turn is written (before the CLI has
        started the turn), C{"started"} once the model server has the
        turn's request (after its C{turn/started}).
    @ivar before: A case (live, or cold of C{record.py}) run first in the
        same C{HOME}, whose conversation this one resumes.
    @ivar cold: Run the cold C{codex exec --json resume <id>} of
        C{before}'s conversation instead of a live process.
    """

    name: str
    turns: list[str]
    replies: list[Reply]
    note: str
    request: dict[str, Any] = field(factory=dict)
    interrupt: tuple[int, str] | None = None
    before: str = ""
    cold: bool = False


def _tool() -> list[Reply]:
    return [model_server.tool_call("exec_command", {"cmd": "echo hi"}), model_server.text("It printed hi.")]


CASES = [
    LiveCase(
        "codex-live",
        ["Say hello", "Say it again"],
        [model_server.text("Hello there, friend.", chunks=3), model_server.text("Hello again.")],
        "a new thread, an answer in three deltas, then a follow-up",
    ),
    LiveCase(
        "codex-live-tool",
        ["Run echo hi"],
        _tool(),
        "the model calls exec_command (echo hi), which the CLI runs, then answers",
        request={"sandbox_mode": "full"},
    ),
    LiveCase(
        "codex-live-approval",
        ["Run touch made-by-tool"],
        [
            model_server.tool_call("exec_command", {"cmd": "touch made-by-tool"}),
            model_server.text("Declined."),
        ],
        "approval always (untrusted): the CLI asks to approve the command, clinvk declines, the model answers",
        request={"approval_mode": "always"},
    ),
    LiveCase(
        "codex-live-error",
        ["Say hello", "Say hello again"],
        [model_server.failure(400, "scripted bad request"), model_server.text("Hello after all.")],
        "the API answers 400: the turn fails, the process serves the next one",
    ),
    LiveCase(
        "codex-live-interrupt",
        ["Take your time", "Say hello"],
        [SLOW, model_server.text("Hello after the interrupt.")],
        "a slow turn interrupted after turn/started, then a follow-up",
        interrupt=(0, "started"),
    ),
    LiveCase(
        "codex-live-interrupt-early",
        ["Take your time", "Say hello"],
        [model_server.text("Hello after the interrupt.")],
        "a turn interrupted as soon as it is sent: the interrupt goes once the turn has started,"
        " before its model request; then a follow-up",
        interrupt=(0, "sent"),
    ),
    LiveCase(
        "codex-live-resume",
        ["Say hello once more"],
        [model_server.text("Hello, resumed.")],
        "a new process resumes the thread of codex-live (thread/resume)",
        before="codex-live",
    ),
    LiveCase(
        "codex-live-resume-cold",
        ["Say hello live"],
        [model_server.text("Hello, live.")],
        "a live process resumes the thread a cold exec run started (record.py's codex-json)",
        before="codex-json",
    ),
    LiveCase(
        "codex-live-then-cold",
        ["Say hello cold"],
        [model_server.text("Hello, cold.")],
        "a cold exec --json resume <id> continues the thread of codex-live",
        before="codex-live",
        cold=True,
    ),
]
CASES_BY_NAME_LIVE = {case.name: case for case in CASES}


class LiveNormalizer(Normalizer):
    """L{Normalizer}, and the clock times and paths app-server adds."""

    ROLLOUT = re.compile(r"sessions/\d{4}/\d\d/\d\d/rollout-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-")
    AT = re.compile(r"At$")

    def text(self, value: str) -> str:
        if value == __version__:
            return "<clinvk-version>"
        value = value.replace(f"(clinvk; {__version__})", "(clinvk; <clinvk-version>)")
        return super().text(self.ROLLOUT.sub("sessions/<date>/rollout-<timestamp>-", value))

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and self.AT.search(key):
            return 0
        return super().value(value, key)


@frozen
class Transcript:
    """What was written and printed, in order, and what the session made of each turn."""

    lines: list[tuple[str, str]]
    ended: list[ParsedResponse]
    events: list[list[UnifiedEvent]]
    native_id: str
    exit_code: int
    stderr: str


def options(case: LiveCase) -> Any:
    return unified_options(
        RunRequest(backend="codex", prompt="", **case.request),
        config_from_mapping(None, {}, source=None),
        streaming=True,
    )


def drive(
    clis: Path,
    case: LiveCase,
    env: dict[str, str],
    cwd: Path,
    resume_id: str,
    model_requests: Callable[[], int] = lambda: 0,
) -> Transcript:
    """
    Run the live process of C{case} as clinvk's session speaks to it.

    @param model_requests: How many turn requests the model server has had.
    """
    backend = CodexBackend()
    argv = backend.live_command(str(clis / "codex"), options(case), resume_id)
    session = backend.live_session(options(case), resume_id, str(cwd))
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        text=True,
        bufsize=1,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    printed: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            printed.put(line.rstrip("\n"))
        printed.put(None)

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(process.stderr or []), daemon=True).start()
    lines: list[tuple[str, str]] = []

    def write(written: list[str] | tuple[str, ...]) -> None:
        assert process.stdin is not None
        for line in written:
            lines.append((">>", line))
            process.stdin.write(line + "\n")
        process.stdin.flush()

    pending = list(case.turns)
    ended: list[ParsedResponse] = []
    found: list[list[UnifiedEvent]] = []
    current = -1
    asked: list[int] = []

    def next_turn() -> bool:
        nonlocal current
        if not pending:
            return False
        current += 1
        found.append([])
        asked.append(model_requests())
        write(session.turn(pending.pop(0)))
        if case.interrupt == (current, "sent"):
            write(session.interrupt())
        return True

    write(session.opening())
    while True:
        line = printed.get(timeout=180)
        if line is None:
            break
        lines.append(("<<", line))
        if not line.strip():
            continue
        step = session.feed(line)
        write(step.replies)
        if current >= 0 and len(ended) == current:
            found[current].extend(step.events)
        if step.failure:
            raise SystemExit(f"{case.name}: {step.failure}")
        if step.ended is not None:
            ended.append(step.ended)
        if (step.ready or step.ended is not None) and not next_turn():
            break
        if case.interrupt == (current, "started") and json.loads(line).get("method") == "turn/started":
            deadline = time.monotonic() + 30
            while model_requests() == asked[current] and time.monotonic() < deadline:
                time.sleep(0.05)
            write(session.interrupt())
    process.stdin.close()
    status = process.wait(timeout=60)
    return Transcript(lines, ended, found, session.native_session_id, status, "".join(stderr))


class LiveRecorder(Recorder):
    """Runs the live cases against one model server."""

    def __init__(self, clis: Path, scratch: Path) -> None:
        super().__init__(clis, scratch)
        self.manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}

    def histories(self) -> list[list[str]]:
        """The user texts of each model request since the last reset (the CLI's own context left out)."""
        turns = blockingCallFromThread(reactor, self.server.turns)
        return [[text for text in turn.user_texts() if not text.startswith("<")] for turn in turns]

    def model_requests(self) -> int:
        return len(blockingCallFromThread(reactor, self.server.turns))

    def script(self, replies: list[Reply]) -> None:
        blockingCallFromThread(reactor, self.server.reset)
        blockingCallFromThread(reactor, self.server.script, "codex", *replies)

    def run_before(self, name: str, home: Path) -> str:
        """Run case C{name} (live or cold) in C{home}; the conversation it left."""
        if name in CASES_BY_NAME_LIVE:
            case = CASES_BY_NAME_LIVE[name]
            self.script(case.replies)
            return drive(
                self.clis, case, self.env(home), self.workdir(home), "", self.model_requests
            ).native_id
        first = self.run(CASES_BY_NAME[name], home, CASES_BY_NAME[name].args)
        return session_of("codex", first.stdout)

    def env(self, home: Path) -> dict[str, str]:
        return environment(home, self.server.url, self.clis)

    def workdir(self, home: Path) -> Path:
        workdir = home / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir

    def record_live(self, case: LiveCase) -> None:
        home = self.scratch / case.name
        shutil.rmtree(home, ignore_errors=True)
        resume_id = self.run_before(case.before, home) if case.before else ""
        self.script(case.replies)
        workdir = self.workdir(home)
        paths = {
            str(workdir): "<workdir>",
            str(home): "<home>",
            str(self.scratch): "<scratch>",
            str(self.clis.parent): "<node_modules>",
        }
        normal = LiveNormalizer(paths, self.server.url)
        if resume_id:
            normal.text(resume_id)
        if case.cold:
            argv = [
                str(self.clis / "codex"),
                "exec",
                "--json",
                "resume",
                resume_id,
                "--skip-git-repo-check",
                "-",
            ]
            done = subprocess.run(
                argv,
                input=case.turns[0],
                capture_output=True,
                text=True,
                cwd=workdir,
                env=self.env(home),
                check=False,
            )
            (HERE / f"{case.name}.stdout").write_text(normal.output(done.stdout))
            entry: dict[str, Any] = {
                "args": [normal.text(arg) for arg in argv[1:]],
                "exit_code": done.returncode,
            }
        else:
            transcript = drive(self.clis, case, self.env(home), workdir, resume_id, self.model_requests)
            # Both in the order they happened, so that ids are numbered alike.
            stdin: list[str] = []
            stdout: list[str] = []
            for way, line in transcript.lines:
                (stdin if way == ">>" else stdout).append(normal.output(line))
            (HERE / f"{case.name}.stdin").write_text("".join(line + "\n" for line in stdin))
            (HERE / f"{case.name}.stdout").write_text("".join(line + "\n" for line in stdout))
            argv = CodexBackend().live_command("codex", options(case), resume_id)
            entry = {
                "args": argv[1:],
                "exit_code": transcript.exit_code,
                "ended": [normal.value(asdict(answer, recurse=True)) for answer in transcript.ended],
                "events": [
                    [normal.value({"type": event.type, **event.content}) for event in events]
                    for events in transcript.events
                ],
            }
        histories = self.histories()
        self.manifest[case.name] = {
            "turns": case.turns,
            "request": case.request,
            "interrupt": list(case.interrupt) if case.interrupt else None,
            "resumes": case.before or None,
            **entry,
            "model_script": [repr(reply) for reply in case.replies],
            "histories": [[normal.text(text) for text in history] for history in histories],
            "note": case.note,
        }
        print(f"{case.name}: exit {entry['exit_code']}, {len(histories)} model requests", flush=True)

    def save(self) -> None:
        ordered = {case.name: self.manifest[case.name] for case in CASES if case.name in self.manifest}
        MANIFEST.write_text(json.dumps(ordered, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    clis = Path(argv[0]).resolve()
    wanted = argv[1:] or list(CASES_BY_NAME_LIVE)
    unknown = [name for name in wanted if name not in CASES_BY_NAME_LIVE]
    if unknown:
        sys.stderr.write(f"unknown cases: {', '.join(unknown)}\n")
        return 2
    with tempfile.TemporaryDirectory(prefix="clinvk-recording-") as scratch:
        recorder = LiveRecorder(clis, Path(scratch))
        recorder.start()
        try:
            for name in wanted:
                recorder.record_live(CASES_BY_NAME_LIVE[name])
        finally:
            recorder.save()
            recorder.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
