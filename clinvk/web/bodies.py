# -*- test-case-name: tests.web.test_guards -*-
"""
The request body size limit (middleware.md 4), enforced while the body
arrives: past the limit, nothing more is kept in memory or on disk.
"""

from __future__ import annotations

import io
from typing import ClassVar

from twisted.web.iweb import IRequest
from twisted.web.server import Request


class LimitedRequest(Request):
    """
    A request that stops keeping its body once it exceeds C{max_body}
    bytes, declared or received (chunked uploads included).

    @cvar max_body: The limit; 0 or less for none.
    @ivar body_too_large: Whether the body went over the limit.
    """

    max_body: ClassVar[int] = 0
    body_too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        if self.max_body > 0 and length is not None and length > self.max_body:
            self.body_too_large = True
            length = 0  # no room (or temporary file) for what will be dropped
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self.max_body > 0 and self._received > self.max_body:
            self.body_too_large = True
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)


def limited_request(max_body: int) -> type[LimitedRequest]:
    """The request class of a site whose bodies may not exceed C{max_body} bytes."""
    return type("LimitedRequest", (LimitedRequest,), {"max_body": max_body})


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
