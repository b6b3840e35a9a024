# -*- test-case-name: tests.sessions.test_contract -*-
"""
Selection rules every store applies the same way: prefix matching, the
listing order and paging.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from clinvk.sessions.record import SessionNotFound, check_prefix

_T = TypeVar("_T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """
    A timestamp as microseconds since the epoch: a cheap sort key, valid
    for every offset (the difference of aware datetimes never overflows,
    unlike a conversion to UTC of the zero time).  Naive values count as
    UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def order_key(last_used: int, created_at: int, session_id: str) -> tuple[int, int, str]:
    """
    The listing order (docs/design/session-store.md#session-listing): last used first,
    then the most recently created, then by id.

    @param last_used: L{micros} of the last use.
    @param created_at: L{micros} of the creation.
    """
    return (-last_used, -created_at, session_id)


def match_prefix(prefix: str, ids: Iterable[str]) -> str:
    """
    The one id starting with C{prefix} (docs/design/session-store.md#session-ids).

    @raise SessionNotFound: For an invalid prefix, or none or several
        matches.
    """
    check_prefix(prefix)
    matches = [session_id for session_id in ids if session_id.startswith(prefix)]
    if not matches:
        raise SessionNotFound(f"no session found with prefix: {prefix}")
    if len(matches) > 1:
        raise SessionNotFound(f"ambiguous prefix {prefix}: matches {len(matches)} sessions")
    return matches[0]


def page(items: Sequence[_T], offset: int, limit: int) -> Sequence[_T]:
    """
    Apply C{offset}, then C{limit} (C{<= 0}: no limit).
    """
    items = items[max(offset, 0) :]
    return items[:limit] if limit > 0 else items
