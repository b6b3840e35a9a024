"""
Wire compatibility of C{/openai/v1} with the official C{openai} SDK
(docs/design/openai-api.md#openai-api, docs/design/decisions.md#d2-sdk-error-dialects,
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

import openai
from openai.types.chat import ChatCompletionChunk

from clinvk.testing.fake_cli import NAMES
from tests.integration._sdk_server import (
    CLIENT_TIMEOUT,
    CRASH_TEXT,
    INPUT_TOKENS,
    OPENAI_KEY,
    OPENAI_MODELS,
    SDKServerTestCase,
    off_reactor,
    output_tokens,
    pieces,
    sse_lines,
)

COMPLETION_ID = r"^chatcmpl-[0-9a-f]{24}$"

# The --model each backend's CLI gets: none for a bare backend name
# (docs/design/openai-api.md#openai-model-mapping), the request model otherwise.
MODEL_FLAG = {"claude": None, "codex": "gpt-4o", "gemini": "gemini-2.5-pro"}

ANSWER = "Tick Tack Tock"


def streamed_prompt(backend: str, chunks: int = 3) -> str:
    """A prompt that makes the fake stream L{ANSWER} in C{chunks} pieces."""
    return f"#fake chunks={chunks}\n#fake-answer {ANSWER}\nCount for {backend}"


def content_of(chunks: list[ChatCompletionChunk]) -> list[str]:
    """The non-empty content deltas of C{chunks}, in order."""
    return [
        chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content
    ]


class OpenAIConformanceTests(SDKServerTestCase):
    """The OpenAI SDK against a server with all three fakes."""

    def check_stream(self, chunks: list[ChatCompletionChunk], model: str, expected: list[str]) -> None:
        """
        C{chunks} are a well-formed completion stream of C{model}: a role
        chunk first, C{expected} as separate content deltas, a final
        C{stop} chunk, one id throughout.
        """
        self.assertTrue(chunks)
        ids = {chunk.id for chunk in chunks}
        self.assertEqual(len(ids), 1, ids)
        self.assertRegex(chunks[0].id, COMPLETION_ID)
        for chunk in chunks:
            self.assertEqual((chunk.object, chunk.model), ("chat.completion.chunk", model))
        with_choices = [chunk for chunk in chunks if chunk.choices]
        first, last = with_choices[0], with_choices[-1]
        self.assertEqual(first.choices[0].delta.role, "assistant")
        self.assertEqual(
            [chunk.choices[0].delta.role for chunk in with_choices[1:]], [None] * (len(with_choices) - 1)
        )
        self.assertEqual(content_of(chunks), expected)
        self.assertEqual(last.choices[0].finish_reason, "stop")
        self.assertIsNone(last.choices[0].delta.content)
        self.assertEqual(
            [c.choices[0].finish_reason for c in with_choices[:-1]], [None] * (len(with_choices) - 1)
        )
        for chunk in with_choices:
            self.assertEqual(chunk.choices[0].index, 0)

    @off_reactor
    def test_models(self) -> None:
        """C{models.list()}: the three backends, sorted, owned by clinvoker, created now."""
        before = int(time.time())
        with self.openai_client() as client:
            models = client.models.list()
        after = int(time.time())
        self.assertEqual([model.id for model in models.data], ["claude", "codex", "gemini"])
        self.assertEqual({(model.object, model.owned_by) for model in models.data}, {("model", "clinvoker")})
        [created] = {model.created for model in models.data}
        self.assertTrue(before <= created <= after, (before, created, after))

    @off_reactor
    def test_chat_completion(self) -> None:
        """
        A non-streaming completion on each backend: the CLI's answer with
        C{finish_reason} C{stop}, the usage the CLI reported, a
        C{chatcmpl-} id; the CLI got the user text on stdin and the model
        flag of docs/design/openai-api.md#openai-model-mapping.
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                prompt = f"Say hello to {backend}"
                completion = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}]
                )
                answer = f"{backend} answers: {prompt}"
                self.assertRegex(completion.id, COMPLETION_ID)
                self.assertEqual(
                    (completion.object, completion.model, len(completion.choices)),
                    ("chat.completion", model, 1),
                )
                [choice] = completion.choices
                self.assertEqual(
                    (choice.index, choice.finish_reason, choice.message.role, choice.message.content),
                    (0, "stop", "assistant", answer),
                )
                assert completion.usage is not None
                self.assertEqual(
                    (
                        completion.usage.prompt_tokens,
                        completion.usage.completion_tokens,
                        completion.usage.total_tokens,
                    ),
                    (
                        INPUT_TOKENS[backend],
                        output_tokens(answer),
                        INPUT_TOKENS[backend] + output_tokens(answer),
                    ),
                )
                self.assertIsNone(completion.system_fingerprint)
                run = self.run_with(backend, prompt)
                self.assertEqual(run["stdin"], prompt)
                self.assert_model_flag(run["argv"], MODEL_FLAG[backend])
        self.assert_ephemeral(self.runs(), ephemeral=False)
        self.assertEqual(sorted(run["name"] for run in self.runs()), sorted(NAMES))

    @off_reactor
    def test_system_and_history(self) -> None:
        """
        System and developer messages become one system prompt (joined by
        a blank line); the user and assistant turns are flattened into
        one prompt (docs/design/openai-api.md#openai-flattening).
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                marker = f"first for {backend}"
                completion = client.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": marker},
                        {"role": "assistant", "content": "resp"},
                        {"role": "developer", "content": "Answer in French."},
                        {"role": "user", "content": "second"},
                    ],
                )
                self.assertEqual(completion.choices[0].finish_reason, "stop")
                self.assert_system_prompt(
                    self.run_with(backend, marker),
                    "Be brief.\n\nAnswer in French.",
                    f"{marker}\n[Previous response: resp]\n\nsecond",
                )

    @off_reactor
    def test_content_parts(self) -> None:
        """
        Content given as an array of text parts is joined with newlines,
        in user, assistant and system messages alike; a C{null} assistant
        content counts as empty (docs/design/openai-api.md#openai-content).
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                marker = f"part one for {backend}"
                messages: list[Any] = [
                    {
                        "role": "system",
                        "content": [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}],
                    },
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": marker}, {"type": "text", "text": "part two"}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                    {"role": "user", "content": "more"},
                    {"role": "assistant", "content": None},
                    {"role": "user", "content": [{"type": "text", "text": "last"}]},
                ]
                completion = client.chat.completions.create(model=model, messages=messages)
                self.assertEqual(
                    completion.choices[0].message.content,
                    f"{backend} answers: {marker}"
                    if backend == "claude"
                    else completion.choices[0].message.content,
                )
                self.assert_system_prompt(
                    self.run_with(backend, marker),
                    "Be\nbrief.",
                    f"{marker}\npart two\n[Previous response: ok]\n\nmore\n[Previous response: ]\n\nlast",
                )

    @off_reactor
    def test_stream(self) -> None:
        """
        C{stream=True} on each backend: a role chunk, then each piece the
        CLI streamed as its own content delta (together the answer), then
        a C{stop} chunk; no usage unless asked for.  Claude streams token
        deltas (docs/design/decisions.md#d9-token-streaming): its run has
        C{--include-partial-messages}.
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                prompt = streamed_prompt(backend)
                stream = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}], stream=True
                )
                with stream:
                    chunks = list(stream)
                self.check_stream(chunks, model, pieces(ANSWER, 3))
                self.assertEqual([chunk.usage for chunk in chunks], [None] * len(chunks))
                run = self.run_with(backend, prompt)
                self.assertEqual(run["stdin"], prompt)
                self.assert_model_flag(run["argv"], MODEL_FLAG[backend])
        self.assertIn("--include-partial-messages", self.run_with("claude", "Count for claude")["argv"])
        self.assert_ephemeral(self.runs(), ephemeral=False)

    @off_reactor
    def test_claude_token_deltas(self) -> None:
        """
        Claude's token deltas (docs/design/decisions.md#d9-token-streaming) reach the
        client as separate chunks, as they are produced; the complete
        message Claude prints after them
        adds no text: the deltas make exactly the final answer, which is
        also what the non-streaming call returns.
        """
        answer = "The quick brown fox jumps over the lazy dog"
        prompt = f"#fake chunks=6\n#fake-answer {answer}\nStream it"
        with self.openai_client() as client:
            with client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": prompt}], stream=True
            ) as stream:
                chunks = list(stream)
            whole = client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": prompt}]
            )
        self.check_stream(chunks, "claude", pieces(answer, 6))
        self.assertEqual("".join(content_of(chunks)), answer)
        self.assertEqual(whole.choices[0].message.content, answer)

    @off_reactor
    def test_stream_include_usage(self) -> None:
        """
        With C{stream_options={"include_usage": True}} a last chunk with no
        choices carries the usage the CLI reported; the chunks before it
        carry none.
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                with client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": streamed_prompt(backend)}],
                    stream=True,
                    stream_options={"include_usage": True},
                ) as stream:
                    chunks = list(stream)
                *content_chunks, usage_chunk = chunks
                self.check_stream(content_chunks, model, pieces(ANSWER, 3))
                self.assertEqual([chunk.usage for chunk in content_chunks], [None] * len(content_chunks))
                self.assertEqual(usage_chunk.choices, [])
                self.assertEqual(usage_chunk.id, chunks[0].id)
                assert usage_chunk.usage is not None
                self.assertEqual(
                    (
                        usage_chunk.usage.prompt_tokens,
                        usage_chunk.usage.completion_tokens,
                        usage_chunk.usage.total_tokens,
                    ),
                    (
                        INPUT_TOKENS[backend],
                        output_tokens(ANSWER),
                        INPUT_TOKENS[backend] + output_tokens(ANSWER),
                    ),
                )

    @off_reactor
    def test_async_client(self) -> None:
        """
        The async client, on all three backends at once: a completion and
        a stream each.
        """

        async def one(client: openai.AsyncOpenAI, backend: str, model: str) -> None:
            prompt = f"Async hello to {backend}"
            completion = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
            self.assertEqual(completion.choices[0].message.content, f"{backend} answers: {prompt}")
            self.assertEqual(completion.choices[0].finish_reason, "stop")
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": streamed_prompt(backend)}], stream=True
            )
            async with stream:
                chunks = [chunk async for chunk in stream]
            self.check_stream(chunks, model, pieces(ANSWER, 3))

        async def main() -> None:
            async with self.async_openai_client() as client:
                await asyncio.gather(
                    *(one(client, backend, model) for backend, model in OPENAI_MODELS.items())
                )

        asyncio.run(main())
        self.assertEqual(len(self.runs()), 6)


class OpenAIErrorCase(SDKServerTestCase):
    """A server whose errors the OpenAI SDK raises (L{assert_error})."""

    def assert_error(self, error: openai.APIStatusError, status: int, error_type: str, message: str) -> None:
        """
        C{error} is an OpenAI error body with C{status} and C{error_type}
        whose message contains C{message}; the SDK's message carries it.
        """
        self.assertEqual(error.status_code, status)
        self.assertIsInstance(error.body, dict)
        body: dict[str, Any] = error.body  # type: ignore[assignment]
        self.assertEqual(set(body), {"message", "type", "param", "code"}, body)
        self.assertEqual(error.type, error_type)
        self.assertIn(message, body["message"])
        self.assertIn(body["message"], error.message)


class OpenAIErrorTests(OpenAIErrorCase):
    """
    Every failure raises the OpenAI SDK's own exception class, carrying the
    server's message (docs/design/decisions.md#d2-sdk-error-dialects).
    """

    @off_reactor
    def test_validation(self) -> None:
        """
        Validation failures are 400 C{BadRequestError}s (not 422), for
        streaming requests too, before any stream starts.
        """
        user: Any = [{"role": "user", "content": "hello"}]
        cases: list[tuple[dict[str, Any], str]] = [
            ({"model": "", "messages": user}, "model is required"),
            ({"model": "claude", "messages": []}, "messages are required"),
            ({"model": "claude", "messages": [{"role": "system", "content": "x"}]}, "no user messages found"),
            (
                {
                    "model": "claude",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "what is this?"},
                                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                            ],
                        }
                    ],
                },
                "unsupported content part type: input_audio",
            ),
        ]
        with self.openai_client() as client:
            for request, message in cases:
                for stream in (False, True):
                    with self.assertRaises(openai.BadRequestError) as caught:
                        client.chat.completions.create(**request, stream=stream)
                    self.assert_error(caught.exception, 400, "invalid_request_error", message)
            # A type error the schema finds names the field.
            with self.assertRaises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="claude", messages=user, extra_body={"stream": "yes"})
            self.assert_error(caught.exception, 400, "invalid_request_error", "stream")
            # So do the known members the SDK is strict about.
            wrong: list[dict[str, Any]] = [{"tools": "x"}, {"tool_choice": 5}, {"response_format": "json"}]
            for fields in wrong:
                with self.assertRaises(openai.BadRequestError) as caught:
                    client.chat.completions.create(model="claude", messages=user, **fields)
                self.assert_error(caught.exception, 400, "invalid_request_error", next(iter(fields)))
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_unknown_route(self) -> None:
        """
        A route that does not exist (C{POST /openai/v1/embeddings}) or a
        model that is not listed (docs/design/openai-api.md#openai-models-list) is a
        C{NotFoundError}; a wrong method is a 405 C{APIStatusError}.
        """
        with self.openai_client() as client:
            model = client.models.retrieve("gemini")
            self.assertEqual((model.id, model.object, model.owned_by), ("gemini", "model", "clinvoker"))
            self.assertEqual((model.model_extra or {})["capabilities"]["streaming_tokens"], True)
            with self.assertRaises(openai.NotFoundError) as caught:
                client.models.retrieve("gpt-4o")
            self.assert_error(
                caught.exception, 404, "invalid_request_error", "The model 'gpt-4o' does not exist"
            )
            self.assertEqual(caught.exception.code, "model_not_found")
            with self.assertRaises(openai.NotFoundError) as caught:
                client.embeddings.create(model="claude", input="hello")
            self.assert_error(caught.exception, 404, "invalid_request_error", "/openai/v1/embeddings")
            # A known route with the wrong method: 405, which has no class of its own.
            with self.assertRaises(openai.APIStatusError) as caught:
                client.get("/chat/completions", cast_to=object)
            self.assertIs(type(caught.exception), openai.APIStatusError)
            self.assert_error(caught.exception, 405, "invalid_request_error", "")
        # A base URL without /openai/v1 (issue 16): the message names the right one.
        right = f"set the SDK's base_url to {self.base_url}/openai/v1"
        for base_url in (self.base_url, f"{self.base_url}/v1"):
            with openai.OpenAI(
                base_url=base_url,
                api_key=OPENAI_KEY,
                max_retries=0,
                timeout=CLIENT_TIMEOUT,
                http_client=openai.DefaultHttpxClient(trust_env=False),
            ) as client:
                with self.assertRaises(openai.NotFoundError) as caught:
                    client.chat.completions.create(
                        model="claude", messages=[{"role": "user", "content": "hi"}]
                    )
                self.assert_error(caught.exception, 404, "invalid_request_error", right)
                with self.assertRaises(openai.NotFoundError) as caught:
                    client.models.list()
                self.assert_error(caught.exception, 404, "invalid_request_error", right)
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_cli_failure(self) -> None:
        """
        A CLI that exits non-zero before answering is a 502
        C{InternalServerError} carrying what the CLI said.
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                with self.assertRaises(openai.InternalServerError) as caught:
                    client.chat.completions.create(
                        model=model,
                        messages=[{"role": "user", "content": f"#fake fail=crash\nfail {backend}"}],
                    )
                self.assert_error(caught.exception, 502, "server_error", CRASH_TEXT[backend])

    @off_reactor
    def test_cli_failure_in_stream(self) -> None:
        """
        Once a stream has started (it does as soon as the CLI runs,
        docs/design/decisions.md#d5-stream-keepalive), a CLI failure is an error event
        in the stream: the SDK raises an
        C{APIError} carrying what the CLI said, after the role chunk.
        """
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                received: list[ChatCompletionChunk] = []
                with self.assertRaises(openai.APIError) as caught:
                    with client.chat.completions.create(
                        model=model,
                        messages=[{"role": "user", "content": f"#fake fail=crash\nfail {backend}"}],
                        stream=True,
                    ) as stream:
                        received.extend(stream)
                error = caught.exception
                self.assertNotIsInstance(error, openai.APIStatusError)
                self.assertIn(CRASH_TEXT[backend], error.message)
                self.assertIsInstance(error.body, dict)
                self.assertIn(CRASH_TEXT[backend], error.body["message"])
                self.assertEqual(error.type, "server_error")
                self.assertEqual([chunk.choices[0].delta.role for chunk in received[:1]], ["assistant"])
                self.assertFalse(
                    [
                        chunk
                        for chunk in received
                        if chunk.choices and chunk.choices[0].finish_reason not in (None, "stop")
                    ]
                )


class OpenAIUnavailableBackendTests(SDKServerTestCase):
    """A server on whose C{PATH} only the fake C{claude} is installed."""

    installed = ("claude",)

    @off_reactor
    def test_backend_not_installed(self) -> None:
        """
        A model that selects a backend whose CLI is not installed is a 503
        C{InternalServerError} naming the backend, streaming or not; the
        installed backend still answers.
        """
        with self.openai_client() as client:
            for backend in ("codex", "gemini"):
                for stream in (False, True):
                    with self.assertRaises(openai.InternalServerError) as caught:
                        client.chat.completions.create(
                            model=OPENAI_MODELS[backend],
                            messages=[{"role": "user", "content": "hello"}],
                            stream=stream,
                        )
                    error = caught.exception
                    self.assertEqual((error.status_code, error.type), (503, "server_error"))
                    self.assertRegex(error.body["message"], rf"\b{backend}\b")
                    self.assertIn(error.body["message"], error.message)
            completion = client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hello"}]
            )
        self.assertEqual(completion.choices[0].message.content, "claude answers: hello")
        self.assertEqual([run["name"] for run in self.runs()], ["claude"])


class OpenAIKeepaliveTests(SDKServerTestCase):
    """Keep-alive comments in a silent stream (docs/design/decisions.md#d5-stream-keepalive)."""

    @off_reactor
    def test_silent_cli(self) -> None:
        """
        While the CLI says nothing for longer than
        C{stream_keepalive_secs} (1 here), the stream carries C{:
        keepalive} comments after the role chunk, which is sent as soon as
        the CLI runs; the SDK parses the stream all the same.
        """
        prompt = "#fake silent=1.5 chunks=2\n#fake-answer Late answer\nwait for it"
        request = {"model": "claude", "messages": [{"role": "user", "content": prompt}], "stream": True}

        def parse() -> list[ChatCompletionChunk]:
            with self.openai_client() as client:
                with client.chat.completions.create(
                    model="claude", messages=[{"role": "user", "content": prompt}], stream=True
                ) as stream:
                    return list(stream)

        # The raw stream and the SDK's, side by side (each takes seconds).
        with ThreadPoolExecutor(2) as pool:
            raw = pool.submit(self.post_raw, "/openai/v1/chat/completions", request)
            parsed = pool.submit(parse)
            status, headers, body = raw.result()
            chunks = parsed.result()

        self.assertEqual(status, 200, body)
        self.assertTrue(headers["content-type"].startswith("text/event-stream"), headers)
        lines = sse_lines(body)
        keepalives = [i for i, line in enumerate(lines) if line.startswith(":")]
        self.assertTrue(keepalives, body)
        self.assertEqual({lines[i] for i in keepalives}, {": keepalive"})
        data = [i for i, line in enumerate(lines) if line.startswith("data: ")]
        # The role chunk came before the first keep-alive, the answer after.
        self.assertLess(data[0], keepalives[0])
        self.assertEqual(
            json.loads(lines[data[0]][len("data: ") :])["choices"][0]["delta"].get("role"), "assistant"
        )
        self.assertLess(keepalives[0], data[1])
        self.assertEqual(lines[data[-1]], "data: [DONE]")

        self.assertEqual("".join(content_of(chunks)), "Late answer")
        self.assertEqual(chunks[-1].choices[0].finish_reason, "stop")


class OpenAIAuthTests(OpenAIErrorCase):
    """
    A server with the API keys C{k1,k2} (C{CLINVK_API_KEYS},
    docs/design/http.md#api-keys): the SDK presents its C{api_key} as a
    C{Bearer} token.
    """

    server_environment = {"CLINVK_API_KEYS": "k1,k2"}

    @off_reactor
    def test_valid_key(self) -> None:
        """
        A client with one of the keys is served: models, a completion and a
        stream.
        """
        with self.openai_client(api_key="k2") as client:
            models = client.models.list()
            completion = client.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "hello with k2"}]
            )
            with client.chat.completions.create(
                model="codex", messages=[{"role": "user", "content": streamed_prompt("codex")}], stream=True
            ) as stream:
                chunks = list(stream)
        self.assertEqual([model.id for model in models.data], ["claude", "codex", "gemini"])
        self.assertEqual(completion.choices[0].message.content, "claude answers: hello with k2")
        self.assertEqual("".join(content_of(chunks)), ANSWER)
        with self.openai_client(api_key="k1") as client:
            self.assertEqual(len(client.models.list().data), 3)

    @off_reactor
    def test_invalid_key(self) -> None:
        """
        A client with a wrong key gets an C{AuthenticationError} (401,
        C{authentication_error}, "invalid API key", C{WWW-Authenticate:
        Bearer}) for every call, a streaming one too, before anything runs.
        Keys are compared exactly: C{K2} and C{k2 } with its space inside
        the token are wrong.
        """
        with self.openai_client(api_key="wrong") as client:
            calls: list[Callable[[], object]] = [
                client.models.list,
                lambda: client.chat.completions.create(
                    model="claude", messages=[{"role": "user", "content": "hello"}]
                ),
                lambda: client.chat.completions.create(
                    model="claude", messages=[{"role": "user", "content": "hello"}], stream=True
                ),
            ]
            for call in calls:
                with self.assertRaises(openai.AuthenticationError) as caught:
                    call()
                self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")
                self.assertEqual(caught.exception.response.headers["www-authenticate"], "Bearer")
        for key in ("K2", "k1,k2"):
            with self.openai_client(api_key=key) as client:
                with self.assertRaises(openai.AuthenticationError) as caught:
                    client.models.list()
                self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")

        async def main() -> None:
            async with self.async_openai_client(api_key="wrong") as client:
                with self.assertRaises(openai.AuthenticationError) as caught:
                    await client.chat.completions.create(
                        model="claude", messages=[{"role": "user", "content": "hello"}]
                    )
                self.assert_error(caught.exception, 401, "authentication_error", "invalid API key")

        asyncio.run(main())
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_missing_key(self) -> None:
        """
        A request with no key (the SDK refuses to send one, so raw HTTP) is
        a 401 "missing API key" in the OpenAI dialect; so is a C{Bearer}
        with no token or another scheme.
        """
        request = {"model": "claude", "messages": [{"role": "user", "content": "hello"}]}
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic azI6"}):
            status, response_headers, body = self.post_raw("/openai/v1/chat/completions", request, headers)
            self.assertEqual(status, 401, body)
            self.assertTrue(response_headers["content-type"].startswith("application/json"), response_headers)
            self.assertEqual(response_headers["www-authenticate"], "Bearer")
            error = json.loads(body)["error"]
            self.assertEqual(set(error), {"message", "type", "param", "code"}, error)
            self.assertEqual(
                (error["message"], error["type"], error["param"]),
                ("missing API key", "authentication_error", None),
            )
        status, _, body = self.get_raw("/openai/v1/models")
        self.assertEqual((status, json.loads(body)["error"]["message"]), (401, "missing API key"))
        self.assertEqual(self.runs(), [])

    @off_reactor
    def test_public_health(self) -> None:
        """C{/health} answers without a key (and with a wrong one)."""
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, _, body = self.get_raw("/health", headers)
            self.assertEqual(status, 200, body)
            self.assertIn("status", json.loads(body))


class OpenAIRateLimitTests(OpenAIErrorCase):
    """
    A server that lets each client make 1 request a second, in bursts of 2
    (docs/design/http.md#rate-limit).
    """

    server_config = {"server": {"rate_limit_enabled": True, "rate_limit_rps": 1, "rate_limit_burst": 2}}
    # Every request takes a token, and the tests count them.
    ready_path = None

    @off_reactor
    def test_rate_limited(self) -> None:
        """
        Two back-to-back calls are served; the third is a C{RateLimitError}
        (429, C{rate_limit_error}, "rate limit exceeded") whose response
        says C{Retry-After: 1}, streaming or not; a refused request runs
        nothing.
        """
        with self.openai_client() as client:
            client.models.list()
            client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "served"}])
            for stream in (False, True):
                with self.assertRaises(openai.RateLimitError) as caught:
                    client.chat.completions.create(
                        model="claude", messages=[{"role": "user", "content": "refused"}], stream=stream
                    )
                error = caught.exception
                self.assert_error(error, 429, "rate_limit_error", "rate limit exceeded")
                self.assertEqual(error.response.headers["retry-after"], "1")
                self.assertFalse(
                    [name for name in error.response.headers if name.lower().startswith("x-ratelimit")],
                    error.response.headers,
                )
        self.assertEqual([run["stdin"] for run in self.runs()], ["served"])

    @off_reactor
    def test_sdk_retry(self) -> None:
        """
        A client that retries waits the C{Retry-After} second, by which
        time the bucket has a token again: the refused call is retried once
        and served.
        """
        with self.openai_client(max_retries=1) as client:
            for _ in range(2):
                self.assertEqual(client.models.with_raw_response.list().retries_taken, 0)
            started = time.monotonic()
            raw = client.chat.completions.with_raw_response.create(
                model="claude", messages=[{"role": "user", "content": "after a second"}]
            )
            waited = time.monotonic() - started
        self.assertEqual(raw.retries_taken, 1)
        self.assertGreaterEqual(waited, 1.0)
        self.assertEqual(raw.parse().choices[0].message.content, "claude answers: after a second")
