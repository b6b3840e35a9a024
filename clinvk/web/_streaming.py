# -*- test-case-name: tests.web.test_native_stream -*-
"""
Writing a response as a stream: every event is written the moment it is
produced, and a client that reads slowly slows the producer instead of
filling the server's memory.
"""

from __future__ import annotations

from typing import cast

import attrs

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import implementer

from clinvk.backends import events
from clinvk.orchestration import PromptStream
from clinvk.web._responses import json_bytes
from clinvk.web.deadline import RequestDeadline, deadline_passed


@implementer(IPushProducer)
class WriteGate:
    """
    Lets a streaming handler wait while the client's connection cannot
    take more: registered as the request's producer, it is paused when
    the transport's buffer is full and resumed when it has drained.
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._paused: Deferred[None] | None = None
        request.registerProducer(self, True)

    def pauseProducing(self) -> None:
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        # The connection is gone; the handler is cancelled separately.
        self.resumeProducing()

    @property
    def paused(self) -> bool:
        """Whether the client's connection is full."""
        return self._paused is not None

    async def write(self, data: bytes) -> None:
        """Write C{data} once the client can take it."""
        while self._paused is not None:
            await self._paused
        self._request.write(data)

    def close(self) -> None:
        """Stop being the request's producer (unless the connection is gone already)."""
        if getattr(self._request, "channel", None) is not None:
            self._request.unregisterProducer()


async def stream_ndjson(request: IRequest, stream: PromptStream, deadline: RequestDeadline) -> None:
    """
    Answer C{request} with C{stream} as NDJSON (docs/design/native-api.md#prompt-stream):
    one compact JSON event per line, each flushed as it comes.  When the
    client goes away or the deadline passes (the handler is cancelled) the
    run is cancelled; a deadline is reported with a last C{timeout} event.
    """
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"application/x-ndjson")
    request.setHeader(b"Cache-Control", b"no-cache")
    gate = WriteGate(cast("Request", request))
    try:
        # Headers go out now: the client knows the stream has started.
        request.write(b"")
        async for event in stream:
            await gate.write(json_bytes(event.wire(stream.backend, stream.session_id)))
    except Exception:
        # The client went away (a cancellation), the deadline passed or
        # writing failed: either way the run stops.
        stream.cancel()
        if deadline_passed(request):
            event = events.error(deadline.message(), 0, code="timeout")
            timed_out = attrs.evolve(event, timestamp=deadline.now())
            request.write(json_bytes(timed_out.wire(stream.backend, stream.session_id)))
        raise
    finally:
        gate.close()
