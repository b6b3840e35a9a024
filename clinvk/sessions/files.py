# -*- test-case-name: tests.sessions.test_files -*-
"""
The session store's directory and the blocking operations on its files,
shared with the command-line tool (docs/design/session-store.md#store-files,
docs/design/session-store.md#store-index,
docs/design/session-store.md#store-locking).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from clinvk.sessions._filesystem import StoreLock, cause, write_atomically
from clinvk.sessions._format import IndexEntry, encode_index, encode_record
from clinvk.sessions._index import CachedIndex, signature
from clinvk.sessions._select import match_prefix, micros, page
from clinvk.sessions.record import (
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
    check_prefix,
    check_session_id,
)

INDEX_NAME = "index.json"
LOCK_NAME = "store.lock"
_RECORD_SUFFIX = ".json"


def sessions_directory(home: str) -> str:
    """
    Where the sessions live: C{<home>/.clinvk/sessions}, or the relative
    C{.clinvk/sessions} when the home directory is unknown (C{""}).
    """
    return os.path.join(home, ".clinvk", "sessions") if home else os.path.join(".clinvk", "sessions")


class SessionFiles:
    """
    The session store's files in one directory, with blocking calls.

    Every mutation (create, update, delete, clean, index rebuild) holds an
    exclusive C{flock} on C{store.lock} for its whole duration and re-reads
    the index under it, so processes sharing the directory (other servers,
    the command-line tool) never lose each other's changes.  The index is
    cached in memory and reloaded when C{index.json} changes.

    An instance is B{not} thread-safe: its callers must serialise their
    calls, as L{clinvk.sessions.disk.DiskSessionStore} does with a
    one-thread pool.  Separate instances, even in one process, exclude
    each other through the lock file.

    @param directory: The sessions directory (L{sessions_directory}); it is
        created with mode 0700, together with its parent, when first
        needed.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._index_path = os.path.join(directory, INDEX_NAME)
        self._index = CachedIndex(self._index_path)
        self._lock = StoreLock(os.path.join(directory, LOCK_NAME))

    @property
    def directory(self) -> str:
        """The sessions directory."""
        return self._directory

    # The operations, as in ISessionStore but blocking.

    def create(self, record: SessionRecord) -> None:
        """
        Write a new record and its index entry.

        @raise StoreError: When the id is invalid or a write failed.
        """
        try:
            check_session_id(record.id)
        except SessionNotFound as e:
            raise StoreError(str(e)) from None
        with self._locked():
            entries = self._current_entries()
            self._write_record(record)
            try:
                self._write_index({**entries, record.id: IndexEntry.from_record(record)})
            except StoreError:
                # Reported as not created: leave no new record behind either.
                if record.id not in entries:
                    with suppress(OSError):
                        os.unlink(self._record_path(record.id))
                raise

    def get(self, session_id: str) -> SessionRecord:
        """
        Read a record by its full id.

        @raise SessionNotFound: For an invalid id, or a missing, unreadable
            or corrupt record.
        """
        check_session_id(session_id)
        return self._read_record(session_id)

    def resolve(self, prefix: str) -> SessionRecord:
        """
        Read the one record whose id starts with C{prefix}.

        @raise SessionNotFound: With the reason of
            docs/design/session-store.md#session-ids.
        @raise StoreError: When the index cannot be read.
        """
        check_prefix(prefix)
        session_id = match_prefix(prefix, self._entries_for_reading())
        check_session_id(session_id)
        return self._read_record(session_id)

    def update(self, session_id: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        """
        Re-read a record under the lock, apply C{change}, and write the
        result and its index entry.

        @raise SessionNotFound: When there is no such (readable) record.
        @raise StoreError: When a write failed.
        @raise ValueError: When C{change} changed the id.
        """
        check_session_id(session_id)
        with self._locked():
            entries = self._current_entries()
            record = change(self._read_record(session_id))
            if record.id != session_id:
                raise ValueError("an update must keep the session id")
            self._write_record(record)
            self._write_index({**entries, session_id: IndexEntry.from_record(record)})
        return record

    def list(self, *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0) -> SessionPage:
        """
        One page of the sessions matching the filters; see
        L{ISessionStore.list}.  Only the page's records are read.

        @raise StoreError: When the index cannot be read.
        """
        self._entries_for_reading()
        matches = [
            key
            for key, entry in self._index.listing_order()
            if (not backend or entry.backend == backend) and (not status or entry.status == status)
        ]
        records = []
        for key in page(matches, offset, limit):
            # Stale entries and unreadable records are skipped, but counted.
            with suppress(SessionNotFound):
                check_session_id(key)
                records.append(self._read_record(key))
        return SessionPage(total=len(matches), sessions=tuple(records))

    def delete(self, prefix: str) -> str:
        """
        Delete the session C{prefix} resolves to; see
        L{ISessionStore.delete}.

        @return: The full id.
        @raise SessionNotFound: As for L{resolve}, or when the record file
            is missing.
        @raise StoreError: When a file could not be removed or the index
            not written.
        """
        check_prefix(prefix)
        with self._locked():
            entries = self._current_entries()
            session_id = match_prefix(prefix, entries)
            check_session_id(session_id)
            remaining = {key: entry for key, entry in entries.items() if key != session_id}
            try:
                os.unlink(self._record_path(session_id))
            except FileNotFoundError:
                # A stale entry: drop it while reporting it, or it would be
                # listed and counted forever.
                with suppress(StoreError):
                    self._write_index(remaining)
                raise SessionNotFound(f"session not found: {session_id}") from None
            except OSError as e:
                raise StoreError(f"failed to delete session: {cause(e)}") from None
            self._remove_artefacts(session_id)
            self._write_index(remaining)
        return session_id

    def clean(self, older_than: datetime) -> int:
        """
        Delete every session whose index entry was last used before
        C{older_than}.  A session whose record cannot be removed is kept
        (and tried again next time); stale entries are dropped and counted.

        @return: How many sessions were deleted.
        @raise StoreError: When the index cannot be read or written.
        """
        cutoff = micros(older_than)
        with self._locked():
            entries = self._current_entries()
            remaining = dict(entries)
            for key, entry in entries.items():
                if entry.last_used_key >= cutoff:
                    continue
                try:
                    check_session_id(key)
                    os.unlink(self._record_path(key))
                except FileNotFoundError:
                    pass
                except (SessionNotFound, OSError):
                    continue
                self._remove_artefacts(key)
                del remaining[key]
            deleted = len(entries) - len(remaining)
            if deleted:
                self._write_index(remaining)
        return deleted

    def health(self) -> StoreHealth:
        """
        Whether the index can be read, and how many of its entries have a
        record file.
        """
        try:
            entries = self._entries_for_reading()
        except StoreError as e:
            return StoreHealth(available=False, session_count=0, error=str(e))
        count = 0
        for key in entries:
            with suppress(SessionNotFound):
                check_session_id(key)
                count += os.path.isfile(self._record_path(key))
        return StoreHealth(available=True, session_count=count)

    # Files.

    def _record_path(self, session_id: str) -> str:
        return os.path.join(self._directory, session_id + _RECORD_SUFFIX)

    def _read_record(self, session_id: str) -> SessionRecord:
        try:
            with open(self._record_path(session_id), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise SessionNotFound(f"session not found: {session_id}") from None
        except OSError as e:
            raise SessionNotFound(f"failed to read session: {cause(e)}") from None
        try:
            return SessionRecord.from_json(json.loads(data))
        except (ValueError, RecursionError) as e:
            raise SessionNotFound(f"failed to parse session: {e}") from None

    def _write_record(self, record: SessionRecord) -> None:
        try:
            write_atomically(self._directory, self._record_path(record.id), encode_record(record))
        except OSError as e:
            raise StoreError(f"failed to write session file: {cause(e)}") from None

    def _remove_artefacts(self, session_id: str) -> None:
        # Never created by the server; removed with the session, errors
        # ignored (rmtree does not follow a symbolic link).
        shutil.rmtree(os.path.join(self._directory, session_id), ignore_errors=True)

    def _ensure_directory(self) -> None:
        if os.path.isdir(self._directory):
            return
        directory = os.path.normpath(self._directory)
        parent = os.path.dirname(directory)
        try:
            if os.path.dirname(parent):
                os.makedirs(os.path.dirname(parent), exist_ok=True)
            # Both the sessions directory and its parent (~/.clinvk) are
            # private; chmod because the umask may have removed bits.
            for path in (parent, directory):
                if path and not os.path.isdir(path):
                    with suppress(FileExistsError):
                        os.mkdir(path, 0o700)
                        os.chmod(path, 0o700)
        except OSError as e:
            raise StoreError(f"failed to create sessions dir: {cause(e)}") from None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """
        Hold the exclusive cross-process lock
        (docs/design/session-store.md#store-locking), creating the
        directory first when missing.
        """
        self._ensure_directory()
        with self._lock.held():
            yield

    # The index.

    def _entries_for_reading(self) -> dict[str, IndexEntry]:
        """
        The index for a read: the cache, reloaded when C{index.json} has
        changed; rebuilt under the lock when it is missing or unusable.
        """
        if not self._index.refresh(compare_content=False):
            with self._locked():
                return self._current_entries()
        return self._index.entries

    def _current_entries(self) -> dict[str, IndexEntry]:
        """
        The index for a mutation, which holds the lock: re-read unless the
        file is byte for byte the one cached, so that the entries written
        by other processes are kept; rebuilt when missing or unusable.
        """
        if not self._index.refresh(compare_content=True):
            self._rebuild()
        return self._index.entries

    def _rebuild(self) -> None:
        """
        Rebuild the index from the record files (the lock is held) and
        write it back.
        """
        try:
            with os.scandir(self._directory) as scan:
                names = [item.name for item in scan if item.is_file()]
        except OSError as e:
            raise StoreError(f"failed to read sessions dir: {cause(e)}") from None
        entries = {}
        for name in sorted(names):
            if not name.endswith(_RECORD_SUFFIX) or name == INDEX_NAME:
                continue
            key = name.removesuffix(_RECORD_SUFFIX)
            with suppress(SessionNotFound):
                check_session_id(key)
                entries[key] = IndexEntry.from_record(self._read_record(key))
        try:
            self._write_index(entries)
        except StoreError:
            # Like the reference, serve the rebuilt index anyway; it is
            # rebuilt again once the file appears or can be written.
            self._index.keep(entries, None, None)

    def _write_index(self, entries: dict[str, IndexEntry]) -> None:
        content = encode_index(entries)
        try:
            status = write_atomically(self._directory, self._index_path, content)
        except OSError as e:
            raise StoreError(f"failed to write session index: {cause(e)}") from None
        self._index.keep(entries, content, signature(status))
