# -*- test-case-name: tests.orchestration.test_prompts -*-
"""
One prompt on one backend, as a single result or as a stream of events
(docs/design/native-api.md#prompt-request), in a new session, an existing one
(docs/design/decisions.md#d3-session-continuation) or none.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.backends import events
from clinvk.errors import ClinvkError
from clinvk.model import RunRequest, RunResult, UnifiedEvent
from clinvk.orchestration.outcomes import Outcome
from clinvk.orchestration.turns import DISCONNECTED, SessionTurns
from clinvk.runs.channel import StreamChannel
from clinvk.runs.runtime import BackendRuntime, PreflightError, PreparedRun
from clinvk.sessions import SessionRecord

log = Logger()


class PromptRunner:
    """
    Runs prompts and keeps their sessions.

    @param runtime: Runs the backend CLIs.
    @param turns: The sessions of prompt runs.
    @param clock: Measures durations.
    """

    def __init__(self, runtime: BackendRuntime, turns: SessionTurns, clock: IReactorTime) -> None:
        self._runtime = runtime
        self._turns = turns
        self._clock = clock
        self._feeds: set[Deferred[None]] = set()

    def _milliseconds_since(self, started: float, until: float = 0.0) -> int:
        return int(((until or self._clock.seconds()) - started) * 1000)

    async def _continued(
        self, request: RunRequest, session_id: str
    ) -> tuple[RunRequest, SessionRecord | None]:
        """
        C{request} as a turn of the session it names, claimed until
        released; unchanged when it names none.
        """
        if not session_id:
            return request, None
        record = await self._turns.find(session_id, request)
        self._turns.claim(record.id)
        return SessionTurns.continuing(request, record), record

    def _prepare(self, request: RunRequest, *, streaming: bool) -> PreparedRun | str:
        """The prepared run, or the error text of why C{request} cannot run."""
        try:
            return self._runtime.prepare(request, streaming=streaming)
        except PreflightError as e:
            return str(e)
        except Exception as e:
            log.failure("Could not prepare a run backend={backend}", backend=request.backend)
            return _text(e)

    async def _open(
        self, prepared: PreparedRun, metadata: Mapping[str, str], record: SessionRecord | None
    ) -> str:
        """The session a prepared run belongs to: its own, a new one, or none."""
        if record is not None:
            return record.id
        if prepared.request.ephemeral:
            return ""
        return await self._turns.open(prepared.request, prepared.options.model, metadata)

    async def run(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> Outcome:
        """
        Run C{request} to completion.  Problems of the run itself are in
        the outcome; cancelling stops the CLI and records the session's
        turn as failed.

        @param session_id: The session to continue
            (docs/design/decisions.md#d3-session-continuation), if any.
        @raise ClinvkError: When C{session_id} cannot be continued, or the
            server cannot start runs (it is shutting down).
        """
        started = self._clock.seconds()
        request, record = await self._continued(request, session_id)
        try:
            return await self._run(request, metadata or {}, record, started)
        finally:
            if record is not None:
                self._turns.release(record.id)

    async def _run(
        self, request: RunRequest, metadata: Mapping[str, str], record: SessionRecord | None, started: float
    ) -> Outcome:
        prepared = self._prepare(request, streaming=False)
        if isinstance(prepared, str):
            # A continued session keeps its id even when the turn cannot run.
            kept = record.id if record is not None else ""
            return Outcome(
                request.backend, 1, self._milliseconds_since(started), error=prepared, session_id=kept
            )
        session = await self._open(prepared, metadata, record)
        try:
            result = await self._runtime.execute(prepared, session)
        except Exception as e:
            if session:
                await self._turns.close(session, _failed(e))
            raise
        # Until the output was parsed: clean-up and bookkeeping excluded.
        duration = self._milliseconds_since(started, result.parsed_at)
        if session:
            await self._turns.close(session, result)
        return _outcome(request.backend, result, duration, session)

    async def stream(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> PromptStream:
        """
        Start streaming C{request}.  Everything that happens once the
        session is known, pre-flight failures included, is an event of the
        returned stream.

        @raise ClinvkError: When C{session_id} cannot be continued.
        """
        request, record = await self._continued(request, session_id)
        stream = PromptStream(request.backend)
        if record is not None:
            stream.session_id = record.id
        feeding = Deferred.fromCoroutine(self._feed(stream, request, metadata or {}, record))
        self._feeds.add(feeding)

        def fed(result: object) -> None:
            self._feeds.discard(feeding)
            if isinstance(result, Failure):
                log.failure("Prompt stream failed", result)

        feeding.addBoth(fed)
        return stream

    def settled(self) -> Deferred[None]:
        """
        A Deferred firing once every stream under way has ended and its
        session turn is recorded (at shutdown, once the supervisor has
        stopped their CLIs).
        """
        return DeferredList(list(self._feeds)).addCallback(lambda _: None)

    def _put(self, stream: PromptStream, event: UnifiedEvent) -> None:
        """Add an event of the server's own to C{stream}, stamped now."""
        stream.put(attrs.evolve(event, timestamp=self._clock.seconds()))

    async def _feed(
        self,
        stream: PromptStream,
        request: RunRequest,
        metadata: Mapping[str, str],
        record: SessionRecord | None,
    ) -> None:
        """
        Run a stream to its end; whatever happens, the stream ends too.
        (Not in a C{finally}: a coroutine closed as garbage must not wake
        its consumer, which may be garbage already.)
        """
        started = self._clock.seconds()
        try:
            outcome = await self._stream_run(stream, request, metadata, record, started)
        except Exception as e:
            log.failure("Prompt stream failed backend={backend}", backend=request.backend)
            self._put(stream, events.error(_text(e), 0))
            outcome = Outcome(
                request.backend,
                1,
                self._milliseconds_since(started),
                error=_text(e),
                session_id=stream.session_id,
            )
        if record is not None:
            self._turns.release(record.id)
        stream.close(outcome)

    async def _stream_run(
        self,
        stream: PromptStream,
        request: RunRequest,
        metadata: Mapping[str, str],
        record: SessionRecord | None,
        started: float,
    ) -> Outcome:
        prepared = self._prepare(request, streaming=True)
        if isinstance(prepared, str):
            self._put(stream, events.error(prepared, 0))
            return Outcome(
                request.backend,
                1,
                self._milliseconds_since(started),
                error=prepared,
                session_id=stream.session_id,
            )
        session = await self._open(prepared, metadata, record)
        stream.session_id = session
        result = await self._events_of(stream, prepared)
        # Until the output was parsed: clean-up and bookkeeping excluded.
        duration = self._milliseconds_since(started, result.parsed_at)
        if session:
            await self._turns.close(session, result)
        return _outcome(request.backend, result, duration, session)

    async def _events_of(self, stream: PromptStream, prepared: PreparedRun) -> RunResult:
        """Run C{prepared} with its events on C{stream}; its result once it has ended."""
        if stream.cancelled:
            return RunResult(exit_code=-1, error=DISCONNECTED)
        running = self._runtime.feed(prepared, stream, stream.session_id)
        stream.stop_with(running.cancel)
        try:
            return await running
        except CancelledError:
            # Keep the native id the CLI reported: the session stays resumable.
            return RunResult(exit_code=-1, error=DISCONNECTED, native_session_id=stream.native_session_id)
        except Exception as e:
            if isinstance(e, ClinvkError):
                # No free run slot, or the server shutting down: the client
                # must see an HTTP error, if nothing was streamed yet.
                stream.refuse(Failure(e))
            # The runtime reports the CLI's own failures as events; this
            # is the server failing to run it at all.
            self._put(stream, events.error(_text(e), 0))
            return RunResult(exit_code=1, error=_text(e))


def _text(error: Exception) -> str:
    """What to tell the client about C{error}."""
    return str(error) or type(error).__name__


def _failed(error: Exception) -> RunResult:
    """The result recorded for a run that ended with C{error} instead of a result."""
    if isinstance(error, CancelledError):
        return RunResult(exit_code=-1, error=DISCONNECTED)
    return RunResult(exit_code=1, error=_text(error))


def _outcome(backend: str, result: RunResult, duration_ms: int, session_id: str) -> Outcome:
    return Outcome(
        backend=backend,
        exit_code=result.exit_code,
        duration_ms=duration_ms,
        output=result.output,
        error=result.error,
        usage=result.usage,
        session_id=session_id,
    )


class PromptStream(StreamChannel[UnifiedEvent, Outcome]):
    """
    The events of one streamed prompt: the CLI's events as it produces
    them, then any event the server adds once the run has ended; its
    result is the prompt's L{Outcome}.  L{started} fails with the
    L{ClinvkError} that refused the run (no free run slot, the server
    shutting down), so that the refusal can be an HTTP error before
    anything is streamed; any other failure is one of its events.

    @ivar backend: The backend of every event.
    @ivar session_id: The session every event belongs to, once known.
    @ivar native_session_id: The CLI's conversation id, once an event
        delivered it.
    """

    def __init__(self, backend: str) -> None:
        super().__init__()
        self.backend = backend
        self.session_id = ""
        self.native_session_id = ""

    def put(self, item: UnifiedEvent) -> None:
        """Add C{item}, noting the CLI's conversation id when it carries it."""
        if item.type == "init" and item.content.get("backend_session_id"):
            self.native_session_id = str(item.content["backend_session_id"])
        super().put(item)
