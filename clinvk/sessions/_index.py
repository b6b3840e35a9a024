# -*- test-case-name: tests.sessions.test_files -*-
"""
This process's copy of C{index.json}, and when it must be read again
(docs/design/session-store.md#store-index).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from clinvk.sessions._filesystem import cause
from clinvk.sessions._format import IndexEntry, parse_index
from clinvk.sessions._select import order_key
from clinvk.sessions.record import StoreError

Signature = tuple[int, int, int]


def signature(status: os.stat_result) -> Signature:
    """The stat signature of a version of the index: inode, modification time, size."""
    return (status.st_ino, status.st_mtime_ns, status.st_size)


class CachedIndex:
    """
    The entries of C{index.json} as last read or written, with the raw
    bytes and stat signature of that file, and the entries in listing
    order.

    @param path: The index file.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._entries: dict[str, IndexEntry] | None = None
        self._raw: bytes | None = None
        self._signature: Signature | None = None
        self._ordered: Sequence[tuple[str, IndexEntry]] | None = None

    @property
    def entries(self) -> dict[str, IndexEntry]:
        """The entries, once L{refresh} has found them usable or L{keep} was given them."""
        assert self._entries is not None
        return self._entries

    def refresh(self, *, compare_content: bool) -> bool:
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
            with open(self._path, "rb") as f:
                current = signature(os.fstat(f.fileno()))
                if self._entries is not None and current == self._signature and not compare_content:
                    return True
                data = f.read()
        except FileNotFoundError:
            # An index this process could not write back is still usable.
            return self._entries is not None and self._signature is None and self._raw is None
        except OSError as e:
            raise StoreError(f"failed to read session index: {cause(e)}") from None
        if self._entries is not None and data == self._raw:
            self._signature = current
            return True
        entries = parse_index(data, self._entries or {})
        if entries is None:
            return False
        self.keep(entries, data, current)
        return True

    def keep(self, entries: dict[str, IndexEntry], raw: bytes | None, signature: Signature | None) -> None:
        """
        Cache C{entries}, read from or written to the index file as C{raw}
        with C{signature}; both are L{None} when the entries could not be
        written.
        """
        self._entries = entries
        self._raw = raw
        self._signature = signature
        self._ordered = None

    def listing_order(self) -> Sequence[tuple[str, IndexEntry]]:
        """The entries in listing order (docs/design/session-store.md#session-listing)."""
        # Sorted once per version of the index, not per listing.
        if self._ordered is None:
            self._ordered = sorted(
                self.entries.items(),
                key=lambda item: order_key(item[1].last_used_key, item[1].created_at_key, item[0]),
            )
        return self._ordered
