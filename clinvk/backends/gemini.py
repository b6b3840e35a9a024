# -*- test-case-name: tests.backends.test_gemini -*-
"""
Gemini CLI (C{gemini}): model aliases (docs/design/cli-runs.md#model-aliases),
flags (docs/design/cli-runs.md#flag-mapping), command lines (docs/design/cli-runs.md#gemini-argv,
docs/design/cli-runs.md#resume-argv), output parsing (docs/design/cli-runs.md#gemini-output,
docs/design/cli-runs.md#gemini-stream), how its ephemeral sessions are removed
(docs/design/cli-runs.md#ephemeral-cleanup), what it needs to run unattended
(docs/design/cli-runs.md#unattended-needs) and its long-lived mode, C{--acp}
(docs/design/live-sessions.md#live-gemini), whose protocol is in
L{clinvk.backends.gemini_live}.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from zope.interface import implementer

from clinvk.backends import events
from clinvk.backends.client_tools import GEMINI_HOME, GEMINI_HOME_VARIABLE, GeminiHome, gemini_tool_settings
from clinvk.backends.events import NOT_JSON, as_dict, as_int, as_str, loads, readable
from clinvk.backends.flags import FlagTable, mapped_flags
from clinvk.backends.gemini_live import GeminiLiveSession
from clinvk.backends.headless import dig, read_json
from clinvk.backends.images import replaced
from clinvk.backends.options import prompt_with_system, resolve_model
from clinvk.config import BackendConfig
from clinvk.interfaces import IBackend, ILiveMode, ILiveSession, IStreamParser
from clinvk.model import HeadlessNeed, ParsedResponse, RunFileMaker, TokenUsage, UnifiedEvent, UnifiedOptions

FLAGS = FlagTable(
    approval={
        "auto": ("--approval-mode", "auto_edit"),
        "none": ("--yolo",),
        "always": ("--approval-mode", "default"),
    },
    sandbox={"read-only": ("--sandbox",), "workspace": ("--sandbox",)},
    output={
        "text": ("--output-format", "text"),
        "json": ("--output-format", "json"),
        "stream-json": ("--output-format", "stream-json"),
    },
    verbose=("--debug",),
)

ALLOWED_FLAGS = frozenset(
    {
        "--model",
        "--output-format",
        "--sandbox",
        "--approval-mode",
        "--yolo",
        "--debug",
        "--color",
        "--disable-color",
    }
)

CREDENTIALS_LINE = "Loaded cached credentials."


ALIASES: Mapping[str, str] = {
    "fast": "gemini-2.5-flash",
    "quick": "gemini-2.5-flash",
    "balanced": "gemini-2.5-pro",
    "default": "gemini-2.5-pro",
    "best": "gemini-2.5-pro",
    "powerful": "gemini-2.5-pro",
}

SKIP_TRUST = "--skip-trust"
TRUST_VARIABLE = "GEMINI_CLI_TRUST_WORKSPACE"


def _without_output_format(flags: Sequence[str]) -> list[str]:
    """C{flags} without C{--output-format} and its value (the protocol of C{--acp} is fixed)."""
    kept: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "--output-format":
            skip = True
        elif not flag.startswith("--output-format="):
            kept.append(flag)
    return kept


@implementer(IBackend, ILiveMode)
class GeminiBackend:
    """Gemini CLI."""

    name = "gemini"
    aliases = ALIASES
    model_markers = ("gemini",)
    default_for_compat = False
    streams_tokens = True
    supports_allowed_tools = False
    # tests/realcli/package.json pins it.
    proven_version = "0.61.0"
    merges_stderr = False
    reports_running_usage = False
    # Neither its flags nor its settings constrain an answer to a schema.
    structured_output = False
    # mcpServers settings (docs/design/client-tools.md#client-tools-gemini).
    client_tools = True
    allowed_flags = ALLOWED_FLAGS
    live_mode = "gemini --acp, the Agent Client Protocol"

    def command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        mapped = mapped_flags(FLAGS, options)
        argv = [executable]
        if not any(flag == "--output-format" or flag.startswith("--output-format=") for flag in mapped):
            argv += ["--output-format", "text"]
        if resume_id:
            argv += ["--resume", resume_id]
        if options.model:
            argv += ["--model", resolve_model(self, options.model)]
        if options.images:
            # Files outside its workspace are not read (docs/design/images.md#images-gemini).
            argv += ["--include-directories", options.scratch]
        if options.client_tools is not None:
            # Of the MCP servers its settings name, clinvk's alone.
            argv += ["--allowed-mcp-server-names", options.client_tools.server_name]
        return argv + mapped

    def live_command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        """
        C{gemini --acp} with the cold command's model and flags, but no
        output format (docs/design/live-sessions.md#live-gemini); a stored
        conversation is continued by C{session/load}, not on argv.
        """
        argv = [executable, "--acp"]
        if options.model:
            argv += ["--model", resolve_model(self, options.model)]
        return argv + _without_output_format(mapped_flags(FLAGS, options))

    def live_checks_passed(self, options: UnifiedOptions, cwd: str) -> bool:
        # --acp does not check that the folder is trusted; a one-shot run
        # does, unless told to skip it (whether the folder is trusted is
        # in a file, which a request does not read).
        return SKIP_TRUST in options.extra

    def live_resumable(self, last_turn_at: float, now: float) -> bool:
        # session/load in the UTC minute a conversation was created wipes
        # it (gemini 0.61.0); it was created no later than its last turn.
        return int(now // 60) > int(last_turn_at // 60)

    def live_session(self, options: UnifiedOptions, resume_id: str, cwd: str) -> ILiveSession:
        return GeminiLiveSession(
            cwd,
            resume_id,
            model=resolve_model(self, options.model) if options.model else "",
            allow_tools=options.approval_mode == "none",
        )

    def stdin_text(self, options: UnifiedOptions, prompt: str) -> str:
        # An @ reference to a file reads it into the prompt; a space in its
        # path is escaped (docs/design/images.md#images-gemini).
        shown = replaced(
            prompt,
            options.images,
            lambda number, image: "@" + os.path.join(options.scratch, image.name).replace(" ", "\\ "),
        )
        return prompt_with_system(options, shown)

    def run_files(self, options: UnifiedOptions) -> Mapping[str, bytes | RunFileMaker]:
        files: dict[str, bytes | RunFileMaker] = {image.name: image.data for image in options.images}
        if options.client_tools is not None:
            files[GEMINI_HOME] = GeminiHome(gemini_tool_settings(options.client_tools))
        return files

    def run_environment(self, options: UnifiedOptions) -> Mapping[str, str]:
        if options.client_tools is None:
            return {}
        # Its settings, with the client's tools, in a home of the run's own.
        return {GEMINI_HOME_VARIABLE: os.path.join(options.scratch, GEMINI_HOME)}

    def fork_flags(self, message_id: str) -> tuple[str, ...]:
        # It has no fork of a session.
        return ()

    def parse_response(self, raw: str) -> ParsedResponse | None:
        return parse_response(raw)

    def text_fallback(self, raw: str) -> str:
        return raw

    def stream_parser(self) -> IStreamParser:
        return GeminiStreamParser()

    def cleanup_command(self, executable: str, native_id: str) -> list[str] | None:
        return [executable, "--delete-session", native_id]

    def session_file_roots(self, home: str) -> Sequence[str]:
        return ()

    def failure_text(self, stderr: str) -> str:
        return strip_credentials_line(stderr)

    def headless_needs(
        self, section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str
    ) -> Sequence[HeadlessNeed]:
        return [self._trust(section, cwd, environ, home), self._auth(home), self._retention(home)]

    def _trust(self, section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str) -> HeadlessNeed:
        """gemini runs only in a folder it trusts, unless told to skip the check."""
        need = "a trusted folder"
        if SKIP_TRUST in section.extra_flags:
            return HeadlessNeed(
                self.name, need, True, f"not needed: backends.gemini.extra_flags has {SKIP_TRUST}"
            )
        if environ.get(TRUST_VARIABLE, "").lower() == "true":
            return HeadlessNeed(self.name, need, True, f"not needed: {TRUST_VARIABLE}=true")
        trusted = read_json(os.path.join(home, ".gemini", "trustedFolders.json"))
        if isinstance(trusted, dict) and trusted.get(cwd) == "TRUST_FOLDER":
            return HeadlessNeed(self.name, need, True, f"{cwd} is in ~/.gemini/trustedFolders.json")
        return HeadlessNeed(
            self.name,
            need,
            False,
            f"{cwd} is not known to be trusted (gemini exits 55): add {SKIP_TRUST} to "
            "backends.gemini.extra_flags, or trust the folder in gemini once",
        )

    def _retention(self, home: str) -> HeadlessNeed:
        """
        gemini's session clean-up, on by default, can delete a conversation
        that was resumed (gemini 0.61.0, docs/design/live-sessions.md#live-gemini).
        """
        need = "session clean-up off, so that resumed conversations are kept"
        if _retention_off(read_json(os.path.join(home, ".gemini", "settings.json"))):
            return HeadlessNeed(self.name, need, True, "general.sessionRetention.enabled is false")
        return HeadlessNeed(
            self.name,
            need,
            False,
            'set {"general": {"sessionRetention": {"enabled": false}}} in ~/.gemini/settings.json: '
            "gemini 0.61.0's clean-up deletes a resumed conversation when another one starts",
        )

    def _auth(self, home: str) -> HeadlessNeed:
        """gemini needs an auth method chosen in its settings; without one it exits 41."""
        need = "an auth method in ~/.gemini/settings.json"
        settings = read_json(os.path.join(home, ".gemini", "settings.json"))
        chosen = dig(settings, "security", "auth", "selectedType")
        if isinstance(chosen, str) and chosen:
            return HeadlessNeed(self.name, need, True, f"security.auth.selectedType is {chosen}")
        return HeadlessNeed(
            self.name,
            need,
            False,
            "security.auth.selectedType is not set (gemini exits 41): log in to gemini once",
        )


def _retention_off(settings: object) -> bool:
    return dig(settings, "general", "sessionRetention", "enabled") is False


def strip_credentials_line(text: str) -> str:
    """The text without a leading C{Loaded cached credentials.} line, trimmed."""
    text = text.strip()
    if text.startswith(CREDENTIALS_LINE):
        text = text[len(CREDENTIALS_LINE) :].strip()
    return text


def _model_usage(stats: dict[str, Any]) -> TokenUsage:
    """
    The tokens of C{stats.models}, without the CLI's own calls: a model
    entry that splits its tokens by C{roles} counts only the roles that are
    not C{utility_*} (the model router, for one, is C{utility_router}); an
    entry without roles (older releases) counts whole.
    """
    counted = []
    for model in as_dict(stats.get("models")).values():
        roles = as_dict(as_dict(model).get("roles"))
        if not roles:
            counted.append(as_dict(as_dict(model).get("tokens")))
            continue
        counted += [
            as_dict(as_dict(role).get("tokens"))
            for name, role in roles.items()
            if not name.startswith("utility")
        ]
    usage = TokenUsage()
    for tokens in counted:
        prompt = tokens.get("prompt")
        usage += TokenUsage(
            input_tokens=(
                as_int(prompt)
                if "prompt" in tokens
                else as_int(tokens.get("input")) + as_int(tokens.get("cached"))
            ),
            output_tokens=as_int(tokens.get("candidates")),
            cached_tokens=as_int(tokens.get("cached")),
            reasoning_tokens=as_int(tokens.get("thoughts")),
        )
    return usage


def _from_object(data: dict[str, Any]) -> ParsedResponse | None:
    session_id = as_str(data.get("session_id"))
    error = as_dict(data.get("error"))
    message = readable(as_str(error.get("message")))
    if message:
        # The code may be a string or a number (6.3 fix); either way it is an error.
        return ParsedResponse(session_id=session_id, error=message)
    response = data.get("response")
    if response is not None and not isinstance(response, str):
        return None
    return ParsedResponse(
        content=response or "", session_id=session_id, usage=_model_usage(as_dict(data.get("stats")))
    )


_DECODER = json.JSONDecoder()

# The members of the object Gemini's json format prints.
_OUTPUT_MEMBERS = ("session_id", "response", "error")


def _output_object(raw: str) -> dict[str, Any] | None:
    """
    The last JSON object in C{raw} that starts a line and holds a member
    of Gemini's output: a failed run writes warnings and a JavaScript
    stack trace (itself holding JSON) to stderr before it.
    """
    found = None
    position = 0
    while position < len(raw):
        end = raw.find("\n", position)
        end = len(raw) if end < 0 else end
        start = position
        while start < end and raw[start] in " \t\r":
            start += 1
        if start < end and raw[start] == "{":
            try:
                value, stop = _DECODER.raw_decode(raw, start)
            except (ValueError, RecursionError):
                value = None
            else:
                if isinstance(value, dict) and any(member in value for member in _OUTPUT_MEMBERS):
                    found = value
                # Go on after the value: each part of the output is read once.
                end = raw.find("\n", stop)
                end = len(raw) if end < 0 else end
        position = end + 1
    return found


def parse_response(raw: str) -> ParsedResponse | None:
    """
    Gemini's C{--output-format json} output (docs/design/cli-runs.md#gemini-output), or
    L{None} when there is nothing to report.
    """
    data = _output_object(raw)
    if data is not None:
        return _from_object(data)
    remaining = strip_credentials_line(raw)
    if not remaining:
        return None
    # What follows the credentials line may itself be the JSON object.
    data = loads(remaining)
    if isinstance(data, dict):
        return _from_object(data)
    return ParsedResponse(error=remaining)


@implementer(IStreamParser)
class GeminiStreamParser:
    """
    Gemini's C{stream-json} lines (docs/design/cli-runs.md#gemini-stream), in the real
    snake_case shapes and the camelCase ones the reference expected.
    """

    def feed(self, line: str, sequence: int) -> list[UnifiedEvent]:
        data = loads(line)
        if data is NOT_JSON:
            return [events.message(line, sequence)]
        if not isinstance(data, dict):
            return []
        kind = data.get("type")
        if kind == "init":
            native_id = as_str(data.get("session_id")) or as_str(data.get("sessionId"))
            return [events.init(sequence, model=as_str(data.get("model")), native_id=native_id)]
        if kind == "message":
            if data.get("role") == "user":
                return []
            return [
                events.message(as_str(data.get("content")), sequence, partial=data.get("delta") is not False)
            ]
        if kind == "tool_use":
            return [
                events.tool_use(
                    as_str(data.get("toolName")) or as_str(data.get("tool_name")),
                    data.get("parameters"),
                    sequence,
                    tool_id=as_str(data.get("toolCallId")) or as_str(data.get("tool_id")),
                )
            ]
        if kind == "tool_result":
            output = data.get("output") if "output" in data else data.get("result")
            return [
                events.tool_result(
                    sequence,
                    tool_id=as_str(data.get("toolCallId")) or as_str(data.get("tool_id")),
                    tool_name=as_str(data.get("toolName")) or as_str(data.get("tool_name")),
                    output=as_str(output),
                    is_error=data.get("status") == "error",
                    error_message=as_str(as_dict(data.get("error")).get("message")),
                )
            ]
        if kind == "error":
            code = data.get("code")
            severity = as_str(data.get("severity"))
            code = str(code) if isinstance(code, (str, int)) and code != "" else severity
            return [
                events.error(
                    as_str(data.get("message")),
                    sequence,
                    code=code,
                    details=data.get("details"),
                    warning=severity == "warning",
                )
            ]
        if kind == "result":
            return self._result(data, sequence)
        return []

    def _result(self, data: dict[str, Any], sequence: int) -> list[UnifiedEvent]:
        found = []
        if data.get("status") == "error":
            error = as_dict(data.get("error"))
            found.append(events.error(as_str(error.get("message")), sequence, code=as_str(error.get("type"))))
        stats = as_dict(data.get("stats"))
        # Unlike the json format's, these totals include the CLI's own
        # model-router call: stats.models has per-model counts but no roles
        # (and the init line's model is "auto"), so the router's model
        # cannot be told from the main one.
        if "input_tokens" in stats or "output_tokens" in stats:
            usage = TokenUsage(
                as_int(stats.get("input_tokens")),
                as_int(stats.get("output_tokens")),
                cached_tokens=as_int(stats.get("cached")),
            )
        else:
            legacy = as_dict(stats.get("tokenUsage"))
            usage = TokenUsage(as_int(legacy.get("inputTokens")), as_int(legacy.get("outputTokens")))
        found.append(events.done(sequence, usage))
        return found


# What clinvk.backends.build_backends registers under this module's name.
backend = GeminiBackend()
