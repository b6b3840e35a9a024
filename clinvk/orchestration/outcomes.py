# -*- test-case-name: tests.web.test_native_batches -*-
"""
What executions report back: one prompt, or a parallel, chain or compare
batch (docs/design/native-api.md#prompt-result, docs/design/native-api.md#parallel,
docs/design/native-api.md#chain and docs/design/native-api.md#compare).
"""

from __future__ import annotations

from attrs import frozen

from clinvk.model import TokenUsage


@frozen
class Outcome:
    """
    One execution as the API reports it.

    @ivar backend: The backend as the request named it.
    @ivar exit_code: 0 on success; the CLI's status; 1 for pre-flight or
        start failures; -1 when the run was stopped.
    @ivar duration_ms: From the start of handling to the parsed output.
    @ivar session_id: The server session the run belongs to, or C{""}.
    """

    backend: str
    exit_code: int
    duration_ms: int
    output: str = ""
    error: str = ""
    usage: TokenUsage | None = None
    session_id: str = ""

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and no error text."""
        return self.exit_code == 0 and not self.error


# The result of a parallel task that never started (docs/design/native-api.md#parallel-fail-fast).
CANCELED = "canceled"


@frozen
class ParallelOutcome:
    """
    @ivar results: One per task, in request order.
    @ivar completed: Tasks that succeeded.
    @ivar failed: Tasks that ran and failed (not those cancelled before
        they started).
    """

    results: tuple[Outcome, ...]
    completed: int
    failed: int
    total_duration_ms: int


@frozen
class StepOutcome:
    """One executed chain step: its 1-based number, its name and outcome."""

    step: int
    name: str
    outcome: Outcome


@frozen
class ChainOutcome:
    """
    @ivar results: The executed steps, in order.
    @ivar failed_step: The 1-based number of the last failed step, or 0.
    """

    results: tuple[StepOutcome, ...]
    completed_steps: int
    failed_step: int
    total_duration_ms: int


@frozen
class CompareOutcome:
    """@ivar results: One per requested backend, in request order."""

    results: tuple[Outcome, ...]
    total_duration_ms: int
