"""
A lean HTTP/1.1 client for the benchmarks: one keep-alive connection sends
one request at a time, and the body is handed over as it arrives with the
time it arrived.

The SDKs and treq cost far more per request than the server's own
overhead, and the client shares the machine with the server; this one
parses only what clinvk sends (a C{Content-Length} or a chunked body).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

# Called with each piece of the body and the CLOCK_MONOTONIC time (ns) its
# bytes were read.
BodySink = Callable[[bytes, int], None]


def now_ns() -> int:
    """CLOCK_MONOTONIC in nanoseconds: the clock the fake CLI stamps its lines with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def build_request(
    method: str,
    path: str,
    *,
    port: int,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def json_request(method: str, path: str, *, port: int, document: Any, headers: Mapping[str, str]) -> bytes:
    """An HTTP/1.1 request with C{document} as its JSON body."""
    return build_request(
        method,
        path,
        port=port,
        body=json.dumps(document).encode("utf-8"),
        headers={"Content-Type": "application/json", **headers},
    )


@frozen
class Response:
    """
    A response.

    @ivar body: The body, unless a sink took it.
    @ivar size: The length of the body.
    """

    status: int
    headers: Mapping[bytes, bytes]
    body: bytes
    size: int


class ResponseError(Exception):
    """The response could not be read."""


class _Exchange:
    """The state of the request in progress."""

    def __init__(self, sink: BodySink | None) -> None:
        self.sink = sink
        self.done: Deferred[Response] = Deferred()
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.pieces: list[bytes] = []
        self.size = 0

    def take(self, data: bytes, arrived: int) -> None:
        self.size += len(data)
        if self.sink is None:
            self.pieces.append(data)
        else:
            self.sink(data, arrived)

    def finish(self) -> None:
        self.done.callback(Response(self.status, self.headers, b"".join(self.pieces), self.size))


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE = range(7)


class HTTPConnection(Protocol):
    """
    One HTTP/1.1 connection, requests sent one after the other.

    @ivar closed: Fires once the connection is gone.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._exchange: _Exchange | None = None
        self.closed: Deferred[None] = Deferred()

    def request(self, raw: bytes, sink: BodySink | None = None) -> Deferred[Response]:
        """
        Send C{raw} (from L{build_request}); fire with the response once it
        has been read.  With C{sink}, the body goes to it as it arrives
        instead of into the response.
        """
        if self._exchange is not None:
            raise RuntimeError("a request is already in progress")
        if self.closed.called:
            raise ResponseError("the connection is closed")
        exchange = self._exchange = _Exchange(sink)
        self._state = _HEAD
        assert self.transport is not None
        self.transport.write(raw)
        return exchange.done

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        arrived = now_ns()
        self._buffer += data
        self._parse(arrived)

    def _parse(self, arrived: int) -> None:
        buffer = self._buffer
        position = 0
        while self._exchange is not None:
            exchange = self._exchange
            if self._state == _HEAD:
                end = buffer.find(b"\r\n\r\n", position)
                if end < 0:
                    break
                self._head(bytes(buffer[position:end]))
                position = end + 4
            elif self._state == _LENGTH or self._state == _CHUNK_DATA:
                take = min(self._remaining, len(buffer) - position)
                if take == 0 and self._remaining:
                    break
                if take:
                    exchange.take(bytes(buffer[position : position + take]), arrived)
                position += take
                self._remaining -= take
                if self._remaining == 0:
                    if self._state == _LENGTH:
                        self._complete()
                    else:
                        self._state = _CHUNK_END
            elif self._state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n", position)
                if end < 0:
                    break
                size = int(bytes(buffer[position:end]).split(b";")[0], 16)
                position = end + 2
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._state, self._remaining = _CHUNK_DATA, size
            elif self._state == _CHUNK_END:
                if len(buffer) - position < 2:
                    break
                position += 2
                self._state = _CHUNK_SIZE
            elif self._state == _TRAILER:
                end = buffer.find(b"\r\n", position)
                if end < 0:
                    break
                empty = end == position
                position = end + 2
                if empty:
                    # The empty line that ends the trailer ends the response.
                    self._complete()
            else:  # _UNTIL_CLOSE
                if len(buffer) > position:
                    exchange.take(bytes(buffer[position:]), arrived)
                position = len(buffer)
                break
        del buffer[:position]

    def _head(self, head: bytes) -> None:
        assert self._exchange is not None
        status_line, *header_lines = head.split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ResponseError(f"not an HTTP response: {status_line!r}")
        self._exchange.status = int(parts[1])
        headers = self._exchange.headers
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            self._state = _CHUNK_SIZE
        elif b"content-length" in headers:
            self._state, self._remaining = _LENGTH, int(headers[b"content-length"])
            if self._remaining == 0:
                self._complete()
        else:
            self._state = _UNTIL_CLOSE

    def _complete(self) -> None:
        exchange, self._exchange = self._exchange, None
        self._state = _HEAD
        assert exchange is not None
        exchange.finish()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            if self._state == _UNTIL_CLOSE:
                exchange.finish()
            else:
                exchange.done.errback(ResponseError(f"connection lost: {reason.getErrorMessage()}"))
        if not self.closed.called:
            self.closed.callback(None)


async def connect(reactor: Any, port: int) -> HTTPConnection:
    """A connection to 127.0.0.1:C{port}."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10)
    connection: HTTPConnection = await connectProtocol(endpoint, HTTPConnection())
    return connection
