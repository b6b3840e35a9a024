# -*- test-case-name: tests.process.test_runner -*-
"""
The policy of a child process's life: start it in its own group, bound it
by an overall and an idle deadline, and stop it with TERM, a grace period,
then KILL, for the whole group (DECISIONS D6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, cast

from attrs import field, frozen

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProcessTransport,
    IPushProducer,
    IReactorProcess,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.process.protocol import CLIProcessProtocol, ExitStatus, ICapture
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
    """

    argv: tuple[str, ...] = field(converter=_argv)
    env: Mapping[str, str]
    stdin: bytes = b""
    path: str | None = None
    timeout: float | None = None
    idle_timeout: float | None = None


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
        """The exit code as backends.md 6.1 reports it: -1 for any signal, 1 for no start."""
        if self.reason is StopReason.START_FAILED:
            return 1
        if self.exit_code is None:
            return -1
        return self.exit_code


class RunningProcess:
    """
    One live child, from spawn until it and its pipes are gone.

    @ivar pid: The child's pid, which is also its process group id.
    @ivar ended: Fires with the L{ProcessOutcome} once the child has really
        ended; never cancelled.  Callers use L{wait}.
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
        self._timers: list[IDelayedCall] = []
        self._idle_timer: IDelayedCall | None = None
        self._idle_timeout: float | None = None
        self._stop_reason: StopReason | None = None
        self._orphans_signalled = False
        self._killed = False
        self._transport: IProcessTransport | None = None
        self.pid = 0
        self.ended: Deferred[ProcessOutcome] = Deferred()

    # -- driven by the runner and the protocol

    def _started(self, transport: IProcessTransport, spec: ProcessSpec) -> None:
        self._transport = transport
        self.pid = transport.pid or 0
        if spec.timeout is not None:
            self._timers.append(self._clock.callLater(spec.timeout, self.stop, StopReason.TIMEOUT))
        self._idle_timeout = spec.idle_timeout
        self._output()

    def _output(self) -> None:
        if self._idle_timeout is None or self.ended.called:
            return
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.reset(self._idle_timeout)
        else:
            self._idle_timer = self._clock.callLater(self._idle_timeout, self.stop, StopReason.IDLE)

    def _exited(self, status: ExitStatus) -> None:
        """
        The leader has exited.  Anything left in its group would be an
        orphan: ask it to go, then force it and the pipes it holds.
        """
        if self._stop_reason is None and self._signal_group(self.pid, TERMINATE):
            self._orphans_signalled = True
            self._schedule_kill()

    def _ended(self, status: ExitStatus) -> None:
        self._cancel_timers()
        if (self._orphans_signalled or self._stop_reason is not None) and not self._killed:
            # Members of the group may have outlived the leader (ignoring
            # TERM): nothing of it may outlive the run.
            self._signal_group(self.pid, KILL)
        reason = self._stop_reason or StopReason.EXITED
        self.ended.callback(ProcessOutcome(status.code, status.signal, reason))

    def _failed_to_start(self, error: BaseException) -> None:
        self._cancel_timers()
        self.ended.callback(ProcessOutcome(None, None, StopReason.START_FAILED, str(error) or repr(error)))

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

    def stop(self, reason: StopReason = StopReason.CANCELLED) -> None:
        """
        Stop the run: TERM to the whole group now, KILL after the grace
        period.  Stopping again changes nothing.
        """
        if self._stop_reason is not None or self.ended.called:
            return
        self._stop_reason = reason
        log.info("Stopping run pid={pid} reason={reason}", pid=self.pid, reason=reason.value)
        self._signal_group(self.pid, TERMINATE)
        self._schedule_kill()

    def pause(self) -> None:
        """Stop reading the child's output (it blocks once its pipes fill)."""
        if self._transport is not None and not self.ended.called:
            # Twisted's process transports are producers of their output.
            cast("IPushProducer", self._transport).pauseProducing()

    def resume(self) -> None:
        """Read the child's output again."""
        if self._transport is not None and not self.ended.called:
            cast("IPushProducer", self._transport).resumeProducing()

    def _schedule_kill(self) -> None:
        self._timers.append(self._clock.callLater(self._kill_grace, self._kill))

    def _kill(self) -> None:
        self._killed = True
        self._signal_group(self.pid, KILL)
        # Grandchildren killed with the group release the pipes; close our
        # ends as well so that nothing left can hold the run open.
        self._timers.append(self._clock.callLater(self._kill_grace, self._close_pipes))

    def _close_pipes(self) -> None:
        if self._transport is not None and not self.ended.called:
            self._transport.loseConnection()

    def _cancel_timers(self) -> None:
        for timer in [*self._timers, self._idle_timer]:
            if timer is not None and timer.active():
                timer.cancel()
        self._timers.clear()


class ProcessRunner:
    """
    Spawns children through an injected process reactor.

    @param reactor: Spawns processes and times deadlines.
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
        self._reactor = reactor
        self._process_reactor: IReactorProcess = reactor
        self._clock: IReactorTime = reactor
        self._launcher = launcher
        self._signal_group = signal_group
        self._kill_grace = kill_grace

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
            on_output=run._output,
            on_overflow=lambda: run.stop(StopReason.OUTPUT_LIMIT),
        )
        protocol.exited.addCallback(run._exited)
        protocol.ended.addCallback(run._ended)
        argv = self._launcher.wrap(spec.argv)
        try:
            transport = self._process_reactor.spawnProcess(
                protocol, argv[0], argv, env=dict(spec.env), path=spec.path
            )
        except Exception as e:
            run._failed_to_start(e)
            return run
        run._started(transport, spec)
        return run


def is_cancellation(failure: Failure) -> bool:
    """Whether C{failure} is a cancellation, which must never be swallowed."""
    return failure.check(CancelledError) is not None
