# -*- test-case-name: tests.process.test_spawn -*-
"""
Starting a child as the leader of its own process group, bound to the
server's life (docs/design/decisions.md#d6-no-orphans).

Twisted's C{spawnProcess} has no pre-exec hook, so every command is
launched through programs that each C{exec} the next, keeping one pid:

  1. C{setsid} makes the child the leader of a new session and process
     group, so one signal reaches it and everything it starts;
  2. C{setpriv --pdeathsig KILL} has the kernel kill the CLI if the server
     dies, even by SIGKILL.

The CLI is thus the group leader and the server's direct child: its exit
status and signal dispositions are its own, exactly as if it were spawned
directly.  What the CLI leaves in its group when the server dies is ended
by the server's one group reaper (L{clinvk.process.reaper}), which the
launcher also describes.  Where C{setpriv} is missing, children do not get
the parent-death signal, but the reaper still ends their groups; where
C{setsid} is missing, a Python one-liner replaces it.

Each program in the chain costs one C{exec} on every run, so the chain is
kept as short as the guarantees allow: an earlier version also started a
shell and a watcher process per run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

from attrs import frozen

from clinvk.process.reaper import REAPER_SCRIPT

_PYTHON_SETSID = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"


@frozen
class Launcher:
    """
    The programs a command is launched through.

    @ivar prefix: Put before the command's argv; empty to run it directly
        (tests with a fake process reactor).
    @ivar reaper: The command line of the server's group reaper
        (L{clinvk.process.reaper.GroupReaper}), or empty for none.
    """

    prefix: tuple[str, ...] = ()
    reaper: tuple[str, ...] = ()

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The full argv to spawn for C{argv}."""
        return [*self.prefix, *argv]

    @classmethod
    def detect(
        cls,
        kill_grace: float = 5.0,
        which: Callable[[str], str | None] = shutil.which,
        python: str = sys.executable,
        shell: str = "/bin/sh",
    ) -> Launcher:
        """
        The best launcher this machine allows (looked up once, at start-up).

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
        return cls(tuple(prefix), tuple(reaper))


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
