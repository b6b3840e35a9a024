# -*- test-case-name: tests.runs.test_live -*-
"""
One live CLI process: the I/O around a backend's L{ILiveSession}
(docs/design/live-sessions.md#live-protocol).  It starts the process through
the supervisor (its own process group, the group reaper: every guarantee of
docs/design/decisions.md#d6-no-orphans), writes the handshake and the turns
on stdin, reads stdout line by line, and runs one turn at a time with the
per-turn deadlines of docs/design/live-sessions.md#live-turns.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from attrs import define, frozen

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from clinvk.interfaces import IBackend, ILiveSession
from clinvk.model import ParsedResponse, UnifiedEvent
from clinvk.process.protocol import LineCapture
from clinvk.process.runner import ProcessOutcome, ProcessSpec, RunningProcess, StopReason
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.channel import OneResult, Sink

log = Logger()


class LiveState(Enum):
    """Where a live process is in its life."""

    STARTING = "starting"  # started, handshake not complete
    IDLE = "idle"  # ready, no turn running
    BUSY = "busy"  # a turn runs (or an interrupted one is ending)
    CLOSING = "closing"  # stdin closed, waiting for it to exit
    GONE = "gone"


@frozen
class TurnEnd:
    """
    How one turn of a live process ended.

    @ivar response: What the CLI answered, when the turn ended in the
        protocol (an interrupted turn included); L{None} when the process
        ended or was stopped first.
    @ivar stopped: Why the server ended the turn (a deadline), if it did.
    @ivar silent: Whether the CLI printed nothing for the turn before it
        ended: a process that never served it, whose turn can run cold
        instead.
    @ivar error: Why the turn failed outside the protocol (the process
        ended), or C{""}.
    """

    response: ParsedResponse | None
    stopped: StopReason | None = None
    silent: bool = False
    error: str = ""


@define
class _Turn:
    text: str
    sink: Sink[UnifiedEvent] | None
    timeout: float | None
    idle_timeout: float | None
    ended: OneResult[TurnEnd]
    lines: int = 0
    sent: bool = False
    stopped: StopReason | None = None
    deadline: IDelayedCall | None = None
    idle_timer: IDelayedCall | None = None


@implementer(IPushProducer)
class _TurnOutput:
    """The output of one turn, as a stream's source: pausing it pauses the process."""

    def __init__(self, process: LiveProcess, turn: _Turn) -> None:
        self._process = process
        self._turn = turn

    def pauseProducing(self) -> None:
        if self._process._turn is self._turn:
            self._process._run_pause()

    def resumeProducing(self) -> None:
        if self._process._turn is self._turn:
            self._process._run_resume()

    def stopProducing(self) -> None:
        self._process.interrupt(StopReason.CANCELLED)


class LiveProcess:
    """
    One long-lived CLI process serving turns of one conversation.

    @param backend: The CLI it runs (for its failure text).
    @param session: The protocol state of the process.
    @param signature: What the process was started with (its argv without
        a resumed conversation, and its directory): a turn asking for
        anything else needs another process.
    @param clock: Times the turns.
    @param kill_grace: Seconds an interrupted turn, or a closed process,
        has to end before the process is stopped.
    @param line_limit: The longest output line kept in memory.
    @param on_state: Told of every change of L{state}.
    @ivar on_state: The same; the pool that holds the process may change
        it (a warm process taken by a conversation).
    """

    def __init__(
        self,
        *,
        backend: IBackend,
        session: ILiveSession,
        signature: tuple[str, ...],
        clock: IReactorTime,
        kill_grace: float,
        line_limit: int,
        on_state: Callable[[LiveProcess], None] = lambda process: None,
    ) -> None:
        self.backend = backend
        self.session = session
        self.signature = signature
        self._clock = clock
        self._kill_grace = kill_grace
        self._line_limit = line_limit
        self.on_state = on_state
        self.state = LiveState.STARTING
        self.last_used = clock.seconds()
        self._run: RunningProcess | None = None
        self._capture: LineCapture | None = None
        self._turn: _Turn | None = None
        self._idle: OneResult[None] | None = None
        self._grace_timer: IDelayedCall | None = None
        self.gone: OneResult[ProcessOutcome] = OneResult()

    # -- life

    def start(self, supervisor: ProcessSupervisor, spec: ProcessSpec) -> None:
        """
        Start the process.

        @raise ShuttingDown: When the supervisor takes no more runs.
        """
        self._capture = LineCapture(self._line, self._line_limit)
        self._run = supervisor.start(spec, self._capture, label=f"{self.backend.name} (live)")
        self._run.ended.addCallback(self._ended)
        if self.state is LiveState.GONE:
            return
        self._write(self.session.opening())
        if self.session.ready_at_start():
            self._ready()

    @property
    def pid(self) -> int:
        """The process's pid (and process group), 0 before it started."""
        return self._run.pid if self._run is not None else 0

    def _set_state(self, state: LiveState) -> None:
        if self.state is not state and self.state is not LiveState.GONE:
            self.state = state
            self.on_state(self)

    def _ready(self) -> None:
        if self.state is not LiveState.STARTING:
            return
        if self._turn is not None:
            self._set_state(LiveState.BUSY)
            self._send(self._turn)
        else:
            self._set_state(LiveState.IDLE)

    def close(self) -> None:
        """
        End the process politely: close its stdin (the CLI exits once it
        has read it all), and stop it if it is still there a grace period
        later.
        """
        if self.state in (LiveState.CLOSING, LiveState.GONE):
            return
        self._set_state(LiveState.CLOSING)
        if self._run is not None:
            self._run.close_stdin()
            self._grace_timer = self._clock.callLater(self._kill_grace, self.stop, StopReason.CANCELLED)

    def stop(self, reason: StopReason = StopReason.CANCELLED) -> None:
        """Stop the process group now (TERM, grace, KILL)."""
        if self._run is not None:
            self._run.stop(reason)

    def _ended(self, outcome: ProcessOutcome) -> None:
        """The process has exited and its output is read: fail what waited on it."""
        if self._grace_timer is not None and self._grace_timer.active():
            self._grace_timer.cancel()
        turn = self._turn
        if turn is not None:
            self._end_turn(
                turn, TurnEnd(None, turn.stopped, silent=turn.lines == 0, error=self._why(outcome))
            )
        self._set_state(LiveState.GONE)
        self.gone.arrive(outcome)

    def _why(self, outcome: ProcessOutcome) -> str:
        """What to say of a process that ended under a turn."""
        if outcome.reason is StopReason.START_FAILED:
            return outcome.start_error
        if outcome.reason is StopReason.SHUTDOWN:
            return "server is shutting down"
        said = self.backend.failure_text(self._capture.stderr_text() if self._capture else "").strip()
        if outcome.signal is not None:
            status = f"killed by signal {outcome.signal}"
        else:
            status = f"exit code {outcome.exit_code}"
        return f"the live {self.backend.name} process ended ({status})" + (f": {said}" if said else "")

    # -- turns

    def idle(self) -> Deferred[None]:
        """
        A Deferred firing once no turn runs (an interrupted turn takes a
        moment to end); at once when none does.
        """
        if self._turn is None:
            return succeed(None)
        if self._idle is None:
            self._idle = OneResult()
        return self._idle.wait()

    def send(
        self,
        text: str,
        sink: Sink[UnifiedEvent] | None,
        *,
        timeout: float | None,
        idle_timeout: float | None,
    ) -> Deferred[TurnEnd]:
        """
        Run one turn: send C{text} once the process is ready, put the
        turn's events on C{sink}, and fire with how the turn ended.
        Cancelling the Deferred interrupts the turn (the process is stopped
        if the CLI does not end the turn within the grace period) and fails
        it with C{CancelledError} at once.

        @param timeout: Seconds the turn may take, from now, or L{None}.
        @param idle_timeout: Seconds the CLI may stay silent in the turn.
        @raise RuntimeError: When a turn runs already, or the process is
            closing or gone.
        """
        if self._turn is not None or self.state not in (LiveState.STARTING, LiveState.IDLE):
            raise RuntimeError(f"a live process in state {self.state.value} takes no turn")
        turn = _Turn(text, sink, timeout, idle_timeout, OneResult())
        self._turn = turn
        self.last_used = self._clock.seconds()
        if timeout is not None:
            turn.deadline = self._clock.callLater(timeout, self.interrupt, StopReason.TIMEOUT)
        self._heard(turn)
        if sink is not None:
            sink.running(_TurnOutput(self, turn))
        if self.state is LiveState.IDLE:
            self._set_state(LiveState.BUSY)
            self._send(turn)
        return turn.ended.wait(on_cancel=lambda: self.interrupt(StopReason.CANCELLED))

    def _send(self, turn: _Turn) -> None:
        turn.sent = True
        self._write(self.session.turn(turn.text))

    def interrupt(self, reason: StopReason) -> None:
        """
        End the running turn for C{reason}: ask the CLI to stop it and keep
        the conversation, and stop the process if it has not ended the
        turn a grace period later (a turn not sent yet just ends).
        """
        turn = self._turn
        if turn is None or turn.stopped is not None:
            return
        turn.stopped = reason
        self._cancel_timers(turn)
        if not turn.sent:
            # Still waiting for the process to be ready: nothing to stop.
            self._end_turn(turn, TurnEnd(None, reason, silent=True))
            return
        self._run_resume()
        self._write(self.session.interrupt())
        self._grace_timer = self._clock.callLater(self._kill_grace, self.stop, reason)

    def _heard(self, turn: _Turn) -> None:
        """Output arrived for C{turn}: restart its silence watchdog."""
        if turn.idle_timeout is None or turn.stopped is not None:
            return
        if turn.idle_timer is not None and turn.idle_timer.active():
            turn.idle_timer.reset(turn.idle_timeout)
        else:
            turn.idle_timer = self._clock.callLater(turn.idle_timeout, self.interrupt, StopReason.IDLE)

    @staticmethod
    def _cancel_timers(turn: _Turn) -> None:
        for timer in (turn.deadline, turn.idle_timer):
            if timer is not None and timer.active():
                timer.cancel()

    def _end_turn(self, turn: _Turn, end: TurnEnd) -> None:
        self._cancel_timers(turn)
        if self._grace_timer is not None and self._grace_timer.active() and self.state is LiveState.BUSY:
            self._grace_timer.cancel()
        self._turn = None
        self._run_resume()
        self.last_used = self._clock.seconds()
        if self.state is LiveState.BUSY:
            self._set_state(LiveState.IDLE)
        idle, self._idle = self._idle, None
        turn.ended.arrive(end)
        if idle is not None:
            idle.arrive(None)

    # -- I/O

    def _write(self, lines: list[str] | tuple[str, ...]) -> None:
        if lines and self._run is not None:
            self._run.write("".join(line + "\n" for line in lines).encode("utf-8"))

    def _run_pause(self) -> None:
        if self._run is not None:
            self._run.pause()

    def _run_resume(self) -> None:
        if self._run is not None:
            self._run.resume()

    def _line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            step = self.session.feed(line)
        except Exception:
            log.failure("Unreadable line from a live process backend={backend}", backend=self.backend.name)
            return
        self._write(step.replies)
        turn = self._turn
        if turn is not None and turn.sent:
            turn.lines += 1
            self._heard(turn)
            if turn.sink is not None:
                for event in step.events:
                    turn.sink.put(event)
        if step.ready:
            self._ready()
        if step.ended is not None and turn is not None and turn.sent:
            self._end_turn(turn, TurnEnd(step.ended, turn.stopped))
        if step.failure:
            log.warn(
                "Live process failed backend={backend} pid={pid} failure={failure}",
                backend=self.backend.name,
                pid=self.pid,
                failure=step.failure,
            )
            self.stop(StopReason.CANCELLED)
