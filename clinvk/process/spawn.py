# -*- test-case-name: tests.process.test_spawn -*-
"""
Starting a child as the leader of its own process group, bound to the
server's life (DECISIONS D6).

Twisted's C{spawnProcess} has no pre-exec hook, so every command is
launched through programs that each C{exec} the next, keeping one pid:

  1. C{setsid} makes the child the leader of a new session and process
     group, so one signal reaches it and everything it starts;
  2. a few lines of C{sh} start a I{watcher} in that group, then C{exec}
     the CLI through C{setpriv --pdeathsig KILL}, so the kernel kills the
     CLI if the server dies, even by SIGKILL;
  3. the watcher, itself started with C{--pdeathsig USR1}, is told when its
     parent — the CLI — dies; it then waits the grace period and kills what
     is left of the group, grandchildren included.  It ignores TERM so that
     it outlives a normal stop, and holds none of the CLI's pipes.

The CLI is thus the group leader and the server's direct child: its exit
status and signal dispositions are its own, exactly as if it were spawned
directly.  Where C{setpriv} is missing, children are still started in
their own group (and stopped with it), but do not die with a killed
server; where C{setsid} is missing, a Python one-liner replaces it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

from attrs import frozen

# The watcher: $0 is the grace period, $1 the CLI's pid.  "sleep & wait"
# keeps it interruptible by the USR1 that announces the CLI's death; a CLI
# that died before the watcher could ask for that signal is caught by
# comparing the watcher's parent with the CLI.
WATCHER_SCRIPT = (
    'trap : TERM INT HUP; trap "sleep $0; kill -KILL 0" USR1; '
    '[ "$PPID" = "$1" ] || kill -USR1 $$; '
    "while :; do sleep 3600 & wait $!; done"
)

# The group leader until it becomes the CLI.  Arguments: setpriv, the grace
# period, the watcher script, then the CLI's argv.
LEADER_SCRIPT = """\
setpriv=$1 grace=$2 watcher=$3
shift 3
"$setpriv" --pdeathsig USR1 /bin/sh -c "$watcher" "$grace" "$$" </dev/null >/dev/null 2>&1 &
exec "$setpriv" --pdeathsig KILL -- "$@"
"""

_PYTHON_SETSID = "import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])"


@frozen
class Launcher:
    """
    The programs a command is launched through.

    @ivar prefix: Put before the command's argv; empty to run it directly
        (tests with a fake process reactor).
    """

    prefix: tuple[str, ...] = ()

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

        @param kill_grace: How long the watcher gives the group between the
            CLI's death and its own KILL.
        """
        setsid = which("setsid")
        prefix = [setsid] if setsid else [python, "-I", "-S", "-c", _PYTHON_SETSID]
        setpriv = which("setpriv")
        if setpriv:
            prefix += [shell, "-c", LEADER_SCRIPT, "clinvk-run", setpriv, f"{kill_grace:g}", WATCHER_SCRIPT]
        return cls(tuple(prefix))


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
