"""
Tests for L{clinvk.process.leader} that start no process; the spawning
itself, with real processes, is in tests/integration/test_leader.py.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.process.leader import LeaderSpawner, PosixSpawn
from clinvk.testing.reactor import FakeProcessReactor


class LoadTests(SynchronousTestCase):
    """PosixSpawn.load finds the C library's posix_spawn where clinvk can use it."""

    def test_linux(self) -> None:
        """On Linux it is found."""
        if not sys.platform.startswith("linux"):
            self.skipTest("not Linux")
        self.assertIsInstance(PosixSpawn.load(), PosixSpawn)

    def test_elsewhere(self) -> None:
        """Elsewhere (other flag values, no addchdir) it is not used."""
        for platform in ("darwin", "freebsd14", "win32"):
            self.assertIsNone(PosixSpawn.load(platform), platform)


class LeaderSpawnerTests(SynchronousTestCase):
    """LeaderSpawner's contract, short of spawning."""

    def setUp(self) -> None:
        posix_spawn = PosixSpawn.load()
        if posix_spawn is None:
            self.skipTest("posix_spawn of a session leader is not available here")
        self.reactor = FakeProcessReactor()
        self.spawner = LeaderSpawner(self.reactor, posix_spawn)

    def test_interface(self) -> None:
        """It provides IReactorProcess."""
        self.assertTrue(verifyObject(IReactorProcess, self.spawner))

    def test_refuses_what_it_cannot_do(self) -> None:
        """uid, gid and a PTY are refused, and nothing is started."""
        for option in ({"uid": 0}, {"gid": 0}, {"usePTY": True}):
            arguments: dict[str, Any] = dict(option)
            with self.assertRaises(ValueError):
                self.spawner.spawnProcess(ProcessProtocol(), "/bin/true", ["/bin/true"], env={}, **arguments)
        self.assertEqual(self.reactor.spawned, [])
