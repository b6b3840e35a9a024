# -*- test-case-name: tests.runs.test_runtime -*-
"""
Running a prepared request's CLI: dry runs (docs/design/cli-runs.md#dry-runs),
runs to completion (docs/design/cli-runs.md#capture,
docs/design/cli-runs.md#output-parsing) and streaming runs
(docs/design/cli-runs.md#stream-reading), each in a run slot, with the
clean-up of ephemeral native sessions (docs/design/cli-runs.md#ephemeral-cleanup)
started after.  A turn of a conversation runs in the conversation's live
process where its CLI has one (docs/design/live-sessions.md#live-turns), and
in a new process otherwise.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Mapping

import attrs

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger

from clinvk.backends import events
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.results import Finished, StreamOutcome, finish_response
from clinvk.config import ClinvkConfig
from clinvk.interfaces import IBackend, ILiveMode
from clinvk.logs import redact, secret_values
from clinvk.model import RunRequest, RunResult, TokenUsage, UnifiedEvent
from clinvk.process.admission import Admission
from clinvk.process.protocol import BufferedCapture, ICapture, LineCapture
from clinvk.process.runner import ProcessOutcome, ProcessSpec, RunningProcess, StopReason
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.channel import Sink, StreamChannel
from clinvk.runs.cleanup import NativeSessionCleanup
from clinvk.runs.installed import InstalledCLI, find_installed
from clinvk.runs.live import LiveProcess, TurnEnd
from clinvk.runs.live_pool import LiveLaunch, LivePool
from clinvk.runs.preflight import (
    BackendNotAvailable,
    Preflight,
    PreflightError,
    PreparedRun,
    UnknownBackend,
    UnusableRequest,
)
from clinvk.runs.scratch import RunFiles

__all__ = [
    "BackendNotAvailable",
    "BackendRuntime",
    "EventChannel",
    "PreflightError",
    "PreparedRun",
    "UnknownBackend",
    "UnusableRequest",
]

log = Logger()

# How many of a stream's last non-JSON lines are kept, to explain a
# failure the CLI did not report as an event.
UNPARSED_TAIL_LINES = 5

# How much of a failed CLI's message the log keeps (a stack trace may follow it).
LOGGED_ERROR_LIMIT = 2000


# The events of a streaming run, ending with its result.
EventChannel = StreamChannel[UnifiedEvent, RunResult]


class BackendRuntime:
    """
    Runs backend CLIs for requests.

    @param backends: The registered backends by name.
    @param supervisor: Owns every process started.
    @param availability: Finds the CLIs on C{PATH}.
    @param clock: Stamps events and paces the clean-up's file search.
    @param environ: The children's environment (the server's, unchanged).
    @param home: The user's home directory (where CLIs keep sessions).
    @param admission: Limits how many CLIs run at once
        (docs/design/decisions.md#d4-admission-control);
        by default, no limit.
    @param observe_execution: Told the backend, success and seconds of
        every execution past pre-flight (docs/design/cli-runs.md#execution-metrics), when
        metrics are on.
    @param run_files: Writes and removes the files runs' command lines
        name (docs/design/structured-output.md#run-files); by default at once.
    @param scratch_root: Where those files go; by default the system's
        temporary directory.
    """

    def __init__(
        self,
        *,
        config: ClinvkConfig,
        backends: Mapping[str, IBackend],
        supervisor: ProcessSupervisor,
        availability: BackendAvailability,
        clock: IReactorTime,
        environ: Mapping[str, str],
        home: str,
        admission: Admission | None = None,
        observe_execution: Callable[[str, bool, float], None] | None = None,
        run_files: RunFiles | None = None,
        scratch_root: str = "",
    ) -> None:
        self._config = config
        self._backends = dict(sorted(backends.items()))
        self._preflight = Preflight(config, backends, availability, scratch_root)
        self._files = run_files or RunFiles()
        self._supervisor = supervisor
        self._availability = availability
        self._clock = clock
        self._environ = dict(environ)
        self._secrets = secret_values(environ)
        self._admission = admission or Admission.unlimited(clock)
        self._observe_execution = observe_execution
        self._cleanup = NativeSessionCleanup(supervisor, clock, environ, home)
        self._live = LivePool(config=config, supervisor=supervisor, clock=clock, environ=environ)

    @property
    def live(self) -> LivePool:
        """The live processes of the conversations in use."""
        return self._live

    @property
    def backends(self) -> Mapping[str, IBackend]:
        """The registered backends by name."""
        return self._backends

    def installed(self) -> Deferred[list[InstalledCLI]]:
        """Which of the backends' CLIs are on C{PATH}, at which versions."""
        return Deferred.fromCoroutine(
            find_installed(self._backends.values(), self._availability, self._supervisor, self._environ)
        )

    def prepare(self, request: RunRequest, *, streaming: bool = False) -> PreparedRun:
        """
        Validate C{request} and build its command line (L{Preflight.prepare}).

        @raise PreflightError: With the exact error text of the first
            failed check.
        """
        return self._preflight.prepare(request, streaming=streaming)

    def _spec(self, prepared: PreparedRun) -> ProcessSpec:
        flags = self._config.unified_flags
        server = self._config.server
        return ProcessSpec(
            argv=prepared.command,
            env={**self._environ, **dict(prepared.environment)} if prepared.environment else self._environ,
            stdin=prepared.stdin,
            path=prepared.request.workdir or None,
            timeout=float(flags.command_timeout_secs) or None,
            idle_timeout=float(server.output_idle_timeout_secs) or None,
        )

    async def _start(self, prepared: PreparedRun, capture: ICapture) -> RunningProcess:
        """
        Start the CLI once a run slot is free; the slot is given back when
        the CLI exits.

        @raise RateLimited: When no slot came free
            (docs/design/decisions.md#d4-admission-control).
        @raise ShuttingDown: When the server takes no more runs.
        """
        await self._admission.acquire()
        try:
            run = self._supervisor.start(self._spec(prepared), capture, label=prepared.backend.name)
        except BaseException:
            self._admission.release()
            raise

        def release(result: object) -> object:
            self._admission.release()
            return result

        run.ended.addBoth(release)
        return run

    # -- non-streaming

    async def run(self, request: RunRequest) -> RunResult:
        """
        Run C{request} to completion (docs/design/cli-runs.md#capture,
        docs/design/cli-runs.md#output-parsing).  Pre-flight failures
        and start failures are results with C{exit_code} 1, not errors.

        Cancelling the returned coroutine's Deferred stops the process group.
        """
        try:
            prepared = self.prepare(request)
        except PreflightError as e:
            return RunResult(exit_code=1, error=str(e), ran=False)
        return await self.execute(prepared)

    def _observe(self, prepared: PreparedRun, started: float, succeeded: bool) -> None:
        if self._observe_execution is not None:
            self._observe_execution(prepared.backend.name, succeeded, self._clock.seconds() - started)

    async def execute(self, prepared: PreparedRun, conversation: str = "") -> RunResult:
        """
        Run a prepared, non-streaming request to completion.

        @param conversation: The server session the run is a turn of, whose
            live process serves it where it can; C{""} for none.
        """
        started = self._clock.seconds()
        result = await self._execute(prepared, conversation)
        self._observe(prepared, started, result.exit_code == 0 and not result.start_failed)
        return result

    async def _execute(self, prepared: PreparedRun, conversation: str) -> RunResult:
        if prepared.options.dry_run:
            return RunResult(exit_code=0, output=prepared.description, command=prepared.command, dry_run=True)
        live = await self._live_turn(prepared, conversation, None)
        if live is not None:
            return live
        problem = await self._write_files(prepared)
        if problem:
            return RunResult(exit_code=1, error=problem, command=prepared.command, start_failed=True)
        try:
            return await self._execute_cold(prepared)
        finally:
            self._remove_files(prepared)

    async def _execute_cold(self, prepared: PreparedRun) -> RunResult:
        backend = prepared.backend
        limit = self._config.server.max_run_output_bytes
        capture = BufferedCapture(limit, merge_stderr=backend.merges_stderr)
        run = await self._start(prepared, capture)
        outcome = await run.wait()
        stopped = _stop_error(outcome, self._config, limit)
        start_failed = outcome.reason is StopReason.START_FAILED
        finished = finish_response(
            backend,
            stdout=capture.stdout_text(),
            stderr=capture.stderr_text(),
            exit_code=outcome.reported_exit_code,
            start_error=stopped if start_failed else "",
            stop_error="" if start_failed else stopped,
        )
        # (A stream's done event is made the turn's own as it passes.)
        finished = attrs.evolve(finished, usage=_turn_usage(prepared, finished.usage))
        result = _result(finished, prepared, self._clock.seconds(), start_failed=start_failed)
        self._ended(prepared, result, outcome, finished)
        return result

    # -- streaming

    def stream(self, prepared: PreparedRun, conversation: str = "") -> EventChannel:
        """
        Start a prepared streaming run (docs/design/cli-runs.md#stream-reading): a channel of its
        events that ends with the run's result.  Cancelling the channel
        stops the run (a live turn is interrupted instead).

        @param conversation: As for L{feed}.
        """
        channel: EventChannel = StreamChannel()
        running = self.feed(prepared, channel, conversation)
        channel.stop_with(running.cancel)
        running.addCallbacks(channel.close, channel.fail)
        return channel

    def feed(
        self, prepared: PreparedRun, channel: Sink[UnifiedEvent], conversation: str = ""
    ) -> Deferred[RunResult]:
        """
        Run a prepared streaming run, putting its events on C{channel}
        (which stays open: it belongs to the caller) and telling it when
        the CLI runs.  The Deferred fires with the run's result; cancelling
        it stops the run (a live turn is interrupted instead, and its
        process kept).

        @param conversation: The server session the run is a turn of, whose
            live process serves it where it can; C{""} for none.
        """
        started = self._clock.seconds()

        async def observed() -> RunResult:
            result = await self._stream(prepared, channel, conversation)
            # A stream fails on an error too (docs/design/cli-runs.md#execution-metrics).
            self._observe(prepared, started, result.exit_code == 0 and not result.error)
            return result

        return Deferred.fromCoroutine(observed())

    async def _stream(
        self, prepared: PreparedRun, channel: Sink[UnifiedEvent], conversation: str
    ) -> RunResult:
        stamped = _Stamped(channel, self._clock)
        put = stamped.put

        if prepared.options.dry_run:
            channel.running()
            put(events.message(prepared.description, 0))
            put(events.done(0, None))
            return RunResult(exit_code=0, output=prepared.description, command=prepared.command, dry_run=True)
        live = await self._live_turn(prepared, conversation, stamped)
        if live is not None:
            return live
        problem = await self._write_files(prepared)
        if problem:
            put(events.error(problem, 0, code="start_failed"))
            return RunResult(exit_code=1, error=problem, command=prepared.command, start_failed=True)
        try:
            return await self._stream_cold(prepared, channel, stamped)
        finally:
            self._remove_files(prepared)

    async def _stream_cold(
        self, prepared: PreparedRun, channel: Sink[UnifiedEvent], stamped: _Stamped
    ) -> RunResult:
        put = stamped.put
        backend = prepared.backend
        parser = backend.stream_parser()
        outcome_watch = StreamOutcome(backend)
        sequence = 0
        # The last lines that were no JSON event: where stderr is merged
        # into stdout (claude), a failure's plain-text reason is among them.
        unparsed: deque[str] = deque(maxlen=UNPARSED_TAIL_LINES)

        def on_line(line: str) -> None:
            nonlocal sequence
            line = line.strip()
            if not line:
                return
            sequence += 1
            if not line.startswith("{"):
                unparsed.append(line)
            for event in parser.feed(line, sequence):
                event = _turn_usage_event(prepared, event)
                outcome_watch.observe(event)
                put(event)

        limit = self._config.server.max_run_output_bytes
        capture = LineCapture(on_line, limit, merge_stderr=backend.merges_stderr)
        run = await self._start(prepared, capture)
        channel.running(run)
        outcome = await run.wait()
        error = _stop_error(outcome, self._config, limit)
        if outcome.reason is StopReason.OUTPUT_LIMIT:
            too_long = events.error(error, 0, code="stream_line_too_long")
            outcome_watch.observe(too_long)
            put(too_long)
        stderr = capture.stderr_text() or "\n".join(unparsed)
        finished = outcome_watch.finish(outcome.reported_exit_code, stderr, error)
        if finished.exit_code != 0 and not outcome_watch.failure_seen:
            # Every failure is visible in the stream (docs/design/cli-runs.md#stream-outcome).
            put(events.error(finished.error, 0, code=f"exit_{finished.exit_code}"))
        start_failed = outcome.reason is StopReason.START_FAILED
        result = _result(finished, prepared, self._clock.seconds(), start_failed=start_failed)
        self._ended(prepared, result, outcome, finished)
        return result

    # -- the files a run's command line names (docs/design/structured-output.md#run-files)

    async def _write_files(self, prepared: PreparedRun) -> str:
        """Write C{prepared}'s files, if it has any; why that failed, or C{""}."""
        if not prepared.files:
            return ""
        scratch = prepared.options.scratch
        try:
            await self._files.write(scratch, prepared.files)
        except CancelledError:
            # The write goes on in its thread: the removal follows it there.
            self._files.remove(scratch)
            raise
        except Exception as e:
            log.error("Could not write a run's files: {error}", error=str(e))
            return f"could not write the files of the run: {e}"
        return ""

    def _remove_files(self, prepared: PreparedRun) -> None:
        """Remove C{prepared}'s files, once its CLI has ended, in the background."""
        if prepared.files:
            self._files.remove(prepared.options.scratch)

    # -- live turns (docs/design/live-sessions.md#live-turns)

    def _launch(self, prepared: PreparedRun, mode: ILiveMode) -> LiveLaunch | None:
        """How to start a live process for C{prepared}, or L{None} when its options cannot run live."""
        executable, options = prepared.command[0], prepared.options
        if options.output_schema or options.images or prepared.files or options.client_tools:
            # Asked for once, of one answer: the CLI takes these on its
            # command line (docs/design/structured-output.md#structured-cold,
            # docs/design/images.md#images-cold, docs/design/client-tools.md#tool-runs).
            return None
        workdir = prepared.request.workdir
        cwd = os.path.abspath(workdir or os.getcwd())
        argv = mode.live_command(executable, options, prepared.request.resume_id)
        fresh = mode.live_command(executable, options, "")
        if argv is None or fresh is None or not mode.live_checks_passed(options, cwd):
            return None
        # A CLI may take some options in its handshake rather than on argv
        # (codex's model and modes): a process serves turns asking for all
        # the same.
        asked = (options.model, options.approval_mode, options.sandbox_mode, options.system_prompt)
        return LiveLaunch(tuple(argv), (*fresh, cwd, *asked), cwd, workdir or None)

    # -- warm processes (docs/design/live-sessions.md#warm-pool)

    def warm_up(self) -> None:
        """
        Start the warm processes of every backend with
        C{backends.<name>.warm} set, started as a new conversation that
        asks for nothing is; where that cannot run live, log why and keep
        none.
        """
        for backend in self._backends.values():
            count = self._config.backends.get(backend.name).warm
            if count <= 0:
                continue
            warm = self._warm_launch(backend)
            if isinstance(warm, str):
                log.warn(
                    "No process is kept warm backend={backend} why={why}", backend=backend.name, why=warm
                )
                continue
            prepared, launch = warm
            log.info(
                "Keeping processes warm for new conversations backend={backend} count={count}",
                backend=backend.name,
                count=count,
            )
            self._live.keep_warm(prepared, launch, count)

    def _warm_launch(self, backend: IBackend) -> tuple[PreparedRun, LiveLaunch] | str:
        """How a warm process of C{backend} starts, or why none can."""
        mode = self._live.mode(backend)
        if mode is None:
            return f"live sessions are {self._live.status(backend)}"
        try:
            prepared = self.prepare(RunRequest(backend=backend.name, prompt=""))
        except PreflightError as e:
            return str(e)
        launch = self._launch(prepared, mode)
        if launch is None:
            return "a new conversation with the configured options runs cold"
        return prepared, launch

    async def _live_turn(
        self, prepared: PreparedRun, conversation: str, sink: Sink[UnifiedEvent] | None
    ) -> RunResult | None:
        """
        Run C{prepared} as a turn of C{conversation}'s live process, in a
        run slot; L{None} when it is to run cold instead: the backend runs
        no live processes, there is no room for another, or the process
        ended without serving the turn.
        """
        mode = self._live.mode(prepared.backend)
        if not conversation or prepared.request.ephemeral or mode is None:
            return None
        launch = self._launch(prepared, mode)
        request = prepared.request
        if launch is None or (
            request.resume_id
            and not self._live.serving(conversation, launch.signature)
            and not mode.live_resumable(request.resumed_at, self._clock.seconds())
        ):
            # A CLI may let one process at a time hold a conversation (codex).
            await self._live.release(conversation)
            return None
        flags, server = self._config.unified_flags, self._config.server
        await self._admission.acquire()
        try:
            taken = await self._live.take(conversation, prepared, launch)
            if taken is None:
                return None
            process, new = taken
            end = await process.send(
                prepared.stdin.decode("utf-8"),
                sink,
                timeout=float(flags.command_timeout_secs) or None,
                idle_timeout=float(server.output_idle_timeout_secs) or None,
            )
        finally:
            self._admission.release()
        if end.silent and end.response is None and end.stopped is None:
            # Nothing of the turn happened: it runs cold, losing nothing.
            if new:
                self._live.failed_to_serve(prepared.backend, end.error)
            return None
        result = self._live_result(prepared, process, launch, end)
        if sink is not None and end.response is None and result.error:
            # The protocol never ended the turn: say why in the stream.
            code = "timeout" if end.stopped is not None else f"exit_{result.exit_code}"
            sink.put(events.error(result.error, 0, code=code))
        if not result.succeeded:
            self._log_failure(prepared, result, end.stopped or StopReason.EXITED)
        return result

    def _live_result(
        self, prepared: PreparedRun, process: LiveProcess, launch: LiveLaunch, end: TurnEnd
    ) -> RunResult:
        response = end.response
        native_id = process.session.native_session_id or (response.session_id if response else "")
        stopped = _stop_error(ProcessOutcome(None, None, end.stopped), self._config, 0) if end.stopped else ""
        if stopped or response is None:
            finished = Finished(
                -1,
                error=stopped or end.error,
                native_session_id=native_id,
                usage=response.usage if response else None,
            )
        else:
            finished = Finished(
                1 if response.error else 0,
                output="" if response.error else response.content,
                error=response.error,
                native_session_id=native_id,
                usage=response.usage,
                native_message_id=response.message_id,
            )
        return _result(finished, prepared, self._clock.seconds(), command=launch.argv)

    def _ended(
        self, prepared: PreparedRun, result: RunResult, outcome: ProcessOutcome, finished: Finished
    ) -> None:
        """What every run does once its CLI has ended: log a failure, clean up after an ephemeral one."""
        self._log_failure(prepared, result, outcome.reason)
        if prepared.request.ephemeral and finished.native_session_id:
            self._cleanup.start(prepared.backend, prepared.command[0], finished.native_session_id)

    @property
    def cleanups(self) -> int:
        """How many clean-ups of ephemeral native sessions are under way."""
        return self._cleanup.under_way

    def settled(self) -> Deferred[None]:
        """A Deferred firing once the clean-ups under way have ended."""
        return self._cleanup.settled()

    def _log_failure(self, prepared: PreparedRun, result: RunResult, reason: StopReason) -> None:
        """
        Log a failed run once, here, where every run of every API ends:
        its backend, exit status, why it ended and what the CLI said, with
        secrets redacted.  A run cancelled (its client gone) normally
        raises instead of ending here; a cancelled or shut-down run is no
        fault of the CLI either way (the runner logs why it stopped it).
        """
        if result.succeeded or reason in (StopReason.CANCELLED, StopReason.SHUTDOWN):
            return
        error = redact(result.error, self._secrets)
        if len(error) > LOGGED_ERROR_LIMIT:
            error = error[:LOGGED_ERROR_LIMIT] + "..."
        log.warn(
            "Backend run failed backend={backend} exit_code={exit_code} reason={reason} error={error}",
            backend=prepared.backend.name,
            exit_code=result.exit_code,
            reason=reason.value,
            error=error,
        )


def _stop_error(outcome: ProcessOutcome, config: ClinvkConfig, limit: int) -> str:
    """Why the server stopped (or could not start) a run, or C{""}."""
    reason = outcome.reason
    if reason is StopReason.START_FAILED:
        return outcome.start_error
    if reason is StopReason.TIMEOUT:
        return f"backend command timed out after {config.unified_flags.command_timeout_secs}s"
    if reason is StopReason.IDLE:
        return f"backend produced no output for {config.server.output_idle_timeout_secs}s"
    if reason is StopReason.OUTPUT_LIMIT:
        return f"stream event exceeded maximum size limit of {limit} bytes; consider reducing output size"
    if reason is StopReason.SHUTDOWN:
        return "server is shutting down"
    return ""


def _turn_usage(prepared: PreparedRun, usage: TokenUsage | None) -> TokenUsage | None:
    """
    The tokens of this turn alone, from what the CLI reported: for a CLI
    that reports a resumed conversation's running total, the total less
    what the conversation had used before.
    """
    before = prepared.request.resumed_usage
    if usage is None or before is None or not prepared.backend.reports_running_usage:
        return usage
    return usage.since(before)


def _turn_usage_event(prepared: PreparedRun, event: UnifiedEvent) -> UnifiedEvent:
    """A C{done} event with L{_turn_usage}; any other event as it is."""
    usage = event.content.get("token_usage") if event.type == "done" else None
    if usage is None or prepared.request.resumed_usage is None:
        return event
    own = _turn_usage(prepared, TokenUsage.from_wire(usage))
    assert own is not None
    return attrs.evolve(event, content={**event.content, "token_usage": own.as_dict()})


def _result(
    finished: Finished,
    prepared: PreparedRun,
    parsed_at: float,
    *,
    start_failed: bool = False,
    command: tuple[str, ...] | None = None,
) -> RunResult:
    """
    The result of C{prepared}'s run from what its output decided.

    @param command: What ran, when it was not C{prepared}'s own command
        (a live process's argv).
    """
    return RunResult(
        parsed_at=parsed_at,
        start_failed=start_failed,
        exit_code=finished.exit_code,
        output=finished.output,
        error=finished.error,
        native_session_id=finished.native_session_id,
        usage=finished.usage,
        command=prepared.command if command is None else command,
        native_message_id=finished.native_message_id,
    )


class _Stamped:
    """A sink that stamps each event with the time it is put."""

    def __init__(self, sink: Sink[UnifiedEvent], clock: IReactorTime) -> None:
        self._sink = sink
        self._clock = clock

    def put(self, item: UnifiedEvent) -> None:
        self._sink.put(attrs.evolve(item, timestamp=self._clock.seconds()))

    def running(self, source: IPushProducer | None = None) -> None:
        self._sink.running(source)
