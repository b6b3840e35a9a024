# -*- test-case-name: tests.web.test_openai_responses -*-
"""
The server-sent events of a streamed response (docs/design/responses-api.md#responses-stream):
each one named by an C{event:} line and numbered by its
C{sequence_number}, from 0.
"""

from __future__ import annotations

from typing import Any

from clinvk.web._sse import frame


class ResponseEvents:
    """Numbers the events of one response stream."""

    def __init__(self) -> None:
        self._sequence = 0

    def frame(self, kind: str, **members: Any) -> bytes:
        """The next event, of type C{kind}, as an SSE frame."""
        data = {"type": kind, "sequence_number": self._sequence, **members}
        self._sequence += 1
        return frame(data, kind)
