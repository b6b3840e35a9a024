"""
Helpers for the native API tests: requests whose responses may wait for
a fake child, the canned outputs of the CLIs, and the SSE frames of the
OpenAI and Anthropic streams.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clinvk.schemas import SchemaSet
from clinvk.testing.reactor import FakeProcessTransport
from tests.helpers import BASE, Response, Server

SCHEMAS = SchemaSet.from_package()

# The schema every successful answer of a route must satisfy, so that the
# OpenAPI document describes what the server really sends.
RESPONSE_SCHEMAS = {
    "/api/v1/prompt": "PromptResponse",
    "/api/v1/parallel": "ParallelResponseBody",
    "/api/v1/chain": "ChainResponseBody",
    "/api/v1/compare": "CompareResponseBody",
}

CLAUDE_NATIVE_ID = "6c0d2f64-8d7e-4a51-9f3b-51a2c7e9d3aa"


def claude_result(text: str = "4", native_id: str = CLAUDE_NATIVE_ID, **usage: int) -> bytes:
    """What C{claude --print --output-format json} prints."""
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": text,
        "session_id": native_id,
        "usage": usage or {"input_tokens": 3, "output_tokens": 7},
    }
    return json.dumps(result).encode() + b"\n"


def frames(chunks: list[bytes]) -> list[str]:
    """The SSE frames received so far, keepalive comments included."""
    return [f for f in b"".join(chunks).decode().split("\n\n") if f]


def named_events(chunks: list[bytes]) -> list[tuple[str, Any]]:
    """The C{(event, data)} pairs received so far, keepalive comments left out."""
    received = []
    for frame in frames(chunks):
        if frame.startswith(":"):
            continue
        event_line, data_line = frame.split("\n")
        received.append((event_line.removeprefix("event: "), json.loads(data_line.removeprefix("data: "))))
    return received


class NativeTestCase(SynchronousTestCase):
    """A server on fake processes and an in-memory client for it."""

    installed: tuple[str, ...] = ("claude", "codex", "gemini")
    config: dict[str, Any] | None = None

    def setUp(self) -> None:
        self.use_server(installed=self.installed, config=self.config)

    def use_server(self, **options: Any) -> None:
        """Talk to a new server built with C{options}."""
        self.server = Server(**options)
        self.reactor = self.server.reactor
        self.reactor.advance(1_750_000_000)
        self.stub: Any = StubTreq(self.server.root)
        # What the client waits for; a disconnect fails them all.
        self.client_waits: list[Deferred[Any]] = []
        self.paths: dict[Deferred[Any], str] = {}

    def start(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Deferred[Any]:
        """Send a request; its response may still wait for a child."""
        if body is not None:
            data = json.dumps(body).encode()
        pending: Deferred[Any] = self.stub.request(
            method, BASE + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        self.client_waits.append(pending)
        self.paths[pending] = path
        return pending

    def finish(self, pending: Deferred[Any]) -> Response:
        """The complete response of a request sent with L{start}."""
        self.stub.flush()
        response = self.successResultOf(pending)
        content = response.content()
        self.stub.flush()
        return Response(
            response.code, dict(response.headers.getAllRawHeaders()), self.successResultOf(content)
        )

    def answer(self, pending: Deferred[Any]) -> Any:
        """The decoded 200 answer of a request sent with L{start}, checked against its schema."""
        response = self.finish(pending)
        self.assertEqual(response.code, 200, response.body)
        answer = json.loads(response.body)
        self.assertConforms(answer, RESPONSE_SCHEMAS[self.paths[pending]])
        return answer

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Response:
        """Send a request that needs no child and return its response."""
        return self.finish(self.start(method, path, body, **kwargs))

    def post(self, path: str, body: Any) -> Any:
        """POST C{body}, expect 200 and return the decoded answer."""
        response = self.request("POST", path, body)
        self.assertEqual(response.code, 200, response.body)
        answer = json.loads(response.body)
        self.assertConforms(answer, RESPONSE_SCHEMAS[path])
        return answer

    def assertConforms(self, instance: Any, schema: str) -> None:  # noqa: N802 - unittest's naming
        """C{instance} is valid for component C{schema}."""
        _, problems = SCHEMAS.validate(schema, instance)
        self.assertEqual(problems, [], instance)

    def disconnect(self) -> None:
        """Every client connection goes away (the server sees the connection lost)."""
        for pump in list(self.stub._agent._pumps):
            pump.clientIO.loseConnection()
        self.stub.flush()
        for waiting in self.client_waits:
            # The client's own view of the lost connection is not under test.
            waiting.addErrback(lambda _: None)

    def stream(self, pending: Deferred[Any]) -> tuple[Any, list[bytes]]:
        """
        The response of a streamed request as it arrives: the response and
        the list its body chunks are appended to (after each L{flush}).
        """
        self.stub.flush()
        response = self.successResultOf(pending)
        chunks: list[bytes] = []
        self.collected = treq.collect(response, chunks.append)
        self.client_waits.append(self.collected)
        self.stub.flush()
        return response, chunks

    def lines(self, chunks: list[bytes]) -> list[dict[str, Any]]:
        """The NDJSON events received so far."""
        self.stub.flush()
        events = [json.loads(line) for line in b"".join(chunks).splitlines()]
        for event in events:
            self.assertConforms(event, "StreamEvent")
        return events

    def child(self, index: int = -1) -> FakeProcessTransport:
        return self.reactor.spawned[index]

    def problem(self, response: Response, status: int) -> dict[str, Any]:
        """Check that C{response} is a problem document with C{status}; return it."""
        self.assertEqual(response.code, status, response.body)
        self.assertEqual(response.header("Content-Type"), "application/problem+json")
        body: dict[str, Any] = json.loads(response.body)
        self.assertEqual(body["status"], status)
        self.assertNotIn("type", body)
        return body

    def session(self, session_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/v1/sessions/{session_id}")
        self.assertEqual(response.code, 200, response.body)
        body: dict[str, Any] = json.loads(response.body)
        self.assertConforms(body, "SessionInfo")
        return body
