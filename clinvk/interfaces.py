# -*- test-case-name: tests.backends.test_backends -*-
"""
The seams of clinvk that are swapped or extended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from clinvk.model import ParsedResponse, UnifiedEvent, UnifiedOptions


class IBackend(Interface):
    """
    One vendor CLI: how to build its command line and how to read its
    output.  Implementations are pure: they run nothing themselves.
    """

    name = Attribute("The backend's name, such as C{claude}; also its binary's name.")
    merges_stderr = Attribute(
        "Whether the CLI's stderr is read as part of its stdout (Claude; docs/design/cli-runs.md#capture)."
    )
    reports_running_usage = Attribute(
        "Whether the CLI reports, for a resumed conversation, the tokens of the whole "
        "conversation so far rather than of the turn (Codex)."
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
