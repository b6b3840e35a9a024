# -*- test-case-name: tests.compat.test_conversations,tests.web.test_compat_sessions -*-
"""
Conversations on the compatibility APIs (docs/design/conversations.md): a
request whose history is a conversation clinvk holds, plus new input,
continues that conversation's CLI session (its live process where there is
one) and sends the new input alone; any other history starts a session
seeded with the whole of it, as a stateless request would.  Turns of one
conversation run one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import attrs

from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from clinvk.compat.lineage import History, entry, history, message_of, point_of, root
from clinvk.compat.mcp import MCPBridge
from clinvk.compat.runs import CompatRunner, answer_of, failed
from clinvk.compat.structured import AnswerFormat, answered, instructed
from clinvk.compat.tool_runs import Segment, ToolCallsMade, ToolRun, collected
from clinvk.compat.tools import NONE, ClientTool, ToolCall, ToolChoice, ToolResult, calls_text
from clinvk.errors import BackendFailed, BackendUnavailable, ClinvkError, InvalidRequest, SessionNotFound
from clinvk.model import ClientTools, RunRequest, RunResult
from clinvk.orchestration import Orchestrator
from clinvk.orchestration.turns import DISCONNECTED, SessionTurns
from clinvk.runs.runtime import EventChannel
from clinvk.sessions import SessionRecord

log = Logger()


class LineageIndex:
    """
    Where each conversation of the store stands: this process's copy of
    the points of every session that has a lineage, most recently changed
    last.
    """

    def __init__(self) -> None:
        self._points: dict[str, tuple[str, ...]] = {}
        self._changed: set[str] = set()

    def load(self, records: Sequence[SessionRecord]) -> None:
        """Add the lineages of C{records}, except those changed since the store was read."""
        for record in sorted(records, key=lambda record: record.last_used):
            if record.lineage and record.id not in self._changed:
                self._points[record.id] = tuple(map(point_of, record.lineage))
        self._changed.clear()

    def put(self, session_id: str, lineage: tuple[str, ...]) -> None:
        """C{session_id} now stands at the end of C{lineage}; nowhere when it is empty."""
        self._points.pop(session_id, None)
        self._changed.add(session_id)
        if lineage:
            self._points[session_id] = tuple(map(point_of, lineage))

    def standing_at(self, point: str) -> list[str]:
        """The sessions whose conversation stands at C{point}, most recent first."""
        return [sid for sid, points in reversed(self._points.items()) if points[-1] == point]

    def passed(self, point: str) -> str:
        """The most recent session whose conversation went through C{point}, or C{""}."""
        return next((sid for sid, points in reversed(self._points.items()) if point in points), "")


@attrs.define
class Turn:
    """
    One request's turn of a conversation.

    @ivar request: What runs: the new input alone for a continued or
        natively forked conversation, the seeded history otherwise.
    @ivar session_id: The session it is a turn of, once known; C{""} when
        conversations are off or the store could not be written.
    @ivar parent_id: For a new session, the one whose history it departs
        from (an edited or regenerated turn), if known.
    @ivar base: The lineage this turn's answer extends.
    @ivar tools: The client's tools the CLI is offered
        (docs/design/client-tools.md); none when C{tool_choice} is C{none}.
    @ivar keep_cli_tools: Whether the CLI keeps its own tools beside them.
    @ivar call_prefix: What this API's tool call ids start with.
    @ivar tool_run: The run whose CLI may call the tools, once it runs.
    @ivar results: The tool results a follow-up brings, by call id.
    @ivar resuming: Whether this turn answers the calls its conversation's
        CLI waits on, and goes on reading that run.
    @ivar parked: Whether the turn ended with calls its CLI waits on: it
        ends with the follow-up's turn instead.
    """

    request: RunRequest
    history: History | None = None
    start: str = ""
    api: str = ""
    announce: Callable[[str], object] = lambda session_id: None
    session_id: str = ""
    parent_id: str = ""
    base: tuple[str, ...] = ()
    ended: bool = False
    tools: tuple[ClientTool, ...] = ()
    keep_cli_tools: bool = False
    call_prefix: str = "call_"
    tool_run: ToolRun | None = None
    results: Mapping[str, ToolResult] = attrs.field(factory=dict)
    resuming: bool = False
    parked: bool = False

    @property
    def uses_tools(self) -> bool:
        """Whether the turn's answer may end with calls of the client's tools."""
        return bool(self.tools) or self.resuming

    def lineage(self, result: RunResult, output: str) -> tuple[str, ...]:
        """Where the conversation stands once C{output} answered this turn."""
        assert self.history is not None
        start = self.history.prefix or self.start
        answered = self.history.answered(start, output)
        return (*self.base, entry(answered, result.native_message_id))


@attrs.frozen
class Answer:
    """
    A turn's answer without streaming: the run's result, the text, and the
    calls of the client's tools that end it, if any (the result then says
    nothing yet: the run goes on once their results come).
    """

    result: RunResult
    text: str
    calls: tuple[ToolCall, ...] = ()


@attrs.frozen
class _Parked:
    """
    A turn whose CLI waits on calls of the client's tools: the run, and
    where its conversation stands with the calls made.
    """

    turn: Turn
    run: ToolRun
    lineage: tuple[str, ...]


class Conversations:
    """
    The turns of the compatibility APIs.

    @param runner: Runs the turns.
    @param orchestrator: Keeps the sessions and their turns, and waits at
        shutdown for the turns being recorded.
    @param enabled: C{server.compat_sessions}: when false, every request
        runs ephemeral and stateless, its history flattened.
    @param bridge: Serves the client's tools to the CLIs; without it, a
        request with tools is a 503.
    @param clock: Times the waits for the client's tool results.
    @param tool_call_timeout_secs: How long a CLI waits for them.
    """

    def __init__(
        self,
        *,
        runner: CompatRunner,
        orchestrator: Orchestrator,
        enabled: bool,
        bridge: MCPBridge | None = None,
        clock: IReactorTime | None = None,
        tool_call_timeout_secs: int = 300,
    ) -> None:
        self._runner = runner
        self._bridge = bridge
        self._clock = clock
        self._tool_timeout = tool_call_timeout_secs
        self._parked: dict[str, _Parked] = {}
        self._orchestrator = orchestrator
        self._turns: SessionTurns = orchestrator.turns
        self._store = orchestrator.store
        self._enabled = enabled
        self._index = LineageIndex()
        self._loaded = False
        self._loading = DeferredLock()
        self._locks: dict[str, DeferredLock] = {}

    @property
    def enabled(self) -> bool:
        """Whether conversations continue CLI sessions (C{server.compat_sessions})."""
        return self._enabled

    # -- finding the conversation

    async def begin(
        self,
        run: RunRequest,
        turns: Sequence[tuple[str, str]],
        *,
        api: str,
        pinned: str = "",
        announce: Callable[[str], object] = lambda session_id: None,
        history_param: str = "messages",
        results: Mapping[str, ToolResult] | None = None,
    ) -> Turn:
        """
        The turn of a request: a continued conversation (held until the
        turn ends) or a new one.

        @param run: The request as a stateless run: its whole history as
            the prompt, its system text, backend and model.
        @param turns: Its history, system messages left out.
        @param api: Which API it came through, a tag of a new session.
        @param pinned: The session the client named (C{X-Clinvk-Session-Id}).
        @param announce: Told the session id as soon as it is known.
        @param history_param: The request member holding the history, for
            the C{param} of an error about it.
        @param results: The tool results its history brings, by call id: a
            follow-up answering calls a CLI waits on goes on with that run
            (docs/design/client-tools.md#tool-follow-up).
        @raise ClinvkError: When C{pinned} cannot be continued: 404 for no
            such session, 400 for another backend's or no new input, 409
            while it has no native conversation yet or a turn of the
            native API runs.
        """
        parked = self._parked_for(results or {})
        if not self._enabled:
            turn = Turn(request=run, announce=announce)
            if parked is not None:
                self._resume(turn, parked, results or {})
            return turn
        start = root(run.backend, run.model, run.system_prompt)
        found = history(start, turns)
        turn = Turn(
            request=attrs.evolve(run, ephemeral=False),
            history=found,
            start=start,
            api=api,
            announce=announce,
            base=found.points,
        )
        if parked is not None and (not parked.lineage or point_of(parked.lineage[-1]) == found.prefix):
            self._resume(turn, parked, results or {})
        elif pinned:
            await self._continue_pinned(turn, pinned, history_param)
        elif turn.history is not None and turn.history.prefix and _has_user_input(turn.history):
            await self._continue_known(turn)
        return turn

    async def _continue_pinned(self, turn: Turn, pinned: str, history_param: str) -> None:
        assert turn.history is not None
        if not _has_user_input(turn.history):
            raise InvalidRequest(
                "a pinned conversation needs a user message after the last assistant message",
                param=history_param,
            )
        found = await self._turns.find(pinned, turn.request)
        await self._hold(found.id)
        try:
            record = await self._store.get(found.id)
        except BaseException:
            self._let_go(found.id)
            raise
        self._continue(turn, record)

    async def _continue_known(self, turn: Turn) -> None:
        assert turn.history is not None
        prefix = turn.history.prefix
        await self._load()
        for session_id in self._index.standing_at(prefix):
            await self._lock(session_id).acquire()
            try:
                record = await self._store.get(session_id)
            except SessionNotFound:
                self._index.put(session_id, ())
                self._unlock(session_id)
                continue
            except BaseException:
                self._unlock(session_id)
                raise
            standing = record.lineage and point_of(record.lineage[-1]) == prefix
            if standing and record.backend_session_id and self._claim(session_id):
                self._continue(turn, record)
                turn.base = record.lineage
                return
            # Another turn moved it on while this one waited: a fork.
            self._unlock(session_id)
        turn.parent_id = self._index.passed(prefix)
        if turn.parent_id:
            await self._fork(turn, turn.parent_id, prefix)

    async def _fork(self, turn: Turn, parent_id: str, point: str) -> None:
        """
        Make C{turn} fork C{parent_id}'s conversation at C{point} where its
        CLI can (docs/design/conversations.md#native-fork); otherwise it
        stays seeded with the whole history.
        """
        assert turn.history is not None
        try:
            parent = await self._store.get(parent_id)
        except SessionNotFound:
            return
        marks = [message_of(item) for item in parent.lineage if point_of(item) == point]
        backend = self._runner.backends.get(parent.backend)
        if not marks or not marks[0] or backend is None or not parent.backend_session_id:
            return
        flags = tuple(backend.fork_flags(marks[0]))
        if not flags:
            return
        turn.request = attrs.evolve(
            turn.request,
            prompt=turn.history.prompt,
            resume_id=parent.backend_session_id,
            extra=(*turn.request.extra, *flags),
        )

    def _continue(self, turn: Turn, record: SessionRecord) -> None:
        """Make C{turn}, holding C{record}, a turn of its conversation."""
        assert turn.history is not None
        turn.request = SessionTurns.continuing(attrs.evolve(turn.request, prompt=turn.history.prompt), record)
        turn.session_id = record.id
        turn.announce(record.id)

    async def _load(self) -> None:
        """Read every session's lineage from the store, once (it survives a restart)."""
        if self._loaded:
            return
        await self._loading.acquire()
        try:
            if not self._loaded:
                page = await self._store.list()
                self._index.load(page.sessions)
                self._loaded = True
        finally:
            self._loading.release()

    # -- the client's tools (docs/design/client-tools.md#tool-follow-up)

    def _parked_for(self, results: Mapping[str, ToolResult]) -> _Parked | None:
        """The parked turn whose calls C{results} answer, if any."""
        return next((self._parked[call_id] for call_id in results if call_id in self._parked), None)

    def _unpark(self, run: ToolRun) -> _Parked | None:
        """Forget the parked turn of C{run}; it, if there was one."""
        found = None
        for call_id, parked in list(self._parked.items()):
            if parked.run is run:
                found = self._parked.pop(call_id)
        return found

    def _resume(self, turn: Turn, parked: _Parked, results: Mapping[str, ToolResult]) -> None:
        """Make C{turn} the follow-up of C{parked}: it holds the conversation now, and reads the run."""
        self._unpark(parked.run)
        turn.request = parked.turn.request
        turn.session_id = parked.turn.session_id
        turn.base = parked.lineage
        turn.tool_run = parked.run
        turn.results = dict(results)
        turn.resuming = True
        turn.call_prefix = parked.turn.call_prefix
        if turn.session_id:
            turn.announce(turn.session_id)

    def offer_tools(
        self, turn: Turn, tools: Sequence[ClientTool], choice: ToolChoice, keep_cli_tools: bool
    ) -> None:
        """
        Give C{turn} the client's C{tools}, as C{choice} allows; a follow-up
        going on with its run keeps that run's.
        """
        if turn.resuming or not tools or choice.mode == NONE:
            return
        turn.tools = tuple(tools)
        turn.keep_cli_tools = keep_cli_tools
        turn.request = instructed(turn.request, choice.instruction())

    def park(self, turn: Turn, text: str, calls: Sequence[ToolCall]) -> None:
        """
        C{turn}'s answer was C{text} and C{calls}, which its CLI waits on:
        it stays open, holding its conversation, until a follow-up brings
        the results or the client's time runs out.
        """
        assert turn.tool_run is not None
        turn.parked = True
        lineage = (
            turn.lineage(RunResult(exit_code=0), calls_text(text, calls)) if turn.history is not None else ()
        )
        parked = _Parked(turn, turn.tool_run, lineage)
        for call in calls:
            self._parked[call.id] = parked

    def _expired(self, run: ToolRun) -> None:
        """The client did not come back with C{run}'s results: its turn ends, failed."""
        parked = self._unpark(run)
        if parked is None:
            return
        parked.turn.parked = False
        error = "the client did not return the results of its tools in time"
        self.end(parked.turn, RunResult(exit_code=1, error=error), "")

    async def _tool_segment(self, turn: Turn) -> Segment:
        """Start C{turn}'s run with its tools: its first segment."""
        if self._bridge is None or self._clock is None or not await self._bridge.ready():
            raise BackendUnavailable("client tools are unavailable: the MCP endpoint is not listening")
        run = ToolRun(
            bridge=self._bridge,
            tools=turn.tools,
            clock=self._clock,
            call_prefix=turn.call_prefix,
            timeout_secs=float(self._tool_timeout),
            expired=self._expired,
        )
        turn.tool_run = run
        try:
            offered = ClientTools(
                run.url,
                tuple(tool.name for tool in turn.tools),
                keep_cli_tools=turn.keep_cli_tools,
                timeout_secs=self._tool_timeout,
                endpoint=self._bridge.endpoint,
                secret=run.toolbox.secret,
            )
            turn.request = attrs.evolve(turn.request, client_tools=offered)
            prepared = self._runner.prepare(turn.request, streaming=True)
            await self._opened(turn, prepared.options.model, prepared.request)
            cli = await self._runner.stream(prepared, turn.session_id)
        except BaseException:
            run.cancel()
            raise
        return run.start(cli)

    # -- one turn at a time

    def _lock(self, session_id: str) -> DeferredLock:
        return self._locks.setdefault(session_id, DeferredLock())

    def _unlock(self, session_id: str) -> None:
        lock = self._locks[session_id]
        # Releasing may run the next turn's waiting code, which may unlock too.
        lock.release()
        if self._locks.get(session_id) is lock and not lock.locked and not lock.waiting:
            del self._locks[session_id]

    def _claim(self, session_id: str) -> bool:
        """Claim C{session_id} against the native API's turns; C{False} while one runs."""
        try:
            self._turns.claim(session_id)
        except Exception:
            return False
        return True

    async def _hold(self, session_id: str) -> None:
        """Wait for this conversation's turn, then claim it."""
        await self._lock(session_id).acquire()
        try:
            self._turns.claim(session_id)
        except BaseException:
            self._unlock(session_id)
            raise

    def _let_go(self, session_id: str) -> None:
        self._turns.release(session_id)
        self._unlock(session_id)

    # -- running it

    async def _opened(self, turn: Turn, model: str, request: RunRequest) -> None:
        """Give a new conversation's turn its session, once it is known to run."""
        if turn.session_id or not self._enabled:
            return
        session_id = await self._turns.open(request, model, {}, tags=(turn.api,), parent_id=turn.parent_id)
        if not session_id:
            return
        await self._hold(session_id)
        turn.session_id = session_id
        turn.announce(session_id)

    async def complete(self, turn: Turn, answer_format: AnswerFormat | None = None) -> RunResult:
        """
        Run C{turn} to completion; raises as L{CompatRunner.complete}.

        @param answer_format: The shape the answer must have; its output is
            then the checked answer (L{AnswerFormat.checked}, which raises
            when it does not match).
        """
        prepared = self._runner.prepare(turn.request, streaming=False)
        await self._opened(turn, prepared.options.model, prepared.request)
        result = await self._runner.complete(prepared, turn.session_id)
        if answer_format is None:
            return result
        return attrs.evolve(result, output=answer_format.checked(result.output))

    async def stream(self, turn: Turn, answer_format: AnswerFormat | None = None) -> EventChannel | Segment:
        """
        Start streaming C{turn}; raises as L{CompatRunner.stream}.  A turn
        with the client's tools streams a segment (L{segment}).

        @param answer_format: As for L{complete}: an answer is checked
            before any of it is sent, so it runs to completion first and
            arrives as one piece.
        """
        if turn.uses_tools:
            return await self.segment(turn)
        if answer_format is not None:
            result = await self.complete(turn, answer_format)
            return answered(result, result.output)
        prepared = self._runner.prepare(turn.request, streaming=True)
        await self._opened(turn, prepared.options.model, prepared.request)
        return await self._runner.stream(prepared, turn.session_id)

    async def answer(self, turn: Turn, answer_format: AnswerFormat | None = None) -> Answer:
        """
        Run C{turn} to its answer, or to the calls of the client's tools its
        CLI waits on (the turn is then parked, L{park}); raises as
        L{complete}.  Any other end of the turn is recorded.
        """
        if turn.uses_tools:
            text, ended = await collected(await self.segment(turn))
            if isinstance(ended, ToolCallsMade):
                self.park(turn, text, ended.calls)
                return Answer(RunResult(exit_code=0), text, ended.calls)
            result = answer_of(ended, text)
        else:
            result = await self.complete(turn, answer_format)
            text = result.output
        self.end(turn, result, text)
        return Answer(result, text)

    async def segment(self, turn: Turn) -> Segment:
        """
        The events of a turn with the client's tools, ending with the
        run's result or with the calls its CLI waits on
        (docs/design/client-tools.md#tool-runs).
        """
        if turn.resuming:
            assert turn.tool_run is not None
            return turn.tool_run.resume(turn.results)
        return await self._tool_segment(turn)

    # -- recording it

    @contextmanager
    def recorded(self, turn: Turn) -> Iterator[None]:
        """
        Whatever happens in the block, C{turn} ends: as L{end} was told,
        or as failed when the block left without telling it.  A failure
        known before the CLI ran (pre-flight, no run slot, a CLI that did
        not start) leaves the conversation where it stood.
        """
        try:
            yield
        except BaseException as e:
            reason = DISCONNECTED if isinstance(e, CancelledError) else (str(e) or type(e).__name__)
            ran = not isinstance(e, ClinvkError) or isinstance(e, BackendFailed) or turn.resuming
            self._stop_tools(turn)
            self.end(turn, RunResult(exit_code=1, error=reason), "", cli_ran=ran)
            raise
        self._stop_tools(turn)
        self.end(turn, RunResult(exit_code=1, error="the turn ended without an answer"), "")

    def _stop_tools(self, turn: Turn) -> None:
        """A turn that ends without its calls parked stops its tool run, if it has one."""
        if turn.tool_run is not None and not turn.parked:
            self._unpark(turn.tool_run)
            turn.tool_run.cancel()

    def end(self, turn: Turn, result: RunResult, output: str, *, cli_ran: bool = True) -> None:
        """
        Record C{turn}'s end, once: a successful answer C{output} moves its
        conversation on; a failure of a CLI that ran leaves the session
        where no history can follow (its CLI's transcript is unknown); a
        CLI that never ran changed nothing.  The record is written in the
        background; the next turn waits for it.
        """
        if turn.ended or turn.parked:
            return
        turn.ended = True
        if not turn.session_id:
            return
        lineage: tuple[str, ...] | None
        if not failed(result):
            lineage = turn.lineage(result, output)
        else:
            lineage = () if cli_ran else None
        if lineage is not None:
            self._index.put(turn.session_id, lineage)
        recording = Deferred.fromCoroutine(self._record(turn.session_id, result, lineage))
        self._orchestrator.outlive(recording)

    async def _record(self, session_id: str, result: RunResult, lineage: tuple[str, ...] | None) -> None:
        try:
            await self._turns.close(session_id, result, lineage)
        except BaseException:
            log.failure("Could not record a conversation turn session_id={session_id}", session_id=session_id)
        finally:
            self._let_go(session_id)


def _has_user_input(history: History) -> bool:
    return any(role == "user" for role, _ in history.new_input)
