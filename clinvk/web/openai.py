# -*- test-case-name: tests.web.test_openai -*-
"""
The OpenAI-compatible API under C{/openai/v1} (docs/design/openai-api.md#openai-api): the
models and chat completions, as JSON or as server-sent events, with
every failure in OpenAI's error format (docs/design/decisions.md#d2-sdk-error-dialects).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from typing import Any, ClassVar

import attrs

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from clinvk.compat.conversation import flatten, openai_turns
from clinvk.compat.conversations import Turn
from clinvk.compat.models import capabilities, new_id, openai_backend, run_model, usage_or_estimate
from clinvk.compat.responses import (
    function_call_item,
    output_message,
    output_text,
    response_object,
    responses_turns,
    usage,
)
from clinvk.compat.runs import failed, failure_text
from clinvk.compat.structured import AnswerFormat, chat_answer_format, instructed, responses_answer_format
from clinvk.compat.tool_runs import ToolCallsMade
from clinvk.compat.tools import (
    ClientTool,
    ToolCall,
    ToolExchanges,
    calls_text,
    openai_tool_choice,
    openai_tools,
    responses_tools,
)
from clinvk.errors import BackendFailed, InvalidRequest, ModelNotFound, NotFound, StoreError
from clinvk.model import RunRequest, RunResult
from clinvk.openapi import Operation, Parameter
from clinvk.sessions.responses import MemoryResponseFiles, ResponseStore, StoredResponse
from clinvk.web._compat_family import CompatFamily, announcer, pinned_session
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json
from clinvk.web._response_events import ResponseEvents
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
RESPONSES = Operation(
    operation_id="openaiCreateResponse",
    method="POST",
    path="/openai/v1/responses",
    tag=_TAG,
    summary="Create a response",
    description=(
        "The Responses API: the input, after the conversation of previous_response_id, on the backend "
        "the model selects. With stream true the answer is the Responses event stream, from "
        "response.created to response.completed."
    ),
    request_schema="OpenAIResponsesRequest",
    response_schema="OpenAIResponse",
    stream_media_type="text/event-stream",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)
_RESPONSE_ID = Parameter("response_id", "path", {"type": "string"}, "A stored response's id.", required=True)
RESPONSE = Operation(
    operation_id="openaiRetrieveResponse",
    method="GET",
    path="/openai/v1/responses/{response_id}",
    tag=_TAG,
    summary="Retrieve a response",
    description="A stored response, as it was answered.",
    parameters=(_RESPONSE_ID,),
    response_schema="OpenAIResponse",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)
RESPONSE_DELETE = Operation(
    operation_id="openaiDeleteResponse",
    method="DELETE",
    path="/openai/v1/responses/{response_id}",
    tag=_TAG,
    summary="Delete a response",
    description="Deletes a stored response; its session stays.",
    parameters=(_RESPONSE_ID,),
    response_schema="OpenAIResponseDeleted",
    error_media_type="application/json",
    error_schema="OpenAIErrorBody",
)

log = Logger()


class OpenAIApi(CompatFamily):
    """The C{/openai} family."""

    dialect: ClassVar[Dialect] = Dialect.OPENAI
    operations: ClassVar[tuple[Operation, ...]] = (MODELS, MODEL, CHAT, RESPONSES, RESPONSE, RESPONSE_DELETE)
    app = family_app(dialect)

    def __init__(self, *, responses: ResponseStore | None = None, **family: Any) -> None:
        """
        @param responses: Where responses are stored; by default in memory.
        @param family: As for L{CompatFamily}.
        """
        super().__init__(**family)
        self._responses = responses or ResponseStore(MemoryResponseFiles())

    def _now(self) -> int:
        return int(self._clock.seconds())

    def _model(self, name: str, created: int) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "clinvoker",
            "capabilities": capabilities(
                self._runner.backends[name], conversations=self._conversations.enabled
            ),
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
        images = self._images()
        exchanges = ToolExchanges()
        turns, system = openai_turns(body["messages"], images, exchanges)
        if not flatten(turns):
            raise InvalidRequest("no user messages found", param="messages")
        backend = openai_backend(model, self._runner.backends)
        tools = openai_tools(body.get("tools"))
        choice = openai_tool_choice(body.get("tool_choice"), tools)
        answer_format = chat_answer_format(body.get("response_format"))
        _one_of(answer_format, tools)
        schema, instruction = self._format_options(answer_format, backend)
        # Fetched once everything else is known to be right.
        turns = await self._resolved(images, turns)
        run = RunRequest(
            backend=backend,
            prompt=flatten(turns),
            model=run_model(model, self._runner.backends),
            system_prompt=system,
            max_tokens=body.get("max_tokens") or 0,
            ephemeral=True,
            output_schema=schema,
            images=images.found,
        )
        turn = await self._conversations.begin(
            run,
            turns,
            api="openai",
            pinned=pinned_session(request),
            announce=announcer(request),
            results=exchanges.results,
        )
        self._offer_tools(turn, body, tools, choice)
        turn.request = instructed(turn.request, instruction)
        with self._conversations.recorded(turn):
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                await self._stream(request, turn, model, include_usage, answer_format)
                return None
            answered = await self._conversations.answer(turn, answer_format)
            completion = self._completion(
                answered.result, model, turn.request.prompt, answered.text, answered.calls
            )
            write_json(request, completion)
        return None

    def _format_options(self, answer_format: AnswerFormat | None, backend: str) -> tuple[str, str]:
        """The schema and instruction a run is given for C{answer_format} (L{AnswerFormat.run_options})."""
        if answer_format is None:
            return "", ""
        return answer_format.run_options(self._runner.backends[backend])

    def _completion(
        self, result: RunResult, model: str, prompt: str, text: str, calls: Sequence[ToolCall] = ()
    ) -> dict[str, Any]:
        prompt_tokens, completion_tokens = usage_or_estimate(result.usage, prompt, text)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["content"] = text or None
            message["tool_calls"] = [_tool_call(call) for call in calls]
        return {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": self._now(),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": _usage(prompt_tokens, completion_tokens),
        }

    async def _stream(
        self,
        request: IRequest,
        turn: Turn,
        model: str,
        include_usage: bool,
        answer_format: AnswerFormat | None,
    ) -> None:
        """
        Answer with chunks: the role as soon as the CLI runs, then each
        piece of text as the CLI produces it, then the finish chunk, the
        usage chunk when asked for, and C{[DONE]}.  A failure once the
        stream has started is a final error event, written by the error
        path (docs/design/decisions.md#d2-sdk-error-dialects).

        @raise BackendFailed: When the CLI failed.
        """
        running = await self._conversations.stream(turn, answer_format)
        completion_id, created = new_id("chatcmpl-"), self._now()

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
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
            ended = await running.result()
            if isinstance(ended, ToolCallsMade):
                self._conversations.park(turn, output, ended.calls)
                for index, call in enumerate(ended.calls):
                    named = {**_tool_call(call), "index": index}
                    named["function"] = {"name": call.name, "arguments": ""}
                    await events.send(chunk({"tool_calls": [named]}, None))
                    arguments = {"index": index, "function": {"arguments": call.arguments}}
                    await events.send(chunk({"tool_calls": [arguments]}, None))
                result, finish_reason = RunResult(exit_code=0), "tool_calls"
            else:
                result, finish_reason = ended, "stop"
                self._conversations.end(turn, result, output)
                if failed(result):
                    raise BackendFailed(failure_text(result, output))
            await events.send(chunk({}, finish_reason))
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

    # -- the Responses API (docs/design/responses-api.md)

    @route(app, RESPONSES)
    async def create_response(self, request: IRequest) -> bytes | None:
        body: dict[str, Any] = read_json(request, self._schemas, "OpenAIResponsesRequest")
        model: str = body["model"]
        if not model:
            raise InvalidRequest("model is required", param="model")
        items = await self._referenced(body["input"])
        images = self._images()
        exchanges = ToolExchanges()
        new_input, new_systems = responses_turns(items, images, exchanges)
        if not any(role in ("user", "tool") for role, _ in new_input):
            raise InvalidRequest("input has no user message", param="input")
        backend = openai_backend(model, self._runner.backends)
        tools = responses_tools(body.get("tools"))
        choice = openai_tool_choice(body.get("tool_choice"), tools)
        answer_format = responses_answer_format(body.get("text"))
        _one_of(answer_format, tools)
        schema, instruction = self._format_options(answer_format, backend)
        earlier = await self._earlier(body.get("previous_response_id"))
        new_input = await self._resolved(images, new_input)
        turns = [*(earlier.history if earlier else ()), *new_input]
        # The conversation's system messages go on; the instructions do not.
        systems = (*(earlier.systems if earlier else ()), *new_systems)
        instructions = body.get("instructions")
        run = RunRequest(
            backend=backend,
            prompt=flatten(turns),
            model=run_model(model, self._runner.backends),
            system_prompt=_joined(instructions, *systems),
            max_tokens=body.get("max_output_tokens") or 0,
            ephemeral=True,
            output_schema=schema,
            images=images.found,
        )
        turn = await self._conversations.begin(
            run,
            turns,
            api="responses",
            pinned=pinned_session(request),
            announce=announcer(request),
            history_param="input",
            results=exchanges.results,
        )
        self._offer_tools(turn, body, tools, choice)
        turn.request = instructed(turn.request, instruction)
        # One id for both: an item_reference to the message finds its response.
        unique = new_id("")
        answer = _Answer(body, "resp_" + unique, "msg_" + unique, self._now(), turns, systems)
        with self._conversations.recorded(turn):
            if body.get("stream"):
                await self._stream_response(request, turn, answer, answer_format)
                return None
            answered = await self._conversations.answer(turn, answer_format)
        text, calls = answered.text, answered.calls
        completed = answer.completed(answered.result, turn.request.prompt, text, self._now(), calls)
        await self._keep(answer, completed, calls_text(text, calls), turn.session_id)
        write_json(request, completed)
        return None

    async def _referenced(self, items: str | list[Any]) -> str | list[Any]:
        """
        C{input} with each C{item_reference} to an answer clinvk gave
        replaced by that answer, as an assistant message.

        @raise NotFound: For a reference to no stored answer.
        """
        if isinstance(items, str):
            return items
        resolved = []
        for index, item in enumerate(items):
            if item.get("type") != "item_reference":
                resolved.append(item)
                continue
            item_id = str(item.get("id") or "")
            stored = await self._responses.get("resp_" + item_id.removeprefix("msg_"))
            if not item_id.startswith("msg_") or stored is None:
                raise NotFound(f"Item with id '{item_id}' not found.", param=f"input[{index}]")
            text = "".join(part.get("text", "") for part in stored.body["output"][0]["content"])
            resolved.append({"role": "assistant", "content": text})
        return resolved

    async def _earlier(self, previous: str | None) -> StoredResponse | None:
        """The stored response C{previous}, whose conversation goes on, if one is named."""
        if not previous:
            return None
        stored = await self._responses.get(previous)
        if stored is None:
            raise NotFound(f"Previous response with id '{previous}' not found.", param="previous_response_id")
        return stored

    async def _keep(self, answer: _Answer, completed: dict[str, Any], text: str, session_id: str) -> None:
        """Store a completed response, unless asked not to; a failure to is logged."""
        if answer.request.get("store") is False:
            return
        stored = StoredResponse(completed, (*answer.turns, ("assistant", text)), session_id, answer.systems)
        try:
            await self._responses.save(stored)
        except StoreError as e:
            log.error("Could not store response {id}: {error}", id=answer.response_id, error=str(e))

    async def _stream_response(
        self, request: IRequest, turn: Turn, answer: _Answer, answer_format: AnswerFormat | None
    ) -> None:
        """
        Answer with the Responses event stream (docs/design/responses-api.md#responses-stream);
        a CLI failure once it runs ends it with C{response.failed}.
        """
        running = await self._conversations.stream(turn, answer_format)
        numbered = ResponseEvents()
        events = EventSource(request, self._clock, self._keepalive)
        where = {"item_id": answer.message_id, "output_index": 0, "content_index": 0}
        with stopped_on_failure(running), closing(events):
            for kind in ("response.created", "response.in_progress"):
                await events.send(numbered.frame(kind, response=answer.snapshot("in_progress")))

            async def open_message() -> None:
                item = output_message(answer.message_id, None, "in_progress")
                await events.send(numbered.frame("response.output_item.added", output_index=0, item=item))
                await events.send(
                    numbered.frame("response.content_part.added", **where, part=output_text(""))
                )

            if not turn.uses_tools:
                # A text answer's message opens as the CLI runs.
                await open_message()
            text = ""
            async for event in running:
                piece = event.content.get("text") if event.type == "message" else None
                if piece:
                    if not text and turn.uses_tools:
                        await open_message()
                    text += piece
                    await events.send(
                        numbered.frame("response.output_text.delta", **where, delta=piece, logprobs=[])
                    )
            ended = await running.result()
            calls: tuple[ToolCall, ...] = ()
            if isinstance(ended, ToolCallsMade):
                self._conversations.park(turn, text, ended.calls)
                result, calls = RunResult(exit_code=0), ended.calls
            else:
                result = ended
                self._conversations.end(turn, result, text)
            if failed(result):
                error = {"code": "server_error", "message": failure_text(result, text)}
                await events.send(
                    numbered.frame("response.failed", response=answer.snapshot("failed", error=error))
                )
                return
            if text or not calls:
                if not text and turn.uses_tools:
                    await open_message()
                await events.send(
                    numbered.frame("response.output_text.done", **where, text=text, logprobs=[])
                )
                await events.send(
                    numbered.frame("response.content_part.done", **where, part=output_text(text))
                )
                item = output_message(answer.message_id, text)
                await events.send(numbered.frame("response.output_item.done", output_index=0, item=item))
            completed = answer.completed(result, turn.request.prompt, text, self._now(), calls)
            for index, item in enumerate(completed["output"]):
                if item["type"] == "function_call":
                    await self._send_call(events, numbered, index, item)
            await self._keep(answer, completed, calls_text(text, calls), turn.session_id)
            await events.send(numbered.frame("response.completed", response=completed))

    @staticmethod
    async def _send_call(
        events: EventSource, numbered: ResponseEvents, index: int, item: dict[str, Any]
    ) -> None:
        """The events of a C{function_call} output item: added, its arguments, done."""
        where = {"item_id": item["id"], "output_index": index}
        opened = {**item, "status": "in_progress", "arguments": ""}
        await events.send(numbered.frame("response.output_item.added", output_index=index, item=opened))
        arguments = item["arguments"]
        await events.send(numbered.frame("response.function_call_arguments.delta", **where, delta=arguments))
        await events.send(
            numbered.frame("response.function_call_arguments.done", **where, arguments=arguments)
        )
        await events.send(numbered.frame("response.output_item.done", output_index=index, item=item))

    @route(app, RESPONSE)
    async def retrieve_response(self, request: IRequest, response_id: str) -> bytes | None:
        stored = await self._responses.get(response_id)
        if stored is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        write_json(request, stored.body)
        return None

    @route(app, RESPONSE_DELETE)
    async def delete_response(self, request: IRequest, response_id: str) -> bytes | None:
        if not await self._responses.delete(response_id):
            raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
        write_json(request, {"id": response_id, "object": "response", "deleted": True})
        return None


@attrs.frozen
class _Answer:
    """
    The response a Responses request is answered with, as it is built.

    @ivar request: The request body.
    @ivar turns: Its conversation, earlier responses' included.
    @ivar systems: The conversation's system messages, earlier included.
    """

    request: dict[str, Any]
    response_id: str
    message_id: str
    created_at: int
    turns: list[tuple[str, str]]
    systems: tuple[str, ...]

    def snapshot(self, status: str, **members: Any) -> dict[str, Any]:
        """The response object while it has no output."""
        return response_object(
            self.request, response_id=self.response_id, created_at=self.created_at, status=status, **members
        )

    def completed(
        self, result: RunResult, prompt: str, text: str, now: int, calls: Sequence[ToolCall] = ()
    ) -> dict[str, Any]:
        """The response object once C{text} (and C{calls}, if any) answered it."""
        input_tokens, output_tokens = usage_or_estimate(result.usage, prompt, text)
        output = [output_message(self.message_id, text)] if text or not calls else []
        output += [function_call_item("fc_" + call.id.removeprefix("call_"), call) for call in calls]
        return response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            status="completed",
            output=output,
            used=usage(input_tokens, output_tokens),
            completed_at=now,
        )


def _tool_call(call: ToolCall) -> dict[str, Any]:
    """A chat completion's C{tool_calls} entry."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _one_of(answer_format: AnswerFormat | None, tools: Sequence[ClientTool]) -> None:
    """Refuse a request for a structured answer and tool calls at once."""
    if answer_format is not None and tools:
        raise InvalidRequest(
            "a structured answer with client tools is not supported", param="response_format"
        )


def _joined(*prompts: str | None) -> str:
    """The system prompt of the given parts that say something, a blank line apart."""
    return "\n\n".join(prompt for prompt in prompts if prompt)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
