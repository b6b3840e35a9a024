# -*- test-case-name: tests.process.test_runner -*-
"""
The policy of a child process's life: start it in its own group, bound it
by an overall and an idle deadline, and stop it with TERM, a grace period,
then KILL, for the whole group (docs/design/decisions.md#d6-no-orphans).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, cast

from attrs import field, frozen

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProcessTransport,
    IPushProducer,
    IReactorProcess,
    IReactorTime,
)
from twisted.logger import Logger
from zope.interface import implementer

from clinvk.process.protocol import CLIProcessProtocol, ExitStatus, ICapture
from clinvk.process.reaper import GroupReaper
from clinvk.process.spawn import KILL, TERMINATE, Launcher

log = Logger()


class StopReason(Enum):
    """Why a run ended."""

    EXITED = "exited"  # on its own
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    IDLE = "idle"
    OUTPUT_LIMIT = "output_limit"
    START_FAILED = "start_failed"
    SHUTDOWN = "shutdown"


def _argv(items: Any) -> tuple[str, ...]:
    return tuple(items)


@frozen
class ProcessSpec:
    """
    What to run.

    @ivar path: The working directory, or L{None} for the server's.
    @ivar timeout: Seconds the whole run may take, or L{None}.
    @ivar idle_timeout: Seconds the child may stay silent, or L{None}.
    @ivar keep_stdin: Keep the child's stdin open after C{stdin} was
        written, for L{RunningProcess.write} (a live process,
        docs/design/live-sessions.md#live-protocol).
    """

    argv: tuple[str, ...] = field(converter=_argv)
    env: Mapping[str, str]
    stdin: bytes = b""
    path: str | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    keep_stdin: bool = False


@frozen
class ProcessOutcome:
    """
    How a run ended.

    @ivar exit_code: The exit status, or L{None} when killed by a signal or
        never started.
    @ivar signal: The signal that killed it, if one did.
    @ivar reason: Why it ended.
    @ivar start_error: Why it could not start, for L{StopReason.START_FAILED}.
    """

    exit_code: int | None
    signal: int | None
    reason: StopReason
    start_error: str = ""

    @property
    def reported_exit_code(self) -> int:
        """
        The exit code as docs/design/cli-runs.md#exit-codes has it: 1 for no start, -1 for
        a signal or for any run the server stopped (even if the CLI then
        exited cleanly), otherwise the status.
        """
        if self.reason is StopReason.START_FAILED:
            return 1
        if self.exit_code is None or self.reason is not StopReason.EXITED:
            return -1
        return self.exit_code


@implementer(IPushProducer)
class RunningProcess:
    """
    One child, from spawn until it and its process group are gone.  As a
    push producer of its output, it can be paused by a consumer that falls
    behind.

    @ivar pid: The child's pid, which is also its process group id; 0 until
        it has started.
    @ivar ended: Fires with the L{ProcessOutcome} once the child has exited
        and its pipes are closed: the result is complete.  Never cancelled;
        callers use L{wait}.
    @ivar finished: Fires once nothing of the process group can be left: at
        the same time as C{ended} when the group went with the child, or,
        when members of the group outlived it, once they have had their
        grace period and been killed.
    """

    def __init__(
        self,
        clock: IReactorTime,
        signal_group: Callable[[int, int], bool],
        kill_grace: float,
    ) -> None:
        self._clock = clock
        self._signal_group = signal_group
        self._kill_grace = kill_grace
        self._deadline: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._kill_timer: IDelayedCall | None = None
        self._close_timer: IDelayedCall | None = None
        self._idle_timeout: float | None = None
        self._stop_reason: StopReason | None = None
        self._paused = False
        self._transport: IProcessTransport | None = None
        self.pid = 0
        self.ended: Deferred[ProcessOutcome] = Deferred()
        self.finished: Deferred[None] = Deferred()

    # -- driven by the runner and the protocol

    def _connected(self, transport: IProcessTransport) -> None:
        # Called before Twisted can reap the child, so the pid is known
        # before any exit is reported.
        self._transport = transport
        self.pid = transport.pid or 0

    def _started(self, spec: ProcessSpec) -> None:
        if self.ended.called:
            return
        if spec.timeout is not None:
            self._deadline = self._clock.callLater(spec.timeout, self.stop, StopReason.TIMEOUT)
        self._idle_timeout = spec.idle_timeout
        self._output()

    def _signal(self, signum: int) -> bool:
        """Signal the process group, if the child ever started."""
        return self.pid > 1 and self._signal_group(self.pid, signum)

    def _group_alive(self) -> bool:
        """
        Whether anything is left in the process group (signal 0 tests for
        it and sends nothing).  A group whose members cannot be signalled
        counts as alive.
        """
        try:
            return self._signal(0)
        except PermissionError:
            return True

    def _output(self) -> None:
        """Output arrived (or reading resumed): restart the idle watchdog."""
        if self._idle_timeout is None or self.ended.called or self._paused:
            return
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.reset(self._idle_timeout)
        else:
            self._idle_timer = self._clock.callLater(self._idle_timeout, self.stop, StopReason.IDLE)

    def _exited(self, status: ExitStatus) -> None:
        """
        The child has exited.  Anything left in its group would become an
        orphan: ask it to go now, and kill it after the grace period.
        """
        if self._stop_reason is None and self._signal(TERMINATE):
            self._schedule_kill()

    def _ended(self, status: ExitStatus) -> None:
        for timer in (self._deadline, self._idle_timer, self._close_timer):
            if timer is not None and timer.active():
                timer.cancel()
        reason = self._stop_reason or StopReason.EXITED
        self.ended.callback(ProcessOutcome(status.code, status.signal, reason))
        if self._kill_timer is None or not self._kill_timer.active():
            self._finish()
        elif not self._group_alive():
            # The group went with its leader: no grandchild is left to get
            # the rest of the grace period, or the KILL after it.
            self._kill_timer.cancel()
            self._finish()

    def _failed_to_start(self, error: BaseException) -> None:
        self.ended.callback(ProcessOutcome(None, None, StopReason.START_FAILED, str(error) or repr(error)))
        self._finish()

    def _finish(self) -> None:
        if not self.finished.called:
            self.finished.callback(None)

    # -- for callers

    def wait(self) -> Deferred[ProcessOutcome]:
        """
        A Deferred firing with the outcome.  Cancelling it stops the run
        (as L{StopReason.CANCELLED}) and fails it with C{CancelledError}.
        """
        cancelled = False

        def cancel(waiting: Deferred[ProcessOutcome]) -> None:
            nonlocal cancelled
            cancelled = True
            self.stop(StopReason.CANCELLED)

        waiting: Deferred[ProcessOutcome] = Deferred(cancel)

        def deliver(outcome: ProcessOutcome) -> ProcessOutcome:
            # A cancelled caller gets CancelledError even if the child
            # happened to end within the cancellation.
            if not waiting.called and not cancelled:
                waiting.callback(outcome)
            return outcome

        self.ended.addCallback(deliver)
        return waiting

    def write(self, data: bytes) -> None:
        """
        Write C{data} to the child's stdin (of a run started with
        C{keep_stdin}); nothing once it has ended.
        """
        if self._transport is not None and not self.ended.called:
            self._transport.write(data)

    def close_stdin(self) -> None:
        """Close the child's stdin: a live CLI ends once it has read it all."""
        if self._transport is not None and not self.ended.called:
            self._transport.closeStdin()

    def stop(self, reason: StopReason = StopReason.CANCELLED) -> None:
        """
        Stop the run: TERM to the whole group now, KILL after the grace
        period.  Stopping again changes nothing.
        """
        if self._stop_reason is not None or self.ended.called:
            return
        self._stop_reason = reason
        log.info("Stopping run pid={pid} reason={reason}", pid=self.pid, reason=reason.value)
        # A paused reader would never see the child's last output and EOF.
        self.resume()
        # The KILL is due whether or not the group obeys at once.
        self._schedule_kill()
        self._signal(TERMINATE)

    def kill_now(self) -> None:
        """Skip what is left of the grace period: KILL the group now."""
        if self._kill_timer is not None and self._kill_timer.active():
            self._kill_timer.cancel()
            self._kill()

    def pause(self) -> None:
        """Stop reading the child's output (it blocks once its pipes fill)."""
        if self._transport is not None and not self.ended.called and not self._paused:
            self._paused = True
            # Silence the consumer asked for is not the child's idleness.
            if self._idle_timer is not None and self._idle_timer.active():
                self._idle_timer.cancel()
            # Twisted's process transports are producers of their output.
            cast("IPushProducer", self._transport).pauseProducing()

    def resume(self) -> None:
        """Read the child's output again."""
        if self._transport is not None and not self.ended.called and self._paused:
            self._paused = False
            cast("IPushProducer", self._transport).resumeProducing()
            self._output()

    def pauseProducing(self) -> None:
        """L{IPushProducer}: L{pause}."""
        self.pause()

    def resumeProducing(self) -> None:
        """L{IPushProducer}: L{resume}."""
        self.resume()

    def stopProducing(self) -> None:
        """L{IPushProducer}: L{stop}, as a cancellation."""
        self.stop()

    def _schedule_kill(self) -> None:
        if self._kill_timer is None or not self._kill_timer.active():
            self._kill_timer = self._clock.callLater(self._kill_grace, self._kill)

    def _kill(self) -> None:
        self._signal(KILL)
        if self.ended.called:
            self._finish()
        else:
            # Killed members release the pipes they held; close our ends too
            # a grace period later, so that nothing can hold the run open.
            self._close_timer = self._clock.callLater(self._kill_grace, self._close_pipes)

    def _close_pipes(self) -> None:
        if self._transport is not None and not self.ended.called:
            self._transport.loseConnection()


class ProcessRunner:
    """
    Spawns children through an injected process reactor.

    @param reactor: Spawns processes (C{IReactorProcess}) and times
        deadlines (C{IReactorTime}).
    @param launcher: Makes each child a process-group leader.
    @param signal_group: Signals a process group (C{os.killpg}, or a fake).
    @param kill_grace: Seconds between TERM and KILL.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        launcher: Launcher,
        signal_group: Callable[[int, int], bool],
        kill_grace: float,
    ) -> None:
        self._spawner: IReactorProcess = reactor
        self._leaders = launcher.spawner(reactor)
        self._clock: IReactorTime = reactor
        self._launcher = launcher
        self._signal_group = signal_group
        self._kill_grace = kill_grace

    def group_reaper(self) -> GroupReaper | None:
        """The group reaper of the launcher, not started yet; L{None} when it has none."""
        if not self._launcher.reaper:
            return None
        return GroupReaper(self._spawner, self._clock, self._launcher.reaper)

    def start(self, spec: ProcessSpec, capture: ICapture) -> RunningProcess:
        """
        Spawn C{spec}, feeding its output to C{capture}.

        A failure to spawn does not raise: the returned run has already
        ended with L{StopReason.START_FAILED}.
        """
        run = RunningProcess(self._clock, self._signal_group, self._kill_grace)
        protocol = CLIProcessProtocol(
            capture,
            spec.stdin,
            on_connected=run._connected,
            on_output=run._output,
            on_overflow=lambda: run.stop(StopReason.OUTPUT_LIMIT),
            keep_stdin=spec.keep_stdin,
        )
        protocol.exited.addCallback(run._exited)
        protocol.ended.addCallback(run._ended)
        argv = list(spec.argv)
        try:
            self._leaders.spawnProcess(protocol, argv[0], argv, env=dict(spec.env), path=spec.path)
        except Exception as e:
            run._failed_to_start(e)
            return run
        run._started(spec)
        return run
