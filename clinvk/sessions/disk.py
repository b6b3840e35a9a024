# -*- test-case-name: tests.sessions.test_disk -*-
"""
The session store on disk, shared with the command-line tool
(docs/design/session-store.md#store-files, docs/design/session-store.md#store-index,
docs/design/session-store.md#store-locking, docs/design/session-store.md#atomic-writes).

L{SessionFiles} does the blocking file work; L{DiskSessionStore} is the
L{ISessionStore} that runs it through a caller-supplied runner, in
production a one-thread pool, so the reactor thread never waits for the
disk and the operations of one process never overlap.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Protocol, TypeVar

from attrs import frozen

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from clinvk.sessions._select import match_prefix, micros, order_key, page
from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.record import (
    ZERO_TIME,
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
    check_prefix,
    check_session_id,
    format_timestamp,
    parse_timestamp,
)

_T = TypeVar("_T")

INDEX_NAME = "index.json"
LOCK_NAME = "store.lock"
_TEMPORARY_PREFIX = ".tmp-"
_RECORD_SUFFIX = ".json"

_Signature = tuple[int, int, int]


def sessions_directory(home: str) -> str:
    """
    Where the sessions live: C{<home>/.clinvk/sessions}, or the relative
    C{.clinvk/sessions} when the home directory is unknown (C{""}).
    """
    return os.path.join(home, ".clinvk", "sessions") if home else os.path.join(".clinvk", "sessions")


def _cause(error: OSError) -> str:
    # "<path>: <reason>", close to the reference's "open <path>: <reason>".
    if error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"index member {name} is not a string")
    return value


@frozen
class _Entry:
    """
    One entry of C{index.json}, with its timestamps both as written (to
    write them back unchanged) and parsed into sort keys.
    """

    id: str
    backend: str
    status: str
    last_used: str
    model: str
    work_dir: str
    title: str
    tags: tuple[str, ...] | None
    created_at: str
    last_used_key: int
    created_at_key: int

    @classmethod
    def from_record(cls, record: SessionRecord) -> _Entry:
        return cls(
            id=record.id,
            backend=record.backend,
            status=record.status,
            last_used=format_timestamp(record.last_used),
            model=record.model,
            work_dir=record.working_dir,
            title=record.title,
            # The reference writes an empty tag list as null.
            tags=record.tags or None,
            created_at=format_timestamp(record.created_at),
            last_used_key=micros(record.last_used),
            created_at_key=micros(record.created_at),
        )

    @classmethod
    def from_json(cls, data: object, previous: _Entry | None) -> _Entry:
        """
        Read an entry as the reference would, strictly: a wrong type makes
        the whole index unusable (and rebuilt), as it does for the
        reference's JSON decoder.

        @param previous: The cached entry of the same key, whose parsed
            timestamps are reused when unchanged.
        @raise ValueError: For an unusable entry.
        """
        if not isinstance(data, dict):
            raise ValueError("index entry is not an object")
        tags = data.get("Tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ValueError("index member Tags is not an array of strings")
        last_used = _text(data, "LastUsed") or format_timestamp(ZERO_TIME)
        created_at = _text(data, "CreatedAt") or format_timestamp(ZERO_TIME)
        if previous is not None and previous.last_used == last_used:
            last_used_key = previous.last_used_key
        else:
            last_used_key = micros(parse_timestamp(last_used))
        if previous is not None and previous.created_at == created_at:
            created_at_key = previous.created_at_key
        else:
            created_at_key = micros(parse_timestamp(created_at))
        return cls(
            id=_text(data, "ID"),
            backend=_text(data, "Backend"),
            status=_text(data, "Status"),
            last_used=last_used,
            model=_text(data, "Model"),
            work_dir=_text(data, "WorkDir"),
            title=_text(data, "Title"),
            tags=None if tags is None else tuple(tags),
            created_at=created_at,
            last_used_key=last_used_key,
            created_at_key=created_at_key,
        )

    def to_json(self) -> dict[str, Any]:
        # The reference serialises its index entries without renaming.
        return {
            "ID": self.id,
            "Backend": self.backend,
            "Status": self.status,
            "LastUsed": self.last_used,
            "Model": self.model,
            "WorkDir": self.work_dir,
            "Title": self.title,
            "Tags": None if self.tags is None else list(self.tags),
            "CreatedAt": self.created_at,
        }


def _encode(document: Any, indent: int | None) -> bytes:
    separators = (",", ": ") if indent else (",", ":")
    try:
        return json.dumps(document, indent=indent, separators=separators, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate read from an escaped file has no UTF-8 form; the
        # escaped form is still valid JSON for every reader.
        return json.dumps(document, indent=indent, separators=separators).encode("ascii")


class SessionFiles:
    """
    The session store's files in one directory, with blocking calls.

    Every mutation (create, update, delete, clean, index rebuild) holds an
    exclusive C{flock} on C{store.lock} for its whole duration and re-reads
    the index under it, so processes sharing the directory (other servers,
    the command-line tool) never lose each other's changes.  The index is
    cached in memory and reloaded when C{index.json} changes.

    An instance is B{not} thread-safe: its callers must serialise their
    calls, as L{DiskSessionStore} does with a one-thread pool.  Separate
    instances, even in one process, exclude each other through the lock
    file.

    @param directory: The sessions directory (L{sessions_directory}); it is
        created with mode 0700, together with its parent, when first
        needed.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._index_path = os.path.join(directory, INDEX_NAME)
        self._lock_path = os.path.join(directory, LOCK_NAME)
        # The index as last read or written, the raw bytes and stat
        # signature of that file, and its entries in listing order.
        self._entries: dict[str, _Entry] | None = None
        self._raw: bytes | None = None
        self._signature: _Signature | None = None
        self._ordered: Sequence[tuple[str, _Entry]] | None = None

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
                self._write_index({**entries, record.id: _Entry.from_record(record)})
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
            self._write_index({**entries, session_id: _Entry.from_record(record)})
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
            for key, entry in self._listing_order()
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
                raise StoreError(f"failed to delete session: {_cause(e)}") from None
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
            raise SessionNotFound(f"failed to read session: {_cause(e)}") from None
        try:
            return SessionRecord.from_json(json.loads(data))
        except (ValueError, RecursionError) as e:
            raise SessionNotFound(f"failed to parse session: {e}") from None

    def _write_record(self, record: SessionRecord) -> None:
        try:
            self._write_atomically(self._record_path(record.id), _encode(record.to_json(), indent=2))
        except OSError as e:
            raise StoreError(f"failed to write session file: {_cause(e)}") from None

    def _remove_artefacts(self, session_id: str) -> None:
        # Never created by the server; removed with the session, errors
        # ignored (rmtree does not follow a symbolic link).
        shutil.rmtree(os.path.join(self._directory, session_id), ignore_errors=True)

    def _write_atomically(self, target: str, content: bytes) -> os.stat_result:
        """
        Replace C{target} with C{content} as
        docs/design/session-store.md#atomic-writes says.

        @return: The new file's status, taken before it was renamed (the
            inode, modification time and size do not change by renaming).
        """
        temporary = os.path.join(self._directory, _TEMPORARY_PREFIX + secrets.token_hex(8))
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
                status = os.fstat(f.fileno())
            try:
                os.replace(temporary, target)
            except OSError as first:
                try:
                    _remove(target)
                    os.replace(temporary, target)
                except OSError:
                    raise first from None
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
        self._sync_directory()
        return status

    def _sync_directory(self) -> None:
        # Makes the rename durable; not every file system allows it.
        with suppress(OSError):
            fd = os.open(self._directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

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
            raise StoreError(f"failed to create sessions dir: {_cause(e)}") from None

    # The lock.

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive cross-process lock (docs/design/session-store.md#store-locking)."""
        self._ensure_directory()
        fd = self._acquire()
        try:
            yield
        finally:
            # Closing the descriptor releases the lock.  The file stays:
            # deleting it would let two processes hold "the" lock at once.
            os.close(fd)

    def _acquire(self) -> int:
        while True:
            try:
                fd = self._open_lock_file()
            except OSError as e:
                raise StoreError(f"failed to open lock file: {_cause(e)}") from None
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A command-line tool deletes the lock file after unlocking:
                # if it did while this process waited, the lock is held on a
                # file nobody else will open.  Lock the current file instead.
                held = os.fstat(fd)
                current = os.stat(self._lock_path)
                if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            except OSError as e:
                os.close(fd)
                raise StoreError(f"failed to lock session store: {_cause(e)}") from None
            os.close(fd)

    def _open_lock_file(self) -> int | None:
        """
        Open the lock file, creating it with mode 0600 if missing.

        @return: A descriptor, or L{None} when the file was deleted between
            finding it and opening it (try again).
        """
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                return os.open(self._lock_path, os.O_RDWR)
            except FileNotFoundError:
                return None
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            os.close(fd)
            raise
        return fd

    # The index.

    def _entries_for_reading(self) -> dict[str, _Entry]:
        """
        The index for a read: the cache, reloaded when C{index.json} has
        changed; rebuilt under the lock when it is missing or unusable.
        """
        if not self._refresh(compare_content=False):
            with self._locked():
                return self._current_entries()
        assert self._entries is not None
        return self._entries

    def _current_entries(self) -> dict[str, _Entry]:
        """
        The index for a mutation, which holds the lock: re-read unless the
        file is byte for byte the one cached, so that the entries written
        by other processes are kept; rebuilt when missing or unusable.
        """
        if not self._refresh(compare_content=True):
            self._rebuild()
        assert self._entries is not None
        return self._entries

    def _refresh(self, *, compare_content: bool) -> bool:
        """
        Bring the cache up to date with C{index.json}.

        A changed stat signature (inode, modification time, size) means the
        file changed; atomic renames give every version a new inode, so
        even writes within one clock tick are seen.  Under the lock the
        content is also compared, because a freed inode can be reused.

        @return: Whether the cache is usable; C{False} when the index must
            be rebuilt.
        @raise StoreError: When the file exists but cannot be read.
        """
        try:
            with open(self._index_path, "rb") as f:
                status = os.fstat(f.fileno())
                signature = (status.st_ino, status.st_mtime_ns, status.st_size)
                if self._entries is not None and signature == self._signature and not compare_content:
                    return True
                data = f.read()
        except FileNotFoundError:
            # An index this process could not write back is still usable.
            return self._entries is not None and self._signature is None and self._raw is None
        except OSError as e:
            raise StoreError(f"failed to read session index: {_cause(e)}") from None
        if self._entries is not None and data == self._raw:
            self._signature = signature
            return True
        entries = self._parse_index(data)
        if entries is None:
            return False
        self._cache(entries, data, signature)
        return True

    def _parse_index(self, data: bytes) -> dict[str, _Entry] | None:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, dict):
            return None
        version = document.get("version")
        if type(version) is not int or version != 1:
            return None
        raw = document.get("index")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            return None
        previous = self._entries or {}
        try:
            return {key: _Entry.from_json(value, previous.get(key)) for key, value in raw.items()}
        except ValueError:
            return None

    def _rebuild(self) -> None:
        """
        Rebuild the index from the record files (the lock is held) and
        write it back.
        """
        try:
            with os.scandir(self._directory) as scan:
                names = [item.name for item in scan if item.is_file()]
        except OSError as e:
            raise StoreError(f"failed to read sessions dir: {_cause(e)}") from None
        entries = {}
        for name in sorted(names):
            if not name.endswith(_RECORD_SUFFIX) or name == INDEX_NAME:
                continue
            key = name.removesuffix(_RECORD_SUFFIX)
            with suppress(SessionNotFound):
                check_session_id(key)
                entries[key] = _Entry.from_record(self._read_record(key))
        try:
            self._write_index(entries)
        except StoreError:
            # Like the reference, serve the rebuilt index anyway; it is
            # rebuilt again once the file appears or can be written.
            self._cache(entries, None, None)

    def _write_index(self, entries: dict[str, _Entry]) -> None:
        content = _encode(
            {"version": 1, "index": {key: entry.to_json() for key, entry in entries.items()}}, indent=None
        )
        try:
            status = self._write_atomically(self._index_path, content)
        except OSError as e:
            raise StoreError(f"failed to write session index: {_cause(e)}") from None
        self._cache(entries, content, (status.st_ino, status.st_mtime_ns, status.st_size))

    def _cache(self, entries: dict[str, _Entry], raw: bytes | None, signature: _Signature | None) -> None:
        self._entries = entries
        self._raw = raw
        self._signature = signature
        self._ordered = None

    def _listing_order(self) -> Sequence[tuple[str, _Entry]]:
        # Sorted once per version of the index, not per listing.
        if self._ordered is None:
            assert self._entries is not None
            self._ordered = sorted(
                self._entries.items(),
                key=lambda item: order_key(item[1].last_used_key, item[1].created_at_key, item[0]),
            )
        return self._ordered


def _remove(path: str) -> None:
    # Like the reference's os.Remove: a file, or else an empty directory.
    try:
        os.unlink(path)
    except (IsADirectoryError, PermissionError):
        os.rmdir(path)


class RunBlocking(Protocol):
    """
    Runs blocking work somewhere and reports its result: C{run(work)}
    returns a L{Deferred} firing with C{work()}'s result or failure.
    """

    def __call__(self, work: Callable[[], _T], /) -> Deferred[_T]: ...


def in_thread_pool(reactor: IReactorFromThreads, pool: ThreadPool) -> RunBlocking:
    """
    A L{RunBlocking} running work in C{pool}; with a one-thread pool the
    operations are serialised, as L{SessionFiles} requires.
    """

    def run(work: Callable[[], _T], /) -> Deferred[_T]:
        if getattr(pool, "joined", False):
            # A stopped pool would drop the work and never answer.
            return fail(StoreError("the session store has stopped"))
        return deferToThreadPool(reactor, pool, work)

    return run


def _synchronously(work: Callable[[], _T], /) -> Deferred[_T]:
    return maybeDeferred(work)


# How long a health check's answer is reused (see DiskSessionStore).
HEALTH_MAX_AGE = 1.0


@implementer(ISessionStore)
class DiskSessionStore:
    """
    The L{ISessionStore} of the server: L{SessionFiles} run through
    C{run_blocking}.

    @param files: The files of the sessions directory.
    @param run_blocking: Runs each blocking operation; for example
        L{in_thread_pool} with a one-thread pool.  By default the work runs
        at once in the calling thread, which suits tests.
    @param clock: When given, a health check's answer is reused for
        L{HEALTH_MAX_AGE} seconds, and concurrent checks share one look at
        the files: a load balancer asking many times a second costs one
        pass over the store, not one each.  A change made through this
        store is seen at once; one made by another process (the
        command-line tool) within that time.
    """

    def __init__(
        self,
        files: SessionFiles,
        run_blocking: RunBlocking | None = None,
        *,
        clock: IReactorTime | None = None,
    ) -> None:
        self._files = files
        self._run: RunBlocking = run_blocking or _synchronously
        self._clock = clock
        self._health: tuple[float, StoreHealth] | None = None
        self._health_waiters: list[Deferred[StoreHealth]] | None = None

    def _changed(self, result: _T) -> _T:
        # Whatever health was read, or is being read, may predate the change.
        self._health = None
        self._health_waiters = None
        return result

    def create(self, record: SessionRecord) -> Deferred[None]:
        return self._run(lambda: self._files.create(record)).addBoth(self._changed)

    def get(self, session_id: str) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.get(session_id))

    def resolve(self, prefix: str) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.resolve(prefix))

    def update(
        self, session_id: str, change: Callable[[SessionRecord], SessionRecord]
    ) -> Deferred[SessionRecord]:
        return self._run(lambda: self._files.update(session_id, change)).addBoth(self._changed)

    def list(
        self, *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0
    ) -> Deferred[SessionPage]:
        return self._run(lambda: self._files.list(backend=backend, status=status, limit=limit, offset=offset))

    def delete(self, prefix: str) -> Deferred[str]:
        return self._run(lambda: self._files.delete(prefix)).addBoth(self._changed)

    def clean(self, older_than: datetime) -> Deferred[int]:
        return self._run(lambda: self._files.clean(older_than)).addBoth(self._changed)

    def health(self) -> Deferred[StoreHealth]:
        if self._clock is None:
            return self._run(self._files.health)
        now = self._clock.seconds()
        if self._health is not None and now - self._health[0] < HEALTH_MAX_AGE:
            return succeed(self._health[1])
        waiter: Deferred[StoreHealth] = Deferred()
        if self._health_waiters is not None:
            self._health_waiters.append(waiter)
            return waiter
        waiters = self._health_waiters = [waiter]

        def deliver(result: StoreHealth | Failure) -> None:
            if self._health_waiters is waiters:
                self._health_waiters = None
                if isinstance(result, StoreHealth):
                    self._health = (now, result)
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(result)

        self._run(self._files.health).addBoth(deliver)
        return waiter
