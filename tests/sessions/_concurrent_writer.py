"""
A child process of L{tests.integration.test_session_store_processes}: it
writes to a session store that another child writes to at the same time.

Usage: C{python _concurrent_writer.py <sessions dir> <shared session id>
<label>}.  It prints C{ready}, waits for a line on stdin (so that both
children start writing together), then updates the shared session 200
times, adding one turn each time, and creates 50 sessions of its own
(tagged with the label) in between.  It prints C{done} at the end.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from attrs import evolve

from clinvk.sessions.files import SessionFiles
from clinvk.sessions.record import SessionRecord, new_session_id

UPDATES = 200
CREATES = 50
START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def one_more_turn(current: SessionRecord) -> SessionRecord:
    return evolve(current, turn_count=current.turn_count + 1)


def main(directory: str, shared_id: str, label: str) -> None:
    files = SessionFiles(directory)
    print("ready", flush=True)
    sys.stdin.readline()
    for n in range(UPDATES):
        files.update(shared_id, one_more_turn)
        if n % (UPDATES // CREATES) == 0:
            moment = START + timedelta(seconds=n)
            files.create(
                SessionRecord(
                    id=new_session_id(), backend="codex", created_at=moment, last_used=moment, tags=(label,)
                )
            )
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
