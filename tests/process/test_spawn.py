"""
Tests for L{clinvk.process.spawn}: how a command is started as a group
leader, directly or through the launcher chain.  Its behaviour with real
processes is covered in tests/integration.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.process.leader import PosixSpawn
from clinvk.process.reaper import REAPER_SCRIPT
from clinvk.process.spawn import Launcher, PrefixSpawner, signal_group
from clinvk.testing.reactor import FakeProcessReactor
from tests.helpers import fake_which

# Stands for the C library's posix_spawn: never called by these tests.
POSIX_SPAWN = cast("PosixSpawn", object())


class LauncherTests(SynchronousTestCase):
    """Launcher.detect picks the best chain the machine allows."""

    def test_util_linux(self) -> None:
        """
        With setsid and setpriv: setsid, then setpriv with the parent-death
        signal, then the CLI; the reaper is a shell in its own session with
        the grace period.
        """
        launcher = Launcher.launched(kill_grace=2.5, which=fake_which({"setsid", "setpriv"}), python="/py")
        self.assertIsNone(launcher.leader)
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

    def test_posix_spawn(self) -> None:
        """
        Where this system can spawn a session leader directly, the launcher
        does so; the chain and the reaper are worked out all the same.
        """
        launcher = Launcher.detect(
            which=fake_which({"setsid", "setpriv"}), python="/py", posix_spawn=lambda: POSIX_SPAWN
        )
        self.assertIs(launcher.leader, POSIX_SPAWN)
        self.assertEqual(launcher.prefix[0], "/usr/local/bin/setsid")
        self.assertEqual(launcher.reaper[:2], ("/usr/local/bin/setsid", "/bin/sh"))

    def test_this_system(self) -> None:
        """By default the launcher spawns directly where L{PosixSpawn.load} can."""
        self.assertEqual(Launcher.detect().leader is None, PosixSpawn.load() is None)


class SpawnerTests(SynchronousTestCase):
    """Launcher.spawner: what starts the commands on a given reactor."""

    def spawn(self, launcher: Launcher) -> list[str]:
        """The argv the fake reactor ran for C{/bin/claude --print}, through C{launcher}."""
        reactor = FakeProcessReactor()
        spawner = launcher.spawner(reactor)
        spawner.spawnProcess(ProcessProtocol(), "/bin/claude", ["/bin/claude", "--print"], env={"K": "V"})
        [child] = reactor.spawned
        self.assertEqual(child.env, {"K": "V"})
        return child.argv

    def test_other_reactor(self) -> None:
        """A reactor other than Twisted's POSIX ones gets the chain, even where spawning directly is possible."""
        launcher = Launcher(("/bin/setsid",), leader=POSIX_SPAWN)
        self.assertEqual(self.spawn(launcher), ["/bin/setsid", "/bin/claude", "--print"])

    def test_without_leader(self) -> None:
        """Without direct spawning the chain is used."""
        self.assertEqual(self.spawn(Launcher(("/bin/setsid",))), ["/bin/setsid", "/bin/claude", "--print"])

    def test_empty(self) -> None:
        """An empty launcher is the reactor itself."""
        reactor = FakeProcessReactor()
        self.assertIs(Launcher().spawner(reactor), reactor)


class PrefixSpawnerTests(SynchronousTestCase):
    """PrefixSpawner runs the executable through the launcher programs."""

    def test_interface(self) -> None:
        """It provides IReactorProcess."""
        self.assertTrue(verifyObject(IReactorProcess, PrefixSpawner(FakeProcessReactor(), ["/bin/setsid"])))

    def test_spawn(self) -> None:
        """
        The prefix comes first, then the executable (in place of the
        command's own argv[0]); everything else reaches the reactor as given.
        """
        reactor = FakeProcessReactor()
        protocol = ProcessProtocol()
        transport = PrefixSpawner(reactor, ["/bin/setsid", "-w"]).spawnProcess(
            protocol, "/bin/gemini", ["gemini", "-p", "x"], env={"A": "b"}, path="/srv"
        )
        [child] = reactor.spawned
        self.assertIs(transport, child)
        self.assertIs(child.proto, protocol)
        fields: tuple[Any, ...] = (child.argv, child.env, child.path)
        self.assertEqual(fields, (["/bin/setsid", "-w", "/bin/gemini", "-p", "x"], {"A": "b"}, "/srv"))


class SignalGroupTests(SynchronousTestCase):
    """signal_group, the real killpg."""

    def test_gone(self) -> None:
        """Signalling a group that does not exist reports False instead of raising."""
        self.assertFalse(signal_group(2**22 + 12345, 0))

    def test_refuses_own_group(self) -> None:
        """0, 1 and negative ids (own group, init, everything) are refused."""
        for pgid in (0, 1, -1):
            self.assertRaises(ValueError, signal_group, pgid, 0)
