# -*- test-case-name: tests.backends.test_options -*-
"""
The domain model every layer shares: what a caller asks for, the options
a run is built from, what parsers find, the events of a stream, what a
run returns and what a CLI needs to run unattended.  It imports nothing of clinvk, so any layer may import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from attrs import field, frozen


def _strings(items: Any) -> tuple[str, ...]:
    return tuple(items)


@frozen
class ImageInput:
    """
    An image that a prompt shows the CLI (docs/design/images.md): the prompt
    holds its L{marker} where it stands, and each backend replaces the
    marker with the image in the way its CLI takes images.

    @ivar name: A file name made from the content's digest and the media
        type, such as C{image-0123456789abcdef.png}: the same image has
        the same name, in a prompt and in a conversation's history.
    @ivar media_type: C{image/png}, C{image/jpeg}, C{image/gif} or
        C{image/webp}.
    @ivar data: The image's bytes.
    """

    name: str
    media_type: str
    data: bytes = field(repr=lambda data: f"<{len(data)} bytes>")

    @property
    def marker(self) -> str:
        """The text standing for the image in a prompt."""
        return f"[image: {self.name}]"


def _images(items: Iterable[ImageInput]) -> tuple[ImageInput, ...]:
    return tuple(items)


# Makes a run's file or directory at the path it is given, away from the
# reactor (IBackend.run_files): for what needs more than bytes written.
RunFileMaker = Callable[[str], None]


@frozen
class ClientTools:
    """
    The client's own tools, which a run's CLI is offered through clinvk's
    MCP endpoint (docs/design/client-tools.md).

    @ivar url: The run's MCP endpoint, whose path is its secret.
    @ivar endpoint: The MCP endpoint without the secret, for a CLI that
        presents the secret as a bearer token instead (codex).
    @ivar secret: The secret, for that token.
    @ivar names: The tools' names, as the client gave them.
    @ivar keep_cli_tools: Whether the CLI keeps its own tools (shell,
        files, search) beside the client's; by default it has none.
    @ivar timeout_secs: How long the CLI is to wait on a call: as long as
        clinvk waits for the client's result, and a little more.
    """

    url: str
    names: tuple[str, ...] = field(converter=_strings)
    keep_cli_tools: bool = False
    timeout_secs: int = 300
    endpoint: str = ""
    secret: str = field(default="", repr=False)

    # The MCP server's name in the CLIs' configurations: the tools reach the
    # model as mcp__clinvk__<name> (claude, codex) or mcp_clinvk_<name> (gemini).
    server_name = "clinvk"


@frozen
class RunRequest:
    """
    One execution as a caller asks for it, before configuration defaults.

    @ivar output_format: The requested format (C{""}, C{default}, C{text},
        C{json} or C{stream-json}); validated by pre-flight.
    @ivar resume_id: The native session id to continue
        (docs/design/decisions.md#d3-session-continuation), or C{""} for a new
        conversation.
    @ivar resumed_usage: The tokens the conversation of C{resume_id} has
        used so far, when known: a CLI that reports a resumed
        conversation's running total (Codex) has it taken off, so that a
        turn reports its own.
    @ivar resumed_at: When the last turn of the conversation of
        C{resume_id} was recorded (POSIX time), 0 when unknown: a CLI may
        refuse to resume a conversation live that soon
        (L{clinvk.interfaces.ILiveMode.live_resumable}).
    @ivar output_schema: A JSON schema, as JSON text, that the answer must
        match, given to a CLI that can constrain its answer
        (docs/design/structured-output.md); C{""} for none.
    @ivar images: The images the prompt may show, by their
        L{markers<ImageInput.marker>}; those whose marker the prompt does
        not hold are not sent.
    @ivar client_tools: The client's tools the CLI is offered, if any.
    """

    backend: str
    prompt: str
    model: str = ""
    workdir: str = ""
    approval_mode: str = ""
    sandbox_mode: str = ""
    output_format: str = ""
    max_tokens: int = 0
    max_turns: int = 0
    system_prompt: str = ""
    verbose: bool = False
    dry_run: bool = False
    ephemeral: bool = False
    extra: tuple[str, ...] = field(default=(), converter=_strings)
    resume_id: str = ""
    resumed_usage: TokenUsage | None = None
    resumed_at: float = 0.0
    output_schema: str = ""
    images: tuple[ImageInput, ...] = field(default=(), converter=_images)
    client_tools: ClientTools | None = None


@frozen
class UnifiedOptions:
    """
    The backend-neutral options of one run, after the configuration
    layering of docs/design/cli-runs.md#option-layering.

    @ivar model: The model as given (aliases are resolved only for argv).
    @ivar output_format: The internal format, C{json} or C{stream-json}.
    @ivar extra: The request's extra flags, then the configured ones.
    @ivar output_schema: The request's L{RunRequest.output_schema}.
    @ivar images: The images the prompt shows, in the order of their
        markers' first appearance.
    @ivar scratch: The run's own directory, for the files its command line
        names (L{clinvk.interfaces.IBackend.run_files}), which exist only
        while it runs; C{""} when it needs none.
    @ivar client_tools: The request's L{RunRequest.client_tools}.
    """

    model: str
    approval_mode: str
    sandbox_mode: str
    output_format: str
    verbose: bool
    dry_run: bool
    max_tokens: int
    max_turns: int
    system_prompt: str
    allowed_tools: str
    extra: tuple[str, ...]
    ephemeral: bool
    output_schema: str = ""
    images: tuple[ImageInput, ...] = field(default=(), converter=_images)
    scratch: str = ""
    client_tools: ClientTools | None = None


@frozen
class TokenUsage:
    """Token counts of a run; cached and reasoning counts are optional."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    @classmethod
    def from_wire(cls, counts: dict[str, int]) -> TokenUsage:
        """The usage of an event's C{token_usage} (the inverse of L{as_dict})."""
        return cls(
            counts.get("input_tokens", 0),
            counts.get("output_tokens", 0),
            counts.get("cached_tokens", 0),
            counts.get("reasoning_tokens", 0),
        )

    def since(self, earlier: TokenUsage) -> TokenUsage:
        """What was used after C{earlier}, a running total this one continues (never below zero)."""
        return TokenUsage(
            max(0, self.input_tokens - earlier.input_tokens),
            max(0, self.output_tokens - earlier.output_tokens),
            max(0, self.cached_tokens - earlier.cached_tokens),
            max(0, self.reasoning_tokens - earlier.reasoning_tokens),
        )

    def as_dict(self) -> dict[str, int]:
        """The wire form: input and output always, the others when non-zero."""
        result = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.cached_tokens:
            result["cached_tokens"] = self.cached_tokens
        if self.reasoning_tokens:
            result["reasoning_tokens"] = self.reasoning_tokens
        return result


@frozen
class ParsedResponse:
    """
    What a backend's parser found in a finished run's output
    (docs/design/cli-runs.md#output-parsing).
    """

    content: str = ""
    session_id: str = ""
    usage: TokenUsage | None = None
    error: str = ""
    # The CLI's id of the answer's last message, where it reports one.
    message_id: str = ""


@frozen
class UnifiedEvent:
    """
    One streaming event (docs/design/cli-runs.md#unified-events), without the
    request-level C{backend} and C{session_id} members.

    @ivar content: The type-specific payload, already in wire form (empty
        members omitted).
    @ivar sequence: The output line that produced it, or 0 for events the
        server makes itself.
    @ivar timestamp: POSIX time of creation, set when the event is
        delivered.
    @ivar warning: For an C{error} event, whether it only warns: delivered,
        but not a failure of the run.  Not part of the wire form.
    """

    type: str
    content: Mapping[str, Any]
    sequence: int = 0
    timestamp: float = 0.0
    warning: bool = False

    def wire(self, backend: str, session_id: str = "") -> dict[str, Any]:
        """The event as one NDJSON object."""
        event: dict[str, Any] = {"type": self.type, "backend": backend}
        if session_id:
            event["session_id"] = session_id
        event["timestamp"] = datetime.fromtimestamp(self.timestamp, tz=UTC).isoformat(timespec="microseconds")
        event["content"] = dict(self.content)
        if self.sequence:
            event["sequence"] = self.sequence
        return event


def _events(items: Iterable[UnifiedEvent]) -> tuple[UnifiedEvent, ...]:
    return tuple(items)


@frozen
class LiveStep:
    """
    What one output line of a live CLI process meant
    (docs/design/live-sessions.md#live-protocol): the events it carries for
    the turn running, the lines to write back, and whether it finished
    the handshake, the turn, or the process.

    @ivar events: Events of the running turn, in order; dropped when no
        turn runs (a history replayed on resume, a late notification).
    @ivar replies: Lines to write to the CLI's stdin, without line ends
        (the next handshake request, an answer to the CLI's own request).
    @ivar ready: The handshake is complete: turns may be sent.
    @ivar ended: The running turn has ended, with what it answered (its
        text, the CLI's conversation id, its tokens, its error).
    @ivar failure: The process cannot serve turns any more (its handshake
        was refused, its conversation is gone): why, or C{""}.
    """

    events: tuple[UnifiedEvent, ...] = field(default=(), converter=_events)
    replies: tuple[str, ...] = field(default=(), converter=_strings)
    ready: bool = False
    ended: ParsedResponse | None = None
    failure: str = ""


@frozen
class RunResult:
    """
    The outcome of one execution (docs/design/cli-runs.md#output-parsing and
    docs/design/cli-runs.md#stream-outcome).

    @ivar exit_code: The CLI's exit status; -1 when it was killed; 1 for a
        pre-flight or start failure.
    @ivar output: The answer text.
    @ivar error: Why the run failed, or C{""}.
    @ivar native_session_id: The CLI's own conversation id, when found.
    @ivar usage: Token counts, when the CLI reported them.
    @ivar command: The argv that ran (or would have run, for a dry run).
    @ivar ran: Whether the run got past pre-flight (metrics count only
        those).
    @ivar parsed_at: When its output was parsed (reactor time), before
        any clean-up; 0 when it did not run.
    @ivar start_failed: Whether the CLI could not be started at all.
    @ivar native_message_id: The CLI's id of the answer's last message,
        where it reports one (a live claude's assistant message uuid): a
        conversation can be forked as it stood there.
    """

    exit_code: int
    output: str = ""
    error: str = ""
    native_session_id: str = ""
    usage: TokenUsage | None = None
    command: tuple[str, ...] = field(default=(), converter=_strings)
    dry_run: bool = False
    ran: bool = True
    parsed_at: float = 0.0
    start_failed: bool = False
    native_message_id: str = ""

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and no error (docs/design/cli-runs.md#run-errors)."""
        return self.exit_code == 0 and not self.error


@frozen
class HeadlessNeed:
    """
    One thing a CLI needs to run unattended (C{clinvk doctor} reports them).

    @ivar backend: The CLI.
    @ivar need: What it needs.
    @ivar met: Whether it has it (for runs in the server's own folder).
    @ivar detail: How it is met, or what would meet it.
    """

    backend: str
    need: str
    met: bool
    detail: str
