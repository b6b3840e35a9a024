# -*- test-case-name: tests.sessions.test_record -*-
"""
The session record and the rules shared by every session store: the file
form of a record and its timestamps (docs/design/session-store.md#session-record),
identifiers and their validation (docs/design/session-store.md#session-ids), and the
errors a store reports.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from attrs import field, frozen

# The errors a store reports are errors of the API too (a 404, a 500),
# rendered by the web layer like any other: they live in clinvk.errors and
# are named here for the stores.
from clinvk.errors import SessionNotFound as SessionNotFound
from clinvk.errors import StoreError as StoreError
from clinvk.model import TokenUsage

ACTIVE = "active"
COMPLETED = "completed"
ERROR = "error"
PAUSED = "paused"

# What the reference's Go time.Time holds when a timestamp is missing: the
# zero time.  Used for records and index entries without one.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_FULL_ID = re.compile(r"[a-f0-9]{16,32}")
_HEX = frozenset("0123456789abcdef")


def parse_timestamp(text: str) -> datetime:
    """
    Read an RFC 3339 timestamp as the reference and the command-line tool
    write them.

    @param text: A timestamp with 1 to 9 fractional digits (or none) and
        C{Z} or a numeric offset.
    @return: A timezone-aware L{datetime}, in the text's own offset;
        fractional digits beyond microseconds are truncated.
    @raise ValueError: When C{text} is not such a timestamp.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    if zulu:
        zone: timezone = UTC
    else:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        if offset >= timedelta(days=1) or int(off_minutes) >= 60:
            raise ValueError(f"invalid timestamp offset: {text!r}")
        zone = UTC if not offset else timezone(-offset if sign == "-" else offset)
    microseconds = int((fraction or "0").ljust(6, "0")[:6])
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), microseconds, tzinfo=zone
    )


def format_timestamp(moment: datetime) -> str:
    """
    Write a timestamp as the server does: RFC 3339 in UTC with
    microseconds and an explicit C{+00:00}.

    @param moment: A timezone-aware L{datetime}; a naive one is taken to
        be in UTC already.
    @return: A L{str} such as C{2025-03-04T10:02:11.518204+00:00}.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        # The zero time in a positive offset has no UTC form; keep its own.
        pass
    return moment.isoformat(timespec="microseconds")


def new_session_id() -> str:
    """
    A new session id: 16 bytes from a cryptographically secure generator,
    as 32 lowercase hex characters.
    """
    return secrets.token_hex(16)


def check_prefix(prefix: str) -> None:
    """
    Check a session id prefix as the API's C{{id}} path parameter
    (docs/design/session-store.md#session-ids).

    @raise SessionNotFound: With the validation message when C{prefix} is
        empty, contains path characters, or anything but C{0-9a-f}.
    """
    if not prefix:
        raise SessionNotFound("session prefix cannot be empty")
    if "/" in prefix or "\\" in prefix or ".." in prefix:
        raise SessionNotFound("invalid session prefix: contains path characters")
    if not _HEX.issuperset(prefix):
        raise SessionNotFound("invalid session prefix: must contain only hex characters (0-9, a-f)")


def check_session_id(session_id: str) -> None:
    """
    Check a full session id before it is used to name a file
    (docs/design/session-store.md#session-ids): legacy ids of other lengths pass as long as they
    cannot escape the sessions directory.

    @raise SessionNotFound: With the reference's message when the id is
        empty, contains path characters, or has the length of a generated
        id (16 or 32) without being lowercase hex.
    """
    if not session_id:
        raise SessionNotFound("session ID cannot be empty")
    if "/" in session_id or "\\" in session_id or ".." in session_id:
        raise SessionNotFound("invalid session ID: contains path characters")
    if len(session_id) in (16, 32) and not _FULL_ID.fullmatch(session_id):
        raise SessionNotFound("invalid session ID format")


def _tags(items: Any) -> tuple[str, ...]:
    return tuple(items)


def _metadata(items: Mapping[str, str]) -> Mapping[str, str]:
    # A read-only view of a private copy: the record stays immutable
    # although a mapping cannot be hashed (hence hash=False below).
    return MappingProxyType(dict(items))


@frozen
class SessionRecord:
    """
    One session as stored in C{<id>.json} (docs/design/session-store.md#session-record).

    @ivar id: 32 lowercase hex characters (16 for legacy records).
    @ivar created_at: When the session was created; timezone-aware.
    @ivar last_used: When it was last used; retention counts from it.
    @ivar working_dir: The request's C{workdir} as sent, not resolved.
    @ivar backend_session_id: The backend's native conversation id.
    @ivar model: The model as requested (an alias stays an alias).
    @ivar status: One of L{ACTIVE}, L{COMPLETED}, L{ERROR}, L{PAUSED}, or
        C{""}.
    @ivar token_usage: Accumulated token counts, or L{None} when never
        recorded.
    @ivar parent_id: The session this one was forked from: by the
        command-line tool, or by clinvk for a conversation that left another.
    @ivar error_message: The last error when C{status} is L{ERROR}.
    @ivar metadata: The request's metadata, a read-only mapping.
    @ivar lineage: For a conversation of the compatibility APIs, the hash
        chain points of its transcript (docs/design/conversations.md#lineage-chain),
        the last one where it stands now; written by clinvk only.
    """

    id: str
    backend: str
    created_at: datetime
    last_used: datetime
    working_dir: str = ""
    backend_session_id: str = ""
    model: str = ""
    initial_prompt: str = ""
    status: str = ""
    turn_count: int = 0
    token_usage: TokenUsage | None = None
    tags: tuple[str, ...] = field(default=(), converter=_tags)
    title: str = ""
    parent_id: str = ""
    error_message: str = ""
    metadata: Mapping[str, str] = field(factory=dict, converter=_metadata, hash=False)
    lineage: tuple[str, ...] = field(default=(), converter=_tags)

    def to_json(self) -> dict[str, Any]:
        """
        The file form: members in the reference's order, the optional ones
        only when non-empty.

        @return: A JSON-serialisable L{dict}.
        """
        data: dict[str, Any] = {
            "id": self.id,
            "backend": self.backend,
            "created_at": format_timestamp(self.created_at),
            "last_used": format_timestamp(self.last_used),
            "working_dir": self.working_dir,
        }
        optional: list[tuple[str, Any]] = [
            ("backend_session_id", self.backend_session_id),
            ("model", self.model),
            ("initial_prompt", self.initial_prompt),
            ("status", self.status),
            ("turn_count", self.turn_count),
            ("token_usage", None if self.token_usage is None else self.token_usage.as_dict()),
            ("tags", list(self.tags)),
            ("title", self.title),
            ("parent_id", self.parent_id),
            ("error_message", self.error_message),
            ("metadata", dict(self.metadata)),
            ("lineage", list(self.lineage)),
        ]
        # A token_usage of zeros is still written (its dict is never empty):
        # only its absence is.
        data.update((name, value) for name, value in optional if value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionRecord:
        """
        Read the file form leniently, as the reference does: unknown members
        are ignored, and missing or C{null} ones take their empty value
        (missing timestamps the zero time).

        @param data: The parsed content of a record file.
        @return: A L{SessionRecord}.
        @raise ValueError: When the content is not an object, has no id, or
            a member has the wrong type or an unreadable timestamp.
        """
        if not isinstance(data, Mapping):
            raise ValueError("session record is not a JSON object")
        session_id = _string(data, "id")
        if not session_id:
            raise ValueError("session record has no id")
        return cls(
            id=session_id,
            backend=_string(data, "backend"),
            created_at=_moment(data, "created_at"),
            last_used=_moment(data, "last_used"),
            working_dir=_string(data, "working_dir"),
            backend_session_id=_string(data, "backend_session_id"),
            model=_string(data, "model"),
            initial_prompt=_string(data, "initial_prompt"),
            status=_string(data, "status"),
            turn_count=_integer(data, "turn_count"),
            token_usage=_token_usage(data.get("token_usage")),
            tags=_string_list(data, "tags"),
            title=_string(data, "title"),
            parent_id=_string(data, "parent_id"),
            error_message=_string(data, "error_message"),
            metadata=_string_map(data, "metadata"),
            lineage=_string_list(data, "lineage"),
        )


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    return value


def _integer(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if value is None:
        return 0
    # bool is an int to Python, but not to JSON readers of other languages.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: expected an integer, got {type(value).__name__}")
    return value


def _moment(data: Mapping[str, Any], name: str) -> datetime:
    text = _string(data, name)
    if not text:
        return ZERO_TIME
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def _string_list(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name}: expected an array of strings")
    return tuple(value)


def _string_map(data: Mapping[str, Any], name: str) -> dict[str, str]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ValueError(f"{name}: expected an object of strings")
    return value


def _token_usage(value: Any) -> TokenUsage | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("token_usage: expected an object")
    return TokenUsage(
        input_tokens=_integer(value, "input_tokens"),
        output_tokens=_integer(value, "output_tokens"),
        cached_tokens=_integer(value, "cached_tokens"),
        reasoning_tokens=_integer(value, "reasoning_tokens"),
    )


@frozen
class SessionPage:
    """
    One page of a listing.

    @ivar total: How many sessions matched the filters, before paging.
    @ivar sessions: The page, most recently used first.
    """

    total: int
    sessions: tuple[SessionRecord, ...]


@frozen
class StoreHealth:
    """
    What C{/health} reports about the store (docs/design/session-store.md#store-health).

    @ivar available: Whether listing works.
    @ivar session_count: How many sessions have a record.
    @ivar error: Why the store is unavailable, or C{""}.
    """

    available: bool
    session_count: int
    error: str = ""
