"""
Tests for L{clinvk.testing.model_server}, the fake model vendor that the
real CLIs talk to in the real-CLI suite.

The requests go in memory, through L{StubTreq}, to the server's own root
resource, on a L{Clock}; only the dropped connection is also tried on a
real port of 127.0.0.1, where closing a socket can lose what was written.
"""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ResponseFailed

from clinvk.testing.model_server import (
    VENDOR_OF,
    ModelServer,
    RecordedRequest,
    Reply,
    ToolCall,
    _Root,
    dropped,
    failure,
    text,
    tool_call,
)
from tests.integration._processes import reactor

BASE = "http://127.0.0.1:8123"

# The path of each vendor's turn request.
TURN_PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/responses",
    "gemini": "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
}

ANTHROPIC_EVENTS = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]

OPENAI_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]

# What Gemini's CLI asks its next-speaker check for.
NEXT_SPEAKER_SCHEMA = {
    "type": "OBJECT",
    "properties": {
        "reasoning": {"type": "STRING", "description": "Why."},
        "next_speaker": {"type": "STRING", "enum": ["user", "model"], "description": "Who speaks next."},
    },
    "required": ["reasoning", "next_speaker"],
}


def turn_body(vendor: str, *user_texts: str, stream: bool = True) -> dict[str, Any]:
    """A turn request of C{vendor} with the user's messages C{user_texts}."""
    if vendor == "anthropic":
        return {
            "model": "claude-sonnet-4-5",
            "stream": stream,
            "messages": [{"role": "user", "content": [{"type": "text", "text": t}]} for t in user_texts],
        }
    if vendor == "openai":
        return {
            "model": "gpt-5.1-codex",
            "stream": True,
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}
                for t in user_texts
            ],
        }
    return {"contents": [{"role": "user", "parts": [{"text": t}]} for t in user_texts]}


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The C{event:}/C{data:} events of an Anthropic or OpenAI stream."""
    events = []
    for block in body.decode("utf-8").split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def gemini_chunks(body: bytes) -> list[dict[str, Any]]:
    """The C{data:} chunks of a Gemini stream."""
    chunks = []
    for block in body.decode("utf-8").split("\r\n\r\n"):
        if block:
            assert block.startswith("data: "), block
            chunks.append(json.loads(block[len("data: ") :]))
    return chunks


def stream_texts(vendor: str, body: bytes) -> list[str]:
    """The text deltas of a stream of C{vendor}."""
    if vendor == "gemini":
        return [
            part["text"]
            for chunk in gemini_chunks(body)
            for part in chunk["candidates"][0]["content"]["parts"]
            if "text" in part
        ]
    wanted = "content_block_delta" if vendor == "anthropic" else "response.output_text.delta"
    return [
        data["delta"]["text"] if vendor == "anthropic" else data["delta"]
        for name, data in sse_events(body)
        if name == wanted and (vendor == "openai" or data["delta"]["type"] == "text_delta")
    ]


class Answer:
    """A complete response: its status, its content type and its body."""

    def __init__(self, code: int, content_type: str | None, body: bytes) -> None:
        self.code = code
        self.content_type = content_type
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class ModelServerCase(SynchronousTestCase):
    """
    A model server on a L{Clock}, asked in memory.

    @ivar clock: The server's reactor.
    @ivar server: The model server.
    @ivar stub: The client.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.server = ModelServer(self.clock)
        self.stub: Any = StubTreq(_Root(self.server))

    def send(self, method: str, path: str, body: Any = None, **headers: str) -> Deferred[Any]:
        """Start a request; the response is not read."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        sent: Deferred[Any] = self.stub.request(
            method, BASE + path, data=data, headers={"content-type": "application/json", **headers}
        )
        self.stub.flush()
        return sent

    def read(self, sent: Deferred[Any]) -> Answer:
        """The complete response to a request C{send} started."""
        response = self.successResultOf(sent)
        reading = self.stub.content(response)
        self.stub.flush()
        content_type = response.headers.getRawHeaders(b"content-type", [None])[0]
        return Answer(
            response.code, content_type and content_type.decode("ascii"), self.successResultOf(reading)
        )

    def ask(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        """Make a request and read its complete response."""
        return self.read(self.send(method, path, body, **headers))

    def turn(self, vendor: str, *user_texts: str, stream: bool = True) -> Answer:
        """Ask C{vendor} for its answer to C{user_texts}."""
        return self.ask("POST", TURN_PATHS[vendor], turn_body(vendor, *user_texts, stream=stream))


class AnthropicTests(ModelServerCase):
    """The Anthropic Messages API, which C{claude} speaks."""

    def test_json(self) -> None:
        """A request without C{stream} gets the whole message as JSON."""
        self.server.script("anthropic", text("Four.", input_tokens=31))
        answer = self.turn("anthropic", "2+2?", stream=False)
        self.assertEqual((answer.code, answer.content_type), (200, "application/json"))
        message = answer.json()
        self.assertEqual(
            (message["type"], message["role"], message["model"]),
            ("message", "assistant", "claude-sonnet-4-5"),
        )
        self.assertEqual(message["content"], [{"type": "text", "text": "Four."}])
        self.assertEqual(message["stop_reason"], "end_turn")
        self.assertEqual(message["usage"], {"input_tokens": 31, "output_tokens": 1})

    def test_stream(self) -> None:
        """
        A request with C{stream} gets the events of the Messages stream,
        from C{message_start} to C{message_stop}, each named as its data's
        C{type}.
        """
        self.server.script("anthropic", text("Four.", input_tokens=31))
        answer = self.turn("anthropic", "2+2?")
        self.assertEqual((answer.code, answer.content_type), (200, "text/event-stream"))
        events = sse_events(answer.body)
        self.assertEqual([name for name, _ in events], ANTHROPIC_EVENTS)
        self.assertEqual([data["type"] for _, data in events], ANTHROPIC_EVENTS)
        start = events[0][1]["message"]
        self.assertEqual((start["usage"]["input_tokens"], start["content"]), (31, []))
        self.assertEqual(events[1][1]["content_block"], {"type": "text", "text": ""})
        self.assertEqual(events[3][1]["delta"], {"type": "text_delta", "text": "Four."})
        self.assertEqual(events[5][1]["delta"]["stop_reason"], "end_turn")
        self.assertEqual(events[5][1]["usage"], {"output_tokens": 1})

    def test_chunks(self) -> None:
        """The answer comes in C{chunks} text deltas of one content block."""
        self.server.script("claude", text("Streamed hello, world.", chunks=3))
        answer = self.turn("anthropic", "hi")
        self.assertEqual(stream_texts("anthropic", answer.body), ["Streamed", " hello, ", "world."])
        names = [name for name, _ in sse_events(answer.body)]
        self.assertEqual(names.count("content_block_start"), 1)
        self.assertEqual(names[-2:], ["message_delta", "message_stop"])

    def test_tool_call(self) -> None:
        """
        A tool call is a C{tool_use} block whose input comes as an
        C{input_json_delta}, and the message stops for C{tool_use}.
        """
        self.server.script("anthropic", tool_call("Bash", {"command": "ls -l"}))
        events = sse_events(self.turn("anthropic", "list").body)
        self.assertEqual(
            [name for name, _ in events],
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ],
        )
        block = events[1][1]
        self.assertEqual(
            (block["index"], block["content_block"]["type"], block["content_block"]["name"]),
            (0, "tool_use", "Bash"),
        )
        self.assertTrue(block["content_block"]["id"].startswith("toolu_"))
        self.assertEqual(block["content_block"]["input"], {})
        delta = events[2][1]["delta"]
        self.assertEqual(delta["type"], "input_json_delta")
        self.assertEqual(json.loads(delta["partial_json"]), {"command": "ls -l"})
        self.assertEqual(events[4][1]["delta"]["stop_reason"], "tool_use")

    def test_text_then_tool_call(self) -> None:
        """A tool call after some text is the second content block."""
        self.server.script("anthropic", tool_call("Bash", {"command": "ls"}, text="Let me look."))
        events = sse_events(self.turn("anthropic", "list").body)
        starts = [data for name, data in events if name == "content_block_start"]
        self.assertEqual(
            [(s["index"], s["content_block"]["type"]) for s in starts], [(0, "text"), (1, "tool_use")]
        )

    def test_tool_call_json(self) -> None:
        """Without C{stream}, the tool call is a C{tool_use} block with its input."""
        self.server.script("anthropic", tool_call("Bash", {"command": "ls"}))
        message = self.turn("anthropic", "list", stream=False).json()
        [block] = message["content"]
        self.assertEqual(
            (block["type"], block["name"], block["input"]), ("tool_use", "Bash", {"command": "ls"})
        )
        self.assertEqual(message["stop_reason"], "tool_use")

    def test_count_tokens(self) -> None:
        """C{count_tokens} answers a count, and is no turn: it takes no reply."""
        self.server.script("anthropic", text("Kept."))
        answer = self.ask("POST", "/v1/messages/count_tokens", turn_body("anthropic", "hi"))
        self.assertEqual(answer.code, 200)
        self.assertIsInstance(answer.json()["input_tokens"], int)
        self.assertGreater(answer.json()["input_tokens"], 0)
        self.assertEqual(stream_texts("anthropic", self.turn("anthropic", "hi").body), ["Kept."])
        self.assertEqual(
            [(r.path, r.turn) for r in self.server.requests],
            [("/v1/messages/count_tokens", False), ("/v1/messages", True)],
        )


class OpenAITests(ModelServerCase):
    """The OpenAI Responses API, which C{codex} speaks."""

    def test_stream(self) -> None:
        """
        A turn gets the events of the Responses stream, from
        C{response.created} to C{response.completed} with the usage, each
        named as its data's C{type} and numbered in sequence.
        """
        self.server.script("openai", text("Four.", input_tokens=31))
        answer = self.turn("openai", "2+2?")
        self.assertEqual((answer.code, answer.content_type), (200, "text/event-stream"))
        events = sse_events(answer.body)
        self.assertEqual([name for name, _ in events], OPENAI_EVENTS)
        self.assertEqual([data["type"] for _, data in events], OPENAI_EVENTS)
        self.assertEqual([data["sequence_number"] for _, data in events], list(range(len(events))))
        created = events[0][1]["response"]
        self.assertEqual((created["status"], created["model"]), ("in_progress", "gpt-5.1-codex"))
        self.assertEqual(events[5][1]["text"], "Four.")
        completed = events[-1][1]["response"]
        self.assertEqual(completed["id"], created["id"])
        self.assertEqual(completed["status"], "completed")
        [item] = completed["output"]
        self.assertEqual((item["type"], item["role"], item["status"]), ("message", "assistant", "completed"))
        self.assertEqual(item["content"], [{"type": "output_text", "text": "Four.", "annotations": []}])
        self.assertEqual(
            completed["usage"],
            {
                "input_tokens": 31,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 32,
            },
        )

    def test_created_at(self) -> None:
        """The response's creation time is the server's clock's."""
        self.clock.advance(1_700_000_000)
        events = sse_events(self.turn("openai", "hi").body)
        self.assertEqual(events[0][1]["response"]["created_at"], 1_700_000_000)

    def test_chunks(self) -> None:
        """The answer comes in C{chunks} C{response.output_text.delta} events."""
        self.server.script("codex", text("Streamed hello, world.", chunks=3))
        answer = self.turn("openai", "hi")
        self.assertEqual(stream_texts("openai", answer.body), ["Streamed", " hello, ", "world."])
        self.assertEqual(sse_events(answer.body)[-1][0], "response.completed")

    def test_tool_call(self) -> None:
        """A tool call is a C{function_call} output item with its arguments as JSON."""
        self.server.script("openai", tool_call("shell_command", {"command": ["ls"]}))
        events = sse_events(self.turn("openai", "list").body)
        self.assertEqual(
            [name for name, _ in events],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.output_item.done",
                "response.completed",
            ],
        )
        added, done = events[2][1], events[3][1]
        self.assertEqual((added["item"]["status"], added["item"]["arguments"]), ("in_progress", ""))
        call = done["item"]
        self.assertEqual(
            (call["type"], call["name"], call["status"]), ("function_call", "shell_command", "completed")
        )
        self.assertTrue(call["call_id"].startswith("call_"))
        self.assertEqual(json.loads(call["arguments"]), {"command": ["ls"]})
        self.assertEqual(events[-1][1]["response"]["output"], [call])

    def test_models(self) -> None:
        """C{GET /v1/models} lists no model, and is no turn."""
        answer = self.ask("GET", "/v1/models")
        self.assertEqual((answer.code, answer.json()), (200, {"object": "list", "data": []}))
        self.assertEqual(self.server.turns(), [])


class GeminiTests(ModelServerCase):
    """The Gemini API, which C{gemini} speaks."""

    def test_stream(self) -> None:
        """
        C{streamGenerateContent} answers C{data:} chunks of responses, the
        last of which alone has C{finishReason: STOP}.
        """
        self.server.script("gemini", text("Streamed hello, world.", chunks=3, input_tokens=31))
        answer = self.turn("gemini", "hi")
        self.assertEqual((answer.code, answer.content_type), (200, "text/event-stream"))
        chunks = gemini_chunks(answer.body)
        self.assertEqual(stream_texts("gemini", answer.body), ["Streamed", " hello, ", "world."])
        self.assertEqual(
            [chunk["candidates"][0].get("finishReason") for chunk in chunks], [None, None, "STOP"]
        )
        for chunk in chunks:
            self.assertEqual(chunk["candidates"][0]["content"]["role"], "model")
            self.assertEqual(chunk["modelVersion"], "gemini-2.5-pro")
            self.assertEqual(
                chunk["usageMetadata"],
                {"promptTokenCount": 31, "candidatesTokenCount": 5, "totalTokenCount": 36},
            )

    def test_one_chunk(self) -> None:
        """An answer in one delta is one chunk, which stops."""
        self.server.script("gemini", text("Four."))
        [chunk] = gemini_chunks(self.turn("gemini", "2+2?").body)
        self.assertEqual(chunk["candidates"][0]["content"]["parts"], [{"text": "Four."}])
        self.assertEqual(chunk["candidates"][0]["finishReason"], "STOP")

    def test_tool_call(self) -> None:
        """A tool call is a C{functionCall} part, in the last chunk."""
        self.server.script("gemini", tool_call("run_shell_command", {"command": "ls"}))
        [chunk] = gemini_chunks(self.turn("gemini", "list").body)
        candidate = chunk["candidates"][0]
        self.assertEqual(
            candidate["content"]["parts"],
            [{"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}}],
        )
        self.assertEqual(candidate["finishReason"], "STOP")

    def test_generate_content(self) -> None:
        """A C{generateContent} turn gets the whole response as JSON."""
        self.server.script("gemini", text("Four."))
        answer = self.ask(
            "POST", "/v1beta/models/gemini-2.5-pro:generateContent", turn_body("gemini", "2+2?")
        )
        self.assertEqual((answer.code, answer.content_type), (200, "application/json"))
        candidate = answer.json()["candidates"][0]
        self.assertEqual(
            (candidate["content"]["parts"], candidate["finishReason"]), ([{"text": "Four."}], "STOP")
        )
        self.assertEqual(len(self.server.turns("gemini")), 1)

    def housekeeping(self, schema_key: str, schema: dict[str, Any]) -> Any:
        """What a housekeeping C{generateContent} with C{schema} gets, parsed."""
        body = {
            **turn_body("gemini", "hi"),
            "generationConfig": {"responseMimeType": "application/json", schema_key: schema},
        }
        answer = self.ask("POST", "/v1beta/models/gemini-2.5-flash:generateContent", body)
        self.assertEqual((answer.code, answer.content_type), (200, "application/json"))
        candidate = answer.json()["candidates"][0]
        self.assertEqual(candidate["finishReason"], "STOP")
        [part] = candidate["content"]["parts"]
        return json.loads(part["text"])

    def test_housekeeping(self) -> None:
        """
        A C{generateContent} call asking for JSON is the CLI's own: it is
        answered from its schema, takes no scripted reply and is no turn.
        """
        self.server.script("gemini", text("Kept."))
        self.assertEqual(
            self.housekeeping("responseJsonSchema", NEXT_SPEAKER_SCHEMA),
            {"reasoning": "", "next_speaker": "user"},
        )
        router = {
            "type": "OBJECT",
            "properties": {
                "reasoning": {"type": "STRING"},
                "model_choice": {"type": "STRING", "enum": ["flash", "pro"]},
                "confidence": {"type": "NUMBER", "minimum": 0},
                "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
                "final": {"type": "BOOLEAN"},
            },
        }
        self.assertEqual(
            self.housekeeping("responseSchema", router),
            {"reasoning": "", "model_choice": "flash", "confidence": 0, "tags": [], "final": False},
        )
        self.assertEqual(stream_texts("gemini", self.turn("gemini", "hi").body), ["Kept."])
        self.assertEqual([r.turn for r in self.server.requests], [False, False, True])
        self.assertEqual([r.reply for r in self.server.requests[:2]], [None, None])

    def test_count_tokens(self) -> None:
        """C{countTokens} answers a count, and is no turn."""
        answer = self.ask("POST", "/v1beta/models/gemini-2.5-pro:countTokens", turn_body("gemini", "hi"))
        self.assertEqual(answer.code, 200)
        self.assertGreater(answer.json()["totalTokens"], 0)
        self.assertEqual(self.server.turns(), [])


class ErrorTests(ModelServerCase):
    """Scripted HTTP errors, in each vendor's error body."""

    STATUSES = {
        400: ("invalid_request_error", "INVALID_ARGUMENT"),
        401: ("authentication_error", "UNAUTHENTICATED"),
        429: ("rate_limit_error", "RESOURCE_EXHAUSTED"),
        500: ("api_error", "INTERNAL"),
    }

    def errors(self, vendor: str) -> list[tuple[int, Any]]:
        """The status and body of each scripted error of C{vendor}, in order."""
        self.server.script(vendor, *(failure(status, f"bad {status}") for status in self.STATUSES))
        answers = [self.turn(vendor, "hi") for _ in self.STATUSES]
        for answer in answers:
            self.assertEqual(answer.content_type, "application/json")
        return [(answer.code, answer.json()) for answer in answers]

    def test_anthropic(self) -> None:
        """Anthropic's errors are C{{"type": "error", "error": {type, message}}}."""
        self.assertEqual(
            self.errors("anthropic"),
            [
                (status, {"type": "error", "error": {"type": kind, "message": f"bad {status}"}})
                for status, (kind, _) in self.STATUSES.items()
            ],
        )

    def test_openai(self) -> None:
        """OpenAI's errors are C{{"error": {message, type, param, code}}}."""
        self.assertEqual(
            self.errors("openai"),
            [
                (status, {"error": {"message": f"bad {status}", "type": kind, "param": None, "code": None}})
                for status, (kind, _) in self.STATUSES.items()
            ],
        )

    def test_gemini(self) -> None:
        """Gemini's errors are C{{"error": {code, message, status}}}."""
        self.assertEqual(
            self.errors("gemini"),
            [
                (status, {"error": {"code": status, "message": f"bad {status}", "status": name}})
                for status, (_, name) in self.STATUSES.items()
            ],
        )

    def test_default_message(self) -> None:
        """An error scripted without a message gets one."""
        self.server.script("anthropic", failure(503))
        answer = self.turn("anthropic", "hi", stream=False)
        self.assertEqual(
            (answer.code, answer.json()["error"]),
            (503, {"type": "overloaded_error", "message": "scripted error 503"}),
        )

    def test_unknown_route(self) -> None:
        """
        A route the server does not know is a 404 in the error body of the
        vendor its path belongs to, recorded as no turn.
        """
        answer = self.ask("POST", "/v2/unknown", {})
        self.assertEqual(answer.code, 404)
        self.assertEqual(
            answer.json(),
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": "no such route: POST /v2/unknown"},
            },
        )
        answer = self.ask("POST", "/v1beta/models/gemini-2.5-pro:embedContent", {})
        self.assertEqual(answer.code, 404)
        self.assertEqual(answer.json()["error"]["status"], "NOT_FOUND")
        self.assertEqual(
            [(r.path, r.vendor, r.turn, r.reply) for r in self.server.requests],
            [
                ("/v2/unknown", "anthropic", False, None),
                ("/v1beta/models/gemini-2.5-pro:embedContent", "gemini", False, None),
            ],
        )


class DroppedTests(ModelServerCase):
    """A stream whose connection is dropped before it completes."""

    def partial(self, vendor: str) -> bytes:
        """
        What the client of a turn of C{vendor} receives before its
        response fails.
        """
        response = self.successResultOf(self.send("POST", TURN_PATHS[vendor], turn_body(vendor, "hi")))
        self.assertEqual(response.code, 200)
        received: list[bytes] = []
        reading = self.stub.collect(response, received.append)
        self.stub.flush()
        self.failureResultOf(reading, ResponseFailed)
        return b"".join(received)

    def test_anthropic(self) -> None:
        """An Anthropic stream breaks after C{after} deltas, without C{message_stop}."""
        self.server.script("anthropic", dropped("Once upon a time", chunks=4, after=2))
        body = self.partial("anthropic")
        self.assertEqual(stream_texts("anthropic", body), ["Once", " upo"])
        names = [name for name, _ in sse_events(body)]
        self.assertNotIn("message_stop", names)
        self.assertNotIn("message_delta", names)

    def test_openai(self) -> None:
        """An OpenAI stream breaks after C{after} deltas, without C{response.completed}."""
        self.server.script("openai", dropped("Once upon a time", chunks=4, after=1))
        body = self.partial("openai")
        self.assertEqual(stream_texts("openai", body), ["Once"])
        self.assertNotIn("response.completed", [name for name, _ in sse_events(body)])

    def test_gemini(self) -> None:
        """A Gemini stream breaks after C{after} chunks, none with C{finishReason}."""
        self.server.script("gemini", dropped("Once upon a time", chunks=4, after=3))
        body = self.partial("gemini")
        self.assertEqual(stream_texts("gemini", body), ["Once", " upo", "n a "])
        self.assertEqual([c["candidates"][0].get("finishReason") for c in gemini_chunks(body)], [None] * 3)

    def test_never_completes(self) -> None:
        """
        A dropped stream with fewer deltas than C{after} breaks before its
        last one: a dropped stream never completes.
        """
        self.server.script("gemini", dropped("short", chunks=1, after=5))
        self.assertEqual(self.partial("gemini"), b"")
        self.server.script("anthropic", dropped("Once upon", chunks=2, after=5))
        body = self.partial("anthropic")
        self.assertEqual(stream_texts("anthropic", body), ["Once "])
        self.assertNotIn("message_stop", [name for name, _ in sse_events(body)])

    def test_next_turn(self) -> None:
        """The turn after a dropped one is answered as usual."""
        self.server.script("openai", dropped("one two", chunks=2), text("Again."))
        self.partial("openai")
        self.assertEqual(stream_texts("openai", self.turn("openai", "hi").body), ["Again."])


class _Reader(Protocol):
    """Reads everything until the connection is lost."""

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.lost.callback(None)


class DroppedOverTCPTests(TestCase):
    """
    A dropped stream on a real port of 127.0.0.1, where aborting the
    connection would throw away what was written but not yet sent.
    """

    async def test_dropped(self) -> None:
        """The client gets the response's head and the deltas before the drop."""
        server = ModelServer(reactor)
        server.listen()
        self.addCleanup(server.stop)
        self.assertTrue(server.url.startswith("http://127.0.0.1:"))
        server.script("claude", dropped("Once upon a time", chunks=4, after=1))
        reader = _Reader()
        port = int(server.url.rsplit(":", 1)[1])
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), reader)
        body = json.dumps(turn_body("anthropic", "hi")).encode()
        assert reader.transport is not None
        reader.transport.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await reader.lost
        head, _, chunked = reader.received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertIn(b'"text": "Once"', chunked)
        self.assertNotIn(b'"text": " upo"', chunked)
        self.assertNotIn(b"message_stop", chunked)
        # No terminating chunk.
        self.assertFalse(chunked.endswith(b"0\r\n\r\n"))


class SlowFirstByteTests(ModelServerCase):
    """A reply with a C{first_byte_delay}."""

    def test_nothing_until_the_clock_advances(self) -> None:
        """Nothing of the response comes before the delay has passed on the clock."""
        self.server.script("openai", text("Late.", first_byte_delay=2.5))
        sent = self.send("POST", TURN_PATHS["openai"], turn_body("openai", "hi"))
        self.assertNoResult(sent)
        self.assertEqual(len(self.server.turns()), 1)
        self.clock.advance(2.4)
        self.stub.flush()
        self.assertNoResult(sent)
        self.clock.advance(0.1)
        self.stub.flush()
        answer = self.read(sent)
        self.assertEqual(stream_texts("openai", answer.body), ["Late."])

    def test_error(self) -> None:
        """A scripted error may come late too."""
        self.server.script("anthropic", Reply(status=429, message="slow down", first_byte_delay=1.0))
        sent = self.send("POST", TURN_PATHS["anthropic"], turn_body("anthropic", "hi"))
        self.assertNoResult(sent)
        self.clock.advance(1.0)
        self.stub.flush()
        self.assertEqual(self.read(sent).code, 429)

    def test_client_gives_up(self) -> None:
        """
        A client that disconnects during the delay gets nothing, and
        leaves nothing pending on the clock.
        """
        self.server.script("gemini", text("Late.", first_byte_delay=5.0))
        sent = self.send("POST", TURN_PATHS["gemini"], turn_body("gemini", "hi"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        sent.cancel()
        self.stub.flush()
        self.failureResultOf(sent)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(5.0)


class DefaultReplyTests(ModelServerCase):
    """What a turn nothing was scripted for gets."""

    def test_quotes_last_user_text(self) -> None:
        """The default answer quotes the last user text, in every vendor's format."""
        for vendor in TURN_PATHS:
            answer = self.turn(vendor, "first question", "  second question \n")
            self.assertEqual(
                "".join(stream_texts(vendor, answer.body)), "Model answer to: second question", vendor
            )

    def test_string_content(self) -> None:
        """Anthropic's string content and OpenAI's string input are user texts too."""
        answer = self.ask(
            "POST", "/v1/messages", {"messages": [{"role": "user", "content": "plain"}], "stream": False}
        )
        self.assertEqual(answer.json()["content"][0]["text"], "Model answer to: plain")
        answer = self.ask("POST", "/v1/responses", {"input": "bare"})
        self.assertEqual(stream_texts("openai", answer.body), ["Model answer to: bare"])

    def test_truncated(self) -> None:
        """A long user text is quoted up to 80 characters."""
        self.assertEqual(Reply.default("x" * 100).text, "Model answer to: " + "x" * 80)

    def test_no_user_text(self) -> None:
        """A turn without user text gets an answer all the same."""
        answer = self.ask("POST", "/v1/messages", {"messages": [], "stream": False})
        self.assertEqual(answer.json()["content"][0]["text"], "Model answer to: ")


class ScriptTests(ModelServerCase):
    """Scripting replies, and the record of requests."""

    def test_by_backend(self) -> None:
        """A script for a backend's name goes to the vendor its CLI speaks."""
        self.assertEqual(VENDOR_OF, {"claude": "anthropic", "codex": "openai", "gemini": "gemini"})
        self.server.script("claude", text("From Claude."))
        self.server.script("codex", text("From Codex."))
        self.server.script("gemini", text("From Gemini."))
        self.assertEqual(stream_texts("gemini", self.turn("gemini", "hi").body), ["From Gemini."])
        self.assertEqual(stream_texts("openai", self.turn("openai", "hi").body), ["From Codex."])
        self.assertEqual(stream_texts("anthropic", self.turn("anthropic", "hi").body), ["From Claude."])

    def test_in_order(self) -> None:
        """The replies of a vendor are taken in order; then come default ones."""
        self.server.script("anthropic", text("One."), text("Two."))
        self.server.script("anthropic", text("Three."))
        texts = [stream_texts("anthropic", self.turn("anthropic", "q").body) for _ in range(4)]
        self.assertEqual(texts, [["One."], ["Two."], ["Three."], ["Model answer to: q"]])

    def test_record(self) -> None:
        """
        Every request is recorded, with its lower-cased headers, its parsed
        body and the reply it took; L{ModelServer.turns} picks the turns,
        of a vendor or backend if asked.
        """
        reply = text("Four.")
        self.server.script("claude", reply)
        self.ask("POST", "/v1/messages/count_tokens", turn_body("anthropic", "2+2?"))
        self.ask("POST", "/v1/messages", turn_body("anthropic", "2+2?"), **{"X-Api-Key": "sk-test"})
        self.turn("openai", "hello")
        self.turn("gemini", "hallo")
        first, second, third, fourth = self.server.requests
        self.assertEqual(
            first,
            RecordedRequest(
                "POST",
                "/v1/messages/count_tokens",
                first.headers,
                turn_body("anthropic", "2+2?"),
                "anthropic",
                False,
                None,
            ),
        )
        self.assertEqual(
            (second.method, second.path, second.turn, second.reply), ("POST", "/v1/messages", True, reply)
        )
        self.assertEqual(second.headers["x-api-key"], "sk-test")
        self.assertEqual(second.headers["content-type"], "application/json")
        self.assertEqual(second.body, turn_body("anthropic", "2+2?"))
        self.assertEqual(
            [r.vendor for r in self.server.requests], ["anthropic", "anthropic", "openai", "gemini"]
        )
        self.assertEqual(self.server.turns(), [second, third, fourth])
        self.assertEqual(self.server.turns("claude"), [second])
        self.assertEqual(self.server.turns("anthropic"), [second])
        self.assertEqual(self.server.turns("codex"), [third])
        self.assertEqual(self.server.turns("gemini"), [fourth])
        self.assertEqual(third.reply, Reply.default("hello"))

    def test_user_texts(self) -> None:
        """A recorded request's user texts, earliest first, whatever the vendor."""
        for vendor in TURN_PATHS:
            self.turn(vendor, "one", "two")
        self.assertEqual([r.user_texts() for r in self.server.requests], [["one", "two"]] * 3)

    def test_user_texts_only_users(self) -> None:
        """Assistant messages, tool results and non-text parts are no user texts."""
        body = {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": [{"type": "text", "text": "answer"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "output"},
                        {"type": "text", "text": "two"},
                    ],
                },
            ],
            "stream": False,
        }
        self.ask("POST", "/v1/messages", body)
        self.ask("POST", "/v1/messages", "not json")
        self.assertEqual([r.user_texts() for r in self.server.requests], [["one", "two"], []])

    def test_root(self) -> None:
        """C{GET /} and C{HEAD /} answer 200, and are no turns."""
        answer = self.ask("GET", "/")
        self.assertEqual((answer.code, answer.content_type, answer.body), (200, "text/plain", b"ok"))
        answer = self.ask("HEAD", "/")
        self.assertEqual((answer.code, answer.body), (200, b""))
        self.assertEqual(
            [(r.method, r.turn) for r in self.server.requests], [("GET", False), ("HEAD", False)]
        )

    def test_always(self) -> None:
        """
        L{ModelServer.always} answers every turn that finds its queue empty,
        after the queue's replies, until it is taken back.
        """
        self.server.script("claude", text("First."))
        self.server.always("claude", failure(400, "No."))
        self.assertEqual(stream_texts("anthropic", self.turn("anthropic", "hi").body), ["First."])
        for _ in range(3):
            self.assertEqual(self.turn("anthropic", "hi").code, 400)
        self.assertEqual(stream_texts("openai", self.turn("openai", "hi").body), ["Model answer to: hi"])
        self.server.always("claude", None)
        self.assertEqual(
            stream_texts("anthropic", self.turn("anthropic", "hi").body), ["Model answer to: hi"]
        )

    def test_reset(self) -> None:
        """L{ModelServer.reset} forgets the record and every reply not taken."""
        self.server.always("gemini", failure(500))
        self.server.script("claude", text("Gone."))
        self.server.script("gemini", text("Gone too."))
        self.turn("openai", "hi")
        self.server.reset()
        self.assertEqual((self.server.requests, self.server.turns()), ([], []))
        self.assertEqual(stream_texts("gemini", self.turn("gemini", "hi").body), ["Model answer to: hi"])
        self.assertEqual(
            stream_texts("anthropic", self.turn("anthropic", "hi").body), ["Model answer to: hi"]
        )
        self.assertEqual(len(self.server.requests), 2)


class ReplyTests(SynchronousTestCase):
    """The L{Reply} helpers."""

    def test_pieces(self) -> None:
        """The answer is cut into at most C{chunks} pieces, and always at least one."""
        self.assertEqual(text("abcdefg", chunks=3).pieces(), ["abc", "def", "g"])
        self.assertEqual(text("ab", chunks=5).pieces(), ["a", "b"])
        self.assertEqual(text("ab", chunks=0).pieces(), ["ab"])
        self.assertEqual(text("").pieces(), [""])

    def test_helpers(self) -> None:
        """C{text}, C{tool_call}, C{failure} and C{dropped} build replies."""
        self.assertEqual(text("a", chunks=2, input_tokens=5), Reply(text="a", chunks=2, input_tokens=5))
        self.assertEqual(
            tool_call("Bash", {"command": "ls"}), Reply(tool_call=ToolCall("Bash", {"command": "ls"}))
        )
        self.assertEqual(failure(401), Reply(status=401, message="scripted error 401"))
        self.assertEqual(dropped("abc", chunks=3, after=2), Reply(text="abc", chunks=3, drop_after=2))
