# -*- test-case-name: tests.sessions.test_files -*-
"""
The file-system operations the store is built on, which other processes
sharing its directory rely on: atomic replacement of a file
(docs/design/session-store.md#atomic-writes) and the exclusive
cross-process lock (docs/design/session-store.md#store-locking).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from clinvk.sessions.record import StoreError

_TEMPORARY_PREFIX = ".tmp-"


def cause(error: OSError) -> str:
    """
    What went wrong, for a L{StoreError}: C{"<path>: <reason>"}, close to
    the reference's C{"open <path>: <reason>"}.
    """
    if error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def write_atomically(directory: str, target: str, content: bytes) -> os.stat_result:
    """
    Replace C{target}, a file in C{directory}, with C{content} as
    docs/design/session-store.md#atomic-writes says.

    @return: The new file's status, taken before it was renamed (the
        inode, modification time and size do not change by renaming).
    @raise OSError: When the file could not be written; no temporary file
        is left behind.
    """
    temporary = os.path.join(directory, _TEMPORARY_PREFIX + secrets.token_hex(8))
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
    _sync_directory(directory)
    return status


def _sync_directory(directory: str) -> None:
    # Makes the rename durable; not every file system allows it.
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: str) -> None:
    # Like the reference's os.Remove: a file, or else an empty directory.
    try:
        os.unlink(path)
    except (IsADirectoryError, PermissionError):
        os.rmdir(path)


class StoreLock:
    """
    The exclusive cross-process lock of a store: an C{flock} on its lock
    file, which is created with mode 0600 when missing and never deleted
    (docs/design/session-store.md#store-locking).

    @param path: The lock file; its directory must exist when the lock is
        taken.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    @contextmanager
    def held(self) -> Iterator[None]:
        """
        Wait for the lock and hold it for the duration of the C{with}
        block.

        @raise StoreError: When the lock file cannot be opened or locked.
        """
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
                fd = self._open()
            except OSError as e:
                raise StoreError(f"failed to open lock file: {cause(e)}") from None
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A command-line tool deletes the lock file after unlocking:
                # if it did while this process waited, the lock is held on a
                # file nobody else will open.  Lock the current file instead.
                held = os.fstat(fd)
                current = os.stat(self._path)
                if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            except OSError as e:
                os.close(fd)
                raise StoreError(f"failed to lock session store: {cause(e)}") from None
            os.close(fd)

    def _open(self) -> int | None:
        """
        Open the lock file, creating it with mode 0600 if missing.

        @return: A descriptor, or L{None} when the file was deleted between
            finding it and opening it (try again).
        """
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                return os.open(self._path, os.O_RDWR)
            except FileNotFoundError:
                return None
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            os.close(fd)
            raise
        return fd
