# -*- test-case-name: tests.compat.test_tools -*-
"""
The client's tools in each API's dialect (docs/design/client-tools.md):
the functions a request offers, its C{tool_choice}, the calls an answer
makes and the results a follow-up brings, reduced to one form that the
MCP bridge serves and a conversation's lineage hashes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import field, frozen

from clinvk.errors import InvalidRequest

# What every API allows in a function's name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

AUTO, NONE, REQUIRED, NAMED = "auto", "none", "required", "named"


@frozen
class ClientTool:
    """One function the client offers: its name, what it does, its parameters' schema."""

    name: str
    description: str = ""
    input_schema: Mapping[str, Any] = field(factory=lambda: {"type": "object", "properties": {}})


@frozen
class ToolChoice:
    """
    What the client allows: C{auto} (the model decides), C{none} (no call),
    C{required} (some call) or C{named} (a call of L{name}).
    """

    mode: str = AUTO
    name: str = ""

    def instruction(self) -> str:
        """
        What the turn's prompt is told, where no CLI can be forced to call
        (docs/design/client-tools.md#tool-choice); C{""} for C{auto}.
        """
        if self.mode == REQUIRED:
            return "Before you answer, call one of the tools you were given."
        if self.mode == NAMED:
            return f"Before you answer, call the tool {self.name}."
        return ""


@frozen
class ToolCall:
    """
    A call of a client tool: clinvk's id of it, the tool, and its
    arguments as JSON text (an object).
    """

    id: str
    name: str
    arguments: str

    def input(self) -> dict[str, Any]:
        """The arguments as an object."""
        value = json.loads(self.arguments or "{}")
        return value if isinstance(value, dict) else {}


@frozen
class ToolResult:
    """What the client's tool answered a call: text, and whether it failed."""

    call_id: str
    text: str
    is_error: bool = False


def canonical(arguments: Any) -> str:
    """Arguments, as an object or JSON text, as one JSON text whatever their spacing and order."""
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments or "{}")
        except ValueError:
            return arguments
        return canonical(value) if not isinstance(value, str) else arguments
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def calls_text(text: str, calls: Sequence[ToolCall]) -> str:
    """
    An assistant message that calls tools, as one text: its words, then a
    line per call.  The lineage hashes it (an SDK echoes the calls back in
    the next request), and a seeded history shows it to the CLI.
    """
    if not calls:
        return text
    lines = [text] if text.strip() else []
    lines += [f"[Tool call {call.id}: {call.name}({canonical(call.arguments)})]" for call in calls]
    return "\n".join(lines)


def result_text(result: ToolResult) -> str:
    """A tool's result as the text of its message."""
    failed = " (failed)" if result.is_error else ""
    return f"[Tool result {result.call_id}{failed}: {result.text}]"


def _checked_name(name: Any, param: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            "a tool's name must be 1 to 64 letters, digits, underscores or dashes", param=param
        )
    return name


def _schema(value: Any, param: str) -> Mapping[str, Any]:
    if value is None:
        return {"type": "object", "properties": {}}
    if not isinstance(value, Mapping) or value.get("type", "object") != "object":
        raise InvalidRequest("a tool's parameters must be a JSON schema of an object", param=param)
    return {"type": "object", **value}


def _tool(source: Mapping[str, Any], where: str, schema_member: str) -> ClientTool:
    """The tool C{source} describes, at C{where} in the request, its schema in C{schema_member}."""
    return ClientTool(
        _checked_name(source.get("name"), f"{where}.name"),
        source.get("description") or "",
        _schema(source.get(schema_member), f"{where}.{schema_member}"),
    )


def _unique(tools: list[ClientTool], param: str) -> tuple[ClientTool, ...]:
    names = [tool.name for tool in tools]
    for name in names:
        if names.count(name) > 1:
            raise InvalidRequest(f"two tools are named {name}", param=param)
    return tuple(tools)


def openai_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[ClientTool, ...]:
    """
    The chat completions C{tools}: functions only.

    @raise InvalidRequest: For another type of tool or a bad name or schema.
    """
    found = []
    for index, tool in enumerate(tools or ()):
        where = f"tools[{index}]"
        if tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
            raise InvalidRequest("only function tools are supported", param=f"{where}.type")
        found.append(_tool(tool["function"], f"{where}.function", "parameters"))
    return _unique(found, "tools")


def responses_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[ClientTool, ...]:
    """The Responses C{tools}: functions only, their members at the top level."""
    found = []
    for index, tool in enumerate(tools or ()):
        where = f"tools[{index}]"
        if tool.get("type") != "function":
            raise InvalidRequest("only function tools are supported", param=f"{where}.type")
        found.append(_tool(tool, where, "parameters"))
    return _unique(found, "tools")


def anthropic_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[ClientTool, ...]:
    """The Messages C{tools}: client tools, with an C{input_schema}; no server tools."""
    found = []
    for index, tool in enumerate(tools or ()):
        where = f"tools[{index}]"
        if tool.get("type") not in (None, "custom"):
            raise InvalidRequest(
                f"tool type {tool.get('type')} is not supported: only client tools are", param=f"{where}.type"
            )
        found.append(_tool(tool, where, "input_schema"))
    return _unique(found, "tools")


def _named(name: Any, tools: Sequence[ClientTool]) -> ToolChoice:
    if name not in {tool.name for tool in tools}:
        raise InvalidRequest(f"tool_choice names {name}, which is not among the tools", param="tool_choice")
    return ToolChoice(NAMED, name)


def openai_tool_choice(choice: Any, tools: Sequence[ClientTool]) -> ToolChoice:
    """
    The chat completions and Responses C{tool_choice}: C{none}, C{auto},
    C{required}, or a named function (C{{"type": "function", "function":
    {"name": …}}} or, on Responses, C{{"type": "function", "name": …}}).
    """
    if choice is None:
        return ToolChoice()
    if isinstance(choice, str):
        return ToolChoice(choice)
    if choice.get("type") == "function":
        function = choice.get("function")
        return _named(function.get("name") if isinstance(function, Mapping) else choice.get("name"), tools)
    if choice.get("type") == "allowed_tools":
        raise InvalidRequest("tool_choice allowed_tools is not supported", param="tool_choice")
    raise InvalidRequest(f"unsupported tool_choice type: {choice.get('type')}", param="tool_choice")


def anthropic_tool_choice(choice: Mapping[str, Any] | None, tools: Sequence[ClientTool]) -> ToolChoice:
    """The Messages C{tool_choice}: C{auto}, C{any}, C{tool} (with its name) or C{none}."""
    if not choice:
        return ToolChoice()
    kind = choice.get("type")
    if kind == "tool":
        return _named(choice.get("name"), tools)
    return ToolChoice({"any": REQUIRED, "none": NONE}.get(str(kind), AUTO))


def result_content(content: Any) -> str:
    """
    A tool result's content as text: a string as is, an array of text
    parts or blocks joined, anything else as JSON.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, Mapping) for part in content):
        texts = [
            part.get("text") for part in content if part.get("type") in ("text", "input_text", "output_text")
        ]
        if len(texts) == len(content):
            return "\n".join(str(text) for text in texts)
    return json.dumps(content, ensure_ascii=False)


class ToolExchanges:
    """
    Collects what a request's history says of tool calls: the results it
    brings, by call id, in order.
    """

    def __init__(self) -> None:
        self.results: dict[str, ToolResult] = {}

    def result(self, call_id: Any, content: Any, is_error: bool, param: str) -> str:
        """Take a tool's result; the text its message stands for in the history."""
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("a tool result needs the id of the call it answers", param=param)
        found = ToolResult(call_id, result_content(content), bool(is_error))
        self.results[call_id] = found
        return result_text(found)
