"""
Tests for L{clinvk.process.spawn}: the launcher chain.  Its behaviour with
real processes is covered in tests/integration.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.process.reaper import REAPER_SCRIPT
from clinvk.process.spawn import Launcher, signal_group
from tests.helpers import fake_which


class LauncherTests(SynchronousTestCase):
    """Launcher.detect picks the best chain the machine allows."""

    def test_util_linux(self) -> None:
        """
        With setsid and setpriv: setsid, then setpriv with the parent-death
        signal, then the CLI; the reaper is a shell in its own session with
        the grace period.
        """
        launcher = Launcher.detect(kill_grace=2.5, which=fake_which({"setsid", "setpriv"}), python="/py")
        self.assertEqual(
            launcher.wrap(["/bin/claude", "--print"]),
            [
                "/usr/local/bin/setsid",
                "/usr/local/bin/setpriv",
                "--pdeathsig",
                "KILL",
                "--",
                "/bin/claude",
                "--print",
            ],
        )
        self.assertEqual(
            launcher.reaper,
            ("/usr/local/bin/setsid", "/bin/sh", "-c", REAPER_SCRIPT, "clinvk-reaper", "2.5"),
        )

    def test_without_setpriv(self) -> None:
        """Without setpriv the CLI is started in its own group, without the parent-death signal."""
        launcher = Launcher.detect(which=fake_which({"setsid"}), python="/py")
        self.assertEqual(launcher.wrap(["/bin/gemini"]), ["/usr/local/bin/setsid", "/bin/gemini"])
        self.assertEqual(launcher.reaper[:2], ("/usr/local/bin/setsid", "/bin/sh"))

    def test_without_setsid(self) -> None:
        """Without setsid a Python one-liner starts the session, of the CLI and of the reaper."""
        launcher = Launcher.detect(which=fake_which(()), python="/py")
        self.assertEqual(launcher.prefix[:4], ("/py", "-I", "-S", "-c"))
        self.assertIn("os.setsid()", launcher.prefix[4])
        self.assertEqual(launcher.reaper[:5], launcher.prefix[:5])

    def test_direct(self) -> None:
        """An empty launcher runs the command as it is, without a reaper."""
        self.assertEqual(Launcher().wrap(["a", "b"]), ["a", "b"])
        self.assertEqual(Launcher().reaper, ())


class SignalGroupTests(SynchronousTestCase):
    """signal_group, the real killpg."""

    def test_gone(self) -> None:
        """Signalling a group that does not exist reports False instead of raising."""
        self.assertFalse(signal_group(2**22 + 12345, 0))

    def test_refuses_own_group(self) -> None:
        """0, 1 and negative ids (own group, init, everything) are refused."""
        for pgid in (0, 1, -1):
            self.assertRaises(ValueError, signal_group, pgid, 0)
