# -*- test-case-name: tests.web.test_openai,tests.web.test_anthropic -*-
"""
Running a compatibility request: the failures that the SDKs must see as
HTTP errors in their own dialect (docs/design/decisions.md#d2-sdk-error-dialects)
are raised before anything is written; what happens once a stream runs is
the stream's business.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.python.failure import Failure

from clinvk.errors import BackendFailed, BackendUnavailable, ClinvkError, InternalError, InvalidRequest
from clinvk.interfaces import IBackend
from clinvk.model import RunRequest, RunResult
from clinvk.runs.runtime import (
    BackendNotAvailable,
    BackendRuntime,
    EventChannel,
    PreflightError,
    PreparedRun,
    UnknownBackend,
    UnusableRequest,
)


def failed(result: RunResult) -> bool:
    """Whether a run failed: a non-zero exit or an error text."""
    return result.exit_code != 0 or bool(result.error)


def failure_text(result: RunResult, streamed: str = "") -> str:
    """
    Why a run failed, with what the CLI printed (for a CLI that merges
    its stderr, such as Claude, its complaint is in the output).

    @param streamed: The text a stream delivered, when the run streamed.
    """
    error = result.error.strip()
    output = (result.output or streamed).strip()
    if error and error in output:
        # The CLI's complaint is (in) its output too (Claude): say it once.
        output = ""
    said = [text for text in (error, output) if text]
    return ": ".join(said) or f"backend exited with status {result.exit_code}"


def answer_of(result: RunResult, streamed: str = "") -> RunResult:
    """
    C{result}, when it is an answer.

    @param streamed: The text a stream delivered, when the run streamed.
    @raise ClinvkError: 503 when the CLI could not start, 502 when it
        failed (an answer cut short by a failure is no answer: the SDKs
        have no finish reason for it).
    """
    if result.start_failed:
        raise BackendUnavailable(result.error)
    if failed(result):
        raise BackendFailed(failure_text(result, streamed))
    return result


class CompatRunner:
    """
    Runs the ephemeral executions of the compatibility APIs.

    @param runtime: Runs the backend CLIs.
    """

    def __init__(self, runtime: BackendRuntime) -> None:
        self._runtime = runtime

    @property
    def backends(self) -> Mapping[str, IBackend]:
        """The registered backends by name, which model names choose among."""
        return self._runtime.backends

    def prepare(self, request: RunRequest, *, streaming: bool) -> PreparedRun:
        """
        Check C{request} and build its command line.

        @raise ClinvkError: 400 for an unknown backend or an unusable
            request, 503 when its CLI is missing, 500 for another
            pre-flight failure.
        """
        try:
            return self._runtime.prepare(request, streaming=streaming)
        except UnknownBackend as e:
            raise InvalidRequest(str(e), param="model") from None
        except UnusableRequest as e:
            raise InvalidRequest(str(e)) from None
        except BackendNotAvailable as e:
            raise BackendUnavailable(str(e)) from None
        except PreflightError as e:
            # The configuration, not the request, is at fault.
            raise InternalError(str(e)) from None

    async def complete(self, prepared: PreparedRun, conversation: str = "") -> RunResult:
        """
        Run C{prepared} to completion.

        @param conversation: The server session the run is a turn of, whose
            live process serves it where it can; C{""} for none.
        @raise ClinvkError: 503 when the CLI cannot start, 502 when it
            failed (an answer cut short by a failure is no answer: the SDKs
            have no finish reason for it).
        """
        return answer_of(await self._runtime.execute(prepared, conversation))

    async def stream(self, prepared: PreparedRun, conversation: str = "") -> EventChannel:
        """
        Start streaming C{prepared}; the CLI is running when this returns.

        @param conversation: As for L{complete}.
        @raise ClinvkError: As L{complete} for everything known before the
            CLI runs (no free run slot, start failure, shutdown).
        """
        running = self._runtime.stream(prepared, conversation)
        # Cancelled (the client gone while the run waits for a slot), the
        # wait cancels the run: it never starts with nobody reading.
        await running.started()
        early: list[RunResult | Failure] = []
        running.result().addBoth(early.append)
        if early:
            # The run ended as it started: nothing was streamed yet.
            ended = early[0]
            if isinstance(ended, Failure):
                if ended.check(ClinvkError):
                    ended.raiseException()
            elif ended.start_failed:
                raise BackendUnavailable(ended.error)
        return running
