"""
Wire compatibility of C{/anthropic/v1} with the official C{anthropic} SDK
(docs/design/anthropic-api.md#anthropic-api, docs/design/decisions.md#d2-sdk-error-dialects,
docs/design/decisions.md#d5-stream-keepalive, docs/design/decisions.md#d9-token-streaming): the real
server, the fake CLIs, sync and async clients, JSON and SSE, for each of
the three backends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
from anthropic.types import RawMessageStreamEvent, TextBlock

from tests.integration._sdk_server import (
    ANTHROPIC_KEY,
    ANTHROPIC_MODELS,
    CLIENT_TIMEOUT,
    CRASH_TEXT,
    INPUT_TOKENS,
    SDKServerTestCase,
    off_reactor,
    output_tokens,
    pieces,
    sse_lines,
)

MESSAGE_ID = r"^msg_[0-9a-f]{24}$"

ANSWER = "Tick Tack Tock"

EVENT_TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def streamed_prompt(backend: str, chunks: int = 3) -> str:
    """A prompt that makes the fake stream L{ANSWER} in C{chunks} pieces."""
    return f"#fake chunks={chunks}\n#fake-answer {ANSWER}\nCount for {backend}"


def text_of(message: anthropic.types.Message) -> str:
    """The text of the one text block of C{message}."""
    [block] = message.content
    assert isinstance(block, TextBlock), block
    return block.text


class AnthropicConformanceTests(SDKServerTestCase):
    """The Anthropic SDK against a server with all three fakes."""

    def check_events(self, events: list[RawMessageStreamEvent], model: str, backend: str) -> None:
        """
        C{events} are the stream of L{streamed_prompt} on C{backend}: one
        text block whose deltas are the CLI's pieces, C{end_turn}, the
        usage the CLI reported.
        """
        self.assertEqual([event.type for event in events], EVENT_TYPES)
        start = events[0]
        assert start.type == "message_start"
        self.assertRegex(start.message.id, MESSAGE_ID)
        self.assertEqual(
            (start.message.type, start.message.role, start.message.content, start.message.model),
            ("message", "assistant", [], model),
        )
        block_start = events[1]
        assert block_start.type == "content_block_start"
        self.assertEqual(block_start.index, 0)
        self.assertEqual((block_start.content_block.type, block_start.content_block.text), ("text", ""))  # type: ignore[union-attr]
        texts = []
        for event in events[2:5]:
            assert event.type == "content_block_delta"
            self.assertEqual((event.index, event.delta.type), (0, "text_delta"))
            texts.append(event.delta.text)  # type: ignore[union-attr]
        self.assertEqual(texts, pieces(ANSWER, 3))
        block_stop = events[5]
        assert block_stop.type == "content_block_stop"
        self.assertEqual(block_stop.index, 0)
        delta = events[6]
        assert delta.type == "message_delta"
        self.assertEqual((delta.delta.stop_reason, delta.delta.stop_sequence), ("end_turn", None))
        self.assertEqual(
            (delta.usage.input_tokens, delta.usage.output_tokens),
            (INPUT_TOKENS[backend], output_tokens(ANSWER)),
        )

    @off_reactor
    def test_message(self) -> None:
        """
        A non-streaming message on each backend: one text block with the
        CLI's answer, C{end_turn}, the usage the CLI reported, a C{msg_}
        id; the CLI got the prompt on stdin and no model flag (the model
        is a bare backend name).
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                prompt = f"Say hello to {backend}"
                message = client.messages.create(
                    model=model, max_tokens=1024, messages=[{"role": "user", "content": prompt}]
                )
                answer = f"{backend} answers: {prompt}"
                self.assertRegex(message.id, MESSAGE_ID)
                self.assertEqual(
                    (message.type, message.role, message.model, message.stop_reason, message.stop_sequence),
                    ("message", "assistant", model, "end_turn", None),
                )
                self.assertEqual(text_of(message), answer)
                self.assertEqual(
                    (message.usage.input_tokens, message.usage.output_tokens),
                    (INPUT_TOKENS[backend], output_tokens(answer)),
                )
                run = self.run_with(backend, prompt)
                self.assertEqual(run["stdin"], prompt)
                self.assert_model_flag(run["argv"], None)
        self.assert_ephemeral(self.runs(), ephemeral=False)

    @off_reactor
    def test_model_names(self) -> None:
        """
        Any model that is not exactly a backend name runs on Claude, with
        the model as its C{--model} (docs/design/anthropic-api.md#anthropic-model-mapping).
        """
        with self.anthropic_client() as client:
            for model in ("claude-sonnet-4-5", "gpt-4o", "gemini-2.5-pro"):
                message = client.messages.create(
                    model=model, max_tokens=16, messages=[{"role": "user", "content": f"which model {model}"}]
                )
                self.assertEqual(message.model, model)
                self.assertEqual(text_of(message), f"claude answers: which model {model}")
                self.assert_model_flag(self.run_with("claude", f"which model {model}")["argv"], model)
        self.assertEqual({run["name"] for run in self.runs()}, {"claude"})

    @off_reactor
    def test_models(self) -> None:
        """
        The SDK pages through the models (docs/design/anthropic-api.md#anthropic-models)
        and retrieves one; each is a ModelInfo with clinvk's capabilities.
        """
        with self.anthropic_client() as client:
            listed = list(client.models.list(limit=2))
            self.assertEqual([model.id for model in listed], ["claude", "codex", "gemini"])
            model = client.models.retrieve("codex")
            self.assertEqual((model.id, model.type, model.lifecycle), ("codex", "model", "active"))
            self.assertEqual(model.created_at.year, 1970)
            self.assertEqual((model.model_extra or {})["clinvk_capabilities"]["streaming_tokens"], False)

    @off_reactor
    def test_count_tokens(self) -> None:
        """C{messages.count_tokens} answers an estimate (docs/design/anthropic-api.md#anthropic-count-tokens), running no CLI."""
        with self.anthropic_client() as client:
            counted = client.messages.count_tokens(
                model="claude-sonnet-4-5",
                system="Be brief.",
                messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
            )
            self.assertEqual(counted.input_tokens, 2 + 10)
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_system(self) -> None:
        """
        C{system} as a string, and as text blocks joined with newlines,
        is the run's system prompt.
        """
        systems: list[tuple[Any, str]] = [
            ("Be brief.", "Be brief."),
            (
                [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}],
                "Be brief.\nUse French.",
            ),
        ]
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                for index, (system, expected) in enumerate(systems):
                    prompt = f"system {index} for {backend}"
                    message = client.messages.create(
                        model=model,
                        max_tokens=1024,
                        system=system,
                        messages=[{"role": "user", "content": prompt}],
                    )
                    self.assertEqual(message.stop_reason, "end_turn")
                    self.assert_system_prompt(self.run_with(backend, prompt), expected, prompt)

    @off_reactor
    def test_multi_turn_and_blocks(self) -> None:
        """
        A history is flattened into one prompt
        (docs/design/anthropic-api.md#anthropic-flattening):
        content blocks are joined with newlines and thinking blocks are
        skipped.
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                marker = f"First question for {backend}"
                message = client.messages.create(
                    model=model,
                    max_tokens=1024,
                    messages=[
                        {"role": "user", "content": marker},
                        {
                            "role": "assistant",
                            "content": [
                                {
                                    "type": "thinking",
                                    "thinking": "Let me think.",
                                    "signature": "c2lnbmF0dXJl",
                                },
                                {"type": "text", "text": "First answer"},
                            ],
                        },
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "Second"},
                                {"type": "text", "text": "question"},
                            ],
                        },
                    ],
                )
                self.assertEqual(text_of(message), f"{backend} answers: {marker}")
                run = self.run_with(backend, marker)
                self.assertEqual(
                    run["stdin"], f"{marker}\n[Previous response: First answer]\n\nSecond\nquestion"
                )

    @off_reactor
    def test_create_stream(self) -> None:
        """
        C{messages.create(stream=True)} on each backend: the event sequence
        of docs/design/anthropic-api.md#anthropic-stream, each piece the CLI streamed as
        its own delta.  Claude streams token deltas
        (docs/design/decisions.md#d9-token-streaming).
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                prompt = streamed_prompt(backend)
                with client.messages.create(
                    model=model, max_tokens=1024, messages=[{"role": "user", "content": prompt}], stream=True
                ) as stream:
                    events = list(stream)
                self.check_events(events, model, backend)
                self.assertEqual(self.run_with(backend, prompt)["stdin"], prompt)
        self.assertIn("--include-partial-messages", self.run_with("claude", "Count for claude")["argv"])
        self.assert_ephemeral(self.runs(), ephemeral=False)

    @off_reactor
    def test_stream_helper(self) -> None:
        """
        C{messages.stream()}: C{text_stream} yields each piece the CLI
        streamed, C{get_final_message()} is the whole message with
        C{end_turn} and the usage the CLI reported.
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                with client.messages.stream(
                    model=model,
                    max_tokens=1024,
                    system="Be brief.",
                    messages=[{"role": "user", "content": streamed_prompt(backend)}],
                ) as stream:
                    texts = list(stream.text_stream)
                    final = stream.get_final_message()
                self.assertEqual(texts, pieces(ANSWER, 3))
                self.assertRegex(final.id, MESSAGE_ID)
                self.assertEqual(
                    (final.role, final.model, final.stop_reason), ("assistant", model, "end_turn")
                )
                self.assertEqual(text_of(final), ANSWER)
                self.assertEqual(
                    (final.usage.input_tokens, final.usage.output_tokens),
                    (INPUT_TOKENS[backend], output_tokens(ANSWER)),
                )

    @off_reactor
    def test_claude_token_deltas(self) -> None:
        """
        Claude's token deltas (docs/design/decisions.md#d9-token-streaming) arrive as
        separate text deltas; the complete message Claude prints after them
        adds no text.
        """
        answer = "The quick brown fox jumps over the lazy dog"
        prompt = f"#fake chunks=6\n#fake-answer {answer}\nStream it"
        with self.anthropic_client() as client:
            with client.messages.stream(
                model="claude", max_tokens=1024, messages=[{"role": "user", "content": prompt}]
            ) as stream:
                texts = list(stream.text_stream)
                final = stream.get_final_message()
        self.assertEqual(texts, pieces(answer, 6))
        self.assertEqual(text_of(final), answer)

    @off_reactor
    def test_async_client(self) -> None:
        """
        The async client, on all three backends at once: a message, and a
        stream through C{messages.stream()}.
        """

        async def one(client: anthropic.AsyncAnthropic, backend: str, model: str) -> None:
            prompt = f"Async hello to {backend}"
            message = await client.messages.create(
                model=model, max_tokens=1024, messages=[{"role": "user", "content": prompt}]
            )
            self.assertEqual(text_of(message), f"{backend} answers: {prompt}")
            self.assertEqual(message.stop_reason, "end_turn")
            async with client.messages.stream(
                model=model, max_tokens=1024, messages=[{"role": "user", "content": streamed_prompt(backend)}]
            ) as stream:
                texts = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
            self.assertEqual(texts, pieces(ANSWER, 3))
            self.assertEqual((text_of(final), final.stop_reason), (ANSWER, "end_turn"))
            raw = await client.messages.create(
                model=model,
                max_tokens=1024,
                messages=[{"role": "user", "content": streamed_prompt(backend)}],
                stream=True,
            )
            async with raw:
                events = [event async for event in raw]
            self.check_events(events, model, backend)

        async def main() -> None:
            async with self.async_anthropic_client() as client:
                await asyncio.gather(
                    *(one(client, backend, model) for backend, model in ANTHROPIC_MODELS.items())
                )

        asyncio.run(main())
        self.assertEqual(len(self.runs()), 9)


class AnthropicErrorCase(SDKServerTestCase):
    """A server whose errors the Anthropic SDK raises (L{assert_error})."""

    def assert_error(
        self, error: anthropic.APIStatusError, status: int, error_type: str, message: str
    ) -> None:
        """
        C{error} is an Anthropic error body with C{status} and C{error_type}
        whose message contains C{message}; the SDK's message carries it.
        """
        self.assertEqual(error.status_code, status)
        self.assertIsInstance(error.body, dict)
        body: dict[str, Any] = error.body  # type: ignore[assignment]
        self.assertEqual(set(body), {"type", "error"}, body)
        self.assertEqual(body["type"], "error")
        self.assertEqual(set(body["error"]), {"type", "message"}, body)
        self.assertEqual((error.type, body["error"]["type"]), (error_type, error_type))
        self.assertIn(message, body["error"]["message"])
        self.assertEqual(error.api_message, body["error"]["message"])
        self.assertIn(str(body), error.message)


class AnthropicErrorTests(AnthropicErrorCase):
    """
    Every failure raises the Anthropic SDK's own exception class, carrying
    the server's message (docs/design/decisions.md#d2-sdk-error-dialects).
    """

    @off_reactor
    def test_validation(self) -> None:
        """
        Validation failures are 400 C{BadRequestError}s (not 422), for
        streaming requests too, before any stream starts.
        """
        user = [{"role": "user", "content": "hello"}]
        cases: list[tuple[dict[str, Any], str]] = [
            ({"model": "", "max_tokens": 16, "messages": user}, "model is required"),
            ({"model": "claude", "max_tokens": 16, "messages": []}, "messages are required"),
            ({"model": "claude", "max_tokens": 0, "messages": user}, "max_tokens must be greater than 0"),
            (
                {"model": "claude", "max_tokens": 16, "messages": [{"role": "assistant", "content": "hi"}]},
                "no user messages found",
            ),
            (
                {
                    "model": "claude",
                    "max_tokens": 16,
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "what is this?"},
                                {
                                    "type": "document",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "application/pdf",
                                        "data": "AAAA",
                                    },
                                },
                            ],
                        }
                    ],
                },
                "unsupported content block type: document",
            ),
            (
                {
                    "model": "claude",
                    "max_tokens": 16,
                    "system": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        }
                    ],
                    "messages": user,
                },
                "unsupported system block type: image",
            ),
        ]
        with self.anthropic_client() as client:
            for request, message in cases:
                for stream in (False, True):
                    with self.assertRaises(anthropic.BadRequestError) as caught:
                        client.messages.create(**request, stream=stream)
                    self.assert_error(caught.exception, 400, "invalid_request_error", message)
            # A missing required key is a 400 too, naming the field.
            with self.assertRaises(anthropic.BadRequestError) as caught:
                client.post(
                    "/v1/messages",
                    body={"model": "claude", "messages": user},
                    cast_to=anthropic.types.Message,
                )
            self.assert_error(caught.exception, 400, "invalid_request_error", "max_tokens")
            # So does a known member of the wrong type.
            wrong: list[dict[str, Any]] = [{"tools": "x"}, {"tool_choice": "auto"}]
            for fields in wrong:
                with self.assertRaises(anthropic.BadRequestError) as caught:
                    client.messages.create(**{"model": "claude", "max_tokens": 5, "messages": user, **fields})
                self.assert_error(caught.exception, 400, "invalid_request_error", next(iter(fields)))
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_unknown_route(self) -> None:
        """
        A route that does not exist (C{GET /anthropic/v1/files},
        docs/design/anthropic-api.md#anthropic-api) or a model that is not listed is a
        C{NotFoundError}; a wrong method is a 405 C{APIStatusError}.
        """
        with self.anthropic_client() as client:
            with self.assertRaises(anthropic.NotFoundError) as caught:
                client.get("/v1/files", cast_to=object)
            self.assert_error(caught.exception, 404, "not_found_error", "/anthropic/v1/files")
            with self.assertRaises(anthropic.NotFoundError) as caught:
                client.models.retrieve("claude-opus-4")
            self.assert_error(caught.exception, 404, "not_found_error", "claude-opus-4")
            # A known route with the wrong method: 405, which has no class of its own.
            with self.assertRaises(anthropic.APIStatusError) as caught:
                client.get("/v1/messages", cast_to=object)
            self.assertIs(type(caught.exception), anthropic.APIStatusError)
            self.assert_error(caught.exception, 405, "invalid_request_error", "")
        # A base URL other than /anthropic (issue 16): the message names the right one.
        right = f"set the SDK's base_url to {self.base_url}/anthropic"
        for base_url in (self.base_url, f"{self.base_url}/anthropic/v1"):
            with anthropic.Anthropic(
                base_url=base_url,
                api_key=ANTHROPIC_KEY,
                max_retries=0,
                timeout=CLIENT_TIMEOUT,
                http_client=anthropic.DefaultHttpxClient(trust_env=False),
            ) as client:
                with self.assertRaises(anthropic.NotFoundError) as caught:
                    client.messages.create(
                        model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
                    )
                self.assert_error(caught.exception, 404, "not_found_error", right)
                with self.assertRaises(anthropic.NotFoundError) as caught:
                    client.models.list()
                self.assert_error(caught.exception, 404, "not_found_error", right)
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_cli_failure(self) -> None:
        """
        A CLI that exits non-zero before answering is a 502
        C{InternalServerError} carrying what the CLI said.
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                with self.assertRaises(anthropic.InternalServerError) as caught:
                    client.messages.create(
                        model=model,
                        max_tokens=16,
                        messages=[{"role": "user", "content": f"#fake fail=crash\nfail {backend}"}],
                    )
                self.assert_error(caught.exception, 502, "api_error", CRASH_TEXT[backend])

    @off_reactor
    def test_cli_failure_in_stream(self) -> None:
        """
        Once a stream has started (it does as soon as the CLI runs,
        docs/design/decisions.md#d5-stream-keepalive), a CLI failure is an C{error}
        event: the SDK raises an
        C{APIStatusError} carrying what the CLI said, after
        C{message_start}.
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                received: list[RawMessageStreamEvent] = []
                with self.assertRaises(anthropic.APIStatusError) as caught:
                    with client.messages.create(
                        model=model,
                        max_tokens=16,
                        messages=[{"role": "user", "content": f"#fake fail=crash\nfail {backend}"}],
                        stream=True,
                    ) as stream:
                        received.extend(stream)
                error = caught.exception
                self.assertEqual(error.body["type"], "error")
                self.assertEqual(error.type, "api_error")
                assert error.api_message is not None
                self.assertIn(CRASH_TEXT[backend], error.api_message)
                self.assertIn(str(error.body), error.message)
                self.assertEqual([event.type for event in received[:1]], ["message_start"])
                for event in received:
                    if event.type == "message_delta":
                        self.assertIn(event.delta.stop_reason, (None, "end_turn"))


class AnthropicUnavailableBackendTests(SDKServerTestCase):
    """A server on whose C{PATH} only the fake C{claude} is installed."""

    installed = ("claude",)

    @off_reactor
    def test_backend_not_installed(self) -> None:
        """
        A model that selects a backend whose CLI is not installed is a 503
        (C{ServiceUnavailableError}, an C{InternalServerError}) naming the
        backend, streaming or not; the installed backend still answers.
        """
        with self.anthropic_client() as client:
            for backend in ("codex", "gemini"):
                for stream in (False, True):
                    with self.assertRaises(anthropic.InternalServerError) as caught:
                        client.messages.create(
                            model=backend,
                            max_tokens=16,
                            messages=[{"role": "user", "content": "hello"}],
                            stream=stream,
                        )
                    error = caught.exception
                    self.assertIsInstance(error, anthropic.ServiceUnavailableError)
                    self.assertEqual((error.status_code, error.type), (503, "overloaded_error"))
                    assert error.api_message is not None
                    self.assertRegex(error.api_message, rf"\b{backend}\b")
                    self.assertIn(str(error.body), error.message)
            message = client.messages.create(
                model="claude", max_tokens=16, messages=[{"role": "user", "content": "hello"}]
            )
        self.assertEqual(text_of(message), "claude answers: hello")
        self.assertEqual([run["name"] for run in self.runs()], ["claude"])


class AnthropicKeepaliveTests(SDKServerTestCase):
    """Keep-alive comments in a silent stream (docs/design/decisions.md#d5-stream-keepalive)."""

    @off_reactor
    def test_silent_cli(self) -> None:
        """
        While the CLI says nothing for longer than
        C{stream_keepalive_secs} (1 here), the stream carries C{:
        keepalive} comments after C{message_start}, which is sent as soon
        as the CLI runs; the SDK parses the stream all the same.
        """
        prompt = "#fake silent=1.5 chunks=2\n#fake-answer Late answer\nwait for it"
        request = {
            "model": "claude",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        }

        def parse() -> tuple[list[str], anthropic.types.Message]:
            with self.anthropic_client() as client:
                with client.messages.stream(
                    model="claude", max_tokens=64, messages=[{"role": "user", "content": prompt}]
                ) as stream:
                    return list(stream.text_stream), stream.get_final_message()

        # The raw stream and the SDK's, side by side (each takes seconds).
        with ThreadPoolExecutor(2) as pool:
            raw = pool.submit(self.post_raw, "/anthropic/v1/messages", request)
            parsed = pool.submit(parse)
            status, headers, body = raw.result()
            texts, final = parsed.result()

        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("text/event-stream"), headers)
        lines = sse_lines(body)
        keepalives = [i for i, line in enumerate(lines) if line.startswith(":")]
        self.assertTrue(keepalives, body)
        self.assertEqual({lines[i] for i in keepalives}, {": keepalive"})
        events = [i for i, line in enumerate(lines) if line.startswith("event: ")]
        # message_start came before the first keep-alive, the text after.
        self.assertEqual(lines[events[0]], "event: message_start")
        self.assertLess(events[0], keepalives[0])
        deltas = [i for i in events if lines[i] == "event: content_block_delta"]
        self.assertLess(keepalives[0], deltas[0])
        self.assertEqual(lines[events[-1]], "event: message_stop")
        self.assertEqual(json.loads(lines[events[-1] + 1][len("data: ") :]), {"type": "message_stop"})

        self.assertEqual("".join(texts), "Late answer")
        self.assertEqual((text_of(final), final.stop_reason), ("Late answer", "end_turn"))


class AnthropicAuthTests(AnthropicErrorCase):
    """
    A server with the API keys C{k1,k2} (C{CLINVK_API_KEYS},
    docs/design/http.md#api-keys), which takes a key from C{X-Api-Key} or
    else from a C{Bearer} C{Authorization}.
    """

    server_environment = {"CLINVK_API_KEYS": "k1,k2"}

    def user(self, text: str) -> list[anthropic.types.MessageParam]:
        return [{"role": "user", "content": text}]

    @off_reactor
    def test_valid_key(self) -> None:
        """
        A client with one of the keys is served: a message, a raw stream
        and the stream helper.
        """
        with self.anthropic_client(api_key="k2") as client:
            message = client.messages.create(
                model="claude", max_tokens=64, messages=self.user("hello with k2")
            )
            with client.messages.create(
                model="codex", max_tokens=64, messages=self.user(streamed_prompt("codex")), stream=True
            ) as stream:
                events = list(stream)
            with client.messages.stream(
                model="gemini", max_tokens=64, messages=self.user(streamed_prompt("gemini"))
            ) as helper:
                streamed = helper.get_final_message()
        self.assertEqual(text_of(message), "claude answers: hello with k2")
        self.assertEqual([event.type for event in events], EVENT_TYPES)
        self.assertEqual(text_of(streamed), ANSWER)
        with self.anthropic_client(api_key="k1") as client:
            message = client.messages.create(
                model="claude", max_tokens=64, messages=self.user("hello with k1")
            )
        self.assertEqual(text_of(message), "claude answers: hello with k1")

    @off_reactor
    def test_x_api_key(self) -> None:
        """
        The key in C{X-Api-Key} (what the Anthropic API takes) wins over the
        one the SDK sends as C{Authorization: Bearer}, with no fallback: a
        right C{X-Api-Key} is served whatever the C{api_key}, a wrong one is
        refused even with a right C{api_key}.
        """
        with self.anthropic_client(api_key="wrong", default_headers={"X-Api-Key": "k1"}) as client:
            message = client.messages.create(model="claude", max_tokens=64, messages=self.user("by header"))
        self.assertEqual(text_of(message), "claude answers: by header")
        with self.anthropic_client(api_key="k2", default_headers={"X-Api-Key": "wrong"}) as client:
            with self.assertRaises(anthropic.AuthenticationError) as caught:
                client.messages.create(model="claude", max_tokens=64, messages=self.user("refused"))
        self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")
        # X-Api-Key alone, as a plain HTTP client sends it.
        status, _, body = self.post_raw(
            "/anthropic/v1/messages",
            {"model": "claude", "max_tokens": 64, "messages": self.user("raw")},
            {"X-Api-Key": "k2", "anthropic-version": "2023-06-01"},
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["content"], [{"type": "text", "text": "claude answers: raw"}])
        self.assertEqual(sorted(run["stdin"] for run in self.runs()), ["by header", "raw"])

    @off_reactor
    def test_invalid_key(self) -> None:
        """
        A client with a wrong key gets an C{AuthenticationError} (401,
        C{authentication_error}, "invalid API key", C{WWW-Authenticate:
        Bearer}) for every call, streaming ones too, before anything runs.
        """
        with self.anthropic_client(api_key="wrong") as client:

            def stream_helper() -> object:
                with client.messages.stream(model="claude", max_tokens=64, messages=self.user("hello")) as s:
                    return s.get_final_message()

            calls: list[Callable[[], object]] = [
                lambda: client.messages.create(model="claude", max_tokens=64, messages=self.user("hello")),
                lambda: client.messages.create(
                    model="claude", max_tokens=64, messages=self.user("hello"), stream=True
                ),
                stream_helper,
            ]
            for call in calls:
                with self.assertRaises(anthropic.AuthenticationError) as caught:
                    call()
                self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")
                self.assertEqual(caught.exception.response.headers["www-authenticate"], "Bearer")

        async def main() -> None:
            async with self.async_anthropic_client(api_key="K1") as client:
                with self.assertRaises(anthropic.AuthenticationError) as caught:
                    await client.messages.create(model="claude", max_tokens=64, messages=self.user("hello"))
                self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")

        asyncio.run(main())
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_missing_key(self) -> None:
        """
        A request with no key (raw HTTP: the SDK always sends one) is a 401
        "missing API key" in the Anthropic dialect; so is a blank
        C{X-Api-Key} with no C{Authorization}.
        """
        request = {"model": "claude", "max_tokens": 64, "messages": self.user("hello")}
        for headers in ({}, {"X-Api-Key": " "}, {"Authorization": "Bearer "}):
            status, response_headers, body = self.post_raw("/anthropic/v1/messages", request, headers)
            self.assertEqual(status, 401, body)
            self.assertTrue(response_headers["content-type"].startswith("application/json"), response_headers)
            self.assertEqual(response_headers["www-authenticate"], "Bearer")
            self.assertEqual(
                json.loads(body),
                {"type": "error", "error": {"type": "authentication_error", "message": "missing API key"}},
            )
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_public_health(self) -> None:
        """C{/health} answers without a key (and with a wrong one)."""
        for headers in ({}, {"X-Api-Key": "wrong"}):
            status, _, body = self.get_raw("/health", headers)
            self.assertEqual(status, 200, body)
            self.assertIn("status", json.loads(body))


class AnthropicRateLimitTests(AnthropicErrorCase):
    """
    A server that lets each client make 1 request a second, in bursts of 2
    (docs/design/http.md#rate-limit).
    """

    server_config = {"server": {"rate_limit_enabled": True, "rate_limit_rps": 1, "rate_limit_burst": 2}}
    # Every request takes a token, and the tests count them.
    ready_path = None

    def create(self, client: anthropic.Anthropic, text: str, stream: bool = False) -> object:
        return client.messages.create(
            model="claude", max_tokens=64, messages=[{"role": "user", "content": text}], stream=stream
        )

    @off_reactor
    def test_rate_limited(self) -> None:
        """
        Two back-to-back messages are served; the third is a
        C{RateLimitError} (429, C{rate_limit_error}, "rate limit
        exceeded") whose response says C{Retry-After: 1}, streaming or not;
        a refused request runs nothing.
        """
        with self.anthropic_client() as client:
            self.create(client, "served 1")
            self.create(client, "served 2")
            for stream in (False, True):
                with self.assertRaises(anthropic.RateLimitError) as caught:
                    self.create(client, "refused", stream)
                error = caught.exception
                self.assert_error(error, 429, "rate_limit_error", "rate limit exceeded")
                self.assertEqual(error.response.headers["retry-after"], "1")
                self.assertFalse(
                    [name for name in error.response.headers if name.lower().startswith("x-ratelimit")],
                    error.response.headers,
                )
        self.assertEqual(sorted(run["stdin"] for run in self.runs()), ["served 1", "served 2"])

    @off_reactor
    def test_sdk_retry(self) -> None:
        """
        A client that retries waits the C{Retry-After} second, by which
        time the bucket has a token again: the refused call is retried once
        and served.
        """
        user: list[anthropic.types.MessageParam] = [{"role": "user", "content": "after a second"}]
        with self.anthropic_client(max_retries=1) as client:
            for text in ("served 1", "served 2"):
                raw = client.messages.with_raw_response.create(
                    model="claude", max_tokens=64, messages=[{"role": "user", "content": text}]
                )
                self.assertEqual(raw.retries_taken, 0)
            started = time.monotonic()
            raw = client.messages.with_raw_response.create(model="claude", max_tokens=64, messages=user)
            waited = time.monotonic() - started
        self.assertEqual(raw.retries_taken, 1)
        self.assertGreaterEqual(waited, 1.0)
        self.assertEqual(text_of(raw.parse()), "claude answers: after a second")
