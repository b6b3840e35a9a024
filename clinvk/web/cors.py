# -*- test-case-name: tests.web.test_guards -*-
"""
Cross-origin requests (docs/design/http.md#cors): preflights answered before
any other check, and the CORS headers on every answer, errors included.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.logger import Logger
from twisted.web.iweb import IRequest

log = Logger()

DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "OPTIONS"})
ALLOWED_HEADERS = frozenset(
    {
        "Accept",
        "Authorization",
        "Content-Type",
        "X-Api-Key",
        "Anthropic-Version",
        "Origin",
        "X-Clinvk-Session-Id",
    }
)


def canonical_header(name: str) -> str:
    """C{x-api-key} as C{X-Api-Key}."""
    return "-".join(part.capitalize() for part in name.strip().split("-"))


def _matches(origin: str, pattern: str) -> bool:
    origin, pattern = origin.lower(), pattern.lower()
    if "*" not in pattern:
        return origin == pattern
    head, tail = pattern.split("*", 1)
    return len(origin) >= len(head) + len(tail) and origin.startswith(head) and origin.endswith(tail)


class CorsPolicy:
    """
    @param origins: C{cors_allowed_origins}; empty means local pages only.
    @param credentials: C{cors_allow_credentials}.
    @param max_age: C{cors_max_age}; when not positive, 300.
    """

    def __init__(self, origins: Sequence[str], credentials: bool, max_age: int) -> None:
        self._origins = tuple(origins) or DEFAULT_ORIGINS
        self._any = "*" in self._origins
        self._credentials = credentials
        self._max_age = max_age if max_age > 0 else 300

    def warn_about_configuration(self) -> None:
        """Warn (at start-up) about credentials offered to wildcard origins."""
        wildcard = next((origin for origin in self._origins if "*" in origin), None)
        if self._credentials and wildcard is not None:
            log.warn(
                "CORS configuration warning: AllowCredentials=true with wildcard origin may be "
                "rejected by browsers or create security risks origin={origin} credentials=true",
                origin=wildcard,
            )

    def _allowed_origin(self, request: IRequest) -> str | None:
        """The C{Access-Control-Allow-Origin} value for C{request}, if any."""
        origin = (request.getHeader(b"origin") or b"").decode("latin-1")
        if not origin or not any(_matches(origin, pattern) for pattern in self._origins):
            return None
        return "*" if self._any else origin

    def is_preflight(self, request: IRequest) -> bool:
        return (
            request.method == b"OPTIONS" and request.getHeader(b"access-control-request-method") is not None
        )

    def answer_preflight(self, request: IRequest) -> bytes:
        """Answer a preflight: 200, empty, with the Allow headers when everything asked is allowed."""
        for varying in (b"Origin", b"Access-Control-Request-Method", b"Access-Control-Request-Headers"):
            request.responseHeaders.addRawHeader(b"Vary", varying)
        method = (request.getHeader(b"access-control-request-method") or b"").decode("latin-1").upper()
        asked = (request.getHeader(b"access-control-request-headers") or b"").decode("latin-1")
        headers = [canonical_header(name) for name in asked.split(",") if name.strip()]
        origin = self._allowed_origin(request)
        if origin is not None and method in ALLOWED_METHODS and all(h in ALLOWED_HEADERS for h in headers):
            request.setHeader(b"Access-Control-Allow-Origin", origin.encode("latin-1"))
            request.setHeader(b"Access-Control-Allow-Methods", method.encode("latin-1"))
            if headers:
                request.setHeader(b"Access-Control-Allow-Headers", ", ".join(headers).encode("latin-1"))
            if self._credentials:
                request.setHeader(b"Access-Control-Allow-Credentials", b"true")
            request.setHeader(b"Access-Control-Max-Age", str(self._max_age).encode("ascii"))
        request.setResponseCode(200)
        request.defaultContentType = None  # type: ignore[attr-defined]
        request.setHeader(b"Content-Length", b"0")
        return b""

    def decorate(self, request: IRequest) -> None:
        """Add the CORS headers of an actual request (before any check can refuse it)."""
        request.responseHeaders.addRawHeader(b"Vary", b"Origin")
        origin = self._allowed_origin(request)
        if origin is None or request.method.decode("latin-1") not in ALLOWED_METHODS:
            return
        request.setHeader(b"Access-Control-Allow-Origin", origin.encode("latin-1"))
        request.setHeader(b"Access-Control-Expose-Headers", b"Link, X-Clinvk-Session-Id")
        if self._credentials:
            request.setHeader(b"Access-Control-Allow-Credentials", b"true")
