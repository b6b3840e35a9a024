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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import attrs

from twisted.internet.defer import CancelledError, Deferred, DeferredLock
from twisted.logger import Logger

from clinvk.compat.lineage import History, entry, history, message_of, point_of, root
from clinvk.compat.runs import CompatRunner, failed
from clinvk.compat.structured import AnswerFormat, answered
from clinvk.errors import BackendFailed, ClinvkError, InvalidRequest, SessionNotFound
from clinvk.model import RunRequest, RunResult
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

    def lineage(self, result: RunResult, output: str) -> tuple[str, ...]:
        """Where the conversation stands once C{output} answered this turn."""
        assert self.history is not None
        start = self.history.prefix or self.start
        answered = self.history.answered(start, output)
        return (*self.base, entry(answered, result.native_message_id))


class Conversations:
    """
    The turns of the compatibility APIs.

    @param runner: Runs the turns.
    @param orchestrator: Keeps the sessions and their turns, and waits at
        shutdown for the turns being recorded.
    @param enabled: C{server.compat_sessions}: when false, every request
        runs ephemeral and stateless, its history flattened.
    """

    def __init__(self, *, runner: CompatRunner, orchestrator: Orchestrator, enabled: bool) -> None:
        self._runner = runner
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
        @raise ClinvkError: When C{pinned} cannot be continued: 404 for no
            such session, 400 for another backend's or no new input, 409
            while it has no native conversation yet or a turn of the
            native API runs.
        """
        if not self._enabled:
            return Turn(request=run)
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
        if pinned:
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

    async def stream(self, turn: Turn, answer_format: AnswerFormat | None = None) -> EventChannel:
        """
        Start streaming C{turn}; raises as L{CompatRunner.stream}.

        @param answer_format: As for L{complete}: an answer is checked
            before any of it is sent, so it runs to completion first and
            arrives as one piece.
        """
        if answer_format is not None:
            result = await self.complete(turn, answer_format)
            return answered(result, result.output)
        prepared = self._runner.prepare(turn.request, streaming=True)
        await self._opened(turn, prepared.options.model, prepared.request)
        return await self._runner.stream(prepared, turn.session_id)

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
            ran = not isinstance(e, ClinvkError) or isinstance(e, BackendFailed)
            self.end(turn, RunResult(exit_code=1, error=reason), "", cli_ran=ran)
            raise
        self.end(turn, RunResult(exit_code=1, error="the turn ended without an answer"), "")

    def end(self, turn: Turn, result: RunResult, output: str, *, cli_ran: bool = True) -> None:
        """
        Record C{turn}'s end, once: a successful answer C{output} moves its
        conversation on; a failure of a CLI that ran leaves the session
        where no history can follow (its CLI's transcript is unknown); a
        CLI that never ran changed nothing.  The record is written in the
        background; the next turn waits for it.
        """
        if turn.ended:
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
