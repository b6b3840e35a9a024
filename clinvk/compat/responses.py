# -*- test-case-name: tests.compat.test_responses -*-
"""
The shapes of OpenAI's Responses API (docs/design/responses-api.md): a
request's C{input} and C{instructions} as the turns of a conversation, and
the response object, its output message and its usage, built from a run's
answer.  Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clinvk.compat.conversation import SYSTEM_ROLES, Turns, content_texts
from clinvk.compat.images import Images
from clinvk.compat.tools import ToolCall, ToolExchanges, calls_text
from clinvk.errors import InvalidRequest

# The text part types of each role's content, as the SDKs send them back.
_TEXT_PARTS = ("input_text", "output_text", "text")
# Parts that carry nothing for the CLI: a refusal the SDK sends back.
_SKIPPED_PARTS = ("refusal",)
# Items that carry nothing for the CLI: the model's own reasoning.
_SKIPPED_ITEMS = ("reasoning",)


def responses_turns(
    items: str | Sequence[Any], images: Images | None = None, exchanges: ToolExchanges | None = None
) -> tuple[Turns, list[str]]:
    """
    The C{(role, text)} turns of a request's C{input}, and the texts of its
    system and developer messages, which are part of the conversation (a
    later request's C{previous_response_id} carries them over, unlike
    C{instructions}).

    @param images: Collects the C{input_image} parts of user messages
        (docs/design/images.md); without it, an image is refused.
    @param exchanges: Collects the C{function_call_output} items' results.
        A run of C{function_call} items is one assistant turn with the
        assistant message just before them (L{calls_text}), as the chat
        APIs' messages have it.
    @raise InvalidRequest: For an input item or content part that is not
        text, an image of a user message, a function call or its output
        (files, say).
    """
    exchanges = exchanges if exchanges is not None else ToolExchanges()
    systems: list[str] = []
    if isinstance(items, str):
        return [("user", items)], systems
    turns: Turns = []
    # The answer being read: its words, then the calls it made.
    words: str | None = None
    calls: list[ToolCall] = []
    for index, item in enumerate(items):
        field = f"input[{index}]"
        kind = item.get("type", "message")
        if kind in _SKIPPED_ITEMS:
            continue
        if kind == "function_call":
            if words is None:
                words = turns.pop()[1] if turns and turns[-1][0] == "assistant" and not calls else ""
            calls.append(
                ToolCall(
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
            )
            continue
        if words is not None:
            turns.append(("assistant", calls_text(words, calls)))
            words, calls = None, []
        if kind == "function_call_output":
            turns.append(
                ("tool", exchanges.result(item.get("call_id"), item.get("output"), False, f"{field}.call_id"))
            )
            continue
        if kind != "message":
            raise InvalidRequest(f"unsupported input item type: {kind}", param=field)
        role, content = item.get("role"), item.get("content")
        found = images if role == "user" else None
        text = (
            content
            if isinstance(content, str)
            else content_texts(
                content or [],
                f"{field}.content",
                "unsupported content part type",
                skipped=_SKIPPED_PARTS,
                images=found,
                text_types=_TEXT_PARTS,
                name_part=True,
            )
        )
        if role in SYSTEM_ROLES:
            systems.append(text)
        else:
            turns.append((str(role), text))
    if words is not None:
        turns.append(("assistant", calls_text(words, calls)))
    return turns, systems


def function_call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    """A C{function_call} output item."""
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def output_message(message_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    """The output item of an answer; no content part while it has none (C{text} L{None})."""
    content = [] if text is None else [output_text(text)]
    return {"id": message_id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    """An C{output_text} content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A response's C{usage}."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_object(
    request: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int,
    status: str,
    output: Sequence[Mapping[str, Any]] = (),
    used: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """
    The response object of C{request} (the request body as sent): what it
    asked for echoed back, with the answer so far.
    """
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at,
        "error": dict(error) if error else None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": request["model"],
        "output": [dict(item) for item in output],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": list(request.get("tools") or []),
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": dict(used) if used else None,
        "user": request.get("user"),
        "metadata": dict(request.get("metadata") or {}),
    }
