"""
Tests for L{clinvk.sessions.files} beyond the store contract: the files,
their format and modes, the index and its cache, locking, and what the
command-line tool writes.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import evolve

from twisted.trial.unittest import SynchronousTestCase

from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.record import (
    COMPLETED,
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
)
from tests.sessions.helpers import EXAMPLE, EXAMPLE_FILE, EXAMPLE_INDEX, T0, record, session_id


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def write(path: str, content: str | bytes) -> None:
    with open(path, "wb") as f:
        f.write(content.encode("utf-8") if isinstance(content, str) else content)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# A record as the command-line tool writes it: local time with nanoseconds
# and an offset, a legacy 16-character id.
REFERENCE_RECORD = """{
  "id": "0f1e2d3c4b5a6978",
  "backend": "gemini",
  "created_at": "2025-03-04T11:02:11.518204312+01:00",
  "last_used": "2025-03-04T11:09:00.5+01:00",
  "working_dir": "/home/me/atlas",
  "backend_session_id": "c2f6",
  "status": "paused",
  "turn_count": 4,
  "title": "tiles",
  "parent_id": "7a41c0e9b2d84f3a"
}"""

REFERENCE_INDEX_ENTRY = {
    "ID": "0f1e2d3c4b5a6978",
    "Backend": "gemini",
    "Status": "paused",
    "LastUsed": "2025-03-04T11:09:00.5+01:00",
    "Model": "",
    "WorkDir": "/home/me/atlas",
    "Title": "tiles",
    "Tags": None,
    "CreatedAt": "2025-03-04T11:02:11.518204312+01:00",
}


class _DiskTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.home = self.mktemp()
        self.directory = sessions_directory(self.home)
        self.files = SessionFiles(self.directory)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def names(self) -> set[str]:
        return set(os.listdir(self.directory))

    def index(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(read(self.path("index.json")))
        return document

    def other(self) -> SessionFiles:
        """Another instance on the same directory, as another process has."""
        return SessionFiles(self.directory)

    def listed(self, files: SessionFiles | None = None, **filters: Any) -> list[str]:
        return [item.id for item in (files or self.files).list(**filters).sessions]

    def assert_not_found(self, call: Callable[[], object], reason: str) -> None:
        error = self.assertRaises(SessionNotFound, call)
        self.assertEqual(str(error), reason)


class LocationTests(SynchronousTestCase):
    """Where the sessions live."""

    def test_sessions_directory(self) -> None:
        """C{<home>/.clinvk/sessions}, or relative when the home directory is unknown."""
        self.assertEqual(sessions_directory("/home/me"), "/home/me/.clinvk/sessions")
        self.assertEqual(sessions_directory(""), ".clinvk/sessions")


class FileTests(_DiskTestCase):
    """The files of the store: modes, formats, atomic writes and the lock."""

    def test_modes(self) -> None:
        """Directories are created 0700 on demand, files 0600."""
        self.assertFalse(os.path.exists(self.home))
        self.files.create(EXAMPLE)
        self.assertEqual(mode(os.path.join(self.home, ".clinvk")), 0o700)
        self.assertEqual(mode(self.directory), 0o700)
        for name in (EXAMPLE.id + ".json", "index.json", "store.lock"):
            self.assertEqual(mode(self.path(name)), 0o600, name)
        self.assertEqual(self.names(), {EXAMPLE.id + ".json", "index.json", "store.lock"})

    def test_modes_despite_umask(self) -> None:
        """The modes do not depend on a permissive umask."""
        previous = os.umask(0)
        self.addCleanup(os.umask, previous)
        self.files.create(EXAMPLE)
        self.assertEqual(mode(self.directory), 0o700)
        self.assertEqual(mode(self.path("store.lock")), 0o600)
        self.assertEqual(mode(self.path(EXAMPLE.id + ".json")), 0o600)

    def test_record_format(self) -> None:
        """
        A record file is the JSON of
        docs/design/session-store.md#session-record, without a trailing
        newline.
        """
        self.files.create(EXAMPLE)
        self.assertEqual(read(self.path(EXAMPLE.id + ".json")).decode("utf-8"), EXAMPLE_FILE)

    def test_index_format(self) -> None:
        """The index is the compact JSON of docs/design/session-store.md#store-index."""
        self.files.create(EXAMPLE)
        self.assertEqual(read(self.path("index.json")).decode("utf-8"), EXAMPLE_INDEX)

    def test_index_null_tags(self) -> None:
        """Every index member is written; no tags are written as C{null}."""
        self.files.create(record(1))
        entry = self.index()["index"][session_id(1)]
        self.assertEqual(
            list(entry),
            ["ID", "Backend", "Status", "LastUsed", "Model", "WorkDir", "Title", "Tags", "CreatedAt"],
        )
        self.assertIsNone(entry["Tags"])

    def test_unicode(self) -> None:
        """Text is written as UTF-8, not escaped, and read back."""
        item = evolve(EXAMPLE, initial_prompt="Résumé ☃ 日本")
        self.files.create(item)
        self.assertIn("Résumé ☃ 日本".encode(), read(self.path(EXAMPLE.id + ".json")))
        self.assertEqual(self.files.get(EXAMPLE.id), item)

    def test_no_temporary_files(self) -> None:
        """Atomic writes leave no temporary file behind."""
        self.files.create(record(1))
        self.files.create(record(2))
        self.files.update(session_id(1), lambda r: evolve(r, status=COMPLETED))
        self.files.delete(session_id(2))
        self.files.clean(T0 + timedelta(days=1))
        self.assertEqual(self.names(), {"index.json", "store.lock"})

    def test_failed_write(self) -> None:
        """
        When the target cannot be replaced, even after removing it, the
        write fails with L{StoreError}, its temporary file is removed and
        the index does not change.
        """
        os.makedirs(self.path(EXAMPLE.id + ".json"))
        write(self.path(EXAMPLE.id + ".json/keep"), "x")
        error = self.assertRaises(StoreError, self.files.create, EXAMPLE)
        self.assertIn("failed to write session file", str(error))
        self.assertEqual(self.names(), {EXAMPLE.id + ".json", "index.json", "store.lock"})
        self.assertEqual(self.index(), {"version": 1, "index": {}})

    def test_failed_index_write(self) -> None:
        """When the index cannot be written, a new record is not left behind."""

        class Failing(SessionFiles):
            def _write_index(self, entries: Any) -> None:
                if len(entries) > 1:
                    raise StoreError("disk full")
                super()._write_index(entries)

        files = Failing(self.directory)
        files.create(record(1))
        self.assertEqual(str(self.assertRaises(StoreError, files.create, record(2))), "disk full")
        self.assertEqual(self.names(), {session_id(1) + ".json", "index.json", "store.lock"})
        self.assertEqual(self.listed(self.other()), [session_id(1)])

    def test_rename_retried(self) -> None:
        """When the first rename fails, the target is removed and the rename tried again."""
        os.makedirs(self.path(EXAMPLE.id + ".json"))
        self.files.create(EXAMPLE)
        self.assertEqual(self.files.get(EXAMPLE.id), EXAMPLE)

    def test_lock_file_kept(self) -> None:
        """The lock file is never deleted, so every process locks the same file."""
        self.files.create(record(1))
        inode = os.stat(self.path("store.lock")).st_ino
        self.files.create(record(2))
        self.files.update(session_id(1), lambda r: r)
        self.files.delete(session_id(1))
        self.files.clean(T0 + timedelta(days=1))
        self.assertEqual(os.stat(self.path("store.lock")).st_ino, inode)

    def test_lock_file_deleted_by_others(self) -> None:
        """A lock file deleted by a command-line tool is created again."""
        self.files.create(record(1))
        os.unlink(self.path("store.lock"))
        self.files.create(record(2))
        self.assertEqual(mode(self.path("store.lock")), 0o600)
        self.assertEqual(len(self.listed()), 2)

    def test_artefacts_deleted(self) -> None:
        """Deleting a session removes its artefact directory with its content."""
        self.files.create(record(1))
        os.makedirs(self.path(session_id(1) + "/nested"))
        write(self.path(session_id(1) + "/nested/file"), "x")
        self.files.delete("0000")
        self.assertEqual(self.names(), {"index.json", "store.lock"})

    def test_artefacts_cleaned(self) -> None:
        """Retention removes artefact directories too."""
        self.files.create(record(1))
        os.makedirs(self.path(session_id(1)))
        self.assertEqual(self.files.clean(T0 + timedelta(days=1)), 1)
        self.assertEqual(self.names(), {"index.json", "store.lock"})


class ReferenceFileTests(_DiskTestCase):
    """What the command-line tool writes is read."""

    def setUp(self) -> None:
        super().setUp()
        os.makedirs(self.directory)

    def test_reference_record(self) -> None:
        """Nanoseconds, offsets and legacy ids are read; the index is rebuilt from the files."""
        write(self.path("0f1e2d3c4b5a6978.json"), REFERENCE_RECORD)
        item = self.files.resolve("0f1e")
        self.assertEqual(item.id, "0f1e2d3c4b5a6978")
        self.assertEqual(item.created_at, T0)
        self.assertEqual(item.last_used, datetime(2025, 3, 4, 10, 9, 0, 500000, tzinfo=UTC))
        self.assertEqual((item.status, item.turn_count, item.parent_id), ("paused", 4, "7a41c0e9b2d84f3a"))
        self.assertEqual(self.files.get("0f1e2d3c4b5a6978"), item)
        entry = self.index()["index"]["0f1e2d3c4b5a6978"]
        self.assertEqual(entry["LastUsed"], "2025-03-04T10:09:00.500000+00:00")

    def test_reference_index(self) -> None:
        """An index with the reference's timestamps is used as it is, and kept on rewrite."""
        write(self.path("0f1e2d3c4b5a6978.json"), REFERENCE_RECORD)
        write(
            self.path("index.json"),
            json.dumps({"version": 1, "index": {"0f1e2d3c4b5a6978": REFERENCE_INDEX_ENTRY}}),
        )
        self.files.create(record(1, minutes=6))
        self.files.create(record(2, minutes=8))
        # 10:09 UTC sorts between 10:08 and 10:06 although its text differs.
        self.assertEqual(self.listed(), [session_id(2), "0f1e2d3c4b5a6978", session_id(1)])
        self.assertEqual(self.listed(status="paused"), ["0f1e2d3c4b5a6978"])
        self.assertEqual(self.index()["index"]["0f1e2d3c4b5a6978"], REFERENCE_INDEX_ENTRY)

    def test_zulu_and_zero_time(self) -> None:
        """C{Z} timestamps and the zero time of an index entry are read; zero sorts last and is cleaned."""
        write(
            self.path("index.json"),
            json.dumps(
                {
                    "version": 1,
                    "index": {
                        session_id(1): {
                            **REFERENCE_INDEX_ENTRY,
                            "ID": session_id(1),
                            "LastUsed": "2025-03-04T10:02:11Z",
                        },
                        session_id(2): {
                            **REFERENCE_INDEX_ENTRY,
                            "ID": session_id(2),
                            "LastUsed": "0001-01-01T00:00:00Z",
                        },
                    },
                }
            ),
        )
        write(self.path(session_id(1) + ".json"), json.dumps(record(1).to_json()))
        write(self.path(session_id(2) + ".json"), json.dumps(record(2).to_json()))
        self.assertEqual(self.files.list().total, 2)
        self.assertEqual(self.listed(), [session_id(1), session_id(2)])
        self.assertEqual(self.files.clean(T0 - timedelta(days=1)), 1)
        self.assertEqual(self.listed(), [session_id(1)])


class IndexTests(_DiskTestCase):
    """The index: rebuilding it, and seeing other processes' changes."""

    def test_rebuild_missing(self) -> None:
        """A missing index is rebuilt from the record files and written back."""
        self.files.create(record(1, minutes=1))
        self.files.create(record(2, minutes=2))
        os.unlink(self.path("index.json"))
        self.assertEqual(self.listed(self.other()), [session_id(2), session_id(1)])
        self.assertEqual(set(self.index()["index"]), {session_id(1), session_id(2)})

    def test_rebuild_unusable(self) -> None:
        """An unparsable index, one of another version or with a malformed entry, is rebuilt."""
        self.files.create(record(1))
        for content in (
            "not json",
            "[]",
            '{"version":2,"index":{}}',
            '{"version":true,"index":{}}',
            '{"version":1,"index":[]}',
            '{"version":1,"index":{"x":null}}',
            '{"version":1,"index":{"x":{"Backend":7}}}',
            '{"version":1,"index":{"x":{"LastUsed":"yesterday"}}}',
        ):
            write(self.path("index.json"), content)
            self.assertEqual(self.listed(self.other()), [session_id(1)], content)
            self.assertEqual(list(self.index()["index"]), [session_id(1)], content)

    def test_rebuild_skips(self) -> None:
        """A rebuild skips unparsable records, other files and directories."""
        self.files.create(record(1))
        write(self.path(session_id(2) + ".json"), "{broken")
        write(self.path("notes.txt"), "x")
        os.makedirs(self.path(session_id(3) + ".json"))
        os.makedirs(self.path(session_id(1)))
        write(self.path(".tmp-abandoned"), "{}")
        os.unlink(self.path("index.json"))
        self.assertEqual(self.listed(self.other()), [session_id(1)])

    def test_empty_index(self) -> None:
        """An index of version 1 with a null or empty map means no sessions."""
        os.makedirs(self.directory)
        write(self.path(session_id(1) + ".json"), json.dumps(record(1).to_json()))
        for content in ('{"version":1,"index":null}', '{"version":1}'):
            write(self.path("index.json"), content)
            self.assertEqual(self.other().list(), SessionPage(0, ()), content)

    def test_other_process_creates(self) -> None:
        """A session another process creates shows in this process's listing."""
        self.files.create(record(1, minutes=1))
        self.assertEqual(self.listed(), [session_id(1)])
        other = self.other()
        other.create(record(2, minutes=2))
        self.assertEqual(self.listed(), [session_id(2), session_id(1)])
        other.update(session_id(1), lambda r: evolve(r, status=COMPLETED))
        self.assertEqual(self.listed(status=COMPLETED), [session_id(1)])
        self.assertEqual(self.files.resolve(session_id(2)).id, session_id(2))
        other.delete(session_id(2))
        self.assertEqual(self.listed(), [session_id(1)])

    def test_mutations_keep_other_entries(self) -> None:
        """A mutation re-reads the index under the lock and keeps what other processes added."""
        self.files.create(record(1))
        other = self.other()
        other.list()
        self.files.create(record(2))
        other.create(record(3))
        self.files.update(session_id(1), lambda r: r)
        other.delete(session_id(2))
        self.files.create(record(4))
        self.assertEqual(set(self.index()["index"]), {session_id(1), session_id(3), session_id(4)})
        self.assertEqual(len(self.listed(SessionFiles(self.directory))), 3)

    def test_same_signature_different_content(self) -> None:
        """
        Under the lock the index is compared by content, so a change that
        keeps the stat signature (a reused inode within one clock tick) is
        not lost.
        """
        self.files.create(record(1))
        # Rewrite the index in place with another entry of the same size,
        # then restore its modification time: the signature stays.
        before = os.stat(self.path("index.json"))
        content = read(self.path("index.json")).replace(session_id(1).encode(), session_id(2).encode())
        write(self.path(session_id(2) + ".json"), json.dumps(record(2).to_json()))
        with open(self.path("index.json"), "r+b") as f:
            f.write(content)
        os.utime(self.path("index.json"), ns=(before.st_atime_ns, before.st_mtime_ns))
        self.files.create(record(3))
        self.assertEqual(set(self.index()["index"]), {session_id(2), session_id(3)})

    def test_only_page_read(self) -> None:
        """A listing reads only the records of its page, and sorts the index once per version."""
        reads: list[str] = []

        class Counting(SessionFiles):
            def _read_record(self, session_id: str) -> SessionRecord:
                reads.append(session_id)
                return super()._read_record(session_id)

        for n in range(20):
            self.files.create(record(n, minutes=n))
        files = Counting(self.directory)
        page = files.list(offset=5, limit=3)
        self.assertEqual(page.total, 20)
        self.assertEqual(reads, [session_id(14), session_id(13), session_id(12)])
        order = files._index.listing_order()
        files.list(limit=1)
        self.assertIs(files._index.listing_order(), order)

    def test_stale_entry(self) -> None:
        """
        An index entry without a file is counted but not listed, resolves
        to C{session not found}, and is dropped when deleted.
        """
        self.files.create(record(1, minutes=1))
        self.files.create(record(2, minutes=2))
        os.unlink(self.path(session_id(2) + ".json"))
        self.assertEqual(self.files.list(), SessionPage(2, (self.files.get(session_id(1)),)))
        self.assert_not_found(
            lambda: self.files.resolve(session_id(2)), f"session not found: {session_id(2)}"
        )
        self.assertEqual(self.files.health(), StoreHealth(True, 1))
        self.assert_not_found(lambda: self.files.delete(session_id(2)), f"session not found: {session_id(2)}")
        self.assert_not_found(
            lambda: self.files.delete(session_id(2)), f"no session found with prefix: {session_id(2)}"
        )
        self.assertEqual(self.files.list().total, 1)


class DamageTests(_DiskTestCase):
    """Corrupt records and an unusable directory."""

    def test_corrupt_record(self) -> None:
        """A corrupt record is C{failed to parse session}, and left out of listings."""
        self.files.create(record(1, minutes=1))
        self.files.create(record(2, minutes=2))
        write(self.path(session_id(2) + ".json"), '{"id": 7}')
        self.assert_not_found(
            lambda: self.files.get(session_id(2)), "failed to parse session: id: expected a string, got int"
        )
        error = self.assertRaises(SessionNotFound, self.files.resolve, session_id(2))
        self.assertEqual(str(error), "failed to parse session: id: expected a string, got int")
        write(self.path(session_id(2) + ".json"), "{")
        error = self.assertRaises(SessionNotFound, self.files.resolve, session_id(2))
        self.assertTrue(str(error).startswith("failed to parse session: Expecting"), str(error))
        page = self.files.list()
        self.assertEqual((page.total, [item.id for item in page.sessions]), (2, [session_id(1)]))

    def test_unreadable_record(self) -> None:
        """A record that cannot be read is C{failed to read session}, and left out of listings."""
        self.files.create(record(1, minutes=1))
        self.files.create(record(2, minutes=2))
        os.unlink(self.path(session_id(2) + ".json"))
        os.makedirs(self.path(session_id(2) + ".json"))
        error = self.assertRaises(SessionNotFound, self.files.resolve, "0000000000000000000000000000000")
        self.assertEqual(str(error), "ambiguous prefix 0000000000000000000000000000000: matches 2 sessions")
        error = self.assertRaises(SessionNotFound, self.files.resolve, session_id(2))
        self.assertTrue(str(error).startswith("failed to read session: "), str(error))
        self.assertIn(session_id(2) + ".json", str(error))
        self.assertEqual(self.listed(), [session_id(1)])

    def test_unusable_directory(self) -> None:
        """
        When the sessions directory cannot be used, the store is unhealthy
        with the cause, and listing, resolving and writing fail with
        L{StoreError}.
        """
        os.makedirs(os.path.dirname(self.directory))
        write(self.directory, "not a directory")
        health = self.files.health()
        self.assertEqual((health.available, health.session_count), (False, 0))
        self.assertIn("Not a directory", health.error)
        self.assertRaises(StoreError, self.files.list)
        self.assertRaises(StoreError, self.files.resolve, "ab")
        self.assertRaises(StoreError, self.files.create, record(1))
        self.assertRaises(StoreError, self.files.clean, T0)
        self.assertRaises(StoreError, self.files.delete, "ab")

    def test_unreadable_directory(self) -> None:
        """A directory this process may not read makes the store unavailable."""
        self.files.create(record(1))
        os.chmod(self.directory, 0)
        self.addCleanup(os.chmod, self.directory, 0o700)
        health = self.files.health()
        self.assertFalse(health.available)
        self.assertIn("Permission denied", health.error)
        self.assertRaises(StoreError, self.files.list)

    if os.geteuid() == 0:
        test_unreadable_directory.skip = "root may read any directory"  # type: ignore[attr-defined]

    def test_unreadable_index(self) -> None:
        """An index that exists but cannot be read is a store failure, not a reason to rebuild."""
        self.files.create(record(1))
        os.unlink(self.path("index.json"))
        os.makedirs(self.path("index.json"))
        health = self.other().health()
        self.assertFalse(health.available)
        self.assertTrue(health.error.startswith("failed to read session index: "), health.error)
