# -*- test-case-name: tests.web.test_root -*-
"""
Cross-cutting concerns the root applies to every request: the request id
(docs/design/http.md#request-id) and the access log
(docs/design/http.md#access-log).
"""

from __future__ import annotations

import secrets
import socket
import string

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request

# The base64 alphabet without + and /.
_TAG_ALPHABET = string.ascii_letters + string.digits


class RequestIds:
    """
    Request ids: the client's C{X-Request-Id} when it sends one, otherwise
    C{<hostname>/<tag>-<counter>} with a random tag drawn once per process
    and a counter of at least six digits.
    """

    def __init__(self, hostname: str, tag: str) -> None:
        self._prefix = f"{hostname}/{tag}-"
        self._counter = 0

    @classmethod
    def for_this_process(cls) -> RequestIds:
        """Ids prefixed with this machine's host name and a fresh tag."""
        tag = "".join(secrets.choice(_TAG_ALPHABET) for _ in range(10))
        return cls(socket.gethostname() or "localhost", tag)

    def assign(self, request: IRequest) -> bytes:
        """
        Choose the id of C{request} and echo it in C{X-Request-Id}.

        @return: The id.
        """
        given: bytes | None = request.getHeader(b"x-request-id")
        if given:
            request_id = given
        else:
            self._counter += 1
            request_id = f"{self._prefix}{self._counter:06d}".encode("ascii")
        request.setHeader(b"X-Request-Id", request_id)
        return request_id


class AccessLog:
    """
    One log event per request, once the response is complete or the client
    has gone, with its final status, the body bytes sent and the duration.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock

    def watch(self, request: Request, request_id: bytes, client: str | None = None) -> None:
        """
        Log C{request} when it ends.

        @param client: The client address (docs/design/http.md#client-address); by
            default the TCP peer.
        """
        started = self._clock.seconds()

        def ended(result: object) -> None:
            disconnected = isinstance(result, Failure)
            status = request.code if request.startedWriting or not disconnected else 499
            peer = request.getClientAddress()
            self.log.info(
                "request method={method} path={path} status={status} bytes={bytes} "
                "duration_ms={duration_ms} request_id={request_id} client={client}",
                method=request.method.decode("latin-1"),
                path=request.path.decode("latin-1"),
                status=status,
                bytes=request.sentLength,
                duration_ms=int((self._clock.seconds() - started) * 1000),
                request_id=request_id.decode("latin-1"),
                client=client if client is not None else getattr(peer, "host", str(peer)),
            )

        request.notifyFinish().addBoth(ended)
