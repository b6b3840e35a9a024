"""
Tests for L{clinvk.cli}: the C{clinvk} command's argument handling.
"""

from __future__ import annotations

import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from clinvk import __version__, cli
from clinvk._version import API_VERSION


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
        self.assertEqual(self.out.getvalue(), f"clinvk {__version__} (API {API_VERSION})\n")

    def test_no_command(self) -> None:
        """Without a command clinvk explains and exits 1."""
        self.assertEqual(cli.run([]), 1)
        self.assertEqual(
            self.err.getvalue(), "Error: a command is required: clinvk serve, or clinvk doctor\n"
        )

    def test_help(self) -> None:
        """The help has one usage line and names both commands."""
        with self.assertRaises(SystemExit):
            cli.run(["--help"])
        text = self.out.getvalue()
        self.assertTrue(text.startswith("Usage: clinvk [--config FILE] COMMAND [OPTIONS]\n"))
        self.assertEqual(text.count("Usage:"), 1)
        self.assertRegex(text, r"\n +doctor +Check the configuration")
        self.assertRegex(text, r"\n +serve +Run the HTTP API server")

    def test_bad_port(self) -> None:
        """A port that is not a number is one line naming the option and what it takes."""
        self.assertEqual(cli.run(["serve", "--port", "abc"]), 1)
        self.assertEqual(
            self.err.getvalue(), "Error: --port: expected a port number from 0 to 65535, got 'abc'\n"
        )

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
