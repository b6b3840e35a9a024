"""
Tests for the command line of L{clinvk.testing.fake_cli}: C{install DIR}
for people trying clinvk, C{<name> ARGS} for the installed executables.
"""

from __future__ import annotations

import os
import sys
from io import StringIO
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from clinvk.testing.fake_cli import NAMES, command_line


class CommandLineTests(SynchronousTestCase):
    """L{command_line}."""

    def setUp(self) -> None:
        self.stdout = StringIO()
        self.stderr = StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)

    def test_install(self) -> None:
        """
        C{install DIR} writes the three executables into DIR, creating it,
        and says where they are.
        """
        target = Path(self.mktemp()) / "fakebin"
        status = command_line(["install", str(target)])
        self.assertEqual(status, 0)
        for name in NAMES:
            script = target / name
            self.assertTrue(os.access(script, os.X_OK), script)
            self.assertIn(f"-m clinvk.testing.fake_cli {name} ", script.read_text())
        self.assertEqual(
            self.stdout.getvalue(),
            f"Installed fake claude, codex, gemini in {target.resolve()}; put it first on PATH.\n",
        )

    def test_install_needs_one_directory(self) -> None:
        """C{install} without a directory, or with two, is a usage error."""
        for argv in (["install"], ["install", "a", "b"]):
            self.assertEqual(command_line(argv), 2)
        self.assertEqual(self.stderr.getvalue().count("usage: python -m clinvk.testing.fake_cli install"), 2)
        self.assertEqual(self.stdout.getvalue(), "")

    def test_unknown_command(self) -> None:
        """Anything but C{install} or a fake's name is a usage error."""
        for argv in ([], ["chatgpt"]):
            self.assertEqual(command_line(argv), 2)
        self.assertEqual(self.stderr.getvalue().count("usage:"), 2)

    def test_runs_fake(self) -> None:
        """C{<name> ARGS} runs that fake with the prompt on stdin."""
        self.patch(sys, "stdin", StringIO("Pick a number"))
        self.patch(os, "environ", {})
        self.assertEqual(command_line(["claude", "--print"]), 0)
        self.assertEqual(self.stdout.getvalue(), "claude answers: Pick a number\n")
