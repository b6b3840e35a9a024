"""
The fake C{claude}'s long-lived mode: C{--print --input-format
stream-json}, one C{user} line a turn on stdin, each turn printed as the
cold fake prints a C{stream-json} run (docs/design/live-sessions.md#live-claude).

A turn's C{#fake} directives (and C{CLINVK_FAKE}'s) steer it as they steer
a cold run, with these for the process as a whole:

  - C{start_fail}: exit 1 with an error before reading anything;
  - C{start_delay=S}: read nothing for S seconds first;
  - per turn, C{delay=S} and C{hang} wait for an interrupt (a
    C{control_request} of subtype C{interrupt}), which ends the turn as
    the real CLI does; C{fail=crash} exits 1 mid-turn; C{exit=N} exits with
    N after the turn.

The record (C{CLINVK_FAKE_RECORD}) is written at start and after every
turn, with the turns served so far and the conversation resumed.
Only the standard library is used.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import sys
import threading
import time
import uuid
from typing import Any

from clinvk.testing.fake_cli import (
    CLAUDE_BOOLEANS,
    CLAUDE_VALUED,
    ClaudeTurn,
    FakeRun,
    claude_stream,
    parse_directives,
    parse_options,
)

# The one-shot fake's flags, and the one that starts this mode.
VALUED = CLAUDE_VALUED | {"--input-format"}


def wants(args: list[str]) -> bool:
    """Whether C{args} start the long-lived mode."""
    pairs = itertools.pairwise(args)
    return any(flag == "--input-format" and value == "stream-json" for flag, value in pairs) or (
        "--input-format=stream-json" in args
    )


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    blocks = content if isinstance(content, list) else []
    return "\n".join(str(block["text"]) for block in blocks if isinstance(block, dict) and "text" in block)


def _images(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The image blocks of a user message: their media types and decoded sizes."""
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    return [
        {
            "media_type": block["source"]["media_type"],
            "size": len(base64.b64decode(block["source"]["data"])),
        }
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "image"
    ]


class _Stdin:
    """Reads stdin on a thread, so that an interrupt is seen while a turn runs."""

    def __init__(self) -> None:
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.interrupted = threading.Event()
        self.interrupts: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in sys.stdin:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            request = data.get("request")
            if data.get("type") == "control_request" and isinstance(request, dict):
                if request.get("subtype") == "interrupt":
                    self.interrupts.append(str(data.get("request_id", "")))
                    self.interrupted.set()
            self.lines.put(data)
        self.lines.put(None)


class LiveClaude:
    """One fake live process."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.found, _ignored = parse_options(args, booleans=CLAUDE_BOOLEANS, valued=VALUED)
        self.resumed = self.found.get("--resume", [""])[-1]
        directives, _answer = parse_directives(os.environ.get("CLINVK_FAKE", ""))
        self.session = self.resumed or directives.get("session") or str(uuid.uuid4())
        self.turns: list[str] = []
        self.images: list[dict[str, Any]] = []
        self.answered: set[str] = set()
        self.stdin = _Stdin()

    def record(self) -> None:
        run = FakeRun("claude", self.args, "")
        run.images = self.images
        run.record(turns=self.turns, resumed=self.resumed, live=True)

    def line(self, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    def control_response(self, request_id: str, error: str = "") -> None:
        self.answered.add(request_id)
        if error:
            response: dict[str, Any] = {"subtype": "error", "request_id": request_id, "error": error}
        else:
            response = {"subtype": "success", "request_id": request_id}
        self.line({"type": "control_response", "response": response})

    def wait(self, seconds: float | None) -> bool:
        """Wait C{seconds} (L{None}: for ever) unless interrupted; whether it was."""
        return self.stdin.interrupted.wait(seconds)

    def interrupted(self, run: FakeRun) -> None:
        """End the running turn as the real CLI does on an interrupt."""
        for request_id in self.stdin.interrupts:
            if request_id not in self.answered:
                self.control_response(request_id)
        base = {"session_id": run.session, "uuid": str(uuid.uuid4())}
        content = [{"type": "text", "text": "[Request interrupted by user]"}]
        self.line({"type": "user", "message": {"role": "user", "content": content}, **base})
        self.line(
            {
                "type": "result",
                "subtype": "error_during_execution",
                "duration_ms": 3000,
                "is_error": True,
                "num_turns": 1,
                "stop_reason": None,
                "total_cost_usd": 0,
                "usage": {"input_tokens": 0, "output_tokens": 0},
                **base,
            }
        )

    def serve(self, text: str) -> int | None:
        """Answer one turn; an exit status when the process ends with it."""
        self.stdin.interrupted.clear()
        run = FakeRun("claude", self.args, text)
        run.session = self.session
        self.turns.append(text)
        self.record()
        failed = run.directives.get("fail")
        turn = ClaudeTurn(run, self.found)
        if failed == "crash":
            self.line(turn.init)
            sys.stderr.write("Error: fake claude crashed\n")
            return 1
        waited = None if "hang" in run.directives else run.seconds("delay")
        if (waited is None or waited > 0) and self.wait(waited):
            self.line(turn.init)
            self.interrupted(run)
        else:
            claude_stream(run, turn, partial="--include-partial-messages" in self.found)
        self.record()
        if "exit" in run.directives:
            return int(run.directives["exit"] or 0)
        return None

    def run(self) -> int:
        directives, _answer = parse_directives(os.environ.get("CLINVK_FAKE", ""))
        if "start_fail" in directives:
            sys.stderr.write("Error: fake claude could not start\n")
            return 1
        self.record()
        if directives.get("start_delay"):
            time.sleep(float(directives["start_delay"]))
        while (data := self.stdin.lines.get()) is not None:
            kind = data.get("type")
            if kind == "user":
                message = data.get("message")
                self.images += _images(message if isinstance(message, dict) else {})
                status = self.serve(_text(message if isinstance(message, dict) else {}))
                if status is not None:
                    return status
            elif kind == "control_request":
                request_id = str(data.get("request_id", ""))
                request = data.get("request")
                subtype = request.get("subtype") if isinstance(request, dict) else None
                if request_id in self.answered:
                    continue
                if subtype in ("interrupt", "initialize"):
                    self.control_response(request_id)
                else:
                    self.control_response(request_id, f"Unsupported control request subtype: {subtype}")
        return 0


def run(args: list[str]) -> int:
    """Serve turns on stdin until it ends."""
    if "--print" not in args:
        sys.stderr.write("error: fake claude only runs in --print mode\n")
        return 2
    return LiveClaude(args).run()
