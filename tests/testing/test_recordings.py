"""
The fakes of L{clinvk.testing.fake_cli} follow reality: for each output
the real CLIs printed (C{tests/data/recordings/}, see its README.md), the
fake run with the same arguments prints the same structure.

The structure of an output is its sequence of events (a JSON line, the
elements of a JSON array, or one JSON document), each labelled by its
C{type} and its C{subtype}, C{event.type} or C{item.type}, and each
event's key paths (C{message.content[].type}); the fake's events come in
the same order, and lack no key path the recording has.  Values are not
compared: they are the model server's, or volatile.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Iterable
from io import StringIO
from pathlib import Path
from typing import Any

from attrs import frozen

from twisted.trial.unittest import SynchronousTestCase

from clinvk.testing.fake_cli import command_line

RECORDINGS = Path(__file__).parent.parent / "data" / "recordings"

# What makes each fake behave as the model server was scripted for each
# recording (its C{#fake} directives); a recording absent here is not
# mirrored, for the reason NOT_MIRRORED gives.
DIRECTIVES = {
    "claude-json": "",
    "claude-stream-json": "chunks=3",
    "claude-text": "",
    "claude-tool-stream-json": "tool",
    "claude-error-json": "fail=api",
    "claude-error-stream-json": "fail=api",
    "claude-error-text": "fail=api",
    "claude-retry-stream-json": "retry",
    "codex-json": "",
    "codex-resume-json": "",
    "codex-tool-json": "tool",
    "codex-approval-json": "",
    "codex-error-json": "fail=api",
    "gemini-json": "",
    "gemini-stream-json": "chunks=3",
    "gemini-text": "",
    "gemini-tool-stream-json": "tool",
    "gemini-tool-json": "tool",
    "gemini-error-json": "fail=api",
    "gemini-error-stream-json": "fail=api",
    "gemini-error-text": "fail=api",
}

NOT_MIRRORED = {
    # Claude refuses bypassPermissions as root, before it prints anything
    # on stdout; clinvk never asks for it.
    "claude-bypass-stream-json": "refused as root only",
}

# Keys whose values are maps from names (models, roles, tools) rather than
# records: their keys are not part of the structure.
MAPS = frozenset({"modelUsage", "models", "roles", "byName", "errorsByType"})


@frozen
class Event:
    """One event of an output: its label and its key paths."""

    label: str
    keys: frozenset[str]


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """
    The key paths of C{value}: C{a.b} for nested objects, C{a[].b} for the
    objects in lists, C{a.*.b} under the keys of L{MAPS}.
    """
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found.add(path)
            if key in MAPS and isinstance(item, dict):
                for member in item.values():
                    found |= key_paths(member, f"{path}.*")
            else:
                found |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= key_paths(item, f"{prefix}[]")
    return found


def label(value: Any) -> str:
    """C{type}, with C{subtype}, C{event.type} or C{item.type}: C{stream_event/message_start}."""
    if not isinstance(value, dict):
        return type(value).__name__
    parts = [str(value.get("type", "(object)"))]
    for inner in (
        value.get("subtype"),
        (value.get("event") or {}).get("type"),
        (value.get("item") or {}).get("type"),
    ):
        if isinstance(inner, str):
            parts.append(inner)
    return "/".join(parts)


def structure(output: str) -> list[Event]:
    """
    The events of C{output}: the elements of a JSON array, one JSON
    document, or each line (a line that is not JSON is a C{text} event).
    """
    try:
        whole = json.loads(output)
    except ValueError:
        pass
    else:
        items = whole if isinstance(whole, list) else [whole]
        return [Event(label(item), frozenset(key_paths(item))) for item in items]
    found = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            found.append(Event("text", frozenset()))
            continue
        found.append(Event(label(value), frozenset(key_paths(value))))
    return found


def trailing_json(stderr: str) -> str:
    """
    The JSON document that ends C{stderr} (Gemini's error report after its
    stack trace), from the first line that is only C{"{"}; or C{""}.
    """
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line == "{":
            candidate = "\n".join(lines[index:])
            try:
                json.loads(candidate)
            except ValueError:
                continue
            return candidate
    return ""


def compare(recorded: list[Event], fake: list[Event]) -> str:
    """
    What C{fake} lacks of C{recorded}, readably: a diff of the event
    labels when they differ, else the key paths each fake event misses;
    C{""} when it lacks nothing.
    """
    recorded_labels = [event.label for event in recorded]
    fake_labels = [event.label for event in fake]
    if recorded_labels != fake_labels:
        diff = difflib.unified_diff(recorded_labels, fake_labels, "recorded", "fake", lineterm="")
        return "the events differ:\n" + "\n".join(diff)
    problems = []
    for number, (real, faked) in enumerate(zip(recorded, fake, strict=True)):
        missing = sorted(real.keys - faked.keys)
        if missing:
            problems.append(f"event {number} ({real.label}) lacks: {', '.join(missing)}")
    return "\n".join(problems)


@frozen
class Outcome:
    """What a CLI printed, and its exit status."""

    stdout: str
    stderr: str
    status: int


def recorded(name: str) -> tuple[dict[str, Any], Outcome]:
    """The manifest entry and the outcome of recording C{name}."""
    entry = json.loads((RECORDINGS / "manifest.json").read_text())[name]
    stderr = RECORDINGS / f"{name}.stderr"
    outcome = Outcome(
        (RECORDINGS / f"{name}.stdout").read_text(),
        stderr.read_text() if stderr.exists() else "",
        entry["exit_code"],
    )
    return entry, outcome


class RecordingsTests(SynchronousTestCase):
    """Each fake prints the structure its real CLI printed."""

    def fake(self, name: str) -> Outcome:
        """Run the fake as recording C{name} ran the real CLI."""
        entry, _ = recorded(name)
        args = [arg.replace("<uuid-1>", "5f0c7a38-0d3b-4e27-9d1c-3a8e0f6b2c41") for arg in entry["args"]]
        stdout, stderr = StringIO(), StringIO()
        self.patch(sys, "stdin", StringIO(entry["stdin"]))
        self.patch(sys, "stdout", stdout)
        self.patch(sys, "stderr", stderr)
        directives = DIRECTIVES[name]
        self.patch(os, "environ", {"CLINVK_FAKE": f"#fake {directives}" if directives else ""})
        status = command_line([entry["cli"], *args])
        return Outcome(stdout.getvalue(), stderr.getvalue(), status)

    def check(self, name: str) -> None:
        _, real = recorded(name)
        fake = self.fake(name)
        problems = []
        if fake.status != real.status:
            problems.append(f"exit status {fake.status}, recorded {real.status}")
        if bool(fake.stdout.strip()) != bool(real.stdout.strip()):
            problems.append(
                f"stdout {'empty' if not fake.stdout.strip() else 'not empty'}, unlike the recording"
            )
        found = compare(structure(real.stdout), structure(fake.stdout))
        if found:
            problems.append(f"stdout: {found}")
        report = trailing_json(real.stderr)
        if report:
            found = compare(structure(report), structure(trailing_json(fake.stderr)))
            if found:
                problems.append(f"the JSON report on stderr: {found}")
        if problems:
            self.fail(f"fake {name} drifted from the recording:\n" + "\n".join(problems))

    def test_every_recording_is_mirrored(self) -> None:
        """Every recording in the manifest has a fake run, or a reason it has none."""
        names = set(json.loads((RECORDINGS / "manifest.json").read_text()))
        self.assertEqual(names, set(DIRECTIVES) | set(NOT_MIRRORED))
        for name in names:
            self.assertTrue((RECORDINGS / f"{name}.stdout").exists(), name)

    def test_compare_reports_drift(self) -> None:
        """L{compare} shows a diff of the event labels, then the missing keys."""
        real = structure('{"type": "a"}\n{"type": "b", "x": {"y": 1}}\n')
        self.assertEqual(
            compare(real, structure('{"type": "a", "z": 1}\n{"type": "b", "x": {"y": 2}}\n')), ""
        )
        self.assertEqual(
            compare(real, structure('{"type": "a"}\n{"type": "b", "x": {}}\n')), "event 1 (b) lacks: x.y"
        )
        self.assertEqual(
            compare(real, structure('{"type": "a"}\n{"type": "c"}\n')),
            "the events differ:\n--- recorded\n+++ fake\n@@ -1,2 +1,2 @@\n a\n-b\n+c",
        )

    def test_structure(self) -> None:
        """Labels include subtypes, inner event and item types; maps are wildcarded."""
        [event] = structure(
            json.dumps(
                {"type": "stream_event", "event": {"type": "message_stop"}, "models": {"m1": {"t": 1}}}
            )
        )
        self.assertEqual(event.label, "stream_event/message_stop")
        self.assertEqual(event.keys, {"type", "event", "event.type", "models", "models.*.t"})
        self.assertEqual([event.label for event in structure("hello\n\nthere\n")], ["text", "text"])


def add_recording_tests(case: type[Any], names: Iterable[str]) -> None:
    """
    Give C{case} a test per recording of C{names}, C{test_<name>}, which
    calls its C{check(name)}.
    """

    def add(name: str) -> None:
        def test(self: Any) -> None:
            self.check(name)

        test.__name__ = "test_" + name.replace("-", "_")
        test.__doc__ = f"The fake prints the structure of recording C{{{name}}}."
        setattr(case, test.__name__, test)

    for name in names:
        add(name)


add_recording_tests(RecordingsTests, DIRECTIVES)
