"""
Real-process tests of what a newcomer meets first: C{clinvk doctor}, and
what C{clinvk serve} says at start-up about the CLIs it found and the
configuration it read.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from clinvk.doctor import try_fakes_command
from clinvk.testing.fake_cli import install
from tests.integration._processes import CommandProtocol, free_port, python_command, spawn


class _FirstRunTestCase(TestCase):
    """
    A fresh HOME, a folder to run in, and a C{PATH} that holds the fake
    CLIs only when a test installs them.
    """

    def setUp(self) -> None:
        # Outside the checkout, which is a Git repository.
        self.home = FilePath(tempfile.mkdtemp(prefix="clinvk-first-run-"))
        self.addCleanup(shutil.rmtree, self.home.path)
        self.folder = self.home.child("work")
        self.folder.makedirs()
        self.bin = self.home.child("bin")
        self.bin.makedirs()
        # PATH without the machine's own CLIs: the commands below are run
        # by absolute path.
        self.env = {**os.environ, "HOME": self.home.path, "PATH": f"{self.bin.path}:/usr/bin:/bin"}

    def with_fakes(self) -> None:
        install(self.bin.path)

    async def clinvk(self, *args: str) -> CommandProtocol:
        """Run C{python -m clinvk ARGS} in the folder; wait for its end."""
        protocol, _ = spawn(python_command("-m", "clinvk", *args), self.env, self.folder.path)
        await protocol.ended
        return protocol


class DoctorTests(_FirstRunTestCase):
    """clinvk doctor: ready or not, and why."""

    async def test_fakes_ready(self) -> None:
        """With CLIs on PATH it names each with its version and exits 0."""
        self.with_fakes()
        protocol = await self.clinvk("doctor")
        out = protocol.stdout.decode()
        self.assertEqual(protocol.ended.result, 0, out + protocol.stderr.decode())
        self.assertIn(f"  claude: 2.1.197, clinvk's fake CLI\n    path: {self.bin.path}/claude\n", out)
        self.assertIn("    live sessions: live (claude --print --input-format stream-json)\n", out)
        self.assertIn("    live sessions: live (gemini --acp, the Agent Client Protocol)\n", out)
        self.assertIn("  codex: 0.171.0, clinvk's fake CLI\n", out)
        self.assertIn(
            "    needs a Git repository as its working folder: missing, "
            f"{self.folder.path} is not in a Git repository",
            out,
        )
        self.assertIn("Ready: claude, codex, gemini can serve.\n", out)

    async def test_nothing_installed(self) -> None:
        """With no CLI it says what to do, with the fakes' command, and exits 1."""
        protocol = await self.clinvk("doctor")
        out = protocol.stdout.decode()
        self.assertEqual(protocol.ended.result, 1)
        self.assertIn("  gemini: not found on PATH\n", out)
        self.assertIn("Not ready: no backend CLI can serve.", out)
        self.assertIn(try_fakes_command(python_command()[0]), out)

    async def test_configuration_checked(self) -> None:
        """Unknown keys are warnings, or with --strict-config the reason not to start."""
        self.with_fakes()
        config = self.home.child("config.yaml")
        config.setContent(b"server:\n  prot: 9000\n  live_idle_secs: 0\n")
        protocol = await self.clinvk("doctor", "--config", config.path)
        out = protocol.stdout.decode()
        self.assertEqual(protocol.ended.result, 0, out)
        self.assertIn("    live sessions: off: server.live_idle_secs is 0\n", out)
        self.assertIn(
            f"Configuration: {config.path} (read)\n  warning: server.prot: unknown key; did you mean server.port?\n",
            out,
        )
        protocol = await self.clinvk("doctor", "--strict-config", "--config", config.path)
        out = protocol.stdout.decode()
        self.assertEqual(protocol.ended.result, 1, out)
        self.assertIn(
            "  error: configuration has 1 error(s): config validation: server.prot: unknown key", out
        )
        self.assertIn("Not ready: the server will not start until the configuration is fixed.\n", out)


class ServeStartTests(_FirstRunTestCase):
    """What clinvk serve says at start-up."""

    async def serve_until(self, pattern: str, *args: str) -> str:
        protocol, transport = spawn(
            python_command("-m", "clinvk", "serve", "--port", str(free_port()), *args),
            self.env,
            self.folder.path,
        )
        try:
            await protocol.wait_for(pattern)
        finally:
            transport.signalProcess("TERM")
            await protocol.ended
        return protocol.stdout.decode()

    async def test_names_the_clis(self) -> None:
        """Each CLI found is logged with its version and path."""
        self.with_fakes()
        out = await self.serve_until('msg="Found backend CLI" backend=gemini')
        self.assertIn(
            f'msg="Found backend CLI" backend=claude version=2.1.197 path={self.bin.path}/claude '
            'note="2.1.197, clinvk\'s fake CLI"',
            out,
        )
        self.assertNotIn("No backend CLI", out)
        self.assertNotIn("level=DEBUG", out)

    async def test_debug_when_asked(self) -> None:
        """--log-level debug adds the per-run lines, here those of the --version runs."""
        self.with_fakes()
        out = await self.serve_until('msg="Found backend CLI" backend=gemini', "--log-level", "debug")
        self.assertIn('level=DEBUG msg="Started run"', out)
        self.assertIn('label="claude --version"', out)

    async def test_none_found(self) -> None:
        """Without any CLI a warning says what to do, before the banner."""
        out = await self.serve_until("Press Ctrl")
        self.assertIn('level=WARN msg="No backend CLI is installed, so every prompt will fail', out)
        self.assertLess(out.index("No backend CLI"), out.index("Press Ctrl"))

    async def test_unknown_key(self) -> None:
        """A typo in the configuration is a warning naming the key and the nearest one."""
        self.with_fakes()
        config = self.home.child("config.yaml")
        config.setContent(b"sever:\n  port: 9000\n")
        out = await self.serve_until("Press Ctrl", "--config", config.path)
        self.assertIn(
            'level=WARN msg="Ignoring an unknown configuration key" '
            f'problem="sever: unknown key; did you mean server?" file={config.path}',
            out,
        )
