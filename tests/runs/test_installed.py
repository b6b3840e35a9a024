"""
Tests for L{clinvk.runs.installed}: which CLIs are on C{PATH}, and
their versions.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.runs.installed import (
    VERSION_TIMEOUT,
    InstalledCLI,
    find_installed,
    parse_version,
)
from clinvk.testing.fake_cli import VERSIONS
from clinvk.testing.reactor import FakeProcessReactor
from tests.helpers import fake_which, started_supervisor

PACKAGE_JSON = Path(__file__).parents[1] / "realcli" / "package.json"
BACKENDS = build_backends()
PROVEN = {name: backend.proven_version for name, backend in BACKENDS.items()}
PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex", "gemini": "@google/gemini-cli"}


class ParseVersionTests(SynchronousTestCase):
    """The version number in each CLI's C{--version} line."""

    def test_real_lines(self) -> None:
        """What the real CLIs print (claude, codex, gemini)."""
        self.assertEqual(parse_version("2.1.197 (Claude Code)\n"), "2.1.197")
        self.assertEqual(parse_version("codex-cli 0.171.0\n"), "0.171.0")
        self.assertEqual(parse_version("0.61.0\n"), "0.61.0")

    def test_prerelease(self) -> None:
        """A pre-release suffix is part of the version."""
        self.assertEqual(parse_version("0.62.0-preview.1"), "0.62.0-preview.1")

    def test_none(self) -> None:
        """A line without a version has none."""
        self.assertIsNone(parse_version("Usage: codex [OPTIONS]"))

    def test_fakes(self) -> None:
        """The fakes print the versions they follow, which the suite proved."""
        for name, line in VERSIONS.items():
            self.assertEqual(parse_version(line), PROVEN[name])


class ProvenTests(SynchronousTestCase):
    """Whether a version is one the real-CLI suite proved."""

    def test_matches_the_suite(self) -> None:
        """The proven versions are the ones tests/realcli pins."""
        pinned = json.loads(PACKAGE_JSON.read_text())["dependencies"]
        self.assertEqual(PROVEN, {name: pinned[package] for name, package in PACKAGES.items()})

    def test_describe(self) -> None:
        """Each state reads as one phrase."""
        self.assertEqual(InstalledCLI("claude", None).describe(), "not found on PATH")
        self.assertEqual(
            InstalledCLI("codex", "/bin/codex", "0.171.0", proven_version="0.171.0").describe(),
            "0.171.0, proven by the real-CLI suite",
        )
        self.assertEqual(
            InstalledCLI("codex", "/bin/codex", "0.172.0", proven_version="0.171.0").describe(),
            "0.172.0, not proven (the real-CLI suite proved 0.171.0)",
        )
        self.assertEqual(
            InstalledCLI("codex", "/bin/codex", "0.172.0").describe(),
            "0.172.0, not proven (the real-CLI suite proved none)",
        )
        self.assertEqual(
            InstalledCLI("gemini", "/bin/gemini", "0.61.0", fake=True).describe(), "0.61.0, clinvk's fake CLI"
        )
        self.assertEqual(
            InstalledCLI("gemini", "/bin/gemini", problem="cannot start").describe(),
            "version unknown (cannot start)",
        )

    def test_fake_is_not_proven(self) -> None:
        """A fake with a proven version number is still not proven."""
        self.assertTrue(InstalledCLI("claude", "/c", "2.1.197", proven_version="2.1.197").proven)
        self.assertFalse(InstalledCLI("claude", "/c", "2.1.197", fake=True, proven_version="2.1.197").proven)


class FindInstalledTests(SynchronousTestCase):
    """Asking each CLI found for its version, as supervised children."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.supervisor = started_supervisor(self.reactor)

    def find(self, installed: tuple[str, ...]) -> Deferred[list[InstalledCLI]]:
        availability = BackendAvailability(self.reactor, which=fake_which(installed))
        return Deferred.fromCoroutine(
            find_installed(BACKENDS.values(), availability, self.supervisor, {"PATH": "/x"})
        )

    def test_versions(self) -> None:
        """Every CLI found is asked at once, with --version and no prompt."""
        found = self.find(("claude", "codex", "gemini"))
        claude, codex, gemini = self.reactor.spawned
        self.assertEqual(claude.argv, ["/usr/local/bin/claude", "--version"])
        self.assertEqual(claude.env, {"PATH": "/x"})
        codex.emit_stderr(b"WARNING: proceeding, even though we could not update PATH: 1.2.3\n")
        codex.emit_stdout(b"codex-cli 0.171.0\n")
        for transport, line in [(claude, b"2.1.197 (Claude Code)\n"), (gemini, VERSIONS["gemini"].encode())]:
            transport.emit_stdout(line)
        for transport in (claude, codex, gemini):
            transport.exit(0)
        clis = self.successResultOf(found)
        self.assertEqual(
            clis,
            [
                InstalledCLI("claude", "/usr/local/bin/claude", "2.1.197", proven_version="2.1.197"),
                InstalledCLI("codex", "/usr/local/bin/codex", "0.171.0", proven_version="0.171.0"),
                InstalledCLI("gemini", "/usr/local/bin/gemini", "0.61.0", fake=True, proven_version="0.61.0"),
            ],
        )
        self.assertEqual([cli.proven for cli in clis], [True, True, False])

    def test_not_found(self) -> None:
        """A CLI not on PATH is reported without running anything."""
        found = self.find(("codex",))
        [codex] = self.reactor.spawned
        codex.emit_stdout(b"codex-cli 0.171.0\n")
        codex.exit(0)
        claude, _, gemini = self.successResultOf(found)
        self.assertEqual(claude, InstalledCLI("claude", None, proven_version="2.1.197"))
        self.assertEqual(gemini, InstalledCLI("gemini", None, proven_version="0.61.0"))

    def test_failure(self) -> None:
        """A CLI that fails says so with its status and last line."""
        found = self.find(("claude",))
        [claude] = self.reactor.spawned
        claude.emit_stderr(b"warming up\nerror: node is too old\n")
        claude.exit(3)
        self.assertEqual(
            self.successResultOf(found)[0].problem, "--version failed with status 3: error: node is too old"
        )

    def test_no_version(self) -> None:
        """Output without a version number is shown, not guessed at."""
        found = self.find(("gemini",))
        [gemini] = self.reactor.spawned
        gemini.emit_stdout(b"hello\n")
        gemini.exit(0)
        self.assertEqual(self.successResultOf(found)[2].problem, "--version printed no version: 'hello'")

    def test_timeout(self) -> None:
        """A CLI that hangs is stopped after the timeout."""
        found = self.find(("gemini",))
        self.reactor.advance(VERSION_TIMEOUT)
        self.assertEqual(self.successResultOf(found)[2].problem, f"--version took over {VERSION_TIMEOUT:g} s")

    def test_cannot_start(self) -> None:
        """A CLI that cannot be started says why."""
        self.reactor.spawn_error = OSError(13, "Permission denied")
        found = self.find(("claude",))
        self.assertTrue(self.successResultOf(found)[0].problem.startswith("cannot start: "))

    def test_shutting_down(self) -> None:
        """Once the supervisor stops, no CLI is started."""
        self.supervisor.stopService()
        found = self.find(("claude",))
        self.assertEqual(self.successResultOf(found)[0].problem, "server is shutting down")
        self.assertEqual(self.reactor.spawned, [])
