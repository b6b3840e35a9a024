# -*- test-case-name: tests.process.test_spawn -*-
"""
Starting a child as the leader of its own process group, bound to the
server's life (docs/design/decisions.md#d6-no-orphans).

Where it can (Linux, on one of Twisted's POSIX reactors), the CLI is
spawned directly as the leader of a new session, with C{posix_spawn}'s
C{setsid} flag (L{clinvk.process.leader}): no program runs before it.
Elsewhere, since Twisted's C{spawnProcess} has no pre-exec hook, the
command is launched through programs that each C{exec} the next, keeping
one pid:

  1. C{setsid} makes the child the leader of a new session and process
     group (a Python one-liner where C{setsid} is missing);
  2. C{setpriv --pdeathsig KILL}, where installed, has the kernel kill the
     CLI if the server dies.

Either way the CLI is the group leader and the server's direct child: its
exit status and signal dispositions are its own, exactly as if it were
spawned directly.  What is left of every live group when the server dies,
even by SIGKILL, is ended by the server's one group reaper
(L{clinvk.process.reaper}), which the launcher also describes; on the
direct path it is what ends the CLI itself too (C{posix_spawn} cannot set
a parent-death signal), docs/design-notes.md#spawn-group-leader says why
that is enough.

Each program in the chain costs one C{exec} on every run (about 0.8 ms
each on a small machine, as much as a fast CLI's whole run), which is why
the direct path is preferred and the chain is kept as short as the
guarantees allow: an earlier version also started a shell and a watcher
process per run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import field, frozen

from twisted.internet.interfaces import IProcessProtocol, IProcessTransport, IReactorProcess
from zope.interface import implementer

from clinvk.process.leader import LeaderSpawner, PosixSpawn
from clinvk.process.reaper import REAPER_SCRIPT

_PYTHON_SETSID = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"


@implementer(IReactorProcess)
class PrefixSpawner:
    """
    Spawns every command through the launcher programs of C{prefix}, on
    C{reactor}.
    """

    def __init__(self, reactor: IReactorProcess, prefix: Sequence[str]) -> None:
        self._reactor = reactor
        self._prefix = list(prefix)

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[Any, Any] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> IProcessTransport:
        """
        L{IReactorProcess.spawnProcess} of C{executable} through the
        prefix; the command's own C{argv[0]} is C{executable}.
        """
        argv: list[bytes | str] = [*self._prefix, executable, *list(args)[1:]]
        return self._reactor.spawnProcess(
            processProtocol, self._prefix[0], argv, env, path, uid, gid, usePTY, childFDs
        )


def _no_posix_spawn() -> PosixSpawn | None:
    return None


@frozen
class Launcher:
    """
    How a command is started as a process-group leader.

    @ivar prefix: The launcher programs put before the command's argv where
        it is not spawned directly; empty to run it as it is (tests with a
        fake process reactor).
    @ivar reaper: The command line of the server's group reaper
        (L{clinvk.process.reaper.GroupReaper}), or empty for none.
    @ivar leader: Spawns a command directly as a session leader, where this
        system can (L{PosixSpawn.load}); L{None} to always use C{prefix}.
    """

    prefix: tuple[str, ...] = ()
    reaper: tuple[str, ...] = ()
    leader: PosixSpawn | None = field(default=None, eq=False)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The full argv to spawn for C{argv} through the launcher programs."""
        return [*self.prefix, *argv]

    def spawner(self, reactor: Any) -> IReactorProcess:
        """
        What starts each command on C{reactor} as the leader of its own
        process group: directly, when this launcher has a C{leader} and
        C{reactor} is one of Twisted's POSIX reactors; otherwise through
        C{prefix} (or as it is, for an empty one).
        """
        if self.leader is not None and _posix_reactor(reactor):
            return LeaderSpawner(reactor, self.leader)
        if self.prefix:
            return PrefixSpawner(reactor, self.prefix)
        spawner: IReactorProcess = reactor
        return spawner

    @classmethod
    def detect(
        cls,
        kill_grace: float = 5.0,
        which: Callable[[str], str | None] = shutil.which,
        python: str = sys.executable,
        shell: str = "/bin/sh",
        posix_spawn: Callable[[], PosixSpawn | None] = PosixSpawn.load,
    ) -> Launcher:
        """
        The best launcher this machine allows (looked up once, at start-up):
        direct spawning where C{posix_spawn} finds what it needs, with the
        launcher programs for any other reactor.

        @param kill_grace: How long the reaper gives the groups of a dead
            server between TERM and KILL.
        """
        setsid = which("setsid")
        session = [setsid] if setsid else [python, "-I", "-S", "-c", _PYTHON_SETSID]
        prefix = list(session)
        setpriv = which("setpriv")
        if setpriv:
            prefix += [setpriv, "--pdeathsig", "KILL", "--"]
        # The reaper runs in a session of its own, so that a signal to the
        # server's process group (a terminal's Ctrl-C) does not reach it.
        reaper = [*session, shell, "-c", REAPER_SCRIPT, "clinvk-reaper", f"{kill_grace:g}"]
        return cls(tuple(prefix), tuple(reaper), posix_spawn())

    @classmethod
    def launched(cls, **detect: Any) -> Launcher:
        """L{detect}, but always through the launcher programs (for comparisons and tests)."""
        return cls.detect(posix_spawn=_no_posix_spawn, **detect)


def _posix_reactor(reactor: Any) -> bool:
    """Whether C{reactor} spawns Twisted's POSIX C{Process} (so that L{LeaderSpawner} can)."""
    try:
        from twisted.internet.posixbase import PosixReactorBase
    except ImportError:
        return False
    return isinstance(reactor, PosixReactorBase)


def signal_group(pgid: int, signum: int) -> bool:
    """
    Send C{signum} to process group C{pgid}.

    @return: False when the group no longer exists.
    @raise ValueError: For a group id that is not a real process group
        (0 or less would mean the caller's own group, or every process).
    """
    if pgid <= 1:
        raise ValueError(f"refusing to signal process group {pgid}")
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


TERMINATE = signal.SIGTERM
KILL = signal.SIGKILL
