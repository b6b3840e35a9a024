# -*- test-case-name: tests.process.test_reaper -*-
"""
The group reaper: one helper process per server that ends what is left of
every live run's process group if the server dies without doing it itself,
even by SIGKILL (docs/design/decisions.md#d6-no-orphans).

The server tells it, on its stdin, each process group a run starts
(C{+ <pgid>}) and each one that is gone (C{- <pgid>}).  When its stdin
ends, whichever way the server ended, it sends TERM to every group it still
knows, waits the grace period, and sends KILL.  A normal stop has already
ended every run, so the helper then exits at once.

It replaces a watcher process per run: one small shell for the whole
server instead of three processes and five C{exec}s for every CLI.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IProcessTransport, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

# $1 is the grace period.  The helper ignores the signals that stop a
# server (it runs in its own session, but a signal sent to every process of
# a service must not take it down first), keeps the live groups in a
# space-separated list, and acts once its stdin ends.
REAPER_SCRIPT = """\
grace=$1
trap '' INT TERM HUP
groups=' '
while read -r change group; do
    case $change in
    +) groups="$groups$group " ;;
    -) case $groups in
       *" $group "*) groups="${groups%% "$group" *} ${groups#* "$group" }" ;;
       esac ;;
    esac
done
[ "$groups" = ' ' ] && exit 0
for group in $groups; do kill -TERM -"$group" 2>/dev/null; done
sleep "$grace"
for group in $groups; do kill -KILL -"$group" 2>/dev/null; done
"""

# How long after an unexpected end the helper is started again.
RESTART_DELAY = 1.0


class _Helper(ProcessProtocol):
    """The helper process: fires C{ended} when it is gone."""

    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class GroupReaper:
    """
    Keeps the helper process informed of the live process groups, and
    running while the server runs.

    @param spawner: Starts the helper.
    @param clock: Times a restart.
    @param argv: The helper's command line (L{clinvk.process.spawn.Launcher.reaper}).
    """

    def __init__(self, spawner: IReactorProcess, clock: IReactorTime, argv: Sequence[str]) -> None:
        self._spawner = spawner
        self._clock = clock
        self._argv = list(argv)
        self._groups: set[int] = set()
        self._helper: _Helper | None = None
        self._transport: IProcessTransport | None = None
        self._restart: IDelayedCall | None = None
        self._stopping = False
        self._started = False

    @property
    def groups(self) -> frozenset[int]:
        """The process groups the helper is told of."""
        return frozenset(self._groups)

    def start(self) -> None:
        """
        Be ready: the helper itself is started with the first group, so
        that a server (or an embedding program) that never runs a CLI runs
        no helper either.
        """
        self._stopping = False
        self._started = False

    def _start_helper(self) -> None:
        self._started = True
        self._restart = None
        helper = _Helper()
        try:
            transport = self._spawner.spawnProcess(
                helper, self._argv[0], self._argv, env={"PATH": os.defpath}
            )
        except Exception as e:
            log.error(
                "Could not start the process group reaper error={error}: children outlive a server "
                "killed abruptly",
                error=str(e),
            )
            return
        self._helper, self._transport = helper, transport
        helper.ended.addCallback(self._ended, helper)
        # A restarted helper learns every group still alive.
        for pgid in sorted(self._groups):
            self._tell(f"+ {pgid}")

    def _ended(self, ignored: None, helper: _Helper) -> None:
        if helper is not self._helper:
            return
        self._helper = self._transport = None
        if not self._stopping:
            log.error("The process group reaper ended; starting it again")
            self._restart = self._clock.callLater(RESTART_DELAY, self._start_helper)

    def _tell(self, line: str) -> None:
        if self._transport is not None:
            self._transport.write(f"{line}\n".encode("ascii"))

    def add(self, pgid: int) -> None:
        """A run's process group C{pgid} now exists."""
        self._groups.add(pgid)
        if not self._started and not self._stopping:
            # Told every known group, this one included, once it runs.
            self._start_helper()
        else:
            self._tell(f"+ {pgid}")

    def remove(self, pgid: int) -> None:
        """Process group C{pgid} is gone."""
        if pgid in self._groups:
            self._groups.discard(pgid)
            self._tell(f"- {pgid}")

    def stop(self) -> Deferred[None]:
        """
        End the helper by closing its stdin (it ends the groups it still
        knows, normally none); fire once it is gone.
        """
        self._stopping = True
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self._restart = None
        helper, transport = self._helper, self._transport
        if helper is None or transport is None:
            return succeed(None)
        transport.closeStdin()
        return helper.ended
