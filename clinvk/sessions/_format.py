# -*- test-case-name: tests.sessions.test_files -*-
"""
The bytes of the store's files, which the command-line tool reads and
writes too: the entries of C{index.json}, the index parsed and encoded,
and the encoding of records (docs/design/session-store.md#store-index,
docs/design/session-store.md#session-record).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from clinvk.sessions._select import micros
from clinvk.sessions.record import ZERO_TIME, SessionRecord, format_timestamp, parse_timestamp


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"index member {name} is not a string")
    return value


@frozen
class IndexEntry:
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
    def from_record(cls, record: SessionRecord) -> IndexEntry:
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
    def from_json(cls, data: object, previous: IndexEntry | None) -> IndexEntry:
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


def parse_index(data: bytes, previous: Mapping[str, IndexEntry]) -> dict[str, IndexEntry] | None:
    """
    Read the content of C{index.json}.

    @param previous: The entries cached so far, whose parsed timestamps
        are reused where unchanged.
    @return: The entries, or L{None} when the index is unusable and must
        be rebuilt.
    """
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
    try:
        return {key: IndexEntry.from_json(value, previous.get(key)) for key, value in raw.items()}
    except ValueError:
        return None


def encode_index(entries: Mapping[str, IndexEntry]) -> bytes:
    """The content of C{index.json} holding C{entries}, compact, in their order."""
    return _encode(
        {"version": 1, "index": {key: entry.to_json() for key, entry in entries.items()}}, indent=None
    )


def encode_record(record: SessionRecord) -> bytes:
    """The content of a record's file, indented as the reference writes it."""
    return _encode(record.to_json(), indent=2)


def _encode(document: Any, indent: int | None) -> bytes:
    separators = (",", ": ") if indent else (",", ":")
    try:
        return json.dumps(document, indent=indent, separators=separators, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate read from an escaped file has no UTF-8 form; the
        # escaped form is still valid JSON for every reader.
        return json.dumps(document, indent=indent, separators=separators).encode("ascii")
