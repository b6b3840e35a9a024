# -*- test-case-name: tests.test_cli -*-
"""
The C{clinvk} command: C{clinvk serve}, C{clinvk doctor} and C{clinvk
--version}.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

from twisted.python import usage

from clinvk.tap import DoctorOptions, ServeOptions, doctor, serve, version_line


class CommandLineOptions(usage.Options):
    """The options of the C{clinvk} command."""

    synopsis = "Usage: clinvk [--config FILE] COMMAND [OPTIONS]"
    optParameters = [
        ["config", None, None, "Configuration file [default: ~/.clinvk/config.yaml]."],
    ]
    subCommands = [
        ["serve", None, ServeOptions, "Run the HTTP API server in the foreground."],
        ["doctor", None, DoctorOptions, "Check the configuration and the backend CLIs; spends no tokens."],
    ]

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(version_line())
        raise SystemExit(0)

    def parseArgs(self, *args: str) -> None:
        if args:
            raise usage.UsageError(f"unknown command {args[0]!r}")

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is required: clinvk serve, or clinvk doctor")


def run(argv: Sequence[str]) -> int:
    """
    Run the C{clinvk} command with C{argv} (without the program name).

    @return: The exit status.
    """
    options = CommandLineOptions()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    if options.subCommand == "doctor":
        return doctor(options.subOptions)
    return serve(options.subOptions)


def main() -> NoReturn:
    """The console script."""
    raise SystemExit(run(sys.argv[1:]))
