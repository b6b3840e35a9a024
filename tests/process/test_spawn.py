"""
Tests for L{clinvk.process.spawn}: the launcher chain.  Its behaviour with
real processes is covered in tests/integration.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.process.spawn import GROUP_LEADER_SCRIPT, Launcher, signal_group
from tests.helpers import fake_which


class LauncherTests(SynchronousTestCase):
    """Launcher.detect picks the best chain the machine allows."""

    def test_util_linux(self) -> None:
        """With setsid and setpriv: setsid, setpriv --pdeathsig USR1, then the group leader script."""
        launcher = Launcher.detect(which=fake_which({"setsid", "setpriv"}), python="/py")
        self.assertEqual(
            launcher.wrap(["/bin/claude", "--print"]),
            [
                "/usr/local/bin/setsid",
                "/usr/local/bin/setpriv",
                "--pdeathsig",
                "USR1",
                "/bin/sh",
                "-c",
                GROUP_LEADER_SCRIPT,
                "clinvk-run",
                "/bin/claude",
                "--print",
            ],
        )

    def test_without_setsid_or_setpriv(self) -> None:
        """Without setsid a Python one-liner starts the session; without setpriv there is no death signal."""
        launcher = Launcher.detect(which=fake_which(()), python="/py")
        self.assertEqual(launcher.prefix[:4], ("/py", "-I", "-S", "-c"))
        self.assertIn("os.setsid()", launcher.prefix[4])
        self.assertNotIn("--pdeathsig", launcher.prefix)
        self.assertEqual(launcher.prefix[-4:], ("/bin/sh", "-c", GROUP_LEADER_SCRIPT, "clinvk-run"))

    def test_direct(self) -> None:
        """An empty launcher runs the command as it is."""
        self.assertEqual(Launcher().wrap(["a", "b"]), ["a", "b"])

    def test_signal_group_gone(self) -> None:
        """Signalling a group that does not exist reports False instead of raising."""
        self.assertFalse(signal_group(2**22 + 12345, 0))
