"""
The table of start-up errors of C{docs/configuration.md}, run for real:
each way of starting the server, given a configuration it cannot use and
then a mistake in its command line, prints what the table says on the
stream it names, in that order, and exits with the status it gives.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests._docs import CONFIGURATION, section
from tests.integration._daemon import BIN, CLINVK, TWIST, TWISTD
from tests.integration._processes import CommandProtocol, spawn

# Each command of the table, as the test runs it; twistd with a pidfile
# and a log file in its working directory.
COMMANDS = {
    "clinvk serve": [CLINVK, "serve"],
    "twist clinvk": [TWIST, "clinvk"],
    "twistd clinvk": [TWISTD, "--pidfile", "clinvk.pid", "--logfile", "clinvk.log", "clinvk"],
}

# The configuration of the page's sample line, in the default file.
UNUSABLE = b"unified_flags:\n  approval_mode: sometimes\n"

# A mistake in the command line, and the reason every runner gives for it.
MISTAKE = ["--port", "http"]
MISTAKE_REASON = "--port: expected a port number from 0 to 65535, got 'http'"

_ROW = re.compile(
    r"^\| `(?P<command>[^`]+)` \| (?P<configuration>[^|]+?) \| (?P<command_line>[^|]+?) \|$", re.M
)

_STREAMS = {"standard output": "stdout", "standard error": "stderr"}


@dataclass(frozen=True)
class Said:
    """
    What a cell of the table says happens.

    @ivar cell: The cell's text.
    @ivar stream: C{"stdout"} or C{"stderr"}: where it all goes.
    @ivar status: The exit status.
    """

    cell: str
    stream: str
    status: int

    @classmethod
    def of(cls, cell: str) -> Said:
        [stream] = [name for words, name in _STREAMS.items() if words in cell]
        status = re.search(r"exit status (\d+)", cell)
        assert status is not None, cell
        return cls(cell, stream, int(status.group(1)))

    def says(self, words: str) -> bool:
        return words in self.cell


def table() -> dict[str, tuple[Said, Said]]:
    """The table: for each command, what happens with an unusable configuration and with a mistake."""
    rows = _ROW.finditer(section(CONFIGURATION.read_text("utf-8"), "Checked at start-up"))
    return {
        row.group("command"): (Said.of(row.group("configuration")), Said.of(row.group("command_line")))
        for row in rows
    }


def sample_line() -> str:
    """The error line the page shows."""
    [line] = [
        line
        for line in section(CONFIGURATION.read_text("utf-8"), "Checked at start-up").splitlines()
        if line.startswith("Error: configuration has ")
    ]
    return line


class StartupErrorTableTests(TestCase):
    """Every row of the table, for both kinds of error."""

    timeout = 60

    def setUp(self) -> None:
        self.table = table()
        self.assertEqual(sorted(self.table), sorted(COMMANDS))
        self.home = FilePath(self.mktemp())
        self.home.child(".clinvk").makedirs()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_")}
        self.env.update(HOME=self.home.path, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))

    async def run_in_new_directory(self, command: list[str]) -> tuple[CommandProtocol, FilePath[str]]:
        """Run C{command} in an empty directory until it ends; return it and the directory."""
        directory = FilePath(self.mktemp())
        directory.makedirs()
        protocol, _ = spawn(command, self.env, directory.path)
        await protocol.ended
        return protocol, directory

    def outputs(self, protocol: CommandProtocol, said: Said) -> str:
        """What C{protocol} printed on the stream C{said} names; the other one must be empty."""
        other = "stdout" if said.stream == "stderr" else "stderr"
        self.assertEqual(getattr(protocol, other), b"", f"{said.cell}: nothing on {other}")
        output: str = getattr(protocol, said.stream).decode()
        return output

    async def test_unusable_configuration(self) -> None:
        """
        With the page's sample configuration in the default file, each
        command prints exactly the page's line, with this C{HOME}, on the
        stream and with the status the table gives; twistd writes no file.
        """
        config = self.home.descendant([".clinvk", "config.yaml"])
        config.setContent(UNUSABLE)
        line = sample_line().replace("/home/me/.clinvk/config.yaml", config.path)
        for command, (said, _) in self.table.items():
            protocol, directory = await self.run_in_new_directory(COMMANDS[command])
            self.assertEqual(protocol.ended.result, said.status, command)
            self.assertTrue(said.cell.startswith("the line on "), said.cell)
            self.assertEqual(self.outputs(protocol, said), line + "\n", command)
            if said.says("no pidfile or log file"):
                self.assertEqual(directory.listdir(), [], command)

    async def test_command_line_mistake(self) -> None:
        """
        With a C{--port} that is not a number, each command gives the
        reason in the form the table shows, with its usage text where the
        table says so and in the order it says, on the stream and with
        the status it gives.
        """
        for command, (_, said) in self.table.items():
            protocol, _ = await self.run_in_new_directory([*COMMANDS[command], *MISTAKE])
            self.assertEqual(protocol.ended.result, said.status, command)
            output = self.outputs(protocol, said)
            lines = output.splitlines()
            shown = re.search(r"`([^`]*)<reason>`", said.cell)
            assert shown is not None, said.cell
            prefix = shown.group(1).replace("/opt/clinvk/bin/twistd", TWISTD)
            reason_line = prefix + MISTAKE_REASON
            self.assertIn(reason_line, lines, command)
            if said.says("usage"):
                usage_first = said.cell.index("usage") < said.cell.index("<reason>")
                self.assertEqual(output.index("Usage: ") < output.index(reason_line), usage_first, command)
            else:
                self.assertEqual(output, reason_line + "\n", command)
