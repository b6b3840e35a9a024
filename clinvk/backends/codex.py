# -*- test-case-name: tests.backends.test_codex -*-
"""
OpenAI Codex CLI (C{codex exec}): model aliases
(docs/design/cli-runs.md#model-aliases), flags (docs/design/cli-runs.md#flag-mapping),
command lines (docs/design/cli-runs.md#codex-argv, docs/design/cli-runs.md#resume-argv),
JSONL parsing (docs/design/cli-runs.md#codex-output, docs/design/cli-runs.md#codex-stream),
where its ephemeral sessions are removed from (docs/design/cli-runs.md#ephemeral-cleanup),
what it needs to run unattended (docs/design/cli-runs.md#unattended-needs) and its
long-lived mode, C{codex app-server} (docs/design/live-sessions.md#live-codex), whose
protocol is in L{clinvk.backends.codex_live}.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from zope.interface import implementer

from clinvk.backends import events
from clinvk.backends.client_tools import CODEX_TOKEN_VARIABLE, codex_settings
from clinvk.backends.codex_live import CodexLiveSession, Launch, live_launch
from clinvk.backends.events import NOT_JSON, as_dict, as_int, as_str, compact, loads, readable
from clinvk.backends.flags import FlagTable, mapped_flags
from clinvk.backends.headless import git_repository
from clinvk.backends.images import replaced
from clinvk.backends.options import prompt_with_system, resolve_model
from clinvk.config import BackendConfig
from clinvk.interfaces import IBackend, ILiveMode, ILiveSession, IStreamParser
from clinvk.model import HeadlessNeed, ParsedResponse, RunFileMaker, TokenUsage, UnifiedEvent, UnifiedOptions

FLAGS = FlagTable(
    # Current codex releases may refuse --ask-for-approval on exec; the flag
    # is kept and the CLI's usage error surfaces in the result (2.2 fix).
    approval={
        "auto": ("--ask-for-approval", "on-request"),
        "none": ("--ask-for-approval", "never"),
        "always": ("--ask-for-approval", "untrusted"),
    },
    sandbox={
        "read-only": ("--sandbox", "read-only"),
        "workspace": ("--sandbox", "workspace-write"),
        "full": ("--sandbox", "danger-full-access"),
    },
    output={"json": ("--json",), "stream-json": ("--json",)},
    dry_run=("--sandbox", "read-only"),
)

ALLOWED_FLAGS = frozenset(
    {"--model", "--json", "--sandbox", "--ask-for-approval", "--full-auto", "--quiet", "--config-dir"}
)


ALIASES: Mapping[str, str] = {
    "fast": "gpt-4.1-mini",
    "quick": "gpt-4.1-mini",
    "balanced": "gpt-5.2",
    "default": "gpt-5.2",
    "best": "gpt-5-codex",
    "powerful": "gpt-5-codex",
}

SKIP_REPOSITORY_CHECK = "--skip-git-repo-check"

# The run file --output-schema names.
OUTPUT_SCHEMA_FILE = "output-schema.json"


@implementer(IBackend, ILiveMode)
class CodexBackend:
    """OpenAI Codex CLI."""

    name = "codex"
    aliases = ALIASES
    model_markers = ("gpt",)
    default_for_compat = False
    streams_tokens = False
    supports_allowed_tools = False
    # tests/realcli/package.json pins it.
    proven_version = "0.171.0"
    merges_stderr = False
    # turn.completed.usage of a resumed thread is the thread's running total.
    reports_running_usage = True
    # --output-schema FILE: sent to the model as a strict json_schema text
    # format (docs/design/structured-output.md#structured-codex).
    structured_output = True
    # mcp_servers settings (docs/design/client-tools.md#client-tools-codex).
    client_tools = True
    allowed_flags = ALLOWED_FLAGS
    live_mode = "codex app-server"

    def command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        mapped = mapped_flags(FLAGS, options)
        argv = [executable, "exec"]
        if "--json" not in mapped:
            argv.append("--json")
        if resume_id:
            argv += ["resume", resume_id]
        if options.model:
            argv += ["--model", resolve_model(self, options.model)]
        if options.output_schema:
            argv += ["--output-schema", os.path.join(options.scratch, OUTPUT_SCHEMA_FILE)]
        if options.client_tools is not None:
            argv += codex_settings(options.client_tools)
        # With "=": --image takes any number of values, "-" included.
        argv += [f"--image={os.path.join(options.scratch, image.name)}" for image in options.images]
        # "-" makes exec read the prompt from stdin (docs/design/decisions.md#d1-prompts-on-stdin).
        return [*argv, *mapped, "-"]

    def stdin_text(self, options: UnifiedOptions, prompt: str) -> str:
        # Codex names the images it attaches [Image #1], [Image #2], ...
        # (docs/design/images.md#images-codex).
        shown = replaced(prompt, options.images, lambda number, image: f"[Image #{number}]")
        return prompt_with_system(options, shown)

    def run_files(self, options: UnifiedOptions) -> Mapping[str, bytes | RunFileMaker]:
        files: dict[str, bytes | RunFileMaker] = {image.name: image.data for image in options.images}
        if options.output_schema:
            files[OUTPUT_SCHEMA_FILE] = options.output_schema.encode("utf-8")
        return files

    def run_environment(self, options: UnifiedOptions) -> Mapping[str, str]:
        # The MCP endpoint's secret, kept off the command line.
        tools = options.client_tools
        return {CODEX_TOKEN_VARIABLE: tools.secret} if tools is not None else {}

    def fork_flags(self, message_id: str) -> tuple[str, ...]:
        # Its forks (app-server thread/fork, the TUI's codex fork) copy the
        # whole thread, not the thread as it stood at a message.
        return ()

    def live_command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        # The thread to resume is named in the handshake, not here.
        return [executable, "app-server", *self._launch(options).flags]

    def live_checks_passed(self, options: UnifiedOptions, cwd: str) -> bool:
        # app-server runs anywhere; exec refuses a folder outside Git
        # unless told not to check, and the live mode must not skip that.
        return SKIP_REPOSITORY_CHECK in options.extra or git_repository(cwd) is not None

    def live_resumable(self, last_turn_at: float, now: float) -> bool:
        # thread/resume works at once on a thread a cold run has just
        # written, once that run has ended (docs/design/live-sessions.md#live-codex).
        return True

    def live_session(self, options: UnifiedOptions, resume_id: str, cwd: str) -> ILiveSession:
        return CodexLiveSession(self._launch(options).thread, resume_id, cwd)

    def _launch(self, options: UnifiedOptions) -> Launch:
        """The live process of the cold command line's flags (docs/design/live-sessions.md#live-codex)."""
        model = resolve_model(self, options.model) if options.model else ""
        return live_launch(mapped_flags(FLAGS, options), model)

    def parse_response(self, raw: str) -> ParsedResponse | None:
        return parse_response(raw)

    def text_fallback(self, raw: str) -> str:
        return "\n".join(_agent_messages(_events(raw)))

    def stream_parser(self) -> IStreamParser:
        return CodexStreamParser()

    def cleanup_command(self, executable: str, native_id: str) -> list[str] | None:
        return None

    def session_file_roots(self, home: str) -> Sequence[str]:
        return (os.path.join(home, ".codex", "sessions"),)

    def failure_text(self, stderr: str) -> str:
        return stderr

    def headless_needs(
        self, section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str
    ) -> Sequence[HeadlessNeed]:
        # codex exec runs only inside a Git repository, unless told not to check.
        need = "a Git repository as its working folder"
        if SKIP_REPOSITORY_CHECK in section.extra_flags:
            return [
                HeadlessNeed(
                    self.name,
                    need,
                    True,
                    f"not needed: backends.codex.extra_flags has {SKIP_REPOSITORY_CHECK}",
                )
            ]
        repository = git_repository(cwd)
        if repository is not None:
            return [HeadlessNeed(self.name, need, True, f"{cwd} is inside the repository {repository}")]
        return [
            HeadlessNeed(
                self.name,
                need,
                False,
                f"{cwd} is not in a Git repository: requests must name a workdir inside one, "
                f"or add {SKIP_REPOSITORY_CHECK} to backends.codex.extra_flags",
            )
        ]


# Where str.splitlines ends a line: at "\n", and, rarely in JSON lines, at
# one of the others.
_LINE_END = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_RARE_LINE_ENDS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_DECODER = json.JSONDecoder()


def _line_value(raw: str, start: int, end: int) -> Any:
    """
    C{loads(raw[start:end].strip())}, decoded where the line lies in
    C{raw}, so that a line holding a large answer is not copied first.
    """
    while start < end and raw[start].isspace():
        start += 1
    if start == end:
        return NOT_JSON
    try:
        value, stop = _DECODER.raw_decode(raw, start)
    except (ValueError, RecursionError):
        return NOT_JSON
    if stop > end or (stop < end and not raw[stop:end].isspace()):
        return NOT_JSON
    return value


def _lines(raw: str) -> Iterator[tuple[int, int]]:
    """Where each line of C{raw} starts and ends, lines as C{str.splitlines} splits them."""
    rare = any(line_end in raw for line_end in _RARE_LINE_ENDS)
    position = 0
    while position < len(raw):
        if rare:
            found = _LINE_END.search(raw, position)
            end, following = (found.start(), found.end()) if found else (len(raw), len(raw))
        else:
            # A search for one character is far quicker than the pattern's.
            end = raw.find("\n", position)
            end, following = (end, end + 1) if end >= 0 else (len(raw), len(raw))
        yield position, end
        position = following


def _events(raw: str) -> Iterator[dict[str, Any]]:
    """The objects on the lines of C{raw}."""
    for start, end in _lines(raw):
        event = _line_value(raw, start, end)
        if isinstance(event, dict):
            yield event


def _agent_messages(found: Iterator[dict[str, Any]]) -> Iterator[str]:
    for event in found:
        item = as_dict(event.get("item"))
        if event.get("type") == "item.completed" and item.get("type") == "agent_message":
            text = as_str(item.get("text"))
            if text:
                yield text


def _usage(event: dict[str, Any]) -> TokenUsage:
    usage = as_dict(event.get("usage"))
    # input_tokens already includes the cached ones (6.3 fix).
    return TokenUsage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cached_tokens=as_int(usage.get("cached_input_tokens")),
    )


# Codex's notice, as a top-level error event, that it retries a stream
# that broke ("Reconnecting... 1/5 (stream disconnected ...)"): the turn
# goes on, and may well succeed.
RECONNECTING = "Reconnecting..."

# Codex's notice, as an error item, on every run with a model outside its
# catalogue: not the client's business.
MODEL_METADATA_NOTICE = re.compile(r"^Model metadata for .* not found")


def _is_retry(event: dict[str, Any]) -> bool:
    return event.get("type") == "error" and as_str(event.get("message")).startswith(RECONNECTING)


def parse_response(raw: str) -> ParsedResponse:
    """
    C{codex exec --json} output (docs/design/cli-runs.md#codex-output); it never fails, and
    usage is summed over every turn.  Reconnection notices are no error:
    a turn that recovers ends with C{turn.completed}.
    """
    session_id = ""
    messages: list[str] = []
    usage = TokenUsage()
    error = ""
    for event in _events(raw):
        kind = event.get("type")
        if kind == "thread.started":
            session_id = as_str(event.get("thread_id")) or session_id
        elif kind == "item.completed":
            messages.extend(_agent_messages(iter([event])))
        elif kind == "turn.completed":
            usage += _usage(event)
        elif kind == "error" and not _is_retry(event):
            error = as_str(event.get("message")) or error
        elif kind == "turn.failed":
            error = as_str(as_dict(event.get("error")).get("message")) or error
    return ParsedResponse(
        content="\n".join(messages), session_id=session_id, usage=usage, error=readable(error)
    )


def _command_failed(item: dict[str, Any]) -> bool:
    exit_code = item.get("exit_code")
    return item.get("status") in ("failed", "declined") or (isinstance(exit_code, int) and exit_code != 0)


@implementer(IStreamParser)
class CodexStreamParser:
    """C{codex exec --json} lines (docs/design/cli-runs.md#codex-stream)."""

    def __init__(self) -> None:
        # The text of the last error event, which a turn.failed repeats.
        self._last_error = ""

    def feed(self, line: str, sequence: int) -> list[UnifiedEvent]:
        data = loads(line)
        if data is NOT_JSON:
            return [events.message(line, sequence)]
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        item = as_dict(data.get("item"))
        if kind == "thread.started":
            return [events.init(sequence, native_id=as_str(data.get("thread_id")))]
        if kind == "turn.started":
            return [events.progress("turn_started", sequence, message_text="Processing...")]
        if kind == "item.started" and item.get("type") == "command_execution":
            return [
                events.tool_use(
                    "command_execution",
                    {"command": item.get("command")},
                    sequence,
                    tool_id=as_str(item.get("id")),
                )
            ]
        if kind == "item.completed":
            return self._completed(item, sequence)
        if kind == "turn.completed":
            return [events.done(sequence, _usage(data))]
        if kind == "turn.failed":
            message = as_str(as_dict(data.get("error")).get("message"))
            if message and message == self._last_error:
                # Said already by the error event before it.
                return []
            return [events.error(message, sequence)]
        if kind == "error":
            message = as_str(data.get("message"))
            if message.startswith(RECONNECTING):
                return [events.progress("reconnecting", sequence, message_text=message)]
            self._last_error = message
            return [events.error(message, sequence, code=as_str(data.get("code")))]
        if kind == "reasoning":
            return [events.thinking(as_str(data.get("text")), sequence)]
        if kind == "event_msg":
            payload = as_dict(data.get("payload"))
            if payload.get("type") == "token_count":
                usage = TokenUsage(as_int(payload.get("input_tokens")), as_int(payload.get("output_tokens")))
                return [events.token_usage(usage, sequence)]
        return []

    def _completed(self, item: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        kind = item.get("type")
        tool_id = as_str(item.get("id"))
        if kind == "agent_message":
            return [events.message(as_str(item.get("text")), sequence)]
        if kind == "reasoning":
            return [events.thinking(as_str(item.get("text")), sequence)]
        if kind == "command_execution":
            return [
                events.tool_result(
                    sequence,
                    tool_id=tool_id,
                    tool_name="command_execution",
                    output=as_str(item.get("aggregated_output")),
                    is_error=_command_failed(item),
                )
            ]
        if kind in ("file_change", "mcp_tool_call", "web_search"):
            name = str(kind)
            if kind == "mcp_tool_call":
                name = f"{as_str(item.get('server'))}.{as_str(item.get('tool'))}"
            details = {key: value for key, value in item.items() if key not in ("id", "type")}
            return [
                events.tool_result(
                    sequence,
                    tool_id=tool_id,
                    tool_name=name,
                    output=compact(details),
                    is_error=item.get("status") == "failed",
                )
            ]
        if kind == "error":
            message = as_str(item.get("message"))
            if MODEL_METADATA_NOTICE.match(message):
                return []
            return [events.error(message, sequence, code="warning", warning=True)]
        # The legacy item shapes the reference understood.
        if kind == "message":
            content = item.get("content")
            for part in content if isinstance(content, list) else []:
                part = as_dict(part)
                if part.get("type") == "output_text":
                    return [events.message(as_str(part.get("text")), sequence)]
            return []
        if kind == "function_call":
            arguments = item.get("arguments")
            return [
                events.tool_use(
                    as_str(item.get("name")), arguments, sequence, tool_id=as_str(item.get("call_id"))
                )
            ]
        if kind == "function_call_output":
            return [
                events.tool_result(
                    sequence, tool_id=as_str(item.get("call_id")), output=as_str(item.get("output"))
                )
            ]
        return []


# What clinvk.backends.build_backends registers under this module's name.
backend = CodexBackend()
