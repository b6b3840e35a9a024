# -*- test-case-name: tests.backends.test_runtime -*-
"""
Running a backend for a request: pre-flight validation
(docs/design/cli-runs.md#preflight), dry runs (docs/design/cli-runs.md#dry-runs),
non-streaming runs (docs/design/cli-runs.md#capture), streaming runs
(docs/design/cli-runs.md#stream-reading) and the clean-up of ephemeral native
sessions (docs/design/cli-runs.md#ephemeral-cleanup).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from attrs import frozen

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.backends import events
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.flags import check_extra_flags
from clinvk.backends.installed import InstalledCLI, find_installed
from clinvk.backends.options import REQUESTED_FORMATS, unified_options
from clinvk.backends.results import Finished, StreamOutcome, finish_response
from clinvk.backends.workdir import check_workdir
from clinvk.config import ClinvkConfig
from clinvk.errors import ShuttingDown
from clinvk.interfaces import IBackend
from clinvk.logs import redact, secret_values
from clinvk.model import RunRequest, RunResult, TokenUsage, UnifiedEvent, UnifiedOptions
from clinvk.process.admission import Admission
from clinvk.process.protocol import BufferedCapture, ICapture, LineCapture
from clinvk.process.runner import ProcessOutcome, ProcessSpec, RunningProcess, StopReason
from clinvk.process.supervisor import ProcessSupervisor

log = Logger()

# A stream consumer that falls this many events behind pauses the child.
STREAM_HIGH_WATER = 64
STREAM_LOW_WATER = 16

# How many of a stream's last non-JSON lines are kept, to explain a
# failure the CLI did not report as an event.
UNPARSED_TAIL_LINES = 5

# How long the clean-up of a native session may take.
CLEANUP_TIMEOUT = 30.0

# How much of a failed CLI's message the log keeps (a stack trace may follow it).
LOGGED_ERROR_LIMIT = 2000


class PreflightError(Exception):
    """A request failed pre-flight validation; the message is the error text."""


class UnknownBackend(PreflightError):
    """The request names no registered backend."""


class BackendNotAvailable(PreflightError):
    """The backend's CLI is not on the server's C{PATH}."""


class UnusableRequest(PreflightError):
    """The request holds a value no command line can carry."""


@frozen
class PreparedRun:
    """A request that passed pre-flight, ready to run."""

    request: RunRequest
    backend: IBackend
    options: UnifiedOptions
    command: tuple[str, ...]
    stdin: bytes

    @property
    def description(self) -> str:
        """What a dry run reports (docs/design/cli-runs.md#dry-runs)."""
        arguments = " ".join(self.command[1:])
        return f"Would execute: {self.command[0]} [{arguments}] < stdin ({len(self.stdin)} bytes)"


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
        (docs/design/decisions.md#d4-admission-control); by default, no limit.
    @param observe_execution: Told the backend, success and seconds of
        every execution past pre-flight (docs/design/cli-runs.md#execution-metrics),
        when metrics are on.
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
    ) -> None:
        self._config = config
        self._backends = dict(sorted(backends.items()))
        self._supervisor = supervisor
        self._availability = availability
        self._clock = clock
        self._environ = dict(environ)
        self._secrets = secret_values(environ)
        self._home = home
        self._admission = admission or Admission.unlimited(clock)
        self._observe_execution = observe_execution
        self._warned_allowed_tools: set[str] = set()
        self._cleanups: set[Deferred[None]] = set()

    def installed(self) -> Deferred[list[InstalledCLI]]:
        """Which of the backends' CLIs are on C{PATH}, at which versions."""
        return Deferred.fromCoroutine(
            find_installed(tuple(self._backends), self._availability, self._supervisor, self._environ)
        )

    # -- pre-flight

    def prepare(self, request: RunRequest, *, streaming: bool = False) -> PreparedRun:
        """
        Validate C{request} in the order of docs/design/cli-runs.md#preflight and
        build its command line.

        @raise PreflightError: With the exact error text of the first
            failed check.
        """
        requested = request.output_format.strip().lower()
        if requested not in REQUESTED_FORMATS:
            raise PreflightError(
                f'invalid output_format "{request.output_format}": '
                "must be one of default, text, json, stream-json"
            )
        server = self._config.server
        problem = check_workdir(
            request.workdir, allowed=server.allowed_workdir_prefixes, blocked=server.blocked_workdir_prefixes
        )
        if problem:
            raise PreflightError(problem)
        backend = self._backends.get(request.backend)
        if backend is None:
            raise UnknownBackend(
                f'unknown backend "{request.backend}" (available: [{" ".join(self._backends)}])'
            )
        problem = check_extra_flags(backend.name, backend.allowed_flags, request.extra)
        if problem:
            raise PreflightError(problem)
        executable = self._availability.locate(backend.name)
        if executable is None:
            raise BackendNotAvailable(f'backend "{backend.name}" is not available')

        options = unified_options(request, self._config, streaming=streaming)
        if (
            options.allowed_tools
            and backend.name != "claude"
            and backend.name not in self._warned_allowed_tools
        ):
            self._warned_allowed_tools.add(backend.name)
            log.warn(
                "allowed_tools option is only supported by Claude backend; ignoring for this backend "
                "backend={backend}",
                backend=backend.name,
            )
        command = backend.command(executable, options, request.resume_id)
        if any("\x00" in argument for argument in command):
            # The model, system prompt or a flag: no command line can carry it.
            raise UnusableRequest("invalid request: a command-line value contains a NUL character")
        stdin = backend.stdin_text(options, request.prompt).encode("utf-8")
        return PreparedRun(request, backend, options, tuple(command), stdin)

    def _spec(self, prepared: PreparedRun) -> ProcessSpec:
        flags = self._config.unified_flags
        server = self._config.server
        return ProcessSpec(
            argv=prepared.command,
            env=self._environ,
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
        Run C{request} to completion (docs/design/cli-runs.md#output-parsing).
        Pre-flight failures and start failures are results with
        C{exit_code} 1, not errors.

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

    async def execute(self, prepared: PreparedRun) -> RunResult:
        """Run a prepared, non-streaming request to completion."""
        started = self._clock.seconds()
        result = await self._execute(prepared)
        self._observe(prepared, started, result.exit_code == 0 and not result.start_failed)
        return result

    async def _execute(self, prepared: PreparedRun) -> RunResult:
        if prepared.options.dry_run:
            return RunResult(exit_code=0, output=prepared.description, command=prepared.command, dry_run=True)
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
        self._log_failure(prepared, result, outcome)
        if prepared.request.ephemeral and finished.native_session_id:
            self._clean_up_later(prepared, finished.native_session_id)
        return result

    # -- streaming

    def stream(self, prepared: PreparedRun) -> EventStream:
        """
        Start a prepared streaming run (docs/design/cli-runs.md#stream-reading).  Iterate the
        returned L{EventStream} for its events; its L{EventStream.result}
        fires with the run's result once the process has ended.
        """
        stream = EventStream(self._clock)
        started = self._clock.seconds()

        async def observed() -> RunResult:
            result = await self._stream(prepared, stream)
            # A stream fails on an error too (docs/design/cli-runs.md#execution-metrics).
            self._observe(prepared, started, result.exit_code == 0 and not result.error)
            return result

        stream._attach(Deferred.fromCoroutine(observed()))
        return stream

    async def _stream(self, prepared: PreparedRun, stream: EventStream) -> RunResult:
        if prepared.options.dry_run:
            stream._push(events.message(prepared.description, 0))
            stream._push(events.done(0, None))
            return RunResult(exit_code=0, output=prepared.description, command=prepared.command, dry_run=True)
        backend = prepared.backend
        parser = backend.stream_parser()
        outcome_watch = StreamOutcome()
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
                stream._push(event)

        limit = self._config.server.max_run_output_bytes
        capture = LineCapture(on_line, limit, merge_stderr=backend.merges_stderr)
        run = await self._start(prepared, capture)
        stream._started(run)
        outcome = await run.wait()
        error = _stop_error(outcome, self._config, limit)
        if outcome.reason is StopReason.OUTPUT_LIMIT:
            too_long = events.error(error, 0, code="stream_line_too_long")
            outcome_watch.observe(too_long)
            stream._push(too_long)
        stderr = capture.stderr_text() or "\n".join(unparsed)
        finished = outcome_watch.finish(outcome.reported_exit_code, stderr, error)
        if finished.exit_code != 0 and not outcome_watch.failure_seen:
            # Every failure is visible in the stream (docs/design/cli-runs.md#stream-outcome).
            stream._push(events.error(finished.error, 0, code=f"exit_{finished.exit_code}"))
        start_failed = outcome.reason is StopReason.START_FAILED
        result = _result(finished, prepared, self._clock.seconds(), start_failed=start_failed)
        self._log_failure(prepared, result, outcome)
        if prepared.request.ephemeral and finished.native_session_id:
            self._clean_up_later(prepared, finished.native_session_id)
        return result

    def _log_failure(self, prepared: PreparedRun, result: RunResult, outcome: ProcessOutcome) -> None:
        """
        Log a failed run once, here, where every run of every API ends:
        its backend, exit status, why it ended and what the CLI said, with
        secrets redacted.  A run cancelled (its client gone) normally
        raises instead of ending here; a cancelled or shut-down run is no
        fault of the CLI either way (the runner logs why it stopped it).
        """
        if result.succeeded or outcome.reason in (StopReason.CANCELLED, StopReason.SHUTDOWN):
            return
        error = redact(result.error, self._secrets)
        if len(error) > LOGGED_ERROR_LIMIT:
            error = error[:LOGGED_ERROR_LIMIT] + "..."
        log.warn(
            "Backend run failed backend={backend} exit_code={exit_code} reason={reason} error={error}",
            backend=prepared.backend.name,
            exit_code=result.exit_code,
            reason=outcome.reason.value,
            error=error,
        )

    # -- ephemeral clean-up

    def _clean_up_later(self, prepared: PreparedRun, native_id: str) -> None:
        """
        Clean up after the run without holding its answer back: Gemini's
        C{--delete-session} is a CLI start of its own, seconds long.  The
        clean-up is kept until it ends (L{cleanups}).
        """
        cleanup = Deferred.fromCoroutine(self._clean_up(prepared, native_id))
        self._cleanups.add(cleanup)

        def done(result: object) -> None:
            self._cleanups.discard(cleanup)
            if isinstance(result, Failure):
                log.failure(
                    "Native session clean-up failed backend={backend}", result, backend=prepared.backend.name
                )

        cleanup.addBoth(done)

    @property
    def cleanups(self) -> int:
        """How many clean-ups of ephemeral native sessions are under way."""
        return len(self._cleanups)

    async def _clean_up(self, prepared: PreparedRun, native_id: str) -> None:
        """Remove the native session an ephemeral run left (docs/design/cli-runs.md#ephemeral-cleanup)."""
        backend = prepared.backend
        command = backend.cleanup_command(prepared.command[0], native_id)
        if command is not None:
            spec = ProcessSpec(argv=command, env=self._environ, timeout=CLEANUP_TIMEOUT)
            try:
                run = self._supervisor.start(
                    spec, BufferedCapture(64 * 1024), label=f"{backend.name} clean-up"
                )
            except ShuttingDown:
                # The run's own result matters more than its tidying-up.
                log.info("Skipped native session clean-up backend={backend}", backend=backend.name)
            else:
                await run.wait()
        roots = backend.session_file_roots(self._home)
        if roots:
            await self._delete_session_file(roots[0], native_id)

    async def _delete_session_file(self, root: str, native_id: str) -> None:
        """
        Delete the first file under C{root} whose name holds C{native_id}:
        today's dated directory first, then the whole tree, one directory
        per reactor turn so that a large tree never stalls the reactor.
        """
        today = time.localtime(self._clock.seconds())
        dated = os.path.join(root, f"{today.tm_year:04d}", f"{today.tm_mon:02d}", f"{today.tm_mday:02d}")
        if _delete_matching(dated, native_id):
            return
        pending = deque([root])
        while pending:
            directory = pending.popleft()
            if _delete_matching(directory, native_id, subdirectories=pending):
                return
            await deferLater(self._clock, 0, lambda: None)


def _delete_matching(directory: str, native_id: str, subdirectories: deque[str] | None = None) -> bool:
    """
    Delete the first regular file in C{directory} whose name contains
    C{native_id}; queue its subdirectories.  Errors are ignored.
    """
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and native_id in entry.name:
                    os.unlink(entry.path)
                    return True
                if subdirectories is not None and entry.is_dir(follow_symlinks=False):
                    subdirectories.append(entry.path)
    except OSError:
        pass
    return False


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
    finished: Finished, prepared: PreparedRun, parsed_at: float, *, start_failed: bool = False
) -> RunResult:
    return RunResult(
        parsed_at=parsed_at,
        start_failed=start_failed,
        exit_code=finished.exit_code,
        output=finished.output,
        error=finished.error,
        native_session_id=finished.native_session_id,
        usage=finished.usage,
        command=prepared.command,
    )


class EventStream:
    """
    The events of one streaming run, as an asynchronous iterator.

    Events are queued as the child produces them; when the consumer falls
    behind, the child's output is paused until it catches up, so a slow
    client slows the CLI instead of filling the server's memory.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._queue: deque[UnifiedEvent] = deque()
        self._waiting: Deferred[None] | None = None
        self._finished = False
        self._run: RunningProcess | None = None
        self._body: Deferred[RunResult] | None = None
        self._outcome: RunResult | None = None
        self._failure: Any = None
        self._result_waiters: list[Deferred[RunResult]] = []
        self._is_started = False
        self._start_waiters: list[Deferred[None]] = []

    def _started(self, run: RunningProcess) -> None:
        self._run = run
        self._is_started = True
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def started(self) -> Deferred[None]:
        """
        A Deferred firing once the CLI runs (at once for a dry run), or
        failing as the run does if it ends before (no free run slot, the
        server shutting down).
        """
        waiter: Deferred[None] = Deferred()
        if self._is_started or self._outcome is not None:
            waiter.callback(None)
        elif self._failure is not None:
            waiter.errback(self._failure)
        else:
            self._start_waiters.append(waiter)
        return waiter

    def _attach(self, body: Deferred[RunResult]) -> None:
        body.addCallbacks(self._done, self._failed)
        self._body = body

    def _push(self, event: UnifiedEvent) -> None:
        self._queue.append(UnifiedEvent(event.type, event.content, event.sequence, self._clock.seconds()))
        if len(self._queue) >= STREAM_HIGH_WATER and self._run is not None:
            self._run.pause()
        self._wake()

    def _done(self, result: RunResult) -> None:
        self._finished = True
        self._outcome = result
        self._wake()
        waiters, self._start_waiters = self._start_waiters, []
        for started in waiters:
            started.callback(None)
        for waiter in self._result_waiters:
            waiter.callback(result)
        self._result_waiters.clear()

    def _failed(self, failure: Any) -> None:
        self._finished = True
        self._failure = failure
        self._wake()
        waiters, self._start_waiters = self._start_waiters, []
        for started in waiters:
            started.errback(failure)
        for waiter in self._result_waiters:
            waiter.errback(failure)
        self._result_waiters.clear()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> UnifiedEvent:
        while not self._queue:
            if self._finished:
                raise StopAsyncIteration
            self._waiting = Deferred()
            await self._waiting
        event = self._queue.popleft()
        if len(self._queue) <= STREAM_LOW_WATER and self._run is not None:
            # The run knows whether it is paused; resuming a reading run is a no-op.
            self._run.resume()
        return event

    def result(self) -> Deferred[RunResult]:
        """A Deferred firing with the run's result once it has ended."""
        waiter: Deferred[RunResult] = Deferred()
        if self._outcome is not None:
            waiter.callback(self._outcome)
        elif self._failure is not None:
            waiter.errback(self._failure)
        else:
            self._result_waiters.append(waiter)
        return waiter

    def cancel(self) -> None:
        """Stop the run (the client has gone); its result fails with C{CancelledError}."""
        if self._body is not None and not self._body.called:
            self._body.cancel()
