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
    The reference's flattening of C{(role, text)} turns: user texts joined
    by newlines, assistant texts quoted as previous responses once a user
    has spoken, every other role ignored.
    """
    prompt = ""
    for role, text in turns:
        if role == "user":
            if prompt:
                prompt += "\n"
            prompt += text
        elif role == "assistant" and prompt:
            prompt += f"\n[Previous response: {text}]\n"
    return prompt


Turns = list[tuple[str, str]]


def openai_turns(messages: Sequence[Mapping[str, Any]], images: Images | None = None) -> tuple[Turns, str]:
    """
    The C{(role, text)} turns and the system text of an OpenAI C{messages}
    array: system and developer messages are the system text, joined by a
    blank line.

    @param images: Collects the images of user messages; without it, an
        image is refused.
    """
    systems: list[str] = []
    turns: Turns = []
    for index, message in enumerate(messages):
        role = message["role"]
        found = images if role == "user" else None
        text = openai_content(message.get("content"), f"messages[{index}].content", found)
        if role in SYSTEM_ROLES:
            systems.append(text)
        else:
            turns.append((role, text))
    return turns, "\n\n".join(systems)


def openai_conversation(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The prompt and system text of an OpenAI C{messages} array: its turns flattened."""
    turns, system = openai_turns(messages)
    return flatten(turns), system


def anthropic_turns(
    messages: Sequence[Mapping[str, Any]], system: Any, images: Images | None = None
) -> tuple[Turns, str]:
    """
    The C{(role, text)} turns and the system text of an Anthropic Messages
    request.

    @param images: As for L{openai_turns}.
    """
    turns = [
        (
            message["role"],
            anthropic_content(
                message.get("content"),
                f"messages[{index}].content",
                images if message["role"] == "user" else None,
            ),
        )
        for index, message in enumerate(messages)
    ]
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
