# -*- test-case-name: tests.test_cli -*-
"""
The C{clinvk} command: C{clinvk serve} and C{clinvk --version}.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

from twisted.python import usage

from clinvk import __version__
from clinvk.tap import ServeOptions, serve


class CommandLineOptions(usage.Options):
    """The options of the C{clinvk} command."""

    synopsis = "clinvk [--config FILE] serve [--host HOST] [--port|-p PORT] [--config FILE]"
    optParameters = [
        ["config", None, None, "Configuration file [default: ~/.clinvk/config.yaml]."],
    ]
    subCommands = [["serve", None, ServeOptions, "Run the HTTP API server in the foreground."]]

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(f"clinvk {__version__}")
        raise SystemExit(0)

    def parseArgs(self, *args: str) -> None:
        if args:
            raise usage.UsageError(f"unknown command {args[0]!r}")

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("a command is required: clinvk serve")


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
    return serve(options.subOptions)


def main() -> NoReturn:
    """The console script."""
    raise SystemExit(run(sys.argv[1:]))
