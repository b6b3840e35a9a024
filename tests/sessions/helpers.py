"""
Records for the session store tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from clinvk.model import TokenUsage
from clinvk.sessions.record import ACTIVE, SessionRecord

T0 = datetime(2025, 3, 4, 10, 2, 11, 518204, tzinfo=UTC)

# The example record of docs/design/session-store.md#session-record, and its file exactly.
EXAMPLE = SessionRecord(
    id="7a41c0e9b2d84f3a9c6e15d08b2f4a61",
    backend="codex",
    created_at=T0,
    last_used=T0,
    working_dir="/srv/projects/atlas",
    backend_session_id="019c0523-e080-7fb1-a8ea-0530361cbf0f",
    model="balanced",
    initial_prompt="Add a unit test for the tile cache",
    status="completed",
    turn_count=1,
    token_usage=TokenUsage(input_tokens=18210, output_tokens=940),
    tags=("api",),
    metadata={"ticket": "OPS-1182"},
)

EXAMPLE_FILE = """\
{
  "id": "7a41c0e9b2d84f3a9c6e15d08b2f4a61",
  "backend": "codex",
  "created_at": "2025-03-04T10:02:11.518204+00:00",
  "last_used": "2025-03-04T10:02:11.518204+00:00",
  "working_dir": "/srv/projects/atlas",
  "backend_session_id": "019c0523-e080-7fb1-a8ea-0530361cbf0f",
  "model": "balanced",
  "initial_prompt": "Add a unit test for the tile cache",
  "status": "completed",
  "turn_count": 1,
  "token_usage": {
    "input_tokens": 18210,
    "output_tokens": 940
  },
  "tags": [
    "api"
  ],
  "metadata": {
    "ticket": "OPS-1182"
  }
}"""

EXAMPLE_INDEX = (
    '{"version":1,"index":{"7a41c0e9b2d84f3a9c6e15d08b2f4a61":{"ID":"7a41c0e9b2d84f3a9c6e15d08b2f4a61",'
    '"Backend":"codex","Status":"completed","LastUsed":"2025-03-04T10:02:11.518204+00:00","Model":"balanced",'
    '"WorkDir":"/srv/projects/atlas","Title":"","Tags":["api"],"CreatedAt":"2025-03-04T10:02:11.518204+00:00"}}}'
)


def session_id(n: int) -> str:
    """A valid 32-character id, distinct for each C{n} and sorting by it."""
    return f"{n:032x}"


def record(n: int, *, minutes: float = 0, created: float | None = None, **fields: Any) -> SessionRecord:
    """
    Record number C{n}: last used C{minutes} after L{T0}, created
    C{created} minutes after it (default: when last used).
    """
    last_used = T0 + timedelta(minutes=minutes)
    created_at = last_used if created is None else T0 + timedelta(minutes=created)
    fields.setdefault("backend", "claude")
    fields.setdefault("status", ACTIVE)
    return SessionRecord(id=session_id(n), created_at=created_at, last_used=last_used, **fields)
