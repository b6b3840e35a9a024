# -*- test-case-name: tests.web.test_anthropic -*-
"""
The Anthropic-compatible API under C{/anthropic/v1} (docs/design/anthropic-api.md#anthropic-api):
messages, as JSON or as server-sent events, with every failure in
Anthropic's error format (docs/design/decisions.md#d2-sdk-error-dialects).
"""

from __future__ import annotations

from contextlib import closing
from typing import Any, ClassVar

from twisted.web.iweb import IRequest

from clinvk.compat.conversation import anthropic_conversation
from clinvk.compat.models import anthropic_backend, new_id, run_model, usage_or_estimate
from clinvk.compat.runs import failed, failure_text
from clinvk.errors import BackendFailed, InvalidRequest
from clinvk.model import RunRequest
from clinvk.openapi import Operation
from clinvk.web._compat_family import CompatFamily
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json
from clinvk.web._responses import write_json
from clinvk.web._routing import family_app, route
from clinvk.web._sse import EventSource, frame
from clinvk.web._streaming import stopped_on_failure

MESSAGES = Operation(
    operation_id="anthropicMessages",
    method="POST",
    path="/anthropic/v1/messages",
    tag="Anthropic compatible",
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


class AnthropicApi(CompatFamily):
    """The C{/anthropic} family."""

    dialect: ClassVar[Dialect] = Dialect.ANTHROPIC
    operations: ClassVar[tuple[Operation, ...]] = (MESSAGES,)
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
        prompt, system = anthropic_conversation(body["messages"], body.get("system"))
        if not prompt:
            raise InvalidRequest("no user messages found", param="messages")
        run = RunRequest(
            backend=anthropic_backend(model, self._runner.backends),
            prompt=prompt,
            model=run_model(model, self._runner.backends),
            system_prompt=system,
            max_tokens=body["max_tokens"],
            ephemeral=True,
        )
        if body.get("stream"):
            await self._stream(request, run, model)
            return None
        result = await self._runner.complete(run)
        input_tokens, output_tokens = usage_or_estimate(result.usage, prompt, result.output)
        message = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": result.output}],
            "model": model,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        write_json(request, message)
        return None

    async def _stream(self, request: IRequest, run: RunRequest, model: str) -> None:
        """
        Answer with the Messages event stream: its opening events as soon
        as the CLI runs, a text delta for each piece of text as the CLI
        produces it, then its closing events.  A failure once the stream
        has started is an C{error} event, written by the error path
        (docs/design/decisions.md#d2-sdk-error-dialects).

        @raise BackendFailed: When the CLI failed (once the content block
            is closed).
        """
        running = await self._runner.stream(run)
        events = EventSource(request, self._clock, self._keepalive)
        with stopped_on_failure(running), closing(events):
            start = {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            await events.send(frame({"type": "message_start", "message": start}, "message_start"))
            block = {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
            await events.send(frame(block, "content_block_start"))
            streamed = ""
            async for event in running:
                text = event.content.get("text") if event.type == "message" else None
                if text:
                    streamed += text
                    delta = {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": text},
                    }
                    await events.send(frame(delta, "content_block_delta"))
            result = await running.result()
            await events.send(frame({"type": "content_block_stop", "index": 0}, "content_block_stop"))
            if failed(result):
                raise BackendFailed(failure_text(result, streamed))
            usage = result.usage
            ending = {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {
                    "input_tokens": usage.input_tokens if usage else 0,
                    "output_tokens": usage.output_tokens if usage else 0,
                },
            }
            await events.send(frame(ending, "message_delta"))
            await events.send(frame({"type": "message_stop"}, "message_stop"))
