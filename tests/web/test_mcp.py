"""
The MCP endpoint's HTTP side (docs/design/client-tools.md#mcp-endpoint):
only its toolboxes' secret URLs, only from loopback, only POST.
"""

from __future__ import annotations

import io
import json
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from clinvk.compat.mcp import MCPBridge, PendingCall
from clinvk.compat.tools import ClientTool
from clinvk.web.mcp import MCPEndpoint, mcp_site

LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()


class EndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.bridge = MCPBridge(new_secret=lambda: "s3cret")
        self.bridge.listening("http://127.0.0.1:1/mcp")
        self.calls: list[PendingCall] = []
        self.bridge.open([ClientTool("get_weather")], self.calls.append)
        self.client: Any = StubTreq(MCPEndpoint(self.bridge))

    def post(self, path: str, body: bytes = LIST, **headers: str) -> Any:
        return self.successResultOf(
            self.client.post(
                f"http://127.0.0.1/{path}",
                data=body,
                headers={"content-type": "application/json", **headers},
            )
        )

    def test_served(self) -> None:
        response = self.post("mcp/s3cret")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        body = json.loads(self.successResultOf(response.content()))
        self.assertEqual(body["result"]["tools"][0]["name"], "get_weather")

    def test_refused(self) -> None:
        """Unknown secrets and paths are 404s; a browser's request (an Origin) is a 403; GET a 405."""
        self.assertEqual(self.post("mcp/guess").code, 404)
        self.assertEqual(self.post("s3cret").code, 404)
        self.assertEqual(self.post("mcp/s3cret/more").code, 404)
        self.assertEqual(self.post("mcp/s3cret", Origin="http://evil.example").code, 403)
        self.assertEqual(self.successResultOf(self.client.get("http://127.0.0.1/mcp/s3cret")).code, 405)

    def test_bearer(self) -> None:
        """At the bare endpoint, the secret may come as a bearer token; a wrong or missing one is a 404."""
        self.assertEqual(self.post("mcp", Authorization="Bearer s3cret").code, 200)
        self.assertEqual(self.post("mcp", Authorization="Bearer guess").code, 404)
        self.assertEqual(self.post("mcp", Authorization="Basic s3cret").code, 404)
        self.assertEqual(self.post("mcp").code, 404)

    def test_too_large(self) -> None:
        self.assertEqual(self.post("mcp/s3cret", b" " * (1024 * 1024 + 1)).code, 413)

    def test_not_loopback(self) -> None:
        """A request from another host is refused, whatever listener it came through."""
        request = DummyRequest([b"mcp", b"s3cret"])
        request.method = b"POST"
        request.client = IPv4Address("TCP", "192.0.2.7", 4000)
        self.assertEqual(MCPEndpoint(self.bridge).render(request), b"")
        self.assertEqual(request.responseCode, 403)

    def test_cli_gone(self) -> None:
        """The CLI's connection lost while a call waits, the call is cancelled."""
        request = DummyRequest([b"mcp", b"s3cret"])
        request.method = b"POST"
        request.client = IPv4Address("TCP", "127.0.0.1", 4000)
        body = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {}},
        }
        request.content = io.BytesIO(json.dumps(body).encode())  # type: ignore[attr-defined]
        MCPEndpoint(self.bridge).render(request)
        [call] = self.calls
        self.assertFalse(call.answer.called)
        request.processingFailed(Failure(Exception("connection lost")))
        self.assertTrue(call.answer.called)
        self.assertEqual(request.written, [])


class SiteTests(SynchronousTestCase):
    def test_no_access_log(self) -> None:
        """No request is logged: its path is a secret."""
        site = mcp_site(MCPBridge(), Clock())
        events: list[LogEvent] = []
        observer = cast("ILogObserver", events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        # What Twisted's access log reads of a request (its default logs this line).
        request: Any = DummyRequest([b"mcp", b"s3cret"])
        request.uri, request.code, request.sentLength, request.clientproto = (
            b"/mcp/s3cret",
            200,
            0,
            b"HTTP/1.1",
        )
        site.log(request)
        self.assertNotIn("s3cret", repr(events))
