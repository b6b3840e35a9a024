# -*- test-case-name: tests.web.test_native_batches -*-
"""
Several runs for one request: parallel tasks, a chain of steps and a
comparison across backends (docs/design/native-api.md#parallel,
docs/design/native-api.md#chain, docs/design/native-api.md#compare).  Every run of a batch
is ephemeral: batches create no server sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from attrs import frozen

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, FirstError, gatherResults
from twisted.internet.interfaces import IReactorTime

from clinvk.config import ParallelConfig
from clinvk.model import RunRequest
from clinvk.orchestration.outcomes import (
    CANCELED,
    ChainOutcome,
    CompareOutcome,
    Outcome,
    ParallelOutcome,
    StepOutcome,
)
from clinvk.orchestration.prompts import PromptRunner

# The concurrency of a parallel batch when neither the request nor the
# configuration sets one.
DEFAULT_MAX_PARALLEL = 3

PREVIOUS = "{{previous}}"


@frozen
class ChainStep:
    """One step of a chain: what to run and the name echoed in its result."""

    request: RunRequest
    name: str = ""


class BatchRunner:
    """
    Runs batches of prompts.

    @param prompts: Runs each prompt.
    @param clock: Measures durations.
    @param config: The C{parallel} configuration section.
    """

    def __init__(self, prompts: PromptRunner, clock: IReactorTime, config: ParallelConfig) -> None:
        self._prompts = prompts
        self._clock = clock
        self._config = config

    def _milliseconds_since(self, started: float) -> int:
        return int((self._clock.seconds() - started) * 1000)

    async def _run(self, request: RunRequest, dry_run: bool) -> Outcome:
        # A batch's dry_run forces dry runs; false leaves the configuration's.
        return await self._prompts.run(
            attrs.evolve(request, ephemeral=True, dry_run=request.dry_run or dry_run)
        )

    async def parallel(
        self,
        tasks: Sequence[RunRequest],
        *,
        max_parallel: int = 0,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> ParallelOutcome:
        """
        Run C{tasks} with at most C{max_parallel} at once (when not
        positive: C{parallel.max_workers}, else 3).

        With C{fail_fast}, the first task to exit non-zero cancels the
        others: those still waiting never start (C{canceled}, counted
        neither completed nor failed), those running are stopped.
        """
        started = self._clock.seconds()
        limit = max_parallel if max_parallel > 0 else (self._config.max_workers or DEFAULT_MAX_PARALLEL)
        if limit <= 0:
            limit = DEFAULT_MAX_PARALLEL
        slots = DeferredSemaphore(limit)
        ran = [False] * len(tasks)
        pending: list[Deferred[Outcome]] = []

        stopping = False

        def cancel_all(but: int = -1) -> None:
            nonlocal stopping
            stopping = True
            for index, running in enumerate(pending):
                if index != but:
                    running.cancel()

        async def one(index: int, task: RunRequest) -> Outcome:
            try:
                await slots.acquire()
            except CancelledError:
                return Outcome(task.backend, -1, 0, error=CANCELED)
            try:
                if stopping:
                    # A slot freed by a task being cancelled.
                    return Outcome(task.backend, -1, 0, error=CANCELED)
                ran[index] = True
                task_started = self._clock.seconds()
                try:
                    outcome = await self._run(task, dry_run)
                except CancelledError:
                    return Outcome(task.backend, -1, self._milliseconds_since(task_started), error=CANCELED)
                if fail_fast and outcome.exit_code != 0:
                    # Before the slot is released, or a waiting task would take it.
                    cancel_all(but=index)
                return outcome
            finally:
                slots.release()

        pending.extend(Deferred.fromCoroutine(one(i, task)) for i, task in enumerate(tasks))
        # Cancelling the batch (the client went away) is a fail-fast too:
        # stop the running tasks and start no waiting one.
        gathered: Deferred[list[Outcome]] = Deferred(lambda _: cancel_all())
        gatherResults(pending, consumeErrors=True).chainDeferred(gathered)
        try:
            results = await gathered
        except FirstError as e:
            cancel_all()
            e.subFailure.raiseException()
        completed = sum(1 for outcome in results if outcome.succeeded)
        failed = sum(1 for i, outcome in enumerate(results) if ran[i] and not outcome.succeeded)
        return ParallelOutcome(tuple(results), completed, failed, self._milliseconds_since(started))

    async def chain(
        self,
        steps: Sequence[ChainStep],
        *,
        stop_on_failure: bool = False,
        pass_working_dir: bool = False,
        dry_run: bool = False,
    ) -> ChainOutcome:
        """
        Run C{steps} in order, each step's C{{{previous}}} replaced by the
        previous step's output (left as written in the first step).

        @param stop_on_failure: End the chain at the first failed step.
        @param pass_working_dir: A step without a C{workdir} runs where
            the previous step ran.
        """
        started = self._clock.seconds()
        results: list[StepOutcome] = []
        completed = failed_step = 0
        previous_output = previous_workdir = ""
        for number, step in enumerate(steps, start=1):
            request = step.request
            if number > 1:
                request = attrs.evolve(request, prompt=request.prompt.replace(PREVIOUS, previous_output))
            if not request.workdir and pass_working_dir and previous_workdir:
                request = attrs.evolve(request, workdir=previous_workdir)
            outcome = await self._run(request, dry_run)
            results.append(StepOutcome(number, step.name, outcome))
            if outcome.succeeded:
                completed += 1
            else:
                failed_step = number
                if stop_on_failure:
                    break
            previous_output, previous_workdir = outcome.output, request.workdir
        return ChainOutcome(tuple(results), completed, failed_step, self._milliseconds_since(started))

    async def compare(
        self,
        backends: Sequence[str],
        prompt: str,
        *,
        model: str = "",
        workdir: str = "",
        sequential: bool = False,
        dry_run: bool = False,
    ) -> CompareOutcome:
        """
        Run C{prompt} on every backend of C{backends}, all at once or one
        after another; results are in the order of C{backends}.
        """
        started = self._clock.seconds()
        requests = [
            RunRequest(backend=name, prompt=prompt, model=model, workdir=workdir) for name in backends
        ]
        if sequential:
            results = [await self._run(request, dry_run) for request in requests]
        else:
            pending = [Deferred.fromCoroutine(self._run(request, dry_run)) for request in requests]
            try:
                results = await gatherResults(pending, consumeErrors=True)
            except FirstError as e:
                # One run failed (or the whole comparison was cancelled):
                # stop the others and report the first failure.
                for running in pending:
                    running.cancel()
                e.subFailure.raiseException()
        return CompareOutcome(tuple(results), self._milliseconds_since(started))
