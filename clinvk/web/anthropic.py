# -*- test-case-name: tests.web.test_anthropic -*-
"""
The Anthropic-compatible API under C{/anthropic/v1} (docs/design/anthropic-api.md#anthropic-api):
messages, as JSON or as server-sent events, their token count, and the
models, with every failure in
Anthropic's error format (docs/design/decisions.md#d2-sdk-error-dialects).
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any, ClassVar

from twisted.web.iweb import IRequest

from clinvk.compat.conversation import anthropic_conversation, anthropic_turns, flatten
from clinvk.compat.conversations import Turn
from clinvk.compat.images import IMAGE_TOKENS
from clinvk.compat.models import (
    anthropic_backend,
    capabilities,
    estimate_tokens,
    new_id,
    run_model,
    usage_or_estimate,
)
from clinvk.compat.runs import failed, failure_text
from clinvk.compat.tool_runs import ToolCallsMade
from clinvk.compat.tools import ToolCall, ToolExchanges, anthropic_tool_choice, anthropic_tools
from clinvk.errors import BackendFailed, InvalidRequest, ModelNotFound
from clinvk.model import RunRequest, RunResult
from clinvk.openapi import Operation, Parameter
from clinvk.web._compat_family import CompatFamily, announcer, pinned_session
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json
from clinvk.web._responses import typed_response, write_json
from clinvk.web._routing import family_app, route
from clinvk.web._sse import EventSource, frame
from clinvk.web._streaming import stopped_on_failure

_TAG = "Anthropic compatible"

MESSAGES = Operation(
    operation_id="anthropicMessages",
    method="POST",
    path="/anthropic/v1/messages",
    tag=_TAG,
    summary="Create a message",
    description=(
        "Runs the conversation as one prompt on Claude, or on the backend named by the model "
        "(claude, codex, gemini). With stream true the answer is the Messages event stream: "
        "message_start, content_block_start, content_block_delta..., content_block_stop, "
        "message_delta, message_stop."
    ),
    request_schema="AnthropicMessagesRequest",
    response_schema="AnthropicMessageResponse",
    stream_media_type="text/event-stream",
    error_media_type="application/json",
    error_schema="AnthropicErrorBody",
)


COUNT_TOKENS = Operation(
    operation_id="anthropicCountTokens",
    method="POST",
    path="/anthropic/v1/messages/count_tokens",
    tag=_TAG,
    summary="Count the input tokens of a message",
    description=(
        "An estimate, about one token per four bytes of the system prompt, the conversation as "
        "it would reach the CLI and the tools; the CLI adds its own system prompt and tools."
    ),
    request_schema="AnthropicCountTokensRequest",
    response_schema="AnthropicTokensCount",
    error_media_type="application/json",
    error_schema="AnthropicErrorBody",
)
MODELS = Operation(
    operation_id="anthropicListModels",
    method="GET",
    path="/anthropic/v1/models",
    tag=_TAG,
    summary="List models",
    description="One model per backend, sorted by id, a page at a time.",
    parameters=(
        Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (20)."),
        Parameter("after_id", "query", {"type": "string"}, "The page after this id."),
        Parameter("before_id", "query", {"type": "string"}, "The page before this id."),
    ),
    response_schema="AnthropicModelsResponseBody",
    error_media_type="application/json",
    error_schema="AnthropicErrorBody",
)
MODEL = Operation(
    operation_id="anthropicRetrieveModel",
    method="GET",
    path="/anthropic/v1/models/{model}",
    tag=_TAG,
    summary="Retrieve a model",
    description="One of the models the list has: a backend's name.",
    parameters=(Parameter("model", "path", {"type": "string"}, "claude, codex or gemini.", required=True),),
    response_schema="AnthropicModel",
    error_media_type="application/json",
    error_schema="AnthropicErrorBody",
)

# Anthropic's ModelInfo allows the epoch where a release date is unknown.
_UNKNOWN_RELEASE = "1970-01-01T00:00:00Z"
_DEFAULT_PAGE = 20
_LARGEST_PAGE = 1000


class AnthropicApi(CompatFamily):
    """The C{/anthropic} family."""

    dialect: ClassVar[Dialect] = Dialect.ANTHROPIC
    operations: ClassVar[tuple[Operation, ...]] = (MESSAGES, COUNT_TOKENS, MODELS, MODEL)
    app = family_app(dialect)

    @route(app, MESSAGES)
    async def messages(self, request: IRequest) -> bytes | None:
        body: dict[str, Any] = read_json(request, self._schemas, "AnthropicMessagesRequest")
        model: str = body["model"]
        if not model:
            raise InvalidRequest("model is required", param="model")
        if not body["messages"]:
            raise InvalidRequest("messages are required", param="messages")
        if body["max_tokens"] <= 0:
            raise InvalidRequest("max_tokens must be greater than 0", param="max_tokens")
        images = self._images()
        exchanges = ToolExchanges()
        turns, system = anthropic_turns(body["messages"], body.get("system"), images, exchanges)
        if not flatten(turns):
            raise InvalidRequest("no user messages found", param="messages")
        tools = anthropic_tools(body.get("tools"))
        choice = anthropic_tool_choice(body.get("tool_choice"), tools)
        turns = await self._resolved(images, turns)
        prompt = flatten(turns)
        run = RunRequest(
            backend=anthropic_backend(model, self._runner.backends),
            prompt=prompt,
            model=run_model(model, self._runner.backends),
            system_prompt=system,
            max_tokens=body["max_tokens"],
            ephemeral=True,
            images=images.found,
        )
        turn = await self._conversations.begin(
            run,
            turns,
            api="anthropic",
            pinned=pinned_session(request),
            announce=announcer(request),
            results=exchanges.results,
        )
        turn.call_prefix = "toolu_"
        self._offer_tools(turn, body, tools, choice)
        with self._conversations.recorded(turn):
            if body.get("stream"):
                await self._stream(request, turn, model)
                return None
            answered = await self._conversations.answer(turn)
        result, text, calls = answered.result, answered.text, answered.calls
        input_tokens, output_tokens = usage_or_estimate(result.usage, turn.request.prompt, text)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls else []
        content += [_tool_use(call) for call in calls]
        message = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": model,
            "stop_reason": "tool_use" if calls else "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        write_json(request, message)
        return None

    @route(app, COUNT_TOKENS)
    def count_tokens(self, request: IRequest) -> bytes:
        body: dict[str, Any] = read_json(request, self._schemas, "AnthropicCountTokensRequest")
        if not body["model"]:
            raise InvalidRequest("model is required", param="model")
        if not body["messages"]:
            raise InvalidRequest("messages are required", param="messages")
        images = self._images()
        prompt, system = anthropic_conversation(body["messages"], body.get("system"), images)
        tools = body.get("tools") or []
        # A remote image counts as any other, without being fetched.
        shown = len(images.found) + images.remote
        counted = estimate_tokens(system) + estimate_tokens(prompt) + IMAGE_TOKENS * shown
        if tools:
            counted += estimate_tokens(json.dumps(tools, separators=(",", ":")))
        return typed_response(request, "AnthropicTokensCount", {"input_tokens": counted})

    def _model(self, name: str) -> dict[str, Any]:
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": _UNKNOWN_RELEASE,
            "lifecycle": "active",
            "clinvk_capabilities": capabilities(
                self._runner.backends[name], conversations=self._conversations.enabled
            ),
        }

    @route(app, MODELS)
    def models(self, request: IRequest) -> bytes:
        names = sorted(self._runner.backends)
        limit = _limit(request)
        after, before = _query(request, "after_id"), _query(request, "before_id")
        if before is not None:
            earlier = [name for name in names if name < before]
            names, more = earlier[-limit:], len(earlier) > limit
        else:
            later = [name for name in names if after is None or name > after]
            names, more = later[:limit], len(later) > limit
        page = {
            "data": [self._model(name) for name in names],
            "has_more": more,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
        return typed_response(request, "AnthropicModelsResponseBody", page)

    @route(app, MODEL)
    def model(self, request: IRequest, model: str) -> bytes:
        if model not in self._runner.backends:
            raise ModelNotFound(f"model: {model}", param="model")
        return typed_response(request, "AnthropicModel", self._model(model))

    async def _stream(self, request: IRequest, turn: Turn, model: str) -> None:
        """
        Answer with the Messages event stream: its opening events as soon
        as the CLI runs, a text delta for each piece of text as the CLI
        produces it, then its closing events.  A failure once the stream
        has started is an C{error} event, written by the error path
        (docs/design/decisions.md#d2-sdk-error-dialects).

        @raise BackendFailed: When the CLI failed (once the content block
            is closed).
        """
        running = await self._conversations.stream(turn)
        events = EventSource(request, self._clock, self._keepalive)
        with stopped_on_failure(running), closing(events):
            start: dict[str, Any] = {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            await events.send(frame({"type": "message_start", "message": start}, "message_start"))
            blocks = _Blocks(events)
            if not turn.uses_tools:
                # A text answer's block opens as the CLI runs.
                await blocks.text("")
            streamed = ""
            async for event in running:
                text = event.content.get("text") if event.type == "message" else None
                if text:
                    streamed += text
                    await blocks.text(text)
            ended = await running.result()
            if isinstance(ended, ToolCallsMade):
                self._conversations.park(turn, streamed, ended.calls)
                for call in ended.calls:
                    await blocks.tool_use(call)
                result, stop_reason = RunResult(exit_code=0), "tool_use"
            else:
                result, stop_reason = ended, "end_turn"
                self._conversations.end(turn, result, streamed)
                if not blocks.opened:
                    # A failed answer still has its (empty) text block.
                    await blocks.text("")
            await blocks.close()
            if failed(result):
                raise BackendFailed(failure_text(result, streamed))
            usage = result.usage
            ending = {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason},
                "usage": {
                    "input_tokens": usage.input_tokens if usage else 0,
                    "output_tokens": usage.output_tokens if usage else 0,
                },
            }
            await events.send(frame(ending, "message_delta"))
            await events.send(frame({"type": "message_stop"}, "message_stop"))


class _Blocks:
    """The content blocks of a streamed message, opened and closed in turn."""

    def __init__(self, events: EventSource) -> None:
        self._events = events
        self._index = -1
        self._open = ""

    @property
    def opened(self) -> bool:
        """Whether any block has been opened."""
        return self._index >= 0

    async def _start(self, block: dict[str, Any]) -> None:
        await self.close()
        self._index += 1
        self._open = block["type"]
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        await self._events.send(frame(start, "content_block_start"))

    async def _delta(self, delta: dict[str, Any]) -> None:
        body = {"type": "content_block_delta", "index": self._index, "delta": delta}
        await self._events.send(frame(body, "content_block_delta"))

    async def text(self, text: str) -> None:
        """A piece of the answer's text, in the open text block or a new one."""
        if self._open != "text":
            await self._start({"type": "text", "text": ""})
        if text:
            await self._delta({"type": "text_delta", "text": text})

    async def tool_use(self, call: ToolCall) -> None:
        """A block of its own for a call, its input as one JSON delta."""
        await self._start({**_tool_use(call), "input": {}})
        await self._delta({"type": "input_json_delta", "partial_json": call.arguments})

    async def close(self) -> None:
        """Close the open block, if any."""
        if self._open:
            self._open = ""
            await self._events.send(
                frame({"type": "content_block_stop", "index": self._index}, "content_block_stop")
            )


def _tool_use(call: ToolCall) -> dict[str, Any]:
    """A C{tool_use} content block."""
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input()}


def _query(request: IRequest, name: str) -> str | None:
    """A query parameter's first value, if given."""
    values = (request.args or {}).get(name.encode("ascii"))
    return values[0].decode("utf-8", "replace") if values else None


def _limit(request: IRequest) -> int:
    """
    The page size of a model list: C{limit}, 20 when absent.

    @raise InvalidRequest: When it is no integer from 1 to 1000.
    """
    given = _query(request, "limit")
    if given is None:
        return _DEFAULT_PAGE
    try:
        limit = int(given)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _LARGEST_PAGE:
        raise InvalidRequest(f"limit: expected an integer from 1 to {_LARGEST_PAGE}", param="limit")
    return limit
