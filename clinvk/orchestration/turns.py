# -*- test-case-name: tests.orchestration.test_prompts,tests.web.test_native_prompt -*-
"""
Keeping server sessions in step with prompt runs: a new session before a
run, the completion update after it (docs/design/session-store.md#session-turns), and
continuing an existing session (docs/design/decisions.md#d3-session-continuation)
without two turns overlapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from clinvk.config import SessionConfig
from clinvk.errors import Conflict, InvalidRequest
from clinvk.metrics import Metrics
from clinvk.model import RunRequest, RunResult, TokenUsage
from clinvk.sessions import (
    ACTIVE,
    COMPLETED,
    ERROR,
    PAUSED,
    ISessionStore,
    SessionRecord,
    check_prefix,
    new_session_id,
)

log = Logger()

# A shorter prefix would too easily match a session of someone else's run.
MIN_PREFIX_LENGTH = 8

# The error recorded when the client went away before the run ended.
DISCONNECTED = "client disconnected"


class SessionTurns:
    """
    The sessions of C{POST /api/v1/prompt}.

    @param store: Where sessions live.
    @param clock: Stamps C{created_at} and C{last_used}.
    @param config: The C{session} configuration section.
    @param metrics: Counts created sessions and the active ones, when
        metrics are enabled.
    """

    def __init__(
        self, store: ISessionStore, clock: IReactorTime, config: SessionConfig, metrics: Metrics | None = None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._config = config
        self._busy: set[str] = set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    async def find(self, reference: str, request: RunRequest) -> SessionRecord:
        """
        The session a request continues, after the checks of
        docs/design/native-api.md#prompt-sessions.

        @param reference: A full session id or a prefix of at least
            L{MIN_PREFIX_LENGTH} hex characters.
        @raise InvalidRequest: For an ephemeral request, a short prefix, a
            C{backend} or C{workdir} other than the session's.
        @raise SessionNotFound: When no single session matches.
        @raise Conflict: When the session has no native conversation yet.
        """
        if request.ephemeral:
            raise InvalidRequest("an ephemeral prompt cannot continue a session", param="session_id")
        check_prefix(reference)
        if len(reference) < MIN_PREFIX_LENGTH:
            raise InvalidRequest(
                "session_id must be a full session id or a prefix of at least "
                f"{MIN_PREFIX_LENGTH} characters",
                param="session_id",
            )
        record = await self._store.resolve(reference)
        if request.backend and request.backend != record.backend:
            raise InvalidRequest(
                f'session {record.id} belongs to backend "{record.backend}", not "{request.backend}"',
                param="backend",
            )
        if request.workdir and request.workdir != record.working_dir:
            where = f'"{record.working_dir}"' if record.working_dir else "the server's directory"
            raise InvalidRequest(
                f"session {record.id} runs in {where}; a turn cannot change its workdir", param="workdir"
            )
        if not record.backend_session_id:
            raise Conflict(f"session {record.id} has no native session to continue yet")
        return record

    @staticmethod
    def continuing(request: RunRequest, record: SessionRecord) -> RunRequest:
        """
        C{request} as a new turn of C{record}: its backend, directory and
        native conversation, the tokens that conversation has used (the
        sum of its turns', when the store keeps them) and when its last
        turn was recorded.
        """
        return attrs.evolve(
            request,
            backend=record.backend,
            workdir=record.working_dir,
            model=request.model or record.model,
            resume_id=record.backend_session_id,
            resumed_usage=record.token_usage,
            resumed_at=record.last_used.timestamp(),
        )

    def claim(self, session_id: str) -> None:
        """
        Mark a turn of C{session_id} as running until L{release}.

        @raise Conflict: If one is running already (turns never overlap).
        """
        if session_id in self._busy:
            raise Conflict(f"session {session_id} already has a turn running")
        self._busy.add(session_id)

    def release(self, session_id: str) -> None:
        """The turn of C{session_id} has been recorded."""
        self._busy.discard(session_id)

    async def open(
        self,
        request: RunRequest,
        model: str,
        metadata: Mapping[str, str],
        *,
        tags: tuple[str, ...] = (),
        parent_id: str = "",
    ) -> str:
        """
        Create the session of a new run, in status C{active}.

        @param model: The model as configured for the run, unresolved.
        @param tags: Tags after the configured ones and C{api}.
        @param parent_id: The session this one was forked from, if any.
        @return: Its id, or C{""} when it could not be written (the run
            goes on without a session).
        """
        now = self._now()
        record = SessionRecord(
            id=new_session_id(),
            backend=request.backend,
            created_at=now,
            last_used=now,
            working_dir=request.workdir,
            model=model,
            initial_prompt=request.prompt,
            status=ACTIVE,
            token_usage=TokenUsage(),
            tags=(*self._config.default_tags, "api", *tags),
            parent_id=parent_id,
            metadata=dict(metadata),
        )
        try:
            await self._store.create(record)
        except CancelledError:
            # The store may still write it: the update queued behind the
            # creation marks the turn as failed rather than active.
            await self.close(record.id, RunResult(exit_code=-1, error=DISCONNECTED))
            raise
        except Exception as e:
            log.error("Failed to create session error={error}", error=str(e))
            return ""
        if self._metrics is not None:
            self._metrics.sessions_created.inc()
            await recount_active_sessions(self._metrics, self._store)
        return record.id

    async def close(self, session_id: str, result: RunResult, lineage: tuple[str, ...] | None = ()) -> None:
        """
        Record a finished turn (docs/design/session-store.md#session-turns): count it, add
        its tokens, set the status and the native id.  Failures are logged: the run's
        answer matters more than its bookkeeping.

        @param lineage: Where the conversation stands now for the
            compatibility APIs (docs/design/conversations.md#lineage-chain),
            kept only when the turn succeeded; C{()}, for any other turn,
            leaves it where no client's history can follow; L{None} leaves
            it as it was (a turn whose CLI never ran).
        """
        now = self._now()
        keep_usage = self._config.store_token_usage

        def change(record: SessionRecord) -> SessionRecord:
            usage = record.token_usage or TokenUsage()
            if keep_usage and result.usage is not None:
                usage = usage + result.usage
            if result.error:
                status, error_message = ERROR, result.error
            elif result.exit_code == 0:
                status, error_message = COMPLETED, ""
            else:
                status, error_message = ERROR, "backend execution failed"
            return attrs.evolve(
                record,
                last_used=now,
                turn_count=record.turn_count + 1,
                token_usage=usage,
                status=status,
                error_message=error_message,
                backend_session_id=result.native_session_id or record.backend_session_id,
                lineage=record.lineage if lineage is None else (lineage if status == COMPLETED else ()),
            )

        try:
            await self._store.update(session_id, change)
        except CancelledError:
            raise
        except Exception as e:
            log.error(
                "Failed to update session session_id={session_id} error={error}",
                session_id=session_id,
                error=str(e),
            )
        if self._metrics is not None:
            await recount_active_sessions(self._metrics, self._store)


async def recount_active_sessions(metrics: Metrics, store: ISessionStore) -> None:
    """
    Set the active-sessions gauge to the sessions of C{store} that are
    C{active} or C{paused}; a store that cannot be read leaves it as it is.
    """
    try:
        active = await store.list(status=ACTIVE, limit=1)
        paused = await store.list(status=PAUSED, limit=1)
    except Exception as e:
        log.warn("Could not count active sessions error={error}", error=str(e))
        return
    metrics.active_sessions.set(active.total + paused.total)
