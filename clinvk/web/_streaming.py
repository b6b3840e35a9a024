# -*- test-case-name: tests.web.test_native_stream -*-
"""
Writing a response as a stream: every event is written the moment it is
produced, and a client that reads slowly slows the producer instead of
filling the server's memory.  A stream notes itself on its request, so
that the error path (L{clinvk.web._errors}) can end it with an error
frame in its format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Protocol, cast

from attrs import frozen

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import implementer

from clinvk.orchestration import PromptStream
from clinvk.web._responses import json_bytes

# The request attribute where a streamed response notes itself.
_STREAM = "_clinvk_stream"


@frozen
class EventOrigin:
    """
    What a native event says besides its content: the backend, the
    session (once known) and the time it is sent.
    """

    backend: str
    session_id: str
    timestamp: float


@frozen
class OpenStream:
    """
    A response under way as a stream, which only an error frame can end
    when its handler fails.

    @ivar origin: For an NDJSON stream, says who its events are from at
        the moment of asking; L{None} for server-sent events.
    """

    origin: Callable[[], EventOrigin] | None = None


def note_stream(request: IRequest, origin: Callable[[], EventOrigin] | None = None) -> None:
    """Note that C{request} is being answered with a stream."""
    setattr(request, _STREAM, OpenStream(origin))


def open_stream(request: IRequest) -> OpenStream | None:
    """The stream answering C{request}, if it is answered with one."""
    stream: OpenStream | None = getattr(request, _STREAM, None)
    return stream


class _Run(Protocol):
    def cancel(self) -> None: ...


@contextmanager
def stopped_on_failure(run: _Run) -> Iterator[None]:
    """
    Cancel C{run} when the block fails (the client gone, the deadline
    passed, a write failed, the CLI failed) and let the failure go on to
    the error path.
    """
    try:
        yield
    except Exception:
        run.cancel()
        raise


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


async def stream_ndjson(request: IRequest, stream: PromptStream, clock: IReactorTime) -> None:
    """
    Answer C{request} with C{stream} as NDJSON (docs/design/native-api.md#prompt-stream): one
    compact JSON event per line, each flushed as it comes.  Whatever ends
    it early (the client gone or the deadline passed, which cancel the
    handler) stops the run; the error path writes the last line.

    @param clock: Stamps an error event the error path writes.
    """
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"application/x-ndjson")
    request.setHeader(b"Cache-Control", b"no-cache")
    gate = WriteGate(cast("Request", request))
    note_stream(request, lambda: EventOrigin(stream.backend, stream.session_id, clock.seconds()))
    with stopped_on_failure(stream), closing(gate):
        # Headers go out now: the client knows the stream has started.
        request.write(b"")
        async for event in stream:
            await gate.write(json_bytes(event.wire(stream.backend, stream.session_id)))
