# -*- test-case-name: tests.web.test_responses -*-
"""
Writing JSON bodies, including the typed bodies that name their schema.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from urllib.parse import quote

# Bound once: attributes of twisted.web.http are read through a
# deprecation proxy, which costs on every request.
from twisted.web.http import RESPONSES
from twisted.web.iweb import IRequest

# Reason phrases Twisted lacks (RFC 9110 and RFC 6585); without them the
# status line would say "Unknown Status".
_REASONS = {422: b"Unprocessable Content", 429: b"Too Many Requests"}


def set_status(request: IRequest, status: int) -> None:
    """Set the status of C{request}, with its standard reason phrase."""
    request.setResponseCode(status, _REASONS.get(status) or RESPONSES.get(status))


def json_bytes(body: object) -> bytes:
    """
    Encode a JSON body: compact, UTF-8, followed by one newline
    (docs/design/native-api.md#response-bodies).
    """
    # The newline joins the text before it is encoded: appending it to the
    # bytes would copy a large body once more.
    return (json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


# Strings longer than this are encoded a slice at a time by json_pieces.
LARGE_STRING = 1024 * 1024


def _set_aside(value: object, large: list[str], token: str) -> object:
    """
    C{value} with every string longer than L{LARGE_STRING} replaced by
    C{token} and its index in C{large}, where it is put, in the order
    C{json.dumps} writes them.
    """
    if isinstance(value, str):
        if len(value) <= LARGE_STRING:
            return value
        large.append(value)
        return f"{token}{len(large) - 1}"
    if isinstance(value, Mapping):
        return {key: _set_aside(item, large, token) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_set_aside(item, large, token) for item in value]
    return value


def json_pieces(body: object) -> list[bytes]:
    """
    L{json_bytes} of C{body} in pieces, whose concatenation is the same
    bytes.  A string longer than L{LARGE_STRING} is encoded a slice at a
    time, so that its encoded form never exists whole next to it as text
    and again as bytes: a large answer costs about twice its size, not
    three times.
    """
    large: list[str] = []
    token = f"clinvk-large-{secrets.token_hex(8)}-"
    skeleton = _set_aside(body, large, token)
    if not large:
        return [json_bytes(body)]
    rest = json_bytes(skeleton)
    pieces = []
    for number, text in enumerate(large):
        before, _, rest = rest.partition(json_bytes(f"{token}{number}").rstrip(b"\n"))
        pieces += [before, b'"']
        for start in range(0, len(text), LARGE_STRING):
            encoded = json.dumps(text[start : start + LARGE_STRING], ensure_ascii=False)
            pieces.append(encoded[1:-1].encode("utf-8"))
        pieces.append(b'"')
    pieces.append(rest)
    return pieces


def write_json(request: IRequest, body: object, *, status: int = 200) -> None:
    """
    Answer C{request} with C{body} as JSON, like L{json_response}, but
    written here in the pieces of L{json_pieces}: the transport joins
    them only once the caller has let go of C{body}.  The caller returns
    L{None} to Klein, which then finishes the request.
    """
    pieces = json_pieces(body)
    set_status(request, status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", str(sum(len(piece) for piece in pieces)).encode("ascii"))
    for piece in pieces:
        request.write(piece)


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


# The request attribute where L{remember_mount_path} notes the mount path.
_MOUNT_PATH = "_clinvk_mount_path"


def schema_url(request: IRequest, type_name: str) -> str:
    """
    The absolute URL of the schema of C{type_name} as seen by this client.

    The scheme is C{http} only for a plain-text request whose C{Host}
    starts with C{localhost} or C{127.0.0.1}, otherwise C{https}: the
    reference's rule, kept because clients see it
    (docs/design/native-api.md#response-bodies).
    """
    host = request_host(request)
    local = host.startswith(("localhost", "127.0.0.1"))
    scheme = "http" if local and not request.isSecure() else "https"
    return f"{scheme}://{host}{mount_path(request)}/schemas/{type_name}.json"


def request_host(request: IRequest) -> str:
    """
    The host (and port) this client asked for: its C{Host} header, else
    the address it reached.
    """
    host_header = request.getHeader(b"host")
    if host_header is None:
        address = request.getHost()
        name = str(getattr(address, "host", "localhost"))
        host = f"[{name}]" if ":" in name else name
        return host + f":{getattr(address, 'port', 80)}"
    # The root has already refused Host headers that are not UTF-8.
    return str(host_header.decode("utf-8", "replace"))


def described_by(request: IRequest, type_name: str) -> None:
    """Add the C{Link: </schemas/<type>.json>; rel="describedBy"} header."""
    request.setHeader(
        b"Link", f'<{mount_path(request)}/schemas/{type_name}.json>; rel="describedBy"'.encode()
    )


def remember_mount_path(request: IRequest) -> None:
    """
    Note where clinvk's root is mounted, for L{mount_path}: called by the
    root as it receives C{request}, while C{request.prepath} still holds
    exactly the segments the site traversed to reach it (Klein's routing
    moves more segments there later).
    """
    path = "".join("/" + quote(segment, safe="") for segment in request.prepath)
    setattr(request, _MOUNT_PATH, path)


def mount_path(request: IRequest) -> str:
    """
    The path clinvk's root is mounted at, as a client writes it: C{""} at
    the root of the site, C{"/clinvk"} where a program embedding clinvk
    put it there.
    """
    path: str = getattr(request, _MOUNT_PATH, "")
    return path


def typed_response(request: IRequest, type_name: str, body: Mapping[str, object], status: int = 200) -> bytes:
    """
    A JSON response whose first member is C{$schema}, with the matching
    C{Link} header.
    """
    described_by(request, type_name)
    return json_response(request, {"$schema": schema_url(request, type_name), **body}, status=status)
