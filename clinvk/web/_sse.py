# -*- test-case-name: tests.web.test_openai,tests.web.test_anthropic -*-
"""
Server-sent events: the headers, one frame per write, flushed at once, and
a comment line whenever the stream has been silent for the keepalive
interval so that idle proxies keep it open (docs/design/decisions.md#d5-stream-keepalive).
"""

from __future__ import annotations

import json
from typing import cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from clinvk.web._streaming import WriteGate, note_stream

KEEPALIVE = b": keepalive\n\n"

# The last frame of an OpenAI stream, after its last chunk or its error.
DONE = b"data: [DONE]\n\n"


def frame(data: object, event: str | None = None) -> bytes:
    """One SSE frame: an optional C{event:} line and a compact JSON C{data:} line."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class EventSource:
    """
    An SSE response being written.

    @param request: The request to answer; its status and headers are
        sent at once, and a failure of its handler from then on is an
        error frame (L{clinvk.web._errors.stream_error_frame}).
    @param clock: Times the keepalive comments.
    @param keepalive: Seconds of silence before a comment; 0 for none.
    """

    def __init__(self, request: IRequest, clock: IReactorTime, keepalive: float) -> None:
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"Connection", b"keep-alive")
        request.setHeader(b"X-Accel-Buffering", b"no")
        self._request = request
        self._clock = clock
        self._keepalive = keepalive
        self._timer: IDelayedCall | None = None
        self._gate = WriteGate(cast("Request", request))
        note_stream(request)
        request.write(b"")
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(self._keepalive, self._ping) if self._keepalive > 0 else None

    def _ping(self) -> None:
        # A full connection needs no keepalive, and must not grow.
        if not self._gate.paused:
            self._request.write(KEEPALIVE)
        self._schedule()

    async def send(self, data: bytes) -> None:
        """Write one frame (once the client can take it)."""
        await self._gate.write(data)
        self._schedule()

    def close(self) -> None:
        """No more frames: stop the keepalive and the flow control."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._gate.close()
