# -*- test-case-name: tests.web.test_guards -*-
"""
Reading a request: the body size limit (docs/design/http.md#body-limit),
enforced while the body arrives (past the limit, nothing more is kept in
memory or on disk), and the time limits for its headers, its body and the
whole request (docs/design/http.md#connection-timeouts: a client that sends
too slowly gets 408 and is disconnected).
"""

from __future__ import annotations

import io
import json
from typing import Any, ClassVar

from attrs import frozen

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request


class LimitedRequest(Request):
    """
    A request that stops keeping its body once it exceeds C{max_body}
    bytes, declared or received (chunked uploads included).

    @cvar max_body: The limit; 0 or less for none.
    @cvar limits: The time limits of reading it, if any.
    @ivar body_too_large: Whether the body went over the limit.
    """

    max_body: ClassVar[int] = 0
    limits: ClassVar[ReadLimits | None] = None
    body_too_large = False
    _received = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timers: dict[str, IDelayedCall] = {}
        limits = self.limits
        if limits is not None:
            self._time("headers", limits.headers, "")
            self._time("request", limits.request, "request read timeout")

    def _time(self, name: str, seconds: float, detail: str) -> None:
        if self.limits is not None and seconds > 0:
            self._timers[name] = self.limits.clock.callLater(seconds, self._too_slow, detail)

    def _stop_timers(self, *names: str) -> None:
        for name in names or tuple(self._timers):
            timer = self._timers.pop(name, None)
            if timer is not None and timer.active():
                timer.cancel()

    def _too_slow(self, detail: str) -> None:
        """Answer 408 and disconnect: the request never arrived in full."""
        self._stop_timers()
        body = b""
        if detail:
            problem = {"title": "Request Timeout", "status": 408, "detail": detail}
            body = json.dumps(problem, separators=(",", ":")).encode() + b"\n"
        head = (
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        transport = self.channel.transport
        if transport is not None:
            transport.write(head.encode("ascii") + body)
            transport.loseConnection()

    def gotLength(self, length: int | None) -> None:
        self._stop_timers("headers")
        if self.limits is not None:
            self._time("body", self.limits.body, "request body read timeout")
        if self.max_body > 0 and length is not None and length > self.max_body:
            self.body_too_large = True
            length = 0  # no room (or temporary file) for what will be dropped
        super().gotLength(length)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._stop_timers()
        limits = self.limits
        if limits is not None and limits.response > 0:
            self._timers["response"] = limits.clock.callLater(limits.response, self._too_late)
        super().requestReceived(command, path, version)

    def _too_late(self) -> None:
        """The response was not written in time: drop the connection (and so cancel the work)."""
        self._timers.pop("response", None)
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def finish(self) -> None:
        self._stop_timers()
        super().finish()

    def connectionLost(self, reason: Failure) -> None:
        self._stop_timers()
        super().connectionLost(reason)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self.max_body > 0 and self._received > self.max_body:
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)


@frozen
class ReadLimits:
    """
    How long reading a request may take, in seconds (0 for no limit).

    @ivar headers: From the request line to the end of the headers.
    @ivar body: From the end of the headers to the end of the body.
    @ivar request: From the request line to the end of the body.
    @ivar response: From the end of the request to the end of the
        response.
    """

    clock: IReactorTime
    headers: float = 10.0
    body: float = 5.0
    request: float = 30.0
    response: float = 0.0


def limited_request(max_body: int, limits: ReadLimits | None = None) -> type[LimitedRequest]:
    """
    The request class of a site whose bodies may not exceed C{max_body}
    bytes and whose requests must arrive within C{limits}.
    """
    return type("LimitedRequest", (LimitedRequest,), {"max_body": max_body, "limits": limits})


def body_too_large(request: IRequest, limit: int) -> bool:
    """
    Whether the body of C{request} exceeds C{limit} (0 or less: never),
    for requests from any site: as flagged while receiving, as declared,
    or as received.
    """
    if limit <= 0:
        return False
    if getattr(request, "body_too_large", False):
        return True
    declared = request.getHeader(b"content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        return True
    content = request.content
    if content is None:
        return False
    position = content.tell()
    size: int = content.seek(0, io.SEEK_END)
    content.seek(position)
    return size > limit
