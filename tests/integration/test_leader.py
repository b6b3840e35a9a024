"""
Real processes spawned as session leaders by L{clinvk.process.leader}: the
child leads its own session and group and is the server's direct child,
and apart from that it starts exactly as with a plain C{spawnProcess}
(descriptors, signal dispositions, environment, working directory, exit
status, start failures) (docs/design-notes.md#spawn-group-leader).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from typing import Any

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from clinvk.process.leader import LeaderSpawner, PosixSpawn
from clinvk.process.spawn import Launcher
from tests.integration._processes import CommandProtocol, reactor, require_tool

REPORT = (
    "import json, os; print(json.dumps({'pid': os.getpid(), 'sid': os.getsid(0), 'pgid': os.getpgid(0), "
    "'ppid': os.getppid(), 'cwd': os.getcwd(), 'env': dict(os.environ)}))"
)


class _NoSession(PosixSpawn):
    """posix_spawn as L{PosixSpawn}, but without a new session."""

    def spawn(self, *args: Any, **kwargs: Any) -> int:
        return super().spawn(*args, **{**kwargs, "session": False})


class LeaderSpawnerTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        posix_spawn = PosixSpawn.load()
        if posix_spawn is None:
            self.skipTest("posix_spawn of a session leader is not available here")
        self.posix_spawn = posix_spawn
        self.spawner = LeaderSpawner(reactor, posix_spawn)

    async def run_command(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        path: str | None = None,
        leader: bool = True,
    ) -> CommandProtocol:
        """Run C{argv} to its end, as a session leader (or with a plain C{spawnProcess})."""
        protocol = CommandProtocol()
        environment = {"PATH": os.defpath} if env is None else env
        if leader:
            self.spawner.spawnProcess(protocol, argv[0], argv, env=environment, path=path)
        else:
            reactor.spawnProcess(protocol, argv[0], argv, env=environment, path=path)
        await protocol.ended.addTimeout(self.timeout, reactor)
        return protocol

    def test_detected(self) -> None:
        """On this system the server's launcher spawns this way, on the real reactor."""
        self.assertIsInstance(Launcher.detect().spawner(reactor), LeaderSpawner)

    async def test_session_leader(self) -> None:
        """
        The child leads a new session and process group, and is the
        server's direct child, in the given directory with exactly the
        given environment.
        """
        directory = os.path.realpath(self.mktemp())
        os.makedirs(directory)
        protocol = await self.run_command(
            [sys.executable, "-I", "-S", "-c", REPORT], env={"ONLY": "this"}, path=directory
        )
        report = json.loads(protocol.stdout)
        self.assertEqual((report["sid"], report["pgid"]), (report["pid"], report["pid"]))
        self.assertNotEqual(report["sid"], os.getsid(0))
        self.assertEqual(report["ppid"], os.getpid())
        self.assertEqual(report["cwd"], directory)
        # The interpreter adds LC_CTYPE to a C locale's environment.
        self.assertEqual({k: v for k, v in report["env"].items() if k != "LC_CTYPE"}, {"ONLY": "this"})

    async def test_server_directory(self) -> None:
        """Without a path the child starts in the server's working directory."""
        protocol = await self.run_command([sys.executable, "-I", "-S", "-c", REPORT])
        self.assertEqual(json.loads(protocol.stdout)["cwd"], os.getcwd())

    async def test_as_spawned_plainly(self) -> None:
        """
        The child has the same descriptors (its three pipes) and the same
        signal dispositions and mask as one spawned with C{spawnProcess}:
        the signals the server ignores are back to their default.
        """
        listing = [require_tool("ls", "coreutils"), "/proc/self/fd"]
        leader, plain = await self.run_command(listing), await self.run_command(listing, leader=False)
        # 3 is the directory ls reads.
        self.assertEqual((leader.stdout, plain.stdout), (b"0\n1\n2\n3\n", b"0\n1\n2\n3\n"))
        status = [require_tool("grep", "grep"), "-E", "^Sig(Blk|Ign)", "/proc/self/status"]
        leader, plain = await self.run_command(status), await self.run_command(status, leader=False)
        self.assertEqual(leader.stdout, plain.stdout)
        self.assertEqual(signal.getsignal(signal.SIGPIPE), signal.SIG_IGN)
        fields = dict(line.split(b":") for line in leader.stdout.splitlines())
        self.assertEqual(int(fields[b"SigBlk"], 16), 0)
        self.assertFalse(int(fields[b"SigIgn"], 16) & (1 << (signal.SIGPIPE - 1)))

    async def test_pipes(self) -> None:
        """A mebibyte written to stdin comes back on stdout; stderr arrives apart."""
        shell = require_tool("sh", "any POSIX system has it")
        data = os.urandom(512 * 1024).hex().encode()
        protocol = CommandProtocol()
        transport = self.spawner.spawnProcess(
            protocol, shell, [shell, "-c", "cat; echo done >&2"], env={"PATH": os.defpath}
        )
        transport.write(data)
        transport.closeStdin()
        self.assertEqual(await protocol.ended, 0)
        self.assertEqual((protocol.stdout, protocol.stderr), (data, b"done\n"))

    async def test_exit_status(self) -> None:
        """Exit codes and signal deaths are the child's own."""
        shell = require_tool("sh", "any POSIX system has it")
        self.assertEqual((await self.run_command([shell, "-c", "exit 3"])).ended.result, 3)
        killed = await self.run_command([shell, "-c", "kill -TERM $$"])
        self.assertEqual(killed.ended.result, -signal.SIGTERM)

    def test_start_failure(self) -> None:
        """
        A missing program or working directory raises as C{spawnProcess}
        does, and leaves no descriptor open.
        """
        before = sorted(os.listdir("/proc/self/fd"))
        for argv, path in ((["/nonexistent/clinvk-cli"], None), ([sys.executable, "-c", ""], "/nonexistent")):
            with self.assertRaises(OSError) as raised:
                self.spawner.spawnProcess(CommandProtocol(), argv[0], argv, env={}, path=path)
            self.assertEqual(raised.exception.errno, errno.ENOENT)
        self.assertEqual(sorted(os.listdir("/proc/self/fd")), before)

    async def test_not_a_leader_is_killed(self) -> None:
        """
        A child that turned out not to lead its own group (were Twisted to
        stop making its children through this spawner) is killed at once,
        and the log says why.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        shell = require_tool("sh", "any POSIX system has it")
        protocol = CommandProtocol()
        LeaderSpawner(reactor, _NoSession.load() or self.posix_spawn).spawnProcess(
            protocol, shell, [shell, "-c", "read line"], env={"PATH": os.defpath}
        )
        self.assertEqual(await protocol.ended, -signal.SIGKILL)
        [event] = [event for event in events if event.get("log_namespace") == "clinvk.process.leader"]
        self.assertEqual(event["log_level"], LogLevel.critical)
        self.assertIn("was not started as a process group leader", event["log_format"])
