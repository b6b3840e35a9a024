"""
Real-process test of the session store's cross-process locking: two
processes write to one sessions directory at the same time and lose
nothing.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import tests.sessions
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.record import SessionRecord, new_session_id
from tests.integration._processes import CommandProtocol, python_command, spawn

WRITER = os.path.join(os.path.dirname(os.path.abspath(tests.sessions.__file__)), "_concurrent_writer.py")
LABELS = ("first", "second")


class SessionStoreProcessesTests(TestCase):
    """Two processes sharing a sessions directory."""

    timeout = 60

    def start(self, *args: str) -> tuple[CommandProtocol, Any]:
        protocol, transport = spawn(python_command(WRITER, *args), dict(os.environ), os.getcwd())

        def kill_leftover() -> Deferred[int] | None:
            if protocol.ended.called:
                return None
            transport.signalProcess("KILL")
            return protocol.ended

        self.addCleanup(kill_leftover)
        return protocol, transport

    async def test_concurrent_writers(self) -> None:
        """
        Each process updates one shared session 200 times and creates 50
        sessions of its own: every update and every session is kept.
        """
        directory = sessions_directory(FilePath(self.mktemp()).path)
        files = SessionFiles(directory)
        moment = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
        shared = SessionRecord(id=new_session_id(), backend="claude", created_at=moment, last_used=moment)
        files.create(shared)
        self.assertEqual(files.list().total, 1)

        children = [self.start(directory, shared.id, label) for label in LABELS]
        for protocol, _ in children:
            await protocol.wait_for("^ready$")
        # Both are ready: let them write at the same time.
        for _, transport in children:
            transport.write(b"go\n")
        for protocol, _ in children:
            code = await protocol.ended
            self.assertEqual((code, protocol.stdout), (0, b"ready\ndone\n"), protocol.stderr.decode())

        self.assertEqual(SessionFiles(directory).get(shared.id).turn_count, 400)
        with open(os.path.join(directory, "index.json"), "rb") as f:
            index = json.load(f)["index"]
        self.assertEqual(len(index), 101)
        self.assertEqual(
            Counter(tag for entry in index.values() for tag in entry["Tags"] or ()), dict.fromkeys(LABELS, 50)
        )
        # The first instance, with its index cached from before, sees them all.
        page = files.list()
        self.assertEqual(page.total, 101)
        self.assertEqual(len(page.sessions), 101)
        self.assertEqual(
            Counter(tag for item in page.sessions for tag in item.tags), dict.fromkeys(LABELS, 50)
        )
        self.assertEqual(
            sorted(os.listdir(directory)),
            sorted([*(key + ".json" for key in index), "index.json", "store.lock"]),
        )
