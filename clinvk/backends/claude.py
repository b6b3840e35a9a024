# -*- test-case-name: tests.backends.test_claude -*-
"""
Claude Code (C{claude}): model aliases (docs/design/cli-runs.md#model-aliases), flags
(docs/design/cli-runs.md#flag-mapping), command lines (docs/design/cli-runs.md#claude-argv,
docs/design/cli-runs.md#resume-argv) and output parsing (docs/design/cli-runs.md#claude-output,
docs/design/cli-runs.md#claude-stream, docs/design/decisions.md#d9-token-streaming).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from zope.interface import implementer

from clinvk.backends import events
from clinvk.backends.client_tools import CLAUDE_MCP_CONFIG, claude_mcp_config, claude_tool_name
from clinvk.backends.events import NOT_JSON, as_dict, as_int, as_str, loads
from clinvk.backends.flags import FlagTable, mapped_flags
from clinvk.backends.images import anthropic_blocks
from clinvk.backends.options import resolve_model
from clinvk.config import BackendConfig
from clinvk.interfaces import IBackend, ILiveMode, ILiveSession, IStreamParser
from clinvk.model import (
    HeadlessNeed,
    LiveStep,
    ParsedResponse,
    RunFileMaker,
    TokenUsage,
    UnifiedEvent,
    UnifiedOptions,
)

FLAGS = FlagTable(
    approval={
        "auto": ("--permission-mode", "acceptEdits"),
        "none": ("--permission-mode", "dontAsk"),
        "always": ("--permission-mode", "default"),
    },
    sandbox={},
    output={
        "text": ("--output-format", "text"),
        "json": ("--output-format", "json"),
        # Print mode needs --verbose for stream-json; partial messages make
        # the stream carry tokens as they come (docs/design/decisions.md#d9-token-streaming).
        "stream-json": ("--output-format", "stream-json", "--verbose", "--include-partial-messages"),
    },
    verbose=("--verbose",),
    max_turns=lambda turns: ("--max-turns", str(turns)),
    system_prompt=lambda prompt: ("--system-prompt", prompt),
    ephemeral=("--no-session-persistence",),
)

ALLOWED_FLAGS = frozenset(
    {
        "--model",
        "--print",
        "--output-format",
        "--verbose",
        "--max-turns",
        "--system-prompt",
        "--permission-mode",
        "--resume",
        "--add-dir",
        "--allowedtools",
        "--allowed-tools",
        "--no-session-persistence",
        "--continue",
        "--resume-session-at",
        "--fork-session",
    }
)


ALIASES: Mapping[str, str] = {
    "fast": "haiku",
    "quick": "haiku",
    "balanced": "sonnet",
    "default": "sonnet",
    "best": "opus",
    "powerful": "opus",
}


# Extra flags that would change the stream-json protocol of a live process
# (docs/design/live-sessions.md#live-claude), or the conversation it holds
# for every later turn (a fork): a request with one runs cold.
NOT_LIVE_FLAGS = frozenset(
    {
        "--output-format",
        "--input-format",
        "--resume",
        "--continue",
        "--no-session-persistence",
        "--resume-session-at",
        "--fork-session",
    }
)


@implementer(IBackend, ILiveMode)
class ClaudeBackend:
    """Claude Code."""

    name = "claude"
    aliases = ALIASES
    model_markers = ("claude",)
    # What the Anthropic API's models are, and what any other model runs on.
    default_for_compat = True
    streams_tokens = True
    supports_allowed_tools = True
    # tests/realcli/package.json pins it.
    proven_version = "2.1.197"
    merges_stderr = True
    reports_running_usage = False
    # --json-schema: the model answers through a StructuredOutput tool
    # whose input is the result (docs/design/structured-output.md#structured-claude).
    structured_output = True
    # --mcp-config (docs/design/client-tools.md#client-tools-claude).
    client_tools = True
    allowed_flags = ALLOWED_FLAGS
    live_mode = "claude --print --input-format stream-json"

    def command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        if options.images:
            # The prompt goes as a stream-json user message, whose content
            # blocks carry the images (docs/design/images.md#images-claude).
            argv = self._argv(executable, attrs.evolve(options, output_format="stream-json"), resume_id)
            if options.output_format != "stream-json":
                # Read whole: the tokens as they come would only fill the capture.
                argv.remove("--include-partial-messages")
            return _reading_stream_json(argv)
        return self._argv(executable, options, resume_id)

    def _argv(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        argv = [executable]
        if resume_id:
            argv += ["--resume", resume_id]
        argv.append("--print")
        if options.model:
            argv += ["--model", resolve_model(self, options.model)]
        allowed = [options.allowed_tools] if options.allowed_tools else []
        tools = options.client_tools
        if tools is not None:
            # The client's tools, alone unless asked otherwise, runnable
            # without a permission prompt (docs/design/client-tools.md#client-tools-claude).
            argv += ["--mcp-config", os.path.join(options.scratch, CLAUDE_MCP_CONFIG), "--strict-mcp-config"]
            if not tools.keep_cli_tools:
                argv += ["--tools", ""]
            allowed += [claude_tool_name(tools, name) for name in tools.names]
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        if options.output_schema:
            argv += ["--json-schema", options.output_schema]
        return argv + mapped_flags(FLAGS, options)

    def stdin_text(self, options: UnifiedOptions, prompt: str) -> str:
        if options.images:
            return user_message_line(anthropic_blocks(prompt, options.images)) + "\n"
        return prompt

    def run_files(self, options: UnifiedOptions) -> Mapping[str, bytes | RunFileMaker]:
        if options.client_tools is None:
            return {}
        return {CLAUDE_MCP_CONFIG: claude_mcp_config(options.client_tools)}

    def run_environment(self, options: UnifiedOptions) -> Mapping[str, str]:
        return {}

    def fork_flags(self, message_id: str) -> tuple[str, ...]:
        # With --resume: a new session holding the resumed one up to the
        # message (docs/design/conversations.md#native-fork).
        return ("--resume-session-at", message_id, "--fork-session")

    def live_command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str] | None:
        if any(flag.split("=", 1)[0].lower() in NOT_LIVE_FLAGS for flag in options.extra):
            return None
        argv = self._argv(executable, attrs.evolve(options, output_format="stream-json"), resume_id)
        return _reading_stream_json(argv)

    def live_checks_passed(self, options: UnifiedOptions, cwd: str) -> bool:
        # Its long-lived mode checks what its one-shot mode checks.
        return True

    def live_resumable(self, last_turn_at: float, now: float) -> bool:
        return True

    def live_session(self, options: UnifiedOptions, resume_id: str, cwd: str) -> ILiveSession:
        return ClaudeLiveSession(resume_id)

    def parse_response(self, raw: str) -> ParsedResponse | None:
        return parse_response(raw)

    def text_fallback(self, raw: str) -> str:
        return raw

    def stream_parser(self) -> IStreamParser:
        return ClaudeStreamParser()

    def cleanup_command(self, executable: str, native_id: str) -> list[str] | None:
        # --no-session-persistence already kept the session from being stored.
        return None

    def session_file_roots(self, home: str) -> Sequence[str]:
        return ()

    def failure_text(self, stderr: str) -> str:
        return stderr

    def headless_needs(
        self, section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str
    ) -> Sequence[HeadlessNeed]:
        # Nothing beyond its login.
        return ()


def _reading_stream_json(argv: list[str]) -> list[str]:
    """C{argv} of a C{--print} run told to read stream-json user messages, one a line, on stdin."""
    after_print = argv.index("--print") + 1
    return [*argv[:after_print], "--input-format", "stream-json", *argv[after_print:]]


def user_message_line(content: str | list[dict[str, Any]]) -> str:
    """One stream-json user message, as the CLI reads it on stdin, without its line end."""
    message = {"role": "user", "content": content}
    return json.dumps({"type": "user", "message": message, "parent_tool_use_id": None, "session_id": ""})


def _result_object(raw: str) -> dict[str, Any] | None:
    """
    The result object in Claude's output: the whole text, the last
    C{result} element of the verbose array form, or, when stderr noise
    surrounds it, the last line holding one.
    """
    whole = loads(raw)
    if isinstance(whole, dict):
        return whole
    if isinstance(whole, list):
        return _last_result(whole)
    for line in reversed(raw.splitlines()):
        candidate = loads(line.strip())
        if isinstance(candidate, dict) and candidate.get("type") == "result":
            return candidate
        if isinstance(candidate, list) and (found := _last_result(candidate)) is not None:
            return found
    return None


def _last_result(items: list[Any]) -> dict[str, Any] | None:
    for item in reversed(items):
        if isinstance(item, dict) and item.get("type") == "result":
            return item
    return None


def _usage(result: dict[str, Any]) -> TokenUsage:
    usage = as_dict(result.get("usage"))
    return TokenUsage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cached_tokens=as_int(usage.get("cache_read_input_tokens")),
    )


def result_error(result: dict[str, Any]) -> str:
    """
    The error of a result object, or C{""}: its C{result} text, else its
    C{errors} joined, else its C{subtype} (docs/design/cli-runs.md#claude-output).
    """
    subtype = as_str(result.get("subtype"))
    if result.get("is_error") is not True and not subtype.startswith("error"):
        return ""
    text = as_str(result.get("result"))
    if text:
        return text
    errors = result.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(str(item) for item in errors)
    return subtype or "error"


def result_error_code(result: dict[str, Any]) -> str:
    """
    The code of a failed result object: C{api_error_<status>} when the API
    refused the request (C{api_error_status}), else its C{subtype} unless
    that is C{"success"} (which a failed result can still say), else C{""}.
    """
    status = result.get("api_error_status")
    if isinstance(status, int) and not isinstance(status, bool):
        return f"api_error_{status}"
    subtype = as_str(result.get("subtype"))
    return "" if subtype == "success" else subtype


def parse_response(raw: str) -> ParsedResponse | None:
    """
    Claude's C{--output-format json} output (docs/design/cli-runs.md#claude-output), or
    L{None} when none can be found.
    """
    result = _result_object(raw)
    if result is None:
        return None
    session_id = result.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        return None
    session_id = session_id or ""
    for message in (result.get("error"), result.get("message") if result.get("type") == "error" else None):
        if isinstance(message, str) and message:
            return ParsedResponse(session_id=session_id, error=message)
    content = result.get("result")
    if content is not None and not isinstance(content, str):
        return None
    error = result_error(result)
    return ParsedResponse(
        # A failed result's text is its error, not an answer.
        content="" if error else content or "",
        session_id=session_id,
        usage=_usage(result),
        error=error,
    )


def _retry_text(line: dict[str, Any]) -> str:
    """
    What a C{system/api_retry} line says: the API's status and error, and
    which retry of how many this is, as far as the line has them.
    """
    parts = []
    status = as_int(line.get("error_status"))
    error = as_str(line.get("error"))
    if status:
        parts.append(f"API error {status}" + (f" ({error})" if error else ""))
    elif error:
        parts.append(f"API error ({error})")
    attempt = as_int(line.get("attempt"))
    if attempt:
        limit = as_int(line.get("max_retries"))
        parts.append(f"retry {attempt}" + (f" of {limit}" if limit else ""))
    return ", ".join(parts)


@implementer(IStreamParser)
class ClaudeStreamParser:
    """
    Claude's C{stream-json} lines (docs/design/cli-runs.md#claude-stream).

    With C{--include-partial-messages} the text of an assistant message
    arrives first as deltas and then again in the complete message; the
    complete message's text and thinking blocks are dropped when deltas of
    that kind were seen for it (docs/design/decisions.md#d9-token-streaming).

    On an API error the CLI makes up an assistant message holding the
    error text (model C{<synthetic>}, a top-level C{error}); it is no
    answer and is dropped, since the C{result} line that follows reports
    the error. A retried request (C{system/api_retry}) is a C{retrying}
    progress event.
    """

    def __init__(self) -> None:
        self._message_id = ""
        self._streamed: dict[str, set[str]] = {}

    def feed(self, line: str, sequence: int) -> list[UnifiedEvent]:
        data = loads(line)
        if data is NOT_JSON:
            return [events.message(line, sequence)]
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "stream_event":
            return self._stream_event(as_dict(data.get("event")), sequence)
        if kind == "content_block_delta":
            return self._delta(data, sequence)
        if kind == "system":
            subtype = data.get("subtype")
            if subtype == "api_retry":
                return [events.progress("retrying", sequence, message_text=_retry_text(data))]
            if subtype not in (None, "init"):
                return []
            return [
                events.init(
                    sequence,
                    model=as_str(data.get("model")),
                    native_id=as_str(data.get("session_id")),
                    working_dir=as_str(data.get("cwd")),
                )
            ]
        if kind == "assistant":
            message = as_dict(data.get("message"))
            if data.get("error") or message.get("model") == "<synthetic>":
                # The CLI made this message up to show an API error; the
                # result line that follows reports that error.
                return []
            return self._assistant(message, sequence)
        if kind == "user":
            return self._tool_results(as_dict(data.get("message")), sequence)
        if kind == "tool_result":
            return [
                events.tool_result(
                    sequence, tool_id=as_str(data.get("tool_use_id")), output=as_str(data.get("content"))
                )
            ]
        if kind == "error":
            text = as_str(as_dict(data.get("error")).get("message")) or as_str(data.get("message"))
            return [events.error(text, sequence)]
        if kind == "message_stop":
            return [events.done(sequence, _usage(data))]
        if kind == "result":
            found: list[UnifiedEvent] = []
            failure = result_error(data)
            if failure:
                found.append(events.error(failure, sequence, code=result_error_code(data)))
            found.append(events.done(sequence, _usage(data)))
            return found
        return []

    def _stream_event(self, event: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        kind = event.get("type")
        if kind == "message_start":
            self._message_id = as_str(as_dict(event.get("message")).get("id"))
        elif kind == "content_block_delta":
            return self._delta(event, sequence)
        # Other raw API events (message_stop included: the CLI's own result
        # line ends the run) carry nothing a client needs twice.
        return []

    def _delta(self, event: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        delta = as_dict(event.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            self._streamed.setdefault(self._message_id, set()).add("text")
            return [events.message(as_str(delta.get("text")), sequence, partial=True)]
        if kind == "thinking_delta":
            self._streamed.setdefault(self._message_id, set()).add("thinking")
            return [events.thinking(as_str(delta.get("thinking")), sequence, partial=True)]
        return []

    def _assistant(self, message: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        streamed = self._streamed.get(as_str(message.get("id")) or self._message_id, set())
        found = []
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            block = as_dict(block)
            kind = block.get("type")
            if kind == "text" and "text" not in streamed:
                found.append(events.message(as_str(block.get("text")), sequence))
            elif kind == "thinking" and "thinking" not in streamed:
                found.append(events.thinking(as_str(block.get("thinking")), sequence))
            elif kind == "tool_use":
                found.append(
                    events.tool_use(
                        as_str(block.get("name")),
                        block.get("input"),
                        sequence,
                        tool_id=as_str(block.get("id")),
                    )
                )
        return found

    def _tool_results(self, message: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        found = []
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            block = as_dict(block)
            if block.get("type") != "tool_result":
                continue
            output = block.get("content")
            if not isinstance(output, str):
                items = output if isinstance(output, list) else []
                output = "\n".join(
                    as_str(as_dict(item).get("text")) for item in items if as_dict(item).get("type") == "text"
                )
            found.append(
                events.tool_result(
                    sequence,
                    tool_id=as_str(block.get("tool_use_id")),
                    output=output,
                    is_error=block.get("is_error") is True,
                )
            )
        return found


@implementer(ILiveSession)
class ClaudeLiveSession:
    """
    A live C{claude --print --input-format stream-json} process
    (docs/design/live-sessions.md#live-claude): no handshake, one
    C{user} line a turn, the output the same stream-json lines a
    streaming run prints, and each turn ended by its C{result} line.

    @param resume_id: The conversation the process resumed (C{--resume}),
        or C{""}.
    """

    def __init__(self, resume_id: str = "") -> None:
        self.native_session_id = resume_id
        self._parser = ClaudeStreamParser()
        self._sequence = 0
        self._requests = itertools.count(1)
        # The uuid of the turn's last assistant message.
        self._answer_id = ""

    def opening(self) -> list[str]:
        return []

    def ready_at_start(self) -> bool:
        # The CLI reads a user line written before it is ready once it is.
        return True

    def turn(self, text: str) -> list[str]:
        self._parser = ClaudeStreamParser()
        self._sequence = 0
        self._answer_id = ""
        return [user_message_line(text)]

    def interrupt(self) -> list[str]:
        request = {"subtype": "interrupt"}
        return [
            json.dumps(
                {
                    "type": "control_request",
                    "request_id": f"interrupt-{next(self._requests)}",
                    "request": request,
                }
            )
        ]

    def feed(self, line: str) -> LiveStep:
        data = loads(line)
        if isinstance(data, dict):
            kind = data.get("type")
            if kind == "control_response":
                return LiveStep()
            if kind == "control_request":
                # clinvk asks the CLI for no permission prompts over stdio;
                # any request of the CLI's is refused, not left waiting.
                return LiveStep(replies=[_refused(as_str(data.get("request_id")))])
            native_id = as_str(data.get("session_id"))
            if native_id:
                self.native_session_id = native_id
            if kind == "assistant" and as_str(data.get("uuid")):
                self._answer_id = as_str(data.get("uuid"))
        self._sequence += 1
        found = self._parser.feed(line, self._sequence)
        if isinstance(data, dict) and data.get("type") == "result":
            ended = parse_response(line) or ParsedResponse(error="unreadable result")
            return LiveStep(events=found, ended=attrs.evolve(ended, message_id=self._answer_id))
        return LiveStep(events=found)


def _refused(request_id: str) -> str:
    response = {"subtype": "error", "request_id": request_id, "error": "clinvk answers no control requests"}
    return json.dumps({"type": "control_response", "response": response})


# What clinvk.backends.build_backends registers under this module's name.
backend = ClaudeBackend()
