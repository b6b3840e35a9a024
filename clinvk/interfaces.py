# -*- test-case-name: tests.backends.test_backends -*-
"""
The seams of clinvk that are swapped or extended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from clinvk.config import BackendConfig
    from clinvk.model import (
        HeadlessNeed,
        LiveStep,
        ParsedResponse,
        RunFileMaker,
        UnifiedEvent,
        UnifiedOptions,
    )


class IBackend(Interface):
    """
    One vendor CLI: everything clinvk knows of it, from its names and
    models to how to build its command line, read its output and clean up
    after it.  Implementations are pure: they run nothing themselves.

    Each backend is one module, C{clinvk.backends.<name>}, whose
    C{backend} is its provider; C{clinvk.config.BACKEND_NAMES} registers
    it (see L{clinvk.backends.build_backends}).
    """

    name = Attribute(
        "The backend's name, such as C{claude}; also its binary's name and its configuration "
        "section's (C{backends.<name>})."
    )
    aliases = Attribute(
        "The model aliases the backend resolves for the command line "
        "(docs/design/cli-runs.md#model-aliases): a "
        "mapping of alias to model name, matched exactly."
    )
    model_markers = Attribute(
        "The texts that, found in the model name of an OpenAI-compatible request, choose this "
        "backend (docs/design/openai-api.md#openai-model-mapping); the backends are tried in the "
        "order of their names."
    )
    default_for_compat = Attribute(
        "Whether a compatibility request whose model chooses no backend runs on this one; "
        "exactly one backend says so (Claude)."
    )
    streams_tokens = Attribute(
        "Whether a streaming run's answer arrives a few tokens at a time (rather than whole "
        "messages), which the compatibility APIs' model lists report."
    )
    supports_allowed_tools = Attribute(
        "Whether the CLI takes C{backends.<name>.allowed_tools}; for the others it is ignored, "
        "with a warning logged once."
    )
    proven_version = Attribute(
        "The version of the CLI that the real-CLI suite (C{tox -e realcli}) drove through every route."
    )
    merges_stderr = Attribute(
        "Whether the CLI's stderr is read as part of its stdout (Claude; docs/design/cli-runs.md#capture)."
    )
    reports_running_usage = Attribute(
        "Whether the CLI reports, for a resumed conversation, the tokens of the whole "
        "conversation so far rather than of the turn (Codex)."
    )
    structured_output = Attribute(
        "Whether the CLI itself holds its answer to a JSON schema "
        "(L{clinvk.model.UnifiedOptions.output_schema}; docs/design/structured-output.md)."
    )
    client_tools = Attribute(
        "Whether the CLI can be given the client's tools through clinvk's MCP endpoint "
        "(L{clinvk.model.UnifiedOptions.client_tools}; docs/design/client-tools.md)."
    )
    allowed_flags = Attribute(
        "The lowercase flag names a request's C{extra} list may use "
        "(docs/design/cli-runs.md#extra-flags), besides the common short ones."
    )

    def command(executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        """
        The argv of a run, without the prompt, which travels on stdin
        (docs/design/decisions.md#d1-prompts-on-stdin).

        @param executable: The absolute path of the CLI.
        @param options: The run's L{clinvk.model.UnifiedOptions}.
        @param resume_id: A native session id to continue, or C{""}.
        @return: A list of strings, starting with C{executable}.
        """

    def stdin_text(options: UnifiedOptions, prompt: str) -> str:
        """
        The text written to the CLI's stdin: the prompt, with the system
        prompt in front for CLIs that have no flag for it.

        @return: A L{str}.
        """

    def run_files(options: UnifiedOptions) -> Mapping[str, bytes | RunFileMaker]:
        """
        The files a run with C{options} needs while it runs, by name: its
        command line names them in C{options.scratch}, the run's own
        directory, which the runtime fills before the CLI starts and
        removes once it ends (docs/design/structured-output.md#run-files).

        @return: File names (without directories) and their contents, or
            what makes them (a directory, say) away from the reactor; empty
            when the run needs none.
        """

    def run_environment(options: UnifiedOptions) -> Mapping[str, str]:
        """
        The environment variables a run with C{options} needs beyond the
        server's (a secret a command line would show to every user of the
        machine, a directory of the run's own); empty for none.
        """

    def fork_flags(message_id: str) -> tuple[str, ...]:
        """
        The extra flags that make a run resuming a conversation start a
        new one instead, holding the resumed conversation as it stood at
        the message C{message_id} (L{clinvk.model.RunResult.native_message_id};
        docs/design/conversations.md#native-fork).

        @return: The flags, or C{()} when the CLI cannot fork so.
        """

    def parse_response(raw: str) -> ParsedResponse | None:
        """
        Parse the raw output of a finished non-streaming run
        (docs/design/cli-runs.md#output-parsing).

        @param raw: The chosen capture (docs/design/cli-runs.md#raw-output), decoded.
        @return: A L{clinvk.model.ParsedResponse}, or L{None} when
            the output is not this CLI's JSON.
        """

    def text_fallback(raw: str) -> str:
        """
        The answer text when the parser found none
        (docs/design/cli-runs.md#output-parsing).

        @return: A L{str}.
        """

    def stream_parser() -> IStreamParser:
        """
        A fresh parser for one streaming run.

        @return: An L{IStreamParser}.
        """

    def cleanup_command(executable: str, native_id: str) -> list[str] | None:
        """
        The command that deletes a native session after an ephemeral run
        (docs/design/cli-runs.md#ephemeral-cleanup), if this CLI has one.

        @return: An argv list, or L{None}.
        """

    def session_file_roots(home: str) -> Sequence[str]:
        """
        Where this CLI stores its native sessions as files to delete after
        an ephemeral run (docs/design/cli-runs.md#ephemeral-cleanup), given the
        user's home directory.

        @return: A list of directory paths, most specific first; empty when
            the CLI keeps no such files.
        """

    def failure_text(stderr: str) -> str:
        """
        What the CLI's error output says of a failure: C{stderr} without
        the lines the CLI prints on every run.

        @return: A L{str}, possibly empty.
        """

    def headless_needs(
        section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str
    ) -> Sequence[HeadlessNeed]:
        """
        What the CLI needs to run unattended, beyond its login, and whether
        it has it for runs in C{cwd} (docs/design/cli-runs.md#unattended-needs).
        This may read a few small files of the user's: C{clinvk doctor}
        asks, never a request.

        @param section: The backend's configuration section.
        @param cwd: The folder runs without a C{workdir} go to.
        @param environ: The server's environment.
        @param home: The user's home directory.
        @return: The needs, in the order to report them; empty when the
            CLI needs nothing more.
        """


class IStreamParser(Interface):
    """
    Turns the output lines of one streaming run into unified events
    (docs/design/cli-runs.md#stream-lines).  It may keep state between lines.
    """

    def feed(line: str, sequence: int) -> list[UnifiedEvent]:
        """
        Parse one non-blank, trimmed output line.

        @param line: The line's text.
        @param sequence: Its number among the run's non-blank lines.
        @return: A list of L{clinvk.model.UnifiedEvent}, possibly
            empty.
        """


class ILiveMode(Interface):
    """
    A backend whose CLI has a long-lived mode: one process that answers
    turn after turn on its stdin and stdout
    (docs/design/live-sessions.md#live-protocol).  Optional: a backend that
    does not provide it runs one process per turn.  Like L{IBackend}, it
    runs nothing itself.
    """

    live_mode = Attribute(
        "The CLI's long-lived mode in a few words, such as C{claude --input-format stream-json}."
    )

    def live_command(executable: str, options: UnifiedOptions, resume_id: str) -> list[str] | None:
        """
        The argv of a live process for a conversation run with C{options}.
        No prompt is on it: turns travel on stdin.

        @param resume_id: The native conversation to continue, for a CLI
            that takes it on the command line; others continue it in the
            handshake of L{live_session}.
        @return: A list of strings, starting with C{executable}; L{None}
            when C{options} cannot run live (an extra flag that would
            change the protocol), and the turn runs cold.
        """

    def live_checks_passed(options: UnifiedOptions, cwd: str) -> bool:
        """
        Whether a live process may run in C{cwd} with C{options}: the
        long-lived mode may skip a check the one-shot command makes
        (codex's Git repository, gemini's trusted folder), and the turn
        then runs cold for the CLI to make it
        (docs/design/live-sessions.md#live-turns).  It may look at a few
        directories, never read a file.
        """

    def live_resumable(last_turn_at: float, now: float) -> bool:
        """
        Whether a new live process may resume a stored conversation now,
        given when its last turn was recorded (POSIX times); when not, the
        turn runs cold, which resumes it safely
        (docs/design/live-sessions.md#live-gemini).
        """

    def live_session(options: UnifiedOptions, resume_id: str, cwd: str) -> ILiveSession:
        """
        The protocol state of one new live process.

        @param options: The options the process was started with.
        @param resume_id: The native conversation to continue, or C{""}
            for a new one.
        @param cwd: The process's absolute working directory.
        @return: An L{ILiveSession}.
        """


class ILiveSession(Interface):
    """
    The conversation with one live CLI process, without I/O: it says what
    to write and reads what the CLI printed, one line at a time
    (docs/design/live-sessions.md#live-protocol).  Lines are text without
    their line end.  One turn runs at a time.
    """

    native_session_id = Attribute('The CLI\'s conversation id, once known; C{""} before.')

    def opening() -> list[str]:
        """
        The lines to write as soon as the process has started: the first
        step of its handshake.  Empty for a CLI that needs none, whose
        L{feed} then reports C{ready} on its first line, or which is ready
        at once (see L{ready_at_start}).
        """

    def ready_at_start() -> bool:
        """Whether turns may be sent before the CLI printed anything."""

    def turn(text: str) -> list[str]:
        """
        The lines that send one user turn.  Sequence numbers of the
        events of the turn start again at 1.

        @param text: What the turn says (L{IBackend.stdin_text}: the
            prompt, with the system prompt in front for CLIs without a
            flag for it).
        """

    def interrupt() -> list[str]:
        """
        The lines that stop the running turn and keep the conversation;
        empty when they cannot go yet (the session sends them later, as
        replies).  A turn that has not ended a grace period later is
        ended by stopping the process.
        """

    def feed(line: str) -> LiveStep:
        """
        Read one non-blank output line.

        @return: A L{clinvk.model.LiveStep}.
        """
