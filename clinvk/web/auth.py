# -*- test-case-name: tests.web.test_guards -*-
"""
API keys (docs/design/http.md#api-keys): which requests need one, how it is
presented and how it is checked.  Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from twisted.web.iweb import IRequest

from clinvk.errors import KeysUnavailable, Unauthorized

# Paths anyone may read, so that health checks and the documentation work
# (the /openapi.* variants and /schemas/* too: /docs loads them), and the
# index at / that points at them.
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/health",
        "/docs",
        "/openapi.json",
        "/openapi.yaml",
        "/openapi-3.0.json",
        "/openapi-3.0.yaml",
        "/schemas",
        "/metrics",
    }
)


def parse_keys(text: str) -> tuple[str, ...]:
    """Comma-separated keys, trimmed, empty ones dropped."""
    return tuple(part.strip() for part in text.strip().split(",") if part.strip())


def keys_from_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The keys of C{CLINVK_API_KEYS}."""
    return parse_keys(environ.get("CLINVK_API_KEYS", ""))


def presented_key(request: IRequest) -> str:
    """
    The key a request presents: C{X-Api-Key}, else a C{Bearer} token of
    C{Authorization}; C{""} when there is none.
    """
    api_key = (request.getHeader(b"x-api-key") or b"").decode("latin-1").strip()
    if api_key:
        return api_key
    scheme, _, token = (request.getHeader(b"authorization") or b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    return ""


class ApiKeys:
    """
    @param keys: The accepted keys; none disables authentication.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [key.encode("utf-8") for key in keys]
        self._held = False

    def replace(self, keys: Iterable[str]) -> None:
        """Accept exactly C{keys} from now on."""
        self._keys = [key.encode("utf-8") for key in keys]
        self._held = False

    def hold(self) -> None:
        """Refuse every protected request until L{replace} gives the keys."""
        self._held = True

    @property
    def count(self) -> int:
        """How many keys are accepted."""
        return len(self._keys)

    def check(self, request: IRequest, path: str) -> None:
        """
        @param path: The path below the root's mount point.
        @raise Unauthorized: When C{path} needs a key and C{request} lacks a
            valid one.
        """
        if path in PUBLIC_PATHS or path.startswith("/schemas/"):
            return
        if self._held:
            raise KeysUnavailable("the API keys are not loaded yet")
        if not self._keys:
            return
        presented = presented_key(request).encode("utf-8")
        if not presented:
            raise Unauthorized("missing API key")
        # Compare with every key, so that the time taken tells nothing.
        matches = [hmac.compare_digest(presented, key) for key in self._keys]
        if not any(matches):
            raise Unauthorized("invalid API key")
