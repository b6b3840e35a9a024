# -*- test-case-name: tests.compat.test_conversation -*-
"""
From a chat history to the one prompt and system text a CLI takes
(docs/design/openai-api.md#openai-content, docs/design/openai-api.md#openai-flattening,
docs/design/anthropic-api.md#anthropic-content,
docs/design/anthropic-api.md#anthropic-flattening).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from clinvk.compat.images import Images
from clinvk.compat.tools import ToolCall, ToolExchanges, calls_text, canonical
from clinvk.errors import InvalidRequest

SYSTEM_ROLES = ("system", "developer")


def content_texts(
    parts: Sequence[Any],
    field: str,
    unsupported: str,
    *,
    skipped: tuple[str, ...] = (),
    images: Images | None = None,
    text_types: tuple[str | None, ...] = ("text", None),
    name_part: bool = False,
) -> str:
    """
    The text of an array of content parts or blocks, joined with newlines.

    @param field: Where the array is, for the error's C{param}.
    @param unsupported: The error text before the offending type.
    @param skipped: Types that carry no prompt text and are left out.
    @param images: Where the images of a message that may hold them go;
        each part's marker stands in the text (docs/design/images.md).
    @param text_types: The types of the parts whose C{text} is taken
        (L{None}: a part without a type).
    @param name_part: Whether an error's C{param} names the part itself
        (C{field[i]}) rather than the array.
    @raise InvalidRequest: For a part of any other type.
    """
    texts = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in skipped:
            continue
        text = part.get("text") if isinstance(part, Mapping) else None
        marker = images.part(part, f"{field}[{index}]") if images is not None and kind else None
        if marker is not None:
            texts.append(marker)
        elif kind in text_types and isinstance(text, str):
            texts.append(text)
        else:
            raise InvalidRequest(f"{unsupported}: {kind}", param=f"{field}[{index}]" if name_part else field)
    return "\n".join(texts)


def openai_content(content: Any, field: str, images: Images | None = None) -> str:
    """
    A message's C{content} as text: a string as is, null as C{""}, an
    array of parts as the text of its text parts and the markers of its
    images, where C{images} collects them.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return content_texts(content, field, "unsupported content part type", images=images)
    return ""


def anthropic_content(content: Any, field: str, images: Images | None = None) -> str:
    """
    A message's C{content} as text: a string as is, an array of blocks as
    the text of its text blocks (thinking blocks skipped) and the markers
    of its images, where C{images} collects them.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return content_texts(
            content,
            field,
            "unsupported content block type",
            skipped=("thinking", "redacted_thinking"),
            images=images,
        )
    return ""


def anthropic_system(system: Any) -> str:
    """The top-level C{system} of a Messages request, as text."""
    if isinstance(system, list):
        return content_texts(system, "system", "unsupported system block type")
    return system if isinstance(system, str) else ""


def flatten(turns: Iterable[tuple[str, str]]) -> str:
    """
    The reference's flattening of C{(role, text)} turns: user texts (and
    tool results) joined by newlines, assistant texts quoted as previous
    responses once a user has spoken, every other role ignored.
    """
    prompt = ""
    for role, text in turns:
        if role in ("user", "tool"):
            if prompt:
                prompt += "\n"
            prompt += text
        elif role == "assistant" and prompt:
            prompt += f"\n[Previous response: {text}]\n"
    return prompt


Turns = list[tuple[str, str]]


def openai_turns(
    messages: Sequence[Mapping[str, Any]],
    images: Images | None = None,
    exchanges: ToolExchanges | None = None,
) -> tuple[Turns, str]:
    """
    The C{(role, text)} turns and the system text of an OpenAI C{messages}
    array: system and developer messages are the system text, joined by a
    blank line.  An assistant message's C{tool_calls} and a C{tool}
    message's result are text too (L{calls_text}, L{ToolExchanges.result}).

    @param images: Collects the images of user messages; without it, an
        image is refused.
    @param exchanges: Collects the tool results.
    """
    exchanges = exchanges if exchanges is not None else ToolExchanges()
    systems: list[str] = []
    turns: Turns = []
    for index, message in enumerate(messages):
        role = message["role"]
        found = images if role == "user" else None
        field = f"messages[{index}]"
        text = openai_content(message.get("content"), f"{field}.content", found)
        if role in SYSTEM_ROLES:
            systems.append(text)
        elif role == "tool" and "tool_call_id" in message:
            turns.append(
                (
                    role,
                    exchanges.result(
                        message.get("tool_call_id"), message.get("content"), False, f"{field}.tool_call_id"
                    ),
                )
            )
        elif role == "assistant" and message.get("tool_calls"):
            turns.append(
                (role, calls_text(text, _openai_calls(message["tool_calls"], f"{field}.tool_calls")))
            )
        elif role != "tool":
            # A tool message that answers no call is ignored, as any other role.
            turns.append((role, text))
    return turns, "\n\n".join(systems)


def _openai_calls(calls: Any, field: str) -> list[ToolCall]:
    """The calls of an assistant message's C{tool_calls}."""
    found = []
    for index, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise InvalidRequest("a tool call needs its function", param=f"{field}[{index}]")
        found.append(
            ToolCall(
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
            )
        )
    return found


def openai_conversation(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The prompt and system text of an OpenAI C{messages} array: its turns flattened."""
    turns, system = openai_turns(messages)
    return flatten(turns), system


def anthropic_turns(
    messages: Sequence[Mapping[str, Any]],
    system: Any,
    images: Images | None = None,
    exchanges: ToolExchanges | None = None,
) -> tuple[Turns, str]:
    """
    The C{(role, text)} turns and the system text of an Anthropic Messages
    request: an assistant's C{tool_use} blocks and a user's C{tool_result}
    blocks are text too, as for L{openai_turns}.

    @param images: As for L{openai_turns}.
    @param exchanges: Collects the tool results.
    """
    exchanges = exchanges if exchanges is not None else ToolExchanges()
    turns: Turns = []
    for index, message in enumerate(messages):
        role, content = message["role"], message.get("content")
        field = f"messages[{index}].content"
        calls: list[ToolCall] = []
        results: list[str] = []
        if isinstance(content, list):
            blocks = []
            for number, block in enumerate(content):
                kind = block.get("type") if isinstance(block, Mapping) else None
                where = f"{field}[{number}]"
                if kind == "tool_use" and role == "assistant":
                    calls.append(
                        ToolCall(
                            str(block.get("id") or ""),
                            str(block.get("name") or ""),
                            canonical(block.get("input") or {}),
                        )
                    )
                elif kind == "tool_result" and role == "user":
                    results.append(
                        exchanges.result(
                            block.get("tool_use_id"), block.get("content"), bool(block.get("is_error")), where
                        )
                    )
                else:
                    blocks.append(block)
            content = blocks
        text = anthropic_content(content, field, images if role == "user" else None)
        text = "\n".join(filter(None, [*results, text])) if results else text
        turns.append((role, calls_text(text, calls)))
    return turns, anthropic_system(system)


def anthropic_conversation(
    messages: Sequence[Mapping[str, Any]], system: Any, images: Images | None = None
) -> tuple[str, str]:
    """
    The prompt and system text of an Anthropic Messages request: its turns
    flattened (C{images} as for L{openai_turns}).
    """
    turns, system_text = anthropic_turns(messages, system, images)
    return flatten(turns), system_text
