"""
The MCP bridge (docs/design/client-tools.md#mcp-bridge): the JSON-RPC
messages a CLI sends, and the calls that wait for the client.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.mcp import MCPAnswer, MCPBridge, PendingCall
from clinvk.compat.tools import ClientTool, ToolResult

WEATHER = ClientTool(
    "get_weather", "The weather.", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def message(method: str, params: Any = None, request_id: int | None = 1) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        body["params"] = params
    if request_id is not None:
        body["id"] = request_id
    return json.dumps(body).encode()


class BridgeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.bridge = MCPBridge(new_secret=lambda: "s3cret")
        self.bridge.listening("http://127.0.0.1:4000/mcp")
        self.calls: list[PendingCall] = []
        self.box = self.bridge.open([WEATHER], self.calls.append)

    def answer(self, body: bytes, secret: str = "s3cret") -> MCPAnswer:
        return self.successResultOf(Deferred.fromCoroutine(self.bridge.handle(secret, body)))

    def test_url(self) -> None:
        """A toolbox's URL ends with its secret; none opens while the endpoint does not listen."""
        self.assertEqual(self.box.url, "http://127.0.0.1:4000/mcp/s3cret")
        self.bridge.listening("")
        self.assertRaises(RuntimeError, self.bridge.open, [WEATHER], self.calls.append)

    def test_initialize(self) -> None:
        """The version the client asks for, when known; tools, and no list changes."""
        answer = self.answer(
            message(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "c", "version": "1"},
                },
            )
        )
        result = answer.body["result"]  # type: ignore[index]
        self.assertEqual(
            (result["protocolVersion"], result["capabilities"], result["serverInfo"]["name"]),
            ("2025-06-18", {"tools": {"listChanged": False}}, "clinvk"),
        )
        unknown = self.answer(
            message(
                "initialize",
                {
                    "protocolVersion": "1999-01-01",
                    "capabilities": {},
                    "clientInfo": {"name": "c", "version": "1"},
                },
            )
        )
        self.assertEqual(unknown.body["result"]["protocolVersion"], "2025-11-25")  # type: ignore[index]

    def test_notifications(self) -> None:
        """A notification or a response is accepted with a 202 and no body."""
        self.assertEqual(self.answer(message("notifications/initialized", request_id=None)), MCPAnswer(202))
        self.assertEqual(
            self.answer(json.dumps({"jsonrpc": "2.0", "id": 3, "result": {}}).encode()), MCPAnswer(202)
        )

    def test_tools_list(self) -> None:
        listed = self.answer(message("tools/list")).body
        assert listed is not None
        [tool] = listed["result"]["tools"]
        self.assertEqual(
            (tool["name"], tool["description"], tool["inputSchema"]),
            (WEATHER.name, WEATHER.description, WEATHER.input_schema),
        )
        # Read-only, so that claude and codex call a step's tools at once.
        self.assertEqual(tool["annotations"], {"readOnlyHint": True})

    def test_call(self) -> None:
        """A call waits for the client's result, then answers with it."""
        answering = Deferred.fromCoroutine(
            self.bridge.handle(
                "s3cret",
                message(
                    "tools/call",
                    {
                        "name": "get_weather",
                        "arguments": {"city": "Paris"},
                        "_meta": {"claudecode/toolUseId": "toolu_1"},
                    },
                    7,
                ),
            )
        )
        [call] = self.calls
        self.assertEqual(
            (call.name, call.arguments, call.model_call_id), ("get_weather", {"city": "Paris"}, "toolu_1")
        )
        self.assertNoResult(answering)
        call.answer.callback(ToolResult("call_1", "sunny", is_error=False))
        body = self.successResultOf(answering).body
        self.assertEqual(body["id"], 7)  # type: ignore[index]
        self.assertEqual(body["result"]["content"], [{"type": "text", "text": "sunny"}])  # type: ignore[index]
        self.assertIs(body["result"]["isError"], False)  # type: ignore[index]

    def test_closed(self) -> None:
        """Closed, a toolbox's calls still waiting fail as tool errors, and its secret is unknown."""
        answering = Deferred.fromCoroutine(
            self.bridge.handle("s3cret", message("tools/call", {"name": "get_weather", "arguments": {}}))
        )
        self.bridge.close(self.box)
        result = self.successResultOf(answering).body["result"]  # type: ignore[index]
        self.assertTrue(result["isError"])
        self.assertEqual(self.answer(message("tools/list")), MCPAnswer(404))

    def test_errors(self) -> None:
        """Unknown secrets, bad JSON, batches, unknown methods and tools: errors, never a call."""
        self.assertEqual(self.answer(message("tools/list"), secret="other"), MCPAnswer(404))
        codes = [
            self.answer(body).body["error"]["code"]  # type: ignore[index]
            for body in (
                b"{",
                b"[]",
                message("resources/list"),
                message("tools/call", {"name": "rm_rf", "arguments": {}}),
                message("tools/call", {"arguments": {}}),
            )
        ]
        self.assertEqual(codes, [-32700, -32600, -32601, -32602, -32602])
        self.assertEqual(self.calls, [])
