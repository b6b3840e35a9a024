# -*- test-case-name: tests.backends.test_parsers -*-
"""
Constructors of unified events (docs/design/cli-runs.md#unified-events), applying its
"omitted when empty" rules in one place, and small JSON helpers the
parsers share.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clinvk.model import TokenUsage, UnifiedEvent


def _event(kind: str, sequence: int, content: dict[str, Any]) -> UnifiedEvent:
    return UnifiedEvent(kind, content, sequence)


def init(sequence: int, *, model: str = "", native_id: str = "", working_dir: str = "") -> UnifiedEvent:
    """An C{init} event."""
    content: dict[str, Any] = {}
    if model:
        content["model"] = model
    if native_id:
        content["backend_session_id"] = native_id
    if working_dir:
        content["working_dir"] = working_dir
    return _event("init", sequence, content)


def message(text: str, sequence: int, *, partial: bool = False) -> UnifiedEvent:
    """An assistant C{message} event."""
    content: dict[str, Any] = {"text": text, "role": "assistant"}
    if partial:
        content["is_partial"] = True
    return _event("message", sequence, content)


def thinking(text: str, sequence: int, *, partial: bool = False) -> UnifiedEvent:
    """A C{thinking} event."""
    content: dict[str, Any] = {"text": text}
    if partial:
        content["is_partial"] = True
    return _event("thinking", sequence, content)


def tool_use(name: str, tool_input: Any, sequence: int, *, tool_id: str = "") -> UnifiedEvent:
    """A C{tool_use} event; C{input} is kept even when it is null."""
    content: dict[str, Any] = {}
    if tool_id:
        content["tool_id"] = tool_id
    content["tool_name"] = name
    content["input"] = tool_input
    return _event("tool_use", sequence, content)


def tool_result(
    sequence: int,
    *,
    tool_id: str = "",
    tool_name: str = "",
    output: str = "",
    is_error: bool = False,
    error_message: str = "",
) -> UnifiedEvent:
    """A C{tool_result} event."""
    content: dict[str, Any] = {}
    if tool_id:
        content["tool_id"] = tool_id
    content["tool_name"] = tool_name
    if output:
        content["output"] = output
    if is_error:
        content["is_error"] = True
    if error_message:
        content["error_message"] = error_message
    return _event("tool_result", sequence, content)


def error(
    message_text: str, sequence: int, *, code: str = "", details: Any = None, warning: bool = False
) -> UnifiedEvent:
    """An C{error} event (its text made L{readable}); a C{warning} one does not fail the run."""
    content: dict[str, Any] = {}
    if code:
        content["code"] = code
    content["message"] = readable(message_text)
    if details:
        content["details"] = details
    return UnifiedEvent("error", content, sequence, warning=warning)


def done(sequence: int, usage: TokenUsage | None) -> UnifiedEvent:
    """A C{done} event, with token usage when the CLI reported it."""
    return _event("done", sequence, {"token_usage": usage.as_dict()} if usage is not None else {})


def progress(stage: str, sequence: int, *, message_text: str = "") -> UnifiedEvent:
    """A C{progress} event."""
    content: dict[str, Any] = {"stage": stage}
    if message_text:
        content["message"] = message_text
    return _event("progress", sequence, content)


def token_usage(usage: TokenUsage, sequence: int) -> UnifiedEvent:
    """A C{token_usage} event."""
    return _event("token_usage", sequence, usage.as_dict())


NOT_JSON = object()


_DECODER = json.JSONDecoder()

# A terminal's colour and cursor sequences (CSI), which CLIs print even
# into pipes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def readable(text: str) -> str:
    """
    An error text as a client should read it: without terminal colour
    codes, and when it is a vendor's JSON error body (as Codex and Gemini
    report an API's refusal), that body's message.
    """
    text = _ANSI.sub("", text).strip()
    start = text.find('{"error"')
    if start >= 0:
        try:
            body, _ = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            body = None
        message = as_str(as_dict(as_dict(body).get("error")).get("message"))
        if message:
            return message
    return text


def loads(text: str) -> Any:
    """Parse JSON, or return L{NOT_JSON} when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


def as_int(value: Any) -> int:
    """A token count: an integer, or 0 for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_str(value: Any) -> str:
    """A string member, or C{""} for anything else."""
    return value if isinstance(value, str) else ""


def as_dict(value: Any) -> dict[str, Any]:
    """An object member, or C{{}} for anything else."""
    return value if isinstance(value, dict) else {}


def compact(value: Any) -> str:
    """Compact JSON text of a value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
