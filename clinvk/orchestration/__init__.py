# -*- test-case-name: tests.orchestration -*-
"""
Running what a request asks for: one prompt (in a new, continued or no
session), or a parallel, chain or compare batch.  Nothing here knows about
HTTP; the web layer and embedding programs both call L{Orchestrator}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from clinvk.config import ClinvkConfig
from clinvk.metrics import Metrics
from clinvk.model import RunRequest
from clinvk.orchestration.batches import BatchRunner, ChainStep
from clinvk.orchestration.outcomes import (
    ChainOutcome,
    CompareOutcome,
    Outcome,
    ParallelOutcome,
    StepOutcome,
)
from clinvk.orchestration.prompts import PromptRunner, PromptStream
from clinvk.orchestration.turns import SessionTurns, recount_active_sessions
from clinvk.runs.runtime import BackendRuntime
from clinvk.sessions import ISessionStore, SessionPage, SessionRecord

__all__ = [
    "ChainOutcome",
    "ChainStep",
    "CompareOutcome",
    "Orchestrator",
    "Outcome",
    "ParallelOutcome",
    "PromptStream",
    "StepOutcome",
    "recount_active_sessions",
]


class Orchestrator:
    """
    Every kind of execution, as Deferreds.

    @param runtime: Runs the backend CLIs.
    @param store: Where prompt sessions are kept.
    @param clock: Stamps sessions and measures durations.
    @param config: The server's configuration.
    @param metrics: Where session counts go, when metrics are enabled.
    @ivar store: The session store, for the sessions API.
    @ivar turns: The session turns of prompt runs, which the
        compatibility APIs' conversations share (one turn at a time).
    """

    def __init__(
        self,
        *,
        runtime: BackendRuntime,
        store: ISessionStore,
        clock: IReactorTime,
        config: ClinvkConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._runtime = runtime
        self.turns = SessionTurns(store, clock, config.session, metrics)
        self._prompts = PromptRunner(runtime, self.turns, clock)
        self._batches = BatchRunner(self._prompts, clock, config.parallel)
        self._outliving: set[Deferred[None]] = set()

    def prompt(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> Deferred[Outcome]:
        """
        Run one prompt to completion (docs/design/native-api.md#prompt-result).  A
        non-ephemeral prompt gets a new session, or continues C{session_id}
        (docs/design/decisions.md#d3-session-continuation).  Cancelling stops the CLI.
        """
        return Deferred.fromCoroutine(self._prompts.run(request, metadata=metadata, session_id=session_id))

    def stream_prompt(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> Deferred[PromptStream]:
        """
        Start one prompt as a stream of events (docs/design/native-api.md#prompt-stream).
        It fails only when C{session_id} cannot be continued; every later
        problem is an event.
        """
        return Deferred.fromCoroutine(self._prompts.stream(request, metadata=metadata, session_id=session_id))

    def parallel(
        self,
        tasks: Sequence[RunRequest],
        *,
        max_parallel: int = 0,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> Deferred[ParallelOutcome]:
        """Run ephemeral tasks concurrently (docs/design/native-api.md#parallel)."""
        return Deferred.fromCoroutine(
            self._batches.parallel(tasks, max_parallel=max_parallel, fail_fast=fail_fast, dry_run=dry_run)
        )

    def chain(
        self,
        steps: Sequence[ChainStep],
        *,
        stop_on_failure: bool = False,
        pass_working_dir: bool = False,
        dry_run: bool = False,
    ) -> Deferred[ChainOutcome]:
        """Run ephemeral steps in order, each fed the previous output (docs/design/native-api.md#chain)."""
        return Deferred.fromCoroutine(
            self._batches.chain(
                steps, stop_on_failure=stop_on_failure, pass_working_dir=pass_working_dir, dry_run=dry_run
            )
        )

    def compare(
        self,
        backends: Sequence[str],
        prompt: str,
        *,
        model: str = "",
        workdir: str = "",
        sequential: bool = False,
        dry_run: bool = False,
    ) -> Deferred[CompareOutcome]:
        """Run one prompt on several backends (docs/design/native-api.md#compare)."""
        return Deferred.fromCoroutine(
            self._batches.compare(
                backends, prompt, model=model, workdir=workdir, sequential=sequential, dry_run=dry_run
            )
        )

    def list_sessions(
        self, *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0
    ) -> Deferred[SessionPage]:
        """
        A page of sessions, most recently used first
        (docs/design/native-api.md#session-list), as
        L{ISessionStore.list} finds them.
        """
        return self.store.list(backend=backend, status=status, limit=limit, offset=offset)

    def session(self, reference: str) -> Deferred[SessionRecord]:
        """
        The session C{reference} names: a full id or an unambiguous prefix
        (docs/design/native-api.md#session-get).
        """
        return self.store.resolve(reference)

    def delete_session(self, reference: str) -> Deferred[None]:
        """
        Delete the session C{reference} names (docs/design/native-api.md#session-delete); the
        active-sessions gauge is counted afresh.
        """
        return Deferred.fromCoroutine(self._delete_session(reference))

    async def _delete_session(self, reference: str) -> None:
        deleted = await self.store.delete(reference)
        # Its conversation is gone: so is the process that held it.
        self._runtime.live.end(deleted)
        if self.metrics is not None:
            await recount_active_sessions(self.metrics, self.store)

    def live_status(self) -> dict[str, str]:
        """
        Whether each backend's conversations run in live processes, by
        name: C{live}, or why not (docs/design/live-sessions.md#live-fallback).
        """
        live = self._runtime.live
        return {name: live.status(backend) for name, backend in self._runtime.backends.items()}

    def outlive(self, work: Deferred[None]) -> None:
        """
        Keep C{work}, which outlives the request that began it (a session
        turn recorded after the answer), until it ends: L{settled} waits
        for it.
        """
        self._outliving.add(work)

        def ended(result: object) -> object:
            self._outliving.discard(work)
            return result

        work.addBoth(ended)

    def settled(self) -> Deferred[None]:
        """
        A Deferred firing once the work that outlives its request has
        ended: the prompt streams under way (their session turns recorded),
        the clean-ups after ephemeral runs and what L{outlive} was given.
        At shutdown it is awaited once the supervisor has stopped every CLI.
        """
        waiting = [self._prompts.settled(), self._runtime.settled(), *self._outliving]
        return gatherResults(waiting).addCallback(lambda _: None)
