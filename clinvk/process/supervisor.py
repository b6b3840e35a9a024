# -*- test-case-name: tests.process.test_supervisor -*-
"""
The service that owns every live child process, and the group reaper that
ends their process groups should the server die without doing it
(L{clinvk.process.reaper}).
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from clinvk.errors import ShuttingDown
from clinvk.process.protocol import ICapture
from clinvk.process.reaper import GroupReaper
from clinvk.process.runner import ProcessRunner, ProcessSpec, RunningProcess, StopReason
from clinvk.process.spawn import Launcher, signal_group

log = Logger()


class ProcessSupervisor(Service):
    """
    Starts runs through a L{ProcessRunner}, keeps a registry of the live
    ones (until their whole process group is gone), refuses new runs once
    stopping, and on stop ends all of them (TERM, grace, KILL) and waits
    until they are really gone.  While it runs, the runner's group reaper
    (if its launcher has one) knows every live group.
    """

    name = "process-supervisor"

    def __init__(self, runner: ProcessRunner) -> None:
        self._runner = runner
        self._live: dict[int, RunningProcess] = {}
        self._ids = itertools.count(1)
        self._stopping = False
        self._reaper: GroupReaper | None = None

    @classmethod
    def on_this_system(cls, reactor: Any, kill_grace: float) -> ProcessSupervisor:
        """
        A supervisor of real processes on C{reactor} (a process reactor
        and clock, as L{ProcessRunner} takes), each in its own
        process group, signalled with C{killpg}, with the best launcher
        this system has.
        """
        return cls(
            ProcessRunner(
                reactor,
                launcher=Launcher.detect(kill_grace=kill_grace),
                signal_group=signal_group,
                kill_grace=kill_grace,
            )
        )

    @property
    def live(self) -> int:
        """The number of runs whose process group may not be gone yet."""
        return len(self._live)

    def start(self, spec: ProcessSpec, capture: ICapture, *, label: str = "") -> RunningProcess:
        """
        Start a run and own it until it ends.

        @param label: What the run is for, for the log (a backend name).
        @raise ShuttingDown: Once the service is stopping or stopped.
        """
        if self._stopping or not self.running:
            raise ShuttingDown("server is shutting down")
        run = self._runner.start(spec, capture)
        if run.ended.called:
            return run
        run_id = next(self._ids)
        self._live[run_id] = run
        log.debug(
            "Started run run_id={run_id} pid={pid} label={label}", run_id=run_id, pid=run.pid, label=label
        )
        reaper, group = self._reaper, run.pid
        if reaper is not None and group > 1:
            reaper.add(group)

        def forget(ignored: None) -> None:
            self._live.pop(run_id, None)
            if reaper is not None and group > 1:
                reaper.remove(group)

        run.finished.addCallback(forget)
        return run

    def startService(self) -> None:
        self._stopping = False
        super().startService()
        self._reaper = self._runner.group_reaper()
        if self._reaper is not None:
            self._reaper.start()

    def stopService(self) -> Deferred[None]:
        """Stop every live run; fire once all of them have ended."""
        self._stopping = True
        super().stopService()
        runs = list(self._live.values())
        if runs:
            log.info("Stopping live runs count={count}", count=len(runs))
        for run in runs:
            run.stop(StopReason.SHUTDOWN)
            if run.ended.called:
                # Only leftovers of its group remain: no need to wait.
                run.kill_now()
        done: Deferred[None] = DeferredList([run.finished for run in runs], consumeErrors=True).addCallback(
            lambda _: None
        )
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            # Every group is gone: the reaper has nothing left to end.
            done.addCallback(lambda _: reaper.stop())
        return done
