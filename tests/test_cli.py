"""
Tests for L{clinvk.cli}: the C{clinvk} command's argument handling.
"""

from __future__ import annotations

import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from clinvk import __version__, cli


class CommandTests(SynchronousTestCase):
    """clinvk --version and the errors before serving."""

    def setUp(self) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)

    def test_version(self) -> None:
        """--version prints the package version and exits 0."""
        with self.assertRaises(SystemExit) as raised:
            cli.run(["--version"])
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(self.out.getvalue(), f"clinvk {__version__}\n")

    def test_no_command(self) -> None:
        """Without a command clinvk explains and exits 1."""
        self.assertEqual(cli.run([]), 1)
        self.assertEqual(self.err.getvalue(), "Error: a command is required: clinvk serve\n")

    def test_unknown_command(self) -> None:
        """An unknown command is an error."""
        self.assertEqual(cli.run(["frobnicate"]), 1)
        self.assertIn("Error:", self.err.getvalue())

    def test_config_error_is_one_line(self) -> None:
        """A bad configuration prints one Error line and exits 1 before serving."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("server:\n  port: 70000\n")
        self.assertEqual(cli.run(["serve", "--config", path]), 1)
        self.assertEqual(
            self.err.getvalue(),
            "Error: configuration has 1 error(s): config validation: server.port: "
            f"port must be between 0 and 65535, got 70000 [config file: {path}]\n",
        )
        self.assertEqual(self.out.getvalue(), "")

    def test_missing_config_file(self) -> None:
        """--config naming a missing file is an error."""
        path = self.mktemp()
        self.assertEqual(cli.run(["serve", "--config", path]), 1)
        self.assertEqual(self.err.getvalue(), f"Error: failed to load config: {path}: no such file\n")
