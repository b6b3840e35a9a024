# -*- test-case-name: tests.web.test_openai -*-
"""
The OpenAI-compatible API under C{/openai/v1} (docs/design/openai-api.md#openai-api): the
models and chat completions, as JSON or as server-sent events, with
every failure in OpenAI's error format (docs/design/decisions.md#d2-sdk-error-dialects).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, ClassVar

from twisted.web.iweb import IRequest

from clinvk.compat.conversation import flatten, openai_turns
from clinvk.compat.conversations import Turn
from clinvk.compat.models import capabilities, new_id, openai_backend, run_model, usage_or_estimate
from clinvk.compat.runs import failed, failure_text
from clinvk.errors import BackendFailed, InvalidRequest, ModelNotFound
from clinvk.model import RunRequest, RunResult
from clinvk.openapi import Operation, Parameter
from clinvk.web._compat_family import CompatFamily, announcer, pinned_session
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json
from clinvk.web._responses import typed_response, write_json
from clinvk.web._routing import family_app, route
from clinvk.web._sse import DONE, EventSource, frame
from clinvk.web._streaming import stopped_on_failure

_TAG = "OpenAI compatible"

MODELS = Operation(
    operation_id="openaiListModels",
    method="GET",
    path="/openai/v1/models",
    tag=_TAG,
    summary="List models",
    description="One model per backend, whether or not its CLI is installed.",
    response_schema="OpenAIModelsResponseBody",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)
MODEL = Operation(
    operation_id="openaiRetrieveModel",
    method="GET",
    path="/openai/v1/models/{model}",
    tag=_TAG,
    summary="Retrieve a model",
    description="One of the models the list has: a backend's name.",
    parameters=(Parameter("model", "path", {"type": "string"}, "claude, codex or gemini.", required=True),),
    response_schema="OpenAIModel",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)
CHAT = Operation(
    operation_id="openaiChatCompletions",
    method="POST",
    path="/openai/v1/chat/completions",
    tag=_TAG,
    summary="Create a chat completion",
    description=(
        "Runs the conversation as one prompt on the backend the model selects. With stream true "
        "the answer is a stream of chat.completion.chunk events ending with data: [DONE]."
    ),
    request_schema="OpenAIChatRequest",
    response_schema="ChatCompletion",
    stream_media_type="text/event-stream",
    stream_schema="ChatCompletionChunk",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)


class OpenAIApi(CompatFamily):
    """The C{/openai} family."""

    dialect: ClassVar[Dialect] = Dialect.OPENAI
    operations: ClassVar[tuple[Operation, ...]] = (MODELS, MODEL, CHAT)
    app = family_app(dialect)

    def _now(self) -> int:
        return int(self._clock.seconds())

    def _model(self, name: str, created: int) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "clinvoker",
            "capabilities": capabilities(self._runner.backends[name]),
        }

    @route(app, MODELS)
    def models(self, request: IRequest) -> bytes:
        created = self._now()
        data = [self._model(name, created) for name in self._runner.backends]
        return typed_response(request, "OpenAIModelsResponseBody", {"object": "list", "data": data})

    @route(app, MODEL)
    def model(self, request: IRequest, model: str) -> bytes:
        if model not in self._runner.backends:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        return typed_response(request, "OpenAIModel", self._model(model, self._now()))

    @route(app, CHAT)
    async def chat_completions(self, request: IRequest) -> bytes | None:
        body: dict[str, Any] = read_json(request, self._schemas, "OpenAIChatRequest")
        model: str = body["model"]
        if not model:
            raise InvalidRequest("model is required", param="model")
        if not body["messages"]:
            raise InvalidRequest("messages are required", param="messages")
        turns, system = openai_turns(body["messages"])
        prompt = flatten(turns)
        if not prompt:
            raise InvalidRequest("no user messages found", param="messages")
        run = RunRequest(
            backend=openai_backend(model, self._runner.backends),
            prompt=prompt,
            model=run_model(model, self._runner.backends),
            system_prompt=system,
            max_tokens=body.get("max_tokens") or 0,
            ephemeral=True,
        )
        turn = await self._conversations.begin(
            run, turns, api="openai", pinned=pinned_session(request), announce=announcer(request)
        )
        with self._conversations.recorded(turn):
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                await self._stream(request, turn, model, include_usage)
                return None
            result = await self._conversations.complete(turn)
            self._conversations.end(turn, result, result.output)
            write_json(request, self._completion(result, model, turn.request.prompt))
        return None

    def _completion(self, result: RunResult, model: str, prompt: str) -> dict[str, Any]:
        prompt_tokens, completion_tokens = usage_or_estimate(result.usage, prompt, result.output)
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": self._now(),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.output},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens, completion_tokens),
        }

    async def _stream(self, request: IRequest, turn: Turn, model: str, include_usage: bool) -> None:
        """
        Answer with chunks: the role as soon as the CLI runs, then each
        piece of text as the CLI produces it, then the finish chunk, the
        usage chunk when asked for, and C{[DONE]}.  A failure once the
        stream has started is a final error event, written by the error
        path (docs/design/decisions.md#d2-sdk-error-dialects).

        @raise BackendFailed: When the CLI failed.
        """
        running = await self._conversations.stream(turn)
        completion_id, created = new_id("chatcmpl-"), self._now()

        def chunk(delta: dict[str, str], finish_reason: str | None) -> bytes:
            return frame(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                }
            )

        events = EventSource(request, self._clock, self._keepalive)
        with stopped_on_failure(running), closing(events):
            await events.send(chunk({"role": "assistant", "content": ""}, None))
            output = ""
            async for event in running:
                text = event.content.get("text") if event.type == "message" else None
                if text:
                    output += text
                    await events.send(chunk({"content": text}, None))
            result = await running.result()
            self._conversations.end(turn, result, output)
            if failed(result):
                raise BackendFailed(failure_text(result, output))
            await events.send(chunk({}, "stop"))
            if include_usage:
                prompt_tokens, completion_tokens = usage_or_estimate(
                    result.usage, turn.request.prompt, output
                )
                usage_chunk = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(prompt_tokens, completion_tokens),
                }
                await events.send(frame(usage_chunk))
            await events.send(DONE)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
