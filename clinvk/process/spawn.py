# -*- test-case-name: tests.process.test_spawn -*-
"""
Starting a child as the leader of its own process group, bound to the
server's life (DECISIONS D6).

Twisted's C{spawnProcess} has no pre-exec hook, so every command is
launched through a short chain of programs that each C{exec} the next,
keeping one pid:

  1. C{setsid} makes the child the leader of a new session and process
     group, so one signal reaches it and everything it starts;
  2. C{setpriv --pdeathsig USR1} asks the kernel to signal it when the
     server dies, even by SIGKILL;
  3. a few lines of C{sh} stay as the group leader: they run the real
     command, wait for it, exit with its status, and on USR1 kill the whole
     group, grandchildren included.

Where C{setsid} is missing a Python one-liner replaces it; where
C{setpriv} is missing the children still die with their group on a normal
stop, but not when the server itself is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence

from attrs import frozen

# The group leader's script.  "$@" is the real argv.  The child gets the
# prompt pipe and stderr explicitly (an asynchronous list would get
# /dev/null for stdin, and the shell's own job messages must not reach the
# capture), TERM is only noted so the leader outlives the child it waits
# for, and a signal death of the child is passed on as the leader's own.
GROUP_LEADER_SCRIPT = """\
exec 3<&0 0</dev/null 4>&2 2>/dev/null
trap 'kill -KILL 0' USR1
trap : TERM INT HUP
"$@" 0<&3 2>&4 3<&- 4>&- &
child=$!
exec 3<&- 4>&-
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break
done
if [ "$status" -gt 128 ]; then
  trap - TERM INT HUP USR1
  kill -$((status - 128)) $$
fi
exit "$status"
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
        which: Callable[[str], str | None] = shutil.which,
        python: str = sys.executable,
        shell: str = "/bin/sh",
    ) -> Launcher:
        """
        The best launcher this machine allows (looked up once, at start-up).
        """
        setsid = which("setsid")
        prefix = [setsid] if setsid else [python, "-I", "-S", "-c", _PYTHON_SETSID]
        setpriv = which("setpriv")
        if setpriv:
            prefix += [setpriv, "--pdeathsig", "USR1"]
        prefix += [shell, "-c", GROUP_LEADER_SCRIPT, "clinvk-run"]
        return cls(tuple(prefix))


def signal_group(pgid: int, signum: int) -> bool:
    """
    Send C{signum} to process group C{pgid}.

    @return: False when the group no longer exists.
    """
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


TERMINATE = signal.SIGTERM
KILL = signal.SIGKILL
