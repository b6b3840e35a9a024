# -*- test-case-name: tests.web.test_responses -*-
"""
Writing JSON bodies, including the typed bodies that name their schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from twisted.web import http
from twisted.web.iweb import IRequest

# Reason phrases Twisted lacks (RFC 9110 and RFC 6585); without them the
# status line would say "Unknown Status".
_REASONS = {422: b"Unprocessable Content", 429: b"Too Many Requests"}


def set_status(request: IRequest, status: int) -> None:
    """Set the status of C{request}, with its standard reason phrase."""
    request.setResponseCode(status, _REASONS.get(status) or http.RESPONSES.get(status))


def json_bytes(body: object) -> bytes:
    """
    Encode a JSON body: compact, UTF-8, followed by one newline
    (api-rest.md 0.2).
    """
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def bytes_response(request: IRequest, body: bytes, content_type: bytes | None) -> bytes:
    """
    Set the content type (none when L{None}) and length of a complete
    body, and return it for Klein to write.
    """
    if content_type is None:
        # Twisted would otherwise label even an empty body text/html.
        request.defaultContentType = None  # type: ignore[attr-defined]
    else:
        request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
    return body


def json_response(
    request: IRequest,
    body: object,
    *,
    status: int = 200,
    content_type: bytes = b"application/json",
) -> bytes:
    """
    Set the status and content type of C{request} and return the encoded
    C{body} for Klein to write.
    """
    set_status(request, status)
    return bytes_response(request, json_bytes(body), content_type)


def schema_url(request: IRequest, type_name: str) -> str:
    """
    The absolute URL of the schema of C{type_name} as seen by this client.

    The scheme is C{http} only for a plain-text request whose C{Host}
    starts with C{localhost} or C{127.0.0.1}, otherwise C{https}: the
    reference's rule, kept because clients see it (api-rest.md 0.2).
    """
    host_header = request.getHeader(b"host")
    if host_header is None:
        address = request.getHost()
        name = str(getattr(address, "host", "localhost"))
        host = f"[{name}]" if ":" in name else name
        host += f":{getattr(address, 'port', 80)}"
    else:
        # The root has already refused Host headers that are not UTF-8.
        host = host_header.decode("utf-8", "replace")
    local = host.startswith(("localhost", "127.0.0.1"))
    scheme = "http" if local and not request.isSecure() else "https"
    return f"{scheme}://{host}/schemas/{type_name}.json"


def described_by(request: IRequest, type_name: str) -> None:
    """Add the C{Link: </schemas/<type>.json>; rel="describedBy"} header."""
    request.setHeader(b"Link", f'</schemas/{type_name}.json>; rel="describedBy"'.encode())


def typed_response(request: IRequest, type_name: str, body: Mapping[str, object], status: int = 200) -> bytes:
    """
    A JSON response whose first member is C{$schema}, with the matching
    C{Link} header.
    """
    described_by(request, type_name)
    return json_response(request, {"$schema": schema_url(request, type_name), **body}, status=status)
