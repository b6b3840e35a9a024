"""
The MCP endpoint's listener (docs/design/client-tools.md#mcp-endpoint), on
the real reactor and loopback.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.http_headers import Headers

from clinvk.compat.mcp import MCPBridge
from clinvk.compat.tools import ClientTool
from clinvk.listeners import MCPListener

reactor: Any = _reactor
LIST = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()


class ListenerTests(TestCase):
    """The endpoint's listener, on the real reactor and loopback."""

    async def test_listens_on_loopback(self) -> None:
        """
        It listens once a run needs it, on 127.0.0.1 at a port of its own,
        which the bridge learns; stopped, it forgets it.
        """
        bridge = MCPBridge()
        service = MCPListener(bridge, reactor)
        self.assertFalse(await bridge.ready())
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        self.assertFalse(bridge.available)
        self.assertTrue(await bridge.ready())
        box = bridge.open([ClientTool("get_weather")], lambda call: None)
        self.assertRegex(box.url, r"^http://127\.0\.0\.1:\d+/mcp/[A-Za-z0-9_-]{43}$")
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await treq.post(
            box.url, data=LIST, headers=Headers({b"content-type": [b"application/json"]}), pool=pool
        )
        self.assertEqual(json.loads(await response.content())["result"]["tools"][0]["name"], "get_weather")
        await pool.closeCachedConnections()
        await service.stopService()  # type: ignore[misc]
        # The server's side of the connection closes on the next turns.
        for _ in range(3):
            await _turn()
        self.assertFalse(bridge.available)


def _turn() -> Deferred[None]:
    """A Deferred firing on the reactor's next turn."""
    waited: Deferred[None] = Deferred()
    reactor.callLater(0, waited.callback, None)
    return waited
