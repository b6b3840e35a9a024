# -*- test-case-name: tests.web.test_mcp -*-
"""
The MCP endpoint's HTTP side (docs/design/client-tools.md#mcp-endpoint):
a site of its own, on a listener of its own bound to 127.0.0.1, never
routed from the API's listeners.  C{POST /mcp/<secret>} (or C{POST /mcp}
with the secret as a bearer token) carries one JSON-RPC message to the
bridge; anything else is refused.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from clinvk.compat.mcp import MCPAnswer, MCPBridge
from clinvk.web._responses import json_bytes

log = Logger()

# One JSON-RPC message of a tool call: a client's tools are described in
# tools/list's answer, not in what the CLI sends.
MAX_MESSAGE_BYTES = 1024 * 1024

# The path every toolbox's URL starts with.
PREFIX = b"mcp"


def _loopback(request: IRequest) -> bool:
    host = getattr(request.getClientAddress(), "host", "")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MCPEndpoint(Resource):
    """
    Serves the bridge's toolboxes at C{/mcp/<secret>}.

    @param bridge: Answers the messages.
    """

    isLeaf = True

    def __init__(self, bridge: MCPBridge) -> None:
        super().__init__()
        self._bridge = bridge

    def _secret(self, request: IRequest) -> str | None:
        """
        The toolbox's secret: the path's last segment, or, at the bare
        endpoint, the bearer token (a CLI that keeps it off its command line).
        """
        path = [segment for segment in request.prepath + request.postpath if segment]
        if not path or path[0] != PREFIX or len(path) > 2:
            return None
        if len(path) == 2:
            secret: bytes = path[1]
            return secret.decode("ascii", "replace")
        given: bytes | None = request.getHeader(b"authorization")
        scheme, _, token = (given or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return None
        return token.strip().decode("ascii", "replace")

    def _refused(self, request: IRequest) -> int | None:
        """The status a request is refused with, or L{None} when it may be served."""
        if not _loopback(request):
            return 403
        if request.getHeader(b"origin") is not None:
            # A browser's page (DNS rebinding): the CLIs send no Origin.
            return 403
        secret = self._secret(request)
        if secret is None or not self._bridge.knows(secret):
            return 404
        return None

    def render_POST(self, request: Request) -> bytes | int:
        refused = self._refused(request)
        if refused is not None:
            request.setResponseCode(refused)
            return b""
        assert request.content is not None
        body = request.content.read(MAX_MESSAGE_BYTES + 1)
        if len(body) > MAX_MESSAGE_BYTES:
            request.setResponseCode(413)
            return b""
        secret = self._secret(request)
        assert secret is not None
        answering = Deferred.fromCoroutine(self._bridge.handle(secret, body))
        gone: list[Failure] = []

        def lost(reason: Failure) -> None:
            # The CLI gone (its process stopped), the call it waited on is too.
            gone.append(reason)
            answering.cancel()

        request.notifyFinish().addErrback(lost)
        answering.addCallbacks(
            lambda answer: None if gone else _write(request, answer),
            lambda reason: None if gone else _failed(request, reason),
        )
        return NOT_DONE_YET

    def render_GET(self, request: IRequest) -> bytes:
        # No stream of server messages: the bridge sends none.
        request.setResponseCode(self._refused(request) or 405)
        request.setHeader(b"allow", b"POST")
        return b""

    def render_DELETE(self, request: IRequest) -> bytes:
        # No session to end: the bridge keeps none.
        return self.render_GET(request)


def _write(request: IRequest, answer: MCPAnswer) -> None:
    request.setResponseCode(answer.status)
    if answer.body is not None:
        request.setHeader(b"content-type", b"application/json")
        request.write(json_bytes(answer.body))
    request.finish()


def _failed(request: IRequest, reason: Failure) -> None:
    log.failure("The MCP endpoint could not answer", reason)
    request.setResponseCode(500)
    request.finish()


class MCPSite(Site):
    """A site that logs no requests: each one's path is a toolbox's secret."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def mcp_site(bridge: MCPBridge, clock: IReactorTime) -> Site:
    """The site of the MCP endpoint, serving the toolboxes of C{bridge}."""
    site = MCPSite(MCPEndpoint(bridge), reactor=clock)
    site.displayTracebacks = False
    return site
