# -*- test-case-name: tests.backends.test_results -*-
"""
From a finished run's captures to its result: choosing the raw text
(docs/design/cli-runs.md#raw-output), parsing it
(docs/design/cli-runs.md#output-parsing), deciding what counts as an
error (docs/design/cli-runs.md#run-errors), and the same for streaming
runs (docs/design/cli-runs.md#stream-outcome).
"""

from __future__ import annotations

from attrs import frozen

from clinvk.backends.events import readable
from clinvk.interfaces import IBackend
from clinvk.model import ParsedResponse, TokenUsage, UnifiedEvent


@frozen
class Finished:
    """The parts of a run's result that its output decides."""

    exit_code: int
    output: str = ""
    error: str = ""
    native_session_id: str = ""
    usage: TokenUsage | None = None
    native_message_id: str = ""


def exit_error(backend: IBackend, exit_code: int, stderr: str) -> str:
    """
    The error of a run that failed without saying why (6.4 fix): what
    its stderr says (L{IBackend.failure_text}), else its status.
    """
    text = readable(backend.failure_text(stderr))
    if text:
        return text
    if exit_code == -1:
        return "backend process was terminated"
    return f"backend exited with status {exit_code}"


def finish_response(
    backend: IBackend,
    *,
    stdout: str,
    stderr: str,
    exit_code: int,
    start_error: str = "",
    stop_error: str = "",
) -> Finished:
    """
    The result of a non-streaming run.

    @param stderr: The separate stderr capture (empty for a CLI whose
        stderr is merged into C{stdout}).
    @param exit_code: The status as reported (-1 for a signal, 1 when it
        could not start).
    @param start_error: Why it could not start; an error the CLI reported
        replaces it.
    @param stop_error: Why the server stopped it (a deadline, the output
        cap); it wins over anything the CLI said.
    """
    if exit_code != 0 and stderr:
        raw = stderr
    elif not stdout:
        raw = stderr
    else:
        raw = stdout
    parsed = backend.parse_response(raw)
    if raw is not stdout and stdout and not _says_anything(parsed):
        # A failed run's stderr may hold only diagnostics while stdout holds
        # the CLI's own error events (codex prints "Reading prompt from
        # stdin..." on every run): read stdout too rather than lose them.
        from_stdout = backend.parse_response(stdout)
        if _says_anything(from_stdout):
            raw, parsed = stdout, from_stdout
    error = start_error
    native_id = ""
    usage = None
    # The fallback is only worked out when the parser found no answer: it
    # may parse the whole output a second time.
    if parsed is not None and parsed.content:
        output = parsed.content
    elif parsed is not None and parsed.error:
        # The CLI said why it failed: what else it printed (Gemini's
        # warnings and stack trace) is no answer.
        output = ""
    else:
        output = backend.text_fallback(raw)
    if parsed is not None:
        native_id = parsed.session_id
        usage = parsed.usage
        if parsed.error:
            error = parsed.error
            exit_code = exit_code or 1
    if stop_error:
        error = stop_error
    if exit_code != 0 and not error:
        # A CLI whose stderr is merged into its output (Claude) says why it
        # failed on its output's last line.
        error = exit_error(backend, exit_code, _last_line(stdout) if backend.merges_stderr else stderr)
    return Finished(exit_code, output, error, native_id, usage)


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def _says_anything(parsed: ParsedResponse | None) -> bool:
    return parsed is not None and bool(parsed.error or parsed.content)


class StreamOutcome:
    """
    Watches the events of a streaming run to derive its result
    (docs/design/cli-runs.md#stream-outcome).

    An C{error} event marked as a warning (Gemini's warnings, Codex's
    non-fatal item errors) is delivered but is not a failure.

    @param backend: The backend that runs.
    """

    def __init__(self, backend: IBackend) -> None:
        self._backend = backend
        self.native_session_id = ""
        self.usage: TokenUsage | None = None
        self.last_error = ""
        self.failure_seen = False

    def observe(self, event: UnifiedEvent) -> None:
        content = event.content
        if event.type == "init" and content.get("backend_session_id"):
            self.native_session_id = content["backend_session_id"]
        elif event.type == "error" and not event.warning:
            self.failure_seen = True
            self.last_error = str(content.get("message", "")) or self.last_error
        elif event.type == "done" and "token_usage" in content:
            self.usage = TokenUsage.from_wire(content["token_usage"])

    def finish(self, exit_code: int, stderr: str, error: str = "") -> Finished:
        """
        @param error: A failure the server itself saw (a start failure, a
            cancelled stream), which wins over the CLI's own.
        """
        error = error or self.last_error
        if not error and exit_code != 0:
            error = exit_error(self._backend, exit_code, stderr)
        if error and exit_code == 0:
            exit_code = 1
        return Finished(exit_code, "", error, self.native_session_id, self.usage)
