"""
The fake C{gemini --acp} (L{clinvk.testing.fake_live_gemini}) follows the
real one: given the lines clinvk wrote in each recording
(C{tests/data/recordings/gemini-acp-*.stdin}), it prints the structure the
real CLI printed (C{.stdout}), as L{tests.testing.test_recordings} holds
the cold fakes to theirs.

A message's label is its method and update kind, or C{result}/C{error}
for an answer; values are not compared.  The history a C{session/load}
replays is left out of both sides: the fake keeps no history to replay.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from io import StringIO
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from clinvk.testing.fake_cli import command_line
from tests.testing.test_recordings import RECORDINGS, Event, add_recording_tests, compare, key_paths

SESSION = "<uuid-1>"

# Per recording: the #fake directives of each turn, in order, that make
# the fake behave as the model server was scripted.
DIRECTIVES = {
    "gemini-acp-turns": ["chunks=3", ""],
    "gemini-acp-tool": ["tool"],
    "gemini-acp-interrupt": ["hang", ""],
    "gemini-acp-error": ["fail=api", ""],
    "gemini-acp-load": [""],
}

NOT_MIRRORED = {
    # The fakes run no tool that needs approval.
    "gemini-acp-permission": "gemini asks for approval of write_file",
}


def label(message: dict[str, Any]) -> str:
    method = message.get("method")
    if method == "session/update":
        return f"session/update/{message['params']['update'].get('sessionUpdate')}"
    if method:
        return str(method)
    return "error" if "error" in message else "result"


def structure(lines: list[dict[str, Any]]) -> list[Event]:
    """The events of C{lines}, without the history a session/load replays."""
    found = []
    replaying = False
    for message in lines:
        kind = label(message)
        if kind == "session/update/available_commands_update":
            replaying = False
        elif replaying or kind == "session/update/user_message_chunk":
            continue
        found.append(Event(kind, frozenset(key_paths(message))))
        # The answer to session/load (the one result of id 2 without a sessionId).
        replaying = replaying or (
            message.get("id") == 2 and "sessionId" not in message.get("result", {"sessionId": 1})
        )
    return found


def manifest() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((RECORDINGS / "manifest-live.json").read_text())
    return result


def lines(name: str, side: str) -> list[dict[str, Any]]:
    text = (RECORDINGS / f"{name}.{side}").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class LiveRecordingsTests(SynchronousTestCase):
    """The fake's C{--acp} mode prints the structure the real one printed."""

    def fake(self, name: str) -> tuple[int, list[dict[str, Any]]]:
        """Run the fake on recording C{name}'s stdin, each turn with its directives."""
        directives = list(DIRECTIVES[name])
        written = []
        for message in lines(name, "stdin"):
            if message.get("method") == "session/prompt":
                extra = directives.pop(0)
                if extra:
                    message["params"]["prompt"][0]["text"] += f"\n#fake {extra}"
            written.append(json.dumps(message))
        stdout = StringIO()
        self.patch(sys, "stdin", StringIO("".join(line + "\n" for line in written)))
        self.patch(sys, "stdout", stdout)
        self.patch(sys, "stderr", StringIO())
        self.patch(os, "environ", {"CLINVK_FAKE": f"#fake session={SESSION}"})
        self.addCleanup(signal.signal, signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        status = command_line([manifest()[name]["cli"], *manifest()[name]["args"]])
        return status, [json.loads(line) for line in stdout.getvalue().splitlines() if line.strip()]

    def check(self, name: str) -> None:
        status, printed = self.fake(name)
        self.assertEqual(status, manifest()[name]["exit_code"])
        problems = compare(structure(lines(name, "stdout")), structure(printed))
        if problems:
            self.fail(f"fake {name} drifted from the recording:\n{problems}")

    def test_every_recording_is_mirrored(self) -> None:
        """Every live recording has a fake run, or a reason it has none."""
        self.assertEqual(set(manifest()), set(DIRECTIVES) | set(NOT_MIRRORED))

    def test_structure_skips_the_replay(self) -> None:
        """The history replayed around the answer to session/load is no part of the structure."""
        labels = [event.label for event in structure(lines("gemini-acp-load", "stdout"))]
        self.assertEqual(
            labels,
            [
                "result",
                "result",
                "session/update/available_commands_update",
                "session/update/agent_message_chunk",
                "result",
            ],
        )


add_recording_tests(LiveRecordingsTests, DIRECTIVES)
