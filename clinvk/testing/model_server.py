# -*- test-case-name: tests.testing.test_model_server -*-
"""
A model server on 127.0.0.1 that the real CLIs talk to instead of their
vendors, so that the real C{claude}, C{codex} and C{gemini} can be driven
offline in tests (docs/backends.md#real-cli-suite).

It speaks the three wire formats the CLIs use:

  - Anthropic Messages (C{claude}): C{POST /v1/messages}, as SSE when the
    request asks for C{stream}, and C{/v1/messages/count_tokens};
  - OpenAI Responses (C{codex}): C{POST /v1/responses} as SSE;
  - Gemini (C{gemini}): C{POST /v1beta/models/M:streamGenerateContent}
    (SSE), C{:generateContent} and C{:countTokens}.

A test scripts what the model says with L{ModelServer.script}: each turn
request (a request for the model's answer, as opposed to the CLI's
housekeeping calls) takes the next L{Reply} of its vendor's queue, and
an empty queue answers with L{Reply.default}, which quotes the last user
text.  Every request is recorded (L{ModelServer.requests}), so a test can
assert what the CLI sent.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from attrs import field, frozen

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

VENDORS = ("anthropic", "openai", "gemini")

# Which backend's CLI speaks which vendor's wire format.
VENDOR_OF = {"claude": "anthropic", "codex": "openai", "gemini": "gemini"}


@frozen
class ToolCall:
    """
    A call of one of the CLI's tools (its own, or an MCP server's), which
    the CLI runs before it asks the model again with the tool's result.

    @ivar name: The tool's name as the CLI declares it (C{Bash},
        C{shell_command}, C{mcp__clinvk__get_weather}, ...).
    @ivar arguments: Its arguments.
    @ivar namespace: The namespace tool it belongs to, for a Responses
        C{function_call} (codex offers an MCP server's tools in one).
    """

    name: str
    arguments: dict[str, Any]
    namespace: str = ""


@frozen
class Reply:
    """
    What the model answers to one turn request.

    @ivar text: The answer.
    @ivar chunks: How many deltas the answer is streamed in.
    @ivar tool_call: A tool call made instead of (after) the text.
    @ivar more_calls: More calls made with it, in the same message (the
        calls of one step, which a CLI may make at once).
    @ivar status: An HTTP error status to answer with instead (400, 401,
        429, 500, ...), with C{message} as the error's message.
    @ivar drop_after: Drop the connection after this many deltas of the
        text, and never later than before its last one, so that the stream
        never completes.
    @ivar first_byte_delay: Seconds before the first byte of the answer.
    @ivar input_tokens: The input tokens reported.
    """

    text: str = ""
    chunks: int = 1
    tool_call: ToolCall | None = None
    more_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    message: str = ""
    drop_after: int | None = None
    first_byte_delay: float = 0.0
    input_tokens: int = 20

    @classmethod
    def default(cls, user_text: str) -> Reply:
        """The answer to a turn nothing was scripted for."""
        return cls(text=f"Model answer to: {user_text.strip()[:80]}")

    def pieces(self) -> list[str]:
        """The answer cut into L{chunks} deltas."""
        count = max(1, self.chunks)
        size = max(1, -(-len(self.text) // count))
        return [self.text[i : i + size] for i in range(0, len(self.text), size)] or [""]

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """Every call the reply makes."""
        return (self.tool_call, *self.more_calls) if self.tool_call else ()

    @property
    def output_tokens(self) -> int:
        return max(1, len(self.text) // 4)


def text(answer: str, chunks: int = 1, **extra: Any) -> Reply:
    """An answer streamed in C{chunks} deltas."""
    return Reply(text=answer, chunks=chunks, **extra)


def tool_call(name: str, arguments: dict[str, Any], namespace: str = "", **extra: Any) -> Reply:
    """A call of the CLI's tool C{name} (in C{namespace}, for a namespaced Responses tool)."""
    return Reply(tool_call=ToolCall(name, arguments, namespace), **extra)


def tool_calls(*calls: ToolCall, **extra: Any) -> Reply:
    """Calls of several tools in one message."""
    return Reply(tool_call=calls[0], more_calls=calls[1:], **extra)


def failure(status: int, message: str = "") -> Reply:
    """An HTTP error answer."""
    return Reply(status=status, message=message or f"scripted error {status}")


def dropped(answer: str, chunks: int = 4, after: int = 1) -> Reply:
    """
    A stream that breaks after C{after} of its C{chunks} deltas (at most
    all but the last), without its final event.
    """
    return Reply(text=answer, chunks=chunks, drop_after=after)


@frozen
class RecordedRequest:
    """One request the model server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    vendor: str
    turn: bool
    reply: Reply | None = field(default=None)

    def user_texts(self) -> list[str]:
        """The texts of the user's messages, earliest first, whatever the vendor."""
        return list(_user_texts(self.vendor, self.body))


def _texts_of(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                value = part.get("text")
                if isinstance(value, str) and part.get("type", "text") in ("text", "input_text"):
                    yield value


def _user_texts(vendor: str, body: Any) -> Iterator[str]:
    if not isinstance(body, dict):
        return
    if vendor == "anthropic":
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                yield from _texts_of(message.get("content"))
    elif vendor == "openai":
        items = body.get("input")
        if isinstance(items, str):
            yield items
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("role") == "user":
                yield from _texts_of(item.get("content"))
    else:
        for message in body.get("contents") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                for part in message.get("parts") or []:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        yield part["text"]


_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha|)/models/(?P<model>[^:/]+):(?P<method>[A-Za-z]+)$")

_ERROR_KINDS = {
    400: ("invalid_request_error", "INVALID_ARGUMENT"),
    401: ("authentication_error", "UNAUTHENTICATED"),
    403: ("permission_error", "PERMISSION_DENIED"),
    404: ("not_found_error", "NOT_FOUND"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("api_error", "INTERNAL"),
    503: ("overloaded_error", "UNAVAILABLE"),
    529: ("overloaded_error", "UNAVAILABLE"),
}


# How each CLI is pointed at a model server (docs/backends.md#real-cli-suite):
# codex reads its provider from $CODEX_HOME/config.toml,
# gemini its choice of API-key authentication from ~/.gemini/settings.json.
_CODEX_CONFIG = """\
model_provider = "clinvk-test"

[model_providers.clinvk-test]
name = "clinvk test model server"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "OPENAI_API_KEY"
"""

_GEMINI_SETTINGS = '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'


def cli_environment(url: str, home: str | os.PathLike[str]) -> dict[str, str]:
    """
    The environment variables that make the real CLIs talk to the model
    server at C{url} without a login, and nothing else beyond loopback;
    the files they also need are written under C{home}, which becomes
    their C{HOME} (and holds C{CODEX_HOME}).
    """
    home = Path(home)
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(_GEMINI_SETTINGS)
    codex_home = home / ".codex"
    codex_home.mkdir(exist_ok=True)
    (codex_home / "config.toml").write_text(_CODEX_CONFIG.format(url=url))
    return {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-model-server",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CODEX_HOME": str(codex_home),
        "OPENAI_API_KEY": "sk-model-server",
        "GEMINI_API_KEY": "model-server",
        "GOOGLE_GEMINI_BASE_URL": url,
    }


class ModelServer:
    """
    The model server: a script of replies per vendor, and a record of
    every request.

    @ivar requests: Every request received, earliest first.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._scripts: dict[str, deque[Reply]] = {vendor: deque() for vendor in VENDORS}
        self._always: dict[str, Reply] = {}
        self.requests: list[RecordedRequest] = []
        self._port: IListeningPort | None = None

    # -- scripting and inspection

    def script(self, vendor: str, *replies: Reply) -> None:
        """
        Queue C{replies} for the next turn requests of C{vendor} (or of the
        backend C{vendor}'s vendor: C{claude}, C{codex}, C{gemini}).
        """
        self._scripts[VENDOR_OF.get(vendor, vendor)].extend(replies)

    def always(self, vendor: str, reply: Reply | None) -> None:
        """
        Answer every turn request of C{vendor} (or backend) that finds its
        queue empty with C{reply}, or again with L{Reply.default} when
        C{reply} is L{None}: for an API that refuses whatever a CLI
        retries (how often differs from one CLI version to the next).
        """
        vendor = VENDOR_OF.get(vendor, vendor)
        if reply is None:
            self._always.pop(vendor, None)
        else:
            self._always[vendor] = reply

    def turns(self, vendor: str | None = None) -> list[RecordedRequest]:
        """The turn requests received, of C{vendor} (or backend) if given."""
        wanted = VENDOR_OF.get(vendor, vendor) if vendor else None
        return [request for request in self.requests if request.turn and wanted in (None, request.vendor)]

    def reset(self) -> None:
        """Forget the record, any reply not taken and every L{always}."""
        self.requests.clear()
        self._always.clear()
        for queue in self._scripts.values():
            queue.clear()

    # -- listening

    def listen(self, reactor: IReactorTCP | None = None) -> int:
        """Listen on a free port of 127.0.0.1; return the port."""
        listening = reactor or self._reactor
        site = Site(_Root(self), reactor=listening)
        site.displayTracebacks = False
        site.noisy = False
        self._port = listening.listenTCP(0, cast("ServerFactory", site), interface="127.0.0.1")
        return _port_number(self._port)

    def stop(self) -> Any:
        """Stop listening; returns what C{stopListening} returns."""
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None

    @property
    def url(self) -> str:
        assert self._port is not None, "the model server is not listening"
        return f"http://127.0.0.1:{_port_number(self._port)}"

    # -- answering

    def _next(self, vendor: str, body: Any) -> Reply:
        queue = self._scripts[vendor]
        if queue:
            return queue.popleft()
        if vendor in self._always:
            return self._always[vendor]
        texts = list(_user_texts(vendor, body))
        return Reply.default(texts[-1] if texts else "")

    def handle(self, request: Request) -> bytes | int:
        method = request.method.decode("ascii")
        path = request.path.decode("utf-8", "replace")
        raw = request.content.read() if request.content is not None else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {
            name.decode("latin-1").lower(): values[-1].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        vendor, kind, model = _classify(method, path)
        if kind == "gemini.generate" and _is_gemini_housekeeping(body):
            kind = "gemini.housekeeping"
        turn = kind in ("anthropic.messages", "openai.responses", "gemini.stream", "gemini.generate")
        reply = self._next(vendor, body) if turn else None
        self.requests.append(RecordedRequest(method, path, headers, body, vendor, turn, reply))
        if kind == "root":
            request.setHeader(b"content-type", b"text/plain")
            return b"ok"
        if kind == "anthropic.count_tokens":
            return _json(request, {"input_tokens": _count(body)})
        if kind == "gemini.count_tokens":
            return _json(request, {"totalTokens": _count(body)})
        if kind == "openai.models":
            return _json(request, {"object": "list", "data": []})
        if kind == "gemini.housekeeping":
            config = (body.get("generationConfig") if isinstance(body, dict) else None) or {}
            answer = json.dumps(_sample(config.get("responseJsonSchema") or config.get("responseSchema")))
            return _json(
                request, _gemini_response(model, Reply(text=answer), [_gemini_text_part(answer)], True)
            )
        if reply is None:
            request.setResponseCode(404)
            return _json(request, _error_body(vendor, 404, f"no such route: {method} {path}"))
        writer = _Writer(self._reactor, request, vendor, kind, model, reply, body)
        if reply.first_byte_delay:
            delayed = self._reactor.callLater(reply.first_byte_delay, writer.write)
            # A client that gives up first gets nothing (writing to its lost
            # connection would raise, in the reactor, when the delay ends).
            request.notifyFinish().addErrback(lambda _: delayed.cancel() if delayed.active() else None)
        else:
            writer.write()
        return NOT_DONE_YET


def _port_number(port: IListeningPort) -> int:
    """The number of the TCP port C{port} listens on."""
    host = port.getHost()
    assert isinstance(host, IPv4Address), host
    return host.port


def _classify(method: str, path: str) -> tuple[str, str, str]:
    """The vendor, the kind of call and the model of a request."""
    if path in ("/", ""):
        return "anthropic", "root", ""
    if path.endswith("/messages/count_tokens"):
        return "anthropic", "anthropic.count_tokens", ""
    if path.endswith("/messages"):
        return "anthropic", "anthropic.messages", ""
    if path.endswith("/responses"):
        return "openai", "openai.responses", ""
    if path.endswith("/models") and method == "GET":
        return "openai", "openai.models", ""
    found = _GEMINI_PATH.match(path)
    if found:
        model, call = found["model"], found["method"]
        if call == "streamGenerateContent":
            return "gemini", "gemini.stream", model
        if call == "generateContent":
            return "gemini", "gemini.generate", model
        if call == "countTokens":
            return "gemini", "gemini.count_tokens", model
        return "gemini", "unknown", model
    return "anthropic", "unknown", ""


def _is_gemini_housekeeping(body: Any) -> bool:
    """
    Whether a Gemini C{generateContent} call is the CLI's own (the model
    router, the next-speaker check): those ask for JSON output.
    """
    config = body.get("generationConfig") if isinstance(body, dict) else None
    return isinstance(config, dict) and config.get("responseMimeType") == "application/json"


def _sample(schema: Any) -> Any:
    """
    The smallest value of JSON Schema C{schema} (as Gemini's CLI writes
    them, with upper-case type names): what its housekeeping calls (the
    model router, the next-speaker check) parse, so that they succeed.
    """
    if not isinstance(schema, dict):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _sample(value) for name, value in properties.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "user" if "speaker" in str(schema.get("description", "")).lower() else ""


def _count(body: Any) -> int:
    return max(1, len(json.dumps(body)) // 4)


def _json(request: Request, value: Any) -> bytes:
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode("utf-8")


def _error_body(vendor: str, status: int, message: str) -> dict[str, Any]:
    anthropic_kind, gemini_status = _ERROR_KINDS.get(status, ("api_error", "UNKNOWN"))
    if vendor == "anthropic":
        return {"type": "error", "error": {"type": anthropic_kind, "message": message}}
    if vendor == "openai":
        return {"error": {"message": message, "type": anthropic_kind, "param": None, "code": None}}
    return {"error": {"code": status, "message": message, "status": gemini_status}}


def _gemini_text_part(value: str) -> dict[str, Any]:
    return {"text": value}


def _gemini_response(model: str, reply: Reply, parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if last:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": reply.input_tokens,
            "candidatesTokenCount": reply.output_tokens,
            "totalTokenCount": reply.input_tokens + reply.output_tokens,
        },
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:20],
    }


class _Writer:
    """Writes one scripted reply in its vendor's format."""

    def __init__(
        self,
        clock: IReactorTime,
        request: Request,
        vendor: str,
        kind: str,
        model: str,
        reply: Reply,
        body: Any,
    ) -> None:
        self._clock = clock
        self._request = request
        self._vendor = vendor
        self._kind = kind
        self._reply = reply
        self._body = body if isinstance(body, dict) else {}
        self._model = model or str(self._body.get("model", "model"))
        self._deltas = 0

    def write(self) -> None:
        request, reply = self._request, self._reply
        if reply.status != 200:
            request.setResponseCode(reply.status)
            request.write(_json(request, _error_body(self._vendor, reply.status, reply.message)))
            request.finish()
            return
        streaming = self._kind in ("openai.responses", "gemini.stream") or bool(self._body.get("stream"))
        if not streaming:
            request.write(_json(request, self._whole()))
            request.finish()
            return
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        events = {
            "anthropic": self._anthropic_events,
            "openai": self._openai_events,
            "gemini": self._gemini_events,
        }[self._vendor]()
        # A dropped stream breaks before its last delta at the latest, so
        # that it never completes.
        drop_at = None if reply.drop_after is None else min(reply.drop_after, len(reply.pieces()) - 1)
        for name, data in events:
            if name == "delta":
                if drop_at is not None and self._deltas >= drop_at:
                    # Gone mid-stream: no terminating chunk, no final event.
                    # The response's head goes out even if no event did,
                    # and the connection is closed after what was written
                    # is sent (aborting it would throw that away, so that
                    # the client would see no response at all).
                    request.write(b"")
                    request.loseConnection()
                    return
                self._deltas += 1
                continue
            if self._vendor == "gemini":
                request.write(b"data: " + json.dumps(data).encode() + b"\r\n\r\n")
            else:
                request.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        request.finish()

    # Each generator yields (event name, data); ("delta", None) marks the
    # point before each text delta, where a dropped stream breaks.

    def _whole(self) -> dict[str, Any]:
        reply = self._reply
        if self._vendor == "gemini":
            return _gemini_response(self._model, reply, self._gemini_parts(), True)
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [self._anthropic_tool_block(call, call.arguments) for call in reply.calls]
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": content,
            "stop_reason": "tool_use" if reply.tool_call else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
        }

    @staticmethod
    def _anthropic_tool_block(call: ToolCall, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": "toolu_" + uuid.uuid4().hex[:24],
            "name": call.name,
            "input": arguments,
        }

    def _anthropic_events(self) -> Iterator[tuple[str, Any]]:
        reply = self._reply
        message: dict[str, Any] = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
        }
        yield "message_start", {"type": "message_start", "message": message}
        first_call = 0
        if reply.text or not reply.tool_call:
            block = {"type": "text", "text": ""}
            yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
            yield "ping", {"type": "ping"}
            for piece in reply.pieces():
                yield "delta", None
                delta = {"type": "text_delta", "text": piece}
                yield "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            yield "content_block_stop", {"type": "content_block_stop", "index": 0}
            first_call = 1
        for index, call in enumerate(reply.calls, start=first_call):
            block = self._anthropic_tool_block(call, {})
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(call.arguments)}
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        stop_reason = "tool_use" if reply.tool_call else "end_turn"
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        yield "message_stop", {"type": "message_stop"}

    def _openai_events(self) -> Iterator[tuple[str, Any]]:
        reply = self._reply
        response_id = "resp_" + uuid.uuid4().hex[:24]
        sequence = iter(range(1_000_000))
        response: dict[str, Any] = {
            "id": response_id,
            "object": "response",
            "created_at": int(self._clock.seconds()),
            "status": "in_progress",
            "model": self._model,
            "output": [],
            "usage": None,
        }
        yield (
            "response.created",
            {"type": "response.created", "sequence_number": next(sequence), "response": response},
        )
        yield (
            "response.in_progress",
            {
                "type": "response.in_progress",
                "sequence_number": next(sequence),
                "response": response,
            },
        )
        output: list[dict[str, Any]] = []
        if reply.text or not reply.tool_call:
            item_id = "msg_" + uuid.uuid4().hex[:24]
            item: dict[str, Any] = {
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            where = {"item_id": item_id, "output_index": 0, "content_index": 0}
            yield (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(sequence),
                    "output_index": 0,
                    "item": item,
                },
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            yield (
                "response.content_part.added",
                {
                    "type": "response.content_part.added",
                    "sequence_number": next(sequence),
                    **where,
                    "part": part,
                },
            )
            for piece in reply.pieces():
                yield "delta", None
                yield (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": next(sequence),
                        **where,
                        "delta": piece,
                    },
                )
            yield (
                "response.output_text.done",
                {
                    "type": "response.output_text.done",
                    "sequence_number": next(sequence),
                    **where,
                    "text": reply.text,
                },
            )
            done_part = {"type": "output_text", "text": reply.text, "annotations": []}
            yield (
                "response.content_part.done",
                {
                    "type": "response.content_part.done",
                    "sequence_number": next(sequence),
                    **where,
                    "part": done_part,
                },
            )
            item = {**item, "status": "completed", "content": [done_part]}
            output.append(item)
            yield (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(sequence),
                    "output_index": 0,
                    "item": item,
                },
            )
        for made in reply.calls:
            call = {
                "id": "fc_" + uuid.uuid4().hex[:24],
                "type": "function_call",
                "status": "completed",
                "call_id": "call_" + uuid.uuid4().hex[:24],
                "name": made.name,
                "arguments": json.dumps(made.arguments),
            }
            if made.namespace:
                call["namespace"] = made.namespace
            index = len(output)
            yield (
                "response.output_item.added",
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(sequence),
                    "output_index": index,
                    "item": {**call, "status": "in_progress", "arguments": ""},
                },
            )
            output.append(call)
            yield (
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(sequence),
                    "output_index": index,
                    "item": call,
                },
            )
        usage = {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        completed = {**response, "status": "completed", "output": output, "usage": usage}
        yield (
            "response.completed",
            {
                "type": "response.completed",
                "sequence_number": next(sequence),
                "response": completed,
            },
        )

    def _gemini_parts(self) -> list[dict[str, Any]]:
        reply = self._reply
        parts: list[dict[str, Any]] = [_gemini_text_part(reply.text)] if reply.text else []
        parts += [{"functionCall": {"name": call.name, "args": call.arguments}} for call in reply.calls]
        return parts

    def _gemini_events(self) -> Iterator[tuple[str, Any]]:
        reply = self._reply
        pieces = reply.pieces() if reply.text or not reply.tool_call else []
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1 and not reply.tool_call
            yield "delta", None
            yield "data", _gemini_response(self._model, reply, [_gemini_text_part(piece)], last)
        if reply.calls:
            calls = [{"functionCall": {"name": call.name, "args": call.arguments}} for call in reply.calls]
            yield "data", _gemini_response(self._model, reply, calls, True)


class _Root(Resource):
    """Every path goes to the model server."""

    isLeaf = True

    def __init__(self, server: ModelServer) -> None:
        super().__init__()
        self._server = server

    def render(self, request: Request) -> bytes | int:
        return self._server.handle(request)


def main(argv: list[str] | None = None) -> None:
    """
    C{python -m clinvk.testing.model_server [PORT]}: serve until
    interrupted, printing each request as a JSON line, to try the real
    CLIs by hand.
    """
    import sys

    from twisted.internet import reactor as default_reactor  # noqa: TID251 (a program of its own)

    args = sys.argv[1:] if argv is None else argv
    server = ModelServer(default_reactor)
    site = Site(_Root(server))
    port = default_reactor.listenTCP(
        int(args[0]) if args else 0, cast("ServerFactory", site), interface="127.0.0.1"
    )
    print(f"model server on http://127.0.0.1:{_port_number(port)}", flush=True)
    original = server.handle

    def handle(request: Request) -> bytes | int:
        answer = original(request)
        recorded = server.requests[-1]
        print(
            json.dumps(
                {
                    "method": recorded.method,
                    "path": recorded.path,
                    "headers": recorded.headers,
                    "body": recorded.body,
                }
            ),
            flush=True,
        )
        return answer

    server.handle = handle  # type: ignore[method-assign]
    default_reactor.run()


if __name__ == "__main__":
    main()
