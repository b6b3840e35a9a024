"""
The fake C{codex app-server} (L{clinvk.testing.fake_live_codex}) follows
the real one: driven by clinvk's session as the recorder drove the real
CLI (C{tests/data/recordings/codex-live*}, see their README.md), it prints
the same structure, and clinvk writes it the same requests.

The structure of a JSON-RPC line is its label (the method of a
notification, with the type of its item for C{item/*}; C{request:} and
the method of the CLI's own requests; C{result} or C{error} for an
answer) and its key paths, as in C{tests/testing/test_recordings.py}.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
from collections.abc import Iterator
from io import StringIO
from typing import IO, Any, cast

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.codex import CodexBackend
from clinvk.model import ParsedResponse
from clinvk.testing import fake_live_codex
from clinvk.testing.fake_cli import command_line
from clinvk.testing.fake_live_codex import LiveCodex
from tests.backends.helpers import options
from tests.testing.test_recordings import (
    RECORDINGS,
    Event,
    add_recording_tests,
    compare,
    key_paths,
    structure,
)

MANIFEST: dict[str, Any] = json.loads((RECORDINGS / "live-codex.json").read_text())

# The directives that make the fake's turns behave as the model server was
# scripted for each recording, per turn.
DIRECTIVES = {
    "codex-live": ["chunks=3", ""],
    "codex-live-tool": ["tool"],
    "codex-live-approval": ["tool"],
    "codex-live-error": ["fail=api", ""],
    "codex-live-interrupt": ["hang", ""],
    "codex-live-interrupt-early": ["hang", ""],
    "codex-live-resume": [""],
    "codex-live-resume-cold": [""],
}

# A thread id for the resumed cases.
THREAD = "01a25188-8391-7183-96fc-1ee6e4b073f3"


def label(value: Any) -> str:
    """The label of one JSON-RPC line."""
    if not isinstance(value, dict):
        return type(value).__name__
    method = value.get("method")
    if isinstance(method, str):
        if "id" in value:
            return f"request:{method}"
        item = (value.get("params") or {}).get("item")
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            return f"{method}/{item['type']}"
        return method
    return "error" if "error" in value else "result"


def events(lines: list[str]) -> list[Event]:
    found = []
    for line in lines:
        value = json.loads(line)
        found.append(Event(label(value), frozenset(key_paths(value))))
    return found


class _Stdin:
    """A stdin that yields what the test writes, and ends when it says (or after 30 s of silence)."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()

    def __iter__(self) -> Iterator[str]:
        while True:
            try:
                line = self.lines.get(timeout=30)
            except queue.Empty:
                return
            if line is None:
                return
            yield line + "\n"


class _Driver:
    """
    clinvk's side of a fake process: the fake's stdout, fed line by line to
    a session whose replies and turns go to the fake's stdin.
    """

    def __init__(self, name: str, stdin: _Stdin) -> None:
        entry = MANIFEST[name]
        self.stdin = stdin
        self.interrupt = tuple(entry["interrupt"]) if entry["interrupt"] else None
        resume = THREAD if entry["resumes"] else ""
        self.session = CodexBackend().live_session(options("codex", **entry["request"]), resume, "/work")
        self.turns = [
            f"#fake {directive}\n{text}" if directive else text
            for directive, text in zip(DIRECTIVES[name], entry["turns"], strict=True)
        ]
        self.written: list[str] = []
        self.printed: list[str] = []
        self.ended: list[ParsedResponse] = []
        self.sent = 0
        self.buffer = ""
        self.write_stdin(self.session.opening())

    def write_stdin(self, lines: list[str] | tuple[str, ...]) -> None:
        for line in lines:
            self.written.append(line)
            self.stdin.lines.put(line)

    # The fake's stdout.
    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def line(self, line: str) -> None:
        self.printed.append(line)
        step = self.session.feed(line)
        self.write_stdin(step.replies)
        if step.ended is not None:
            self.ended.append(step.ended)
        if step.ready or step.ended is not None:
            if self.sent == len(self.turns):
                self.stdin.lines.put(None)
                return
            self.write_stdin(self.session.turn(self.turns[self.sent]))
            self.sent += 1
            if self.interrupt == (self.sent - 1, "sent"):
                self.write_stdin(self.session.interrupt())
        if self.interrupt == (self.sent - 1, "started") and json.loads(line).get("method") == "turn/started":
            self.write_stdin(self.session.interrupt())


class LiveRecordingsTests(SynchronousTestCase):
    """The fake app-server prints the structure the real one printed."""

    def setUp(self) -> None:
        self.patch(sys, "stderr", StringIO())
        self.patch(os, "environ", {"CLINVK_FAKE": ""})
        handler = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, handler)

    def drive(self, name: str) -> tuple[_Driver, int]:
        stdin = _Stdin()
        driver = _Driver(name, stdin)
        fake = LiveCodex(MANIFEST[name]["args"][1:], cast("IO[str]", stdin), cast("IO[str]", driver))
        return driver, fake.serve()

    def check(self, name: str) -> None:
        driver, status = self.drive(name)
        problems = []
        if status != MANIFEST[name]["exit_code"]:
            problems.append(f"exit status {status}, recorded {MANIFEST[name]['exit_code']}")
        if len(driver.ended) != len(MANIFEST[name]["turns"]):
            problems.append(f"{len(driver.ended)} turns ended, of {len(MANIFEST[name]['turns'])}")
        recorded = (RECORDINGS / f"{name}.stdout").read_text().splitlines()
        found = compare(events(recorded), events(driver.printed))
        if found:
            problems.append(f"stdout: {found}")
        written = (RECORDINGS / f"{name}.stdin").read_text().splitlines()
        found = compare(events(written), events(driver.written))
        if found:
            problems.append(f"stdin: {found}")
        for got, expected in zip(driver.ended, MANIFEST[name]["ended"], strict=False):
            if bool(got.error) != bool(expected["error"]):
                problems.append(f"turn error {got.error!r}, recorded {expected['error']!r}")
        if problems:
            self.fail(f"fake {name} drifted from the recording:\n" + "\n".join(problems))

    def test_every_recording_is_mirrored(self) -> None:
        """Every live recording has a fake run (the cold one after a live thread is the cold fake's)."""
        self.assertEqual(set(MANIFEST), {*DIRECTIVES, "codex-live-then-cold"})

    def test_cold_after_live(self) -> None:
        """The cold fake resumes a live thread as the real exec does (the thread's id, its own events)."""
        entry = MANIFEST["codex-live-then-cold"]
        args = [arg.replace("<uuid-1>", THREAD) for arg in entry["args"]]
        stdout = StringIO()
        self.patch(sys, "stdin", StringIO(entry["turns"][0]))
        self.patch(sys, "stdout", stdout)
        self.assertEqual(command_line(["codex", *args]), entry["exit_code"])
        recorded = structure((RECORDINGS / "codex-live-then-cold.stdout").read_text())
        self.assertEqual(compare(recorded, structure(stdout.getvalue())), "")
        self.assertIn(THREAD, stdout.getvalue().splitlines()[0])

    def test_label(self) -> None:
        """Labels name notifications (with their item's type), the CLI's requests and answers."""
        values: list[Any] = [
            {"method": "turn/started", "params": {}},
            {"method": "item/started", "params": {"item": {"type": "userMessage"}}},
            {"method": "item/commandExecution/requestApproval", "id": 0, "params": {}},
            {"id": 1, "result": {}},
            {"error": {}, "id": 2},
            [],
        ]
        self.assertEqual(
            [label(value) for value in values],
            [
                "turn/started",
                "item/started/userMessage",
                "request:item/commandExecution/requestApproval",
                "result",
                "error",
                "list",
            ],
        )


add_recording_tests(LiveRecordingsTests, DIRECTIVES)


class FakeBehaviourTests(SynchronousTestCase):
    """What the fake does beyond the recordings: its directives for the process."""

    def setUp(self) -> None:
        self.patch(sys, "stderr", StringIO())
        handler = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, handler)

    def serve(self, lines: list[dict[str, Any]], fake: str = "") -> tuple[list[dict[str, Any]], int]:
        self.patch(os, "environ", {"CLINVK_FAKE": fake})
        stdin = _Stdin()
        for line in lines:
            stdin.lines.put(json.dumps(line))
        stdin.lines.put(None)
        stdout = StringIO()
        status = LiveCodex([], cast("IO[str]", stdin), stdout).serve()
        return [json.loads(line) for line in stdout.getvalue().splitlines()], status

    def test_wants(self) -> None:
        """app-server starts it; exec does not."""
        self.assertTrue(fake_live_codex.wants(["app-server", "-c", "a=1"]))
        self.assertFalse(fake_live_codex.wants(["exec", "--json", "-"]))

    def test_usage_error(self) -> None:
        """A flag app-server does not take is a usage error, exit 2."""
        self.patch(os, "environ", {})
        self.assertEqual(fake_live_codex.run(["app-server", "--json"]), 2)
        self.assertIn("unexpected argument '--json'", cast("StringIO", sys.stderr).getvalue())

    def test_start_fail(self) -> None:
        """start_fail: initialize is refused."""
        printed, status = self.serve([{"id": 1, "method": "initialize", "params": {}}], "#fake start_fail")
        self.assertEqual((printed[0]["id"], "error" in printed[0], status), (1, True, 0))

    def test_not_initialized(self) -> None:
        """Requests before initialize are refused; unknown methods too."""
        printed, _ = self.serve(
            [
                {"id": 1, "method": "thread/start", "params": {}},
                {"id": 2, "method": "initialize", "params": {"clientInfo": {"name": "x", "version": "1"}}},
                {"id": 3, "method": "no/such", "params": {}},
            ]
        )
        answers = {line["id"]: line for line in printed if "id" in line}
        self.assertEqual(answers[1]["error"]["message"], "Not initialized")
        self.assertIn("result", answers[2])
        self.assertEqual(answers[3]["error"]["code"], -32600)

    def test_crash(self) -> None:
        """crash: the process exits 1 in the middle of the turn."""
        printed, status = self.serve(
            [
                {"id": 1, "method": "initialize", "params": {}},
                {"id": 2, "method": "thread/start", "params": {"cwd": "/work"}},
                {
                    "id": 3,
                    "method": "turn/start",
                    "params": {"threadId": "t", "input": [{"type": "text", "text": "x"}]},
                },
            ],
            "#fake session=t crash",
        )
        self.assertEqual(status, 1)
        self.assertEqual(printed[-1]["method"], "item/completed")

    def test_exit_after_turn(self) -> None:
        """exit=N: the process exits with N after the turn."""
        printed, status = self.serve(
            [
                {"id": 1, "method": "initialize", "params": {}},
                {"id": 2, "method": "thread/start", "params": {}},
                {
                    "id": 3,
                    "method": "turn/start",
                    "params": {"threadId": "t", "input": [{"type": "text", "text": "x"}]},
                },
            ],
            "#fake session=t exit=3",
        )
        self.assertEqual((status, printed[-1]["method"]), (3, "turn/completed"))
        self.assertEqual(printed[-1]["params"]["turn"]["items"][0]["text"], "codex answers: x")
