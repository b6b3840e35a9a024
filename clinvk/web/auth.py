# -*- test-case-name: tests.web.test_guards -*-
"""
API keys over HTTP (docs/design/http.md#api-keys): which requests need one
(docs/design/http.md#public-paths), how it is presented and how it is checked
against the L{ApiKeys} the server holds (docs/design/http.md#api-key-credentials).
Keys are never logged.
"""

from __future__ import annotations

from twisted.web.iweb import IRequest

from clinvk.errors import KeysUnavailable, Unauthorized
from clinvk.keys import ApiKeys

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


def check_api_key(keys: ApiKeys, request: IRequest, path: str) -> None:
    """
    @param path: The path below the root's mount point.
    @raise KeysUnavailable: When C{path} needs a key and C{keys} are not
        loaded yet.
    @raise Unauthorized: When C{path} needs a key and C{request} lacks a
        valid one.
    """
    if path in PUBLIC_PATHS or path.startswith("/schemas/"):
        return
    if keys.held:
        raise KeysUnavailable("the API keys are not loaded yet")
    if not keys.count:
        return
    presented = presented_key(request)
    if not presented:
        raise Unauthorized("missing API key")
    if not keys.accepts(presented):
        raise Unauthorized("invalid API key")
