# -*- test-case-name: tests.compat.test_mcp -*-
"""
The MCP bridge (docs/design/client-tools.md#mcp-bridge): the client's
tools served to a run's CLI as an MCP server, over the Streamable HTTP
transport's JSON answers.  Each run with client tools opens a
L{Toolbox} whose secret is the path of its URL; a C{tools/call} becomes a
L{PendingCall} that waits for the client's result.

The messages are the C{mcp-types} package's models: JSON-RPC framing,
C{initialize}, C{tools/list} and C{tools/call}.  The transport itself is
a few lines of Twisted (L{clinvk.web.mcp}): the C{mcp} package's servers
run on anyio and Starlette, not on the reactor.  The models are imported
when a CLI first connects, not at start-up: they take half a second to
import, and most servers never serve a tool.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from clinvk._version import __version__
from clinvk.compat.tools import ClientTool, ToolResult

log = Logger()

# Unguessable: 256 random bits, URL-safe.
SECRET_BYTES = 32

# JSON-RPC's error codes (mcp_types.jsonrpc has them too, imported late).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602


@attrs.define(eq=False)
class PendingCall:
    """
    A C{tools/call} the CLI waits on: the tool, its arguments, the id the
    CLI's model gave the call where the CLI says it (claude's
    C{claudecode/toolUseId}), and L{answer}, which the client's result
    fires.  Cancelled, the CLI is told the call failed.
    """

    name: str
    arguments: dict[str, Any]
    model_call_id: str = ""
    answer: Deferred[ToolResult] = attrs.field(factory=Deferred)


@attrs.define(eq=False)
class Toolbox:
    """
    One run's tools, at one secret URL.

    @ivar on_call: Told every call of one of the tools, as it arrives.
    """

    secret: str
    url: str
    tools: tuple[ClientTool, ...]
    on_call: Callable[[PendingCall], object]
    pending: list[PendingCall] = attrs.field(factory=list)


@attrs.frozen
class MCPAnswer:
    """What the endpoint answers one HTTP request: a status and a JSON body, or none."""

    status: int
    body: dict[str, Any] | None = None


class MCPBridge:
    """
    The toolboxes of the runs under way, by secret.

    @param new_secret: Makes a toolbox's secret (random; a test's may not be).
    """

    def __init__(self, new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(SECRET_BYTES)) -> None:
        self._new_secret = new_secret
        self._boxes: dict[str, Toolbox] = {}
        self._base_url = ""
        self._listen: Callable[[], Deferred[None]] | None = None

    def listen_with(self, listen: Callable[[], Deferred[None]]) -> None:
        """What makes the endpoint listen when a run first needs it (L{ready})."""
        self._listen = listen

    async def ready(self) -> bool:
        """Whether toolboxes can be opened, once the endpoint was asked to listen if it did not."""
        if not self._base_url and self._listen is not None:
            await self._listen()
        return self.available

    def listening(self, base_url: str) -> None:
        """The endpoint listens at C{base_url} (C{http://127.0.0.1:<port>/mcp}); C{""} once it stopped."""
        self._base_url = base_url.rstrip("/")

    @property
    def endpoint(self) -> str:
        """The endpoint's URL without a secret, where one is presented as a bearer token."""
        return self._base_url

    @property
    def available(self) -> bool:
        """Whether toolboxes can be opened: the endpoint listens."""
        return bool(self._base_url)

    def open(self, tools: Sequence[ClientTool], on_call: Callable[[PendingCall], object]) -> Toolbox:
        """
        A new toolbox serving C{tools} until L{close}.

        @raise RuntimeError: When the endpoint does not listen.
        """
        if not self._base_url:
            raise RuntimeError("the MCP endpoint for client tools is not listening")
        secret = self._new_secret()
        box = Toolbox(secret, f"{self._base_url}/{secret}", tuple(tools), on_call)
        self._boxes[secret] = box
        return box

    def close(self, box: Toolbox) -> None:
        """Stop serving C{box}: its URL is gone, and calls still waiting fail."""
        self._boxes.pop(box.secret, None)
        pending, box.pending = box.pending, []
        for call in pending:
            call.answer.cancel()

    def knows(self, secret: str) -> bool:
        """Whether C{secret} is an open toolbox's."""
        return bool(secret) and secret in self._boxes

    async def handle(self, secret: str, body: bytes) -> MCPAnswer:
        """
        Answer one POSTed JSON-RPC message for the toolbox of C{secret}:
        404 for no such toolbox, 202 for a notification or a response,
        otherwise the JSON-RPC answer.
        """
        box = self._boxes.get(secret)
        if box is None:
            return MCPAnswer(404)
        from mcp_types import jsonrpc
        from pydantic import ValidationError

        try:
            message = json.loads(body)
        except ValueError:
            return _error(None, PARSE_ERROR, "the body is not JSON")
        if not isinstance(message, dict):
            return _error(None, INVALID_REQUEST, "one JSON-RPC message per request, as an object")
        if "method" not in message:
            # A response to a request of ours: we send none.
            return MCPAnswer(202)
        if "id" not in message:
            return MCPAnswer(202)
        try:
            request = jsonrpc.JSONRPCRequest.model_validate(message)
        except ValidationError:
            return _error(message.get("id"), INVALID_REQUEST, "not a JSON-RPC request")
        try:
            result = await self._answer(box, request.method, request.params or {})
        except _Refused as e:
            return _error(request.id, e.code, e.message)
        return MCPAnswer(200, {"jsonrpc": "2.0", "id": request.id, "result": result})

    async def _answer(self, box: Toolbox, method: str, params: dict[str, Any]) -> dict[str, Any]:
        import mcp_types
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION

        if method == "initialize":
            asked = params.get("protocolVersion")
            version = asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
            return _dump(
                mcp_types.InitializeResult(
                    protocol_version=version,
                    capabilities=mcp_types.ServerCapabilities(
                        tools=mcp_types.ToolsCapability(list_changed=False)
                    ),
                    server_info=mcp_types.Implementation(name="clinvk", version=__version__),
                )
            )
        if method == "ping":
            return {}
        if method == "tools/list":
            return _dump(mcp_types.ListToolsResult(tools=[_tool(tool) for tool in box.tools]))
        if method == "tools/call":
            return await self._call(box, params)
        raise _Refused(METHOD_NOT_FOUND, f"method not found: {method}")

    async def _call(self, box: Toolbox, params: dict[str, Any]) -> dict[str, Any]:
        import mcp_types
        from pydantic import ValidationError

        try:
            asked = mcp_types.CallToolRequestParams.model_validate(params)
        except ValidationError:
            raise _Refused(INVALID_PARAMS, "tools/call needs a tool name and arguments") from None
        if asked.name not in {tool.name for tool in box.tools}:
            raise _Refused(INVALID_PARAMS, f"unknown tool: {asked.name}")
        meta = asked.meta or {}
        call = PendingCall(
            asked.name, dict(asked.arguments or {}), str(meta.get("claudecode/toolUseId") or "")
        )
        box.pending.append(call)
        log.debug(
            "The CLI calls the client's tool {name} arguments={arguments}",
            name=call.name,
            arguments=call.arguments,
        )
        box.on_call(call)
        try:
            result = await call.answer
        except CancelledError:
            result = ToolResult("", "The call was cancelled: the client did not answer it.", is_error=True)
        finally:
            if call in box.pending:
                box.pending.remove(call)
        text = mcp_types.TextContent(text=result.text)
        return _dump(mcp_types.CallToolResult(content=[text], is_error=result.is_error))


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _tool(tool: ClientTool) -> Any:
    import mcp_types

    # Read-only as far as the CLI knows: the client runs it, not the CLI,
    # and claude and codex call read-only tools of one step at once, which
    # lets a step's calls reach the client together.
    hints = mcp_types.ToolAnnotations(read_only_hint=True)
    return mcp_types.Tool(
        name=tool.name,
        description=tool.description or None,
        input_schema=dict(tool.input_schema),
        annotations=hints,
    )


def _dump(result: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def _error(request_id: Any, code: int, message: str) -> MCPAnswer:
    return MCPAnswer(200, {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}})
