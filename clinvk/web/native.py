# -*- test-case-name: tests.web -*-
"""
The native REST API under C{/api/v1} (docs/design/native-api.md#native-api):
prompts, batches, backends and sessions.

Handlers translate JSON into calls of the L{Orchestrator} and outcomes
back into JSON.  Problems of a run are part of its result (HTTP 200);
only malformed requests and unknown sessions are HTTP errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from clinvk.backends.availability import BackendAvailability
from clinvk.backends.options import effective_format
from clinvk.config import ClinvkConfig
from clinvk.errors import ClinvkError, ErrorDetail, InternalError, InvalidRequest, NotFound, ValidationFailed
from clinvk.model import RunRequest
from clinvk.openapi import Operation, Parameter
from clinvk.orchestration import ChainStep, Orchestrator, Outcome, recount_active_sessions
from clinvk.schemas import SchemaSet
from clinvk.sessions import SessionNotFound, SessionRecord, StoreError, format_timestamp
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json
from clinvk.web._responses import typed_response, write_json
from clinvk.web._routing import family_app, route
from clinvk.web._streaming import stream_ndjson
from clinvk.web.deadline import RequestDeadline

log = Logger()

_NATIVE = "Native"
_SESSIONS = "Sessions"

PROMPT = Operation(
    operation_id="executePrompt",
    method="POST",
    path="/api/v1/prompt",
    tag=_NATIVE,
    summary="Run a prompt",
    description=(
        "Runs one prompt on one backend. Problems of the run (unknown or missing backend, "
        "bad workdir, disallowed flag, CLI failure) are reported in the result with status 200. "
        "With output_format stream-json the answer is an NDJSON stream of events. "
        "With session_id the prompt continues that session's conversation."
    ),
    request_schema="PromptRequest",
    response_schema="PromptResponse",
    stream_media_type="application/x-ndjson",
    stream_schema="StreamEvent",
)
PARALLEL = Operation(
    operation_id="executeParallel",
    method="POST",
    path="/api/v1/parallel",
    tag=_NATIVE,
    summary="Run prompts concurrently",
    description="Runs ephemeral tasks with bounded concurrency; results keep the order of the tasks.",
    request_schema="ParallelRequest",
    response_schema="ParallelResponseBody",
)
CHAIN = Operation(
    operation_id="executeChain",
    method="POST",
    path="/api/v1/chain",
    tag=_NATIVE,
    summary="Run prompts in sequence",
    description=(
        "Runs ephemeral steps in order; {{previous}} in a step's prompt becomes the previous step's output."
    ),
    request_schema="ChainRequest",
    response_schema="ChainResponseBody",
)
COMPARE = Operation(
    operation_id="executeCompare",
    method="POST",
    path="/api/v1/compare",
    tag=_NATIVE,
    summary="Run a prompt on several backends",
    description="Runs the same prompt on every listed backend, concurrently or one after another.",
    request_schema="CompareRequest",
    response_schema="CompareResponseBody",
)
BACKENDS = Operation(
    operation_id="listBackends",
    method="GET",
    path="/api/v1/backends",
    tag=_NATIVE,
    summary="List backends",
    description=(
        "Every backend, sorted by name, with whether its CLI is on the server's PATH "
        "(checked at most every 30 seconds)."
    ),
    response_schema="BackendsResponseBody",
)
_SESSION_ID = Parameter(
    name="id",
    location="path",
    schema={"type": "string", "pattern": "^[0-9a-f]+$"},
    description="A session id or an unambiguous prefix of one (lowercase hex).",
)
LIST_SESSIONS = Operation(
    operation_id="listSessions",
    method="GET",
    path="/api/v1/sessions",
    tag=_SESSIONS,
    summary="List sessions",
    description="Sessions sorted by last use, most recent first.",
    response_schema="SessionsResponseBody",
    parameters=(
        Parameter("backend", "query", {"type": "string"}, "Only sessions of this backend."),
        Parameter(
            "status",
            "query",
            {"type": "string", "examples": ["completed"]},
            "Only sessions with this status: active, completed, error or paused (others match none).",
        ),
        Parameter(
            "limit", "query", {"type": "integer", "minimum": 0}, "At most this many sessions; 0 for all."
        ),
        Parameter("offset", "query", {"type": "integer", "minimum": 0}, "Skip this many matching sessions."),
    ),
)
GET_SESSION = Operation(
    operation_id="getSession",
    method="GET",
    path="/api/v1/sessions/{id}",
    tag=_SESSIONS,
    summary="Get a session",
    response_schema="SessionInfo",
    parameters=(_SESSION_ID,),
)
DELETE_SESSION = Operation(
    operation_id="deleteSession",
    method="DELETE",
    path="/api/v1/sessions/{id}",
    tag=_SESSIONS,
    summary="Delete a session",
    response_schema="DeleteSessionResponseBody",
    parameters=(_SESSION_ID,),
)


class NativeApi:
    """
    The C{/api/v1} family.

    @param orchestrator: Runs what requests ask for; owns the session store.
    @param availability: Which CLIs are installed.
    @param schemas: Validates request bodies.
    @param config: The server's configuration (the default output format,
        the request deadline).
    @param clock: Times the request deadline.
    @ivar deadline: The request deadline of every route.
    """

    dialect: ClassVar[Dialect] = Dialect.NATIVE
    operations: ClassVar[tuple[Operation, ...]] = (
        PROMPT,
        PARALLEL,
        CHAIN,
        COMPARE,
        BACKENDS,
        LIST_SESSIONS,
        GET_SESSION,
        DELETE_SESSION,
    )
    app = family_app(dialect)

    def __init__(
        self,
        *,
        orchestrator: Orchestrator,
        availability: BackendAvailability,
        schemas: SchemaSet,
        config: ClinvkConfig,
        clock: IReactorTime,
    ) -> None:
        self._orchestrator = orchestrator
        self.deadline = RequestDeadline(clock, float(config.server.request_timeout_secs))
        self._availability = availability
        self._schemas = schemas
        self._config = config

    def _body(self, request: IRequest, schema: str) -> dict[str, Any]:
        body: dict[str, Any] = read_json(request, self._schemas, schema, match_case=False)
        return body

    @route(app, PROMPT)
    async def prompt(self, request: IRequest) -> bytes | None:
        body = self._body(request, "PromptRequest")
        session_id = _text(body, "session_id")
        run = _run_request(body, ephemeral=bool(body.get("ephemeral")))
        if not run.backend and not session_id:
            raise InvalidRequest("backend is required", param="backend")
        if not run.prompt:
            raise InvalidRequest("prompt is required", param="prompt")
        metadata = body.get("metadata") or {}
        if effective_format(run.output_format, self._config) == "stream-json":
            stream = await self._orchestrator.stream_prompt(run, metadata=metadata, session_id=session_id)
            try:
                # A run refused a slot is a 429 like any other, not a 200
                # with the refusal in the stream.
                await stream.started()
            except BaseException:
                stream.cancel()
                raise
            await stream_ndjson(request, stream, self.deadline)
            return None
        try:
            outcome = await self._orchestrator.prompt(run, metadata=metadata, session_id=session_id)
        except (ClinvkError, CancelledError):
            raise
        except Exception as e:
            raise _internal("execution failed", e) from None
        write_json(request, _prompt_result(outcome))
        return None

    @route(app, PARALLEL)
    async def parallel(self, request: IRequest) -> bytes:
        body = self._body(request, "ParallelRequest")
        tasks = body.get("tasks") or []
        if not tasks:
            raise InvalidRequest("tasks are required", param="tasks")
        _check_items(tasks, "tasks")
        try:
            outcome = await self._orchestrator.parallel(
                [_run_request(task) for task in tasks],
                max_parallel=body.get("max_parallel") or 0,
                fail_fast=bool(body.get("fail_fast")),
                dry_run=bool(body.get("dry_run")),
            )
        except (ClinvkError, CancelledError):
            raise
        except Exception as e:
            raise _internal("parallel execution failed", e) from None
        return typed_response(
            request,
            "ParallelResponseBody",
            {
                "total_tasks": len(tasks),
                "completed": outcome.completed,
                "failed": outcome.failed,
                "total_duration_ms": outcome.total_duration_ms,
                "results": [_task_result(result) for result in outcome.results],
            },
        )

    @route(app, CHAIN)
    async def chain(self, request: IRequest) -> bytes:
        body = self._body(request, "ChainRequest")
        steps = body.get("steps") or []
        if not steps:
            raise InvalidRequest("steps are required", param="steps")
        if body.get("pass_session_id") or body.get("persist_sessions"):
            raise InvalidRequest(
                "chain is always ephemeral; pass_session_id and persist_sessions are not supported"
            )
        for number, step in enumerate(steps, start=1):
            if "{{session}}" in step["prompt"]:
                raise InvalidRequest(
                    f"chain step {number} uses {{{{session}}}} but sessions are not persisted"
                )
        _check_items(steps, "steps")
        try:
            outcome = await self._orchestrator.chain(
                [ChainStep(_run_request(step), _text(step, "name")) for step in steps],
                stop_on_failure=bool(body.get("stop_on_failure")),
                pass_working_dir=bool(body.get("pass_working_dir")),
                dry_run=bool(body.get("dry_run")),
            )
        except (ClinvkError, CancelledError):
            raise
        except Exception as e:
            raise _internal("chain execution failed", e) from None
        results = []
        for step in outcome.results:
            result: dict[str, Any] = {"step": step.step}
            if step.name:
                result["name"] = step.name
            result.update(
                _task_result(step.outcome, order=("backend", "exit_code", "error", "duration_ms", "output"))
            )
            results.append(result)
        chain_body: dict[str, Any] = {"total_steps": len(steps), "completed_steps": outcome.completed_steps}
        if outcome.failed_step:
            chain_body["failed_step"] = outcome.failed_step
        chain_body["total_duration_ms"] = outcome.total_duration_ms
        chain_body["results"] = results
        return typed_response(request, "ChainResponseBody", chain_body)

    @route(app, COMPARE)
    async def compare(self, request: IRequest) -> bytes:
        body = self._body(request, "CompareRequest")
        backends: list[str] = body.get("backends") or []
        if not backends:
            raise InvalidRequest("backends are required", param="backends")
        prompt = body["prompt"]
        if not prompt:
            raise InvalidRequest("prompt is required", param="prompt")
        model = _text(body, "model")
        try:
            outcome = await self._orchestrator.compare(
                backends,
                prompt,
                model=model,
                workdir=_text(body, "workdir"),
                sequential=bool(body.get("sequential")),
                dry_run=bool(body.get("dry_run")),
            )
        except (ClinvkError, CancelledError):
            raise
        except Exception as e:
            raise _internal("compare execution failed", e) from None
        results = []
        for result in outcome.results:
            entry: dict[str, Any] = {"backend": result.backend}
            if model:
                entry["model"] = model
            entry.update(_task_result(result, order=("exit_code", "error", "duration_ms", "output")))
            results.append(entry)
        return typed_response(
            request,
            "CompareResponseBody",
            {
                "prompt": prompt,
                "backends": backends,
                "results": results,
                "total_duration_ms": outcome.total_duration_ms,
            },
        )

    @route(app, BACKENDS)
    def backends(self, request: IRequest) -> bytes:
        backends = [{"name": name, "available": available} for name, available in self._availability.cached()]
        return typed_response(request, "BackendsResponseBody", {"backends": backends})

    @route(app, LIST_SESSIONS)
    async def list_sessions(self, request: IRequest) -> bytes:
        args = _query(request)
        limit = _count(args, "limit")
        offset = _count(args, "offset")
        problems = [problem for problem in (limit, offset) if isinstance(problem, ErrorDetail)]
        if problems:
            raise ValidationFailed("validation failed", details=problems)
        assert isinstance(limit, int) and isinstance(offset, int)
        try:
            page = await self._orchestrator.store.list(
                backend=args.get("backend", ""), status=args.get("status", ""), limit=limit, offset=offset
            )
        except StoreError as e:
            raise InternalError("failed to list sessions", details=[ErrorDetail(str(e))]) from None
        return typed_response(
            request,
            "SessionsResponseBody",
            {
                "sessions": [session_info(record) for record in page.sessions],
                "total": page.total,
                "limit": limit,
                "offset": offset,
            },
        )

    @route(app, GET_SESSION)
    async def get_session(self, request: IRequest, id: str) -> bytes:
        try:
            record = await self._orchestrator.store.resolve(id)
        except SessionNotFound as e:
            raise NotFound("session not found", details=[ErrorDetail(str(e))]) from None
        except StoreError as e:
            raise InternalError("failed to read session", details=[ErrorDetail(str(e))]) from None
        return typed_response(request, "SessionInfo", session_info(record))

    @route(app, DELETE_SESSION)
    async def delete_session(self, request: IRequest, id: str) -> bytes:
        try:
            await self._orchestrator.store.delete(id)
        except SessionNotFound as e:
            raise NotFound("session not found", details=[ErrorDetail(str(e))]) from None
        except StoreError as e:
            raise InternalError("failed to delete session", details=[ErrorDetail(str(e))]) from None
        if self._orchestrator.metrics is not None:
            await recount_active_sessions(self._orchestrator.metrics, self._orchestrator.store)
        return typed_response(request, "DeleteSessionResponseBody", {"deleted": True, "id": id})


def _text(body: Mapping[str, Any], key: str) -> str:
    """A string member; C{""} when absent or null."""
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _run_request(body: Mapping[str, Any], *, ephemeral: bool = True) -> RunRequest:
    """
    The run a prompt, task or step object asks for (null members count as
    absent).  Batch members are always ephemeral.
    """
    return RunRequest(
        backend=_text(body, "backend"),
        prompt=_text(body, "prompt"),
        model=_text(body, "model"),
        workdir=_text(body, "workdir"),
        approval_mode=_text(body, "approval_mode"),
        sandbox_mode=_text(body, "sandbox_mode"),
        output_format=_text(body, "output_format"),
        max_tokens=body.get("max_tokens") or 0,
        max_turns=body.get("max_turns") or 0,
        system_prompt=_text(body, "system_prompt"),
        verbose=bool(body.get("verbose")),
        dry_run=bool(body.get("dry_run")),
        ephemeral=ephemeral,
        extra=body.get("extra") or (),
    )


def _check_items(items: list[dict[str, Any]], name: str) -> None:
    """
    The first task or step with an empty backend or prompt is refused
    (docs/design/native-api.md#parallel, docs/design/native-api.md#chain).
    """
    for index, item in enumerate(items):
        for field in ("backend", "prompt"):
            if not item[field]:
                raise InvalidRequest(f"{name}[{index}].{field} is required", param=f"{name}[{index}].{field}")


def _internal(detail: str, error: Exception) -> InternalError:
    """
    An unexpected failure of an endpoint as its own problem
    (docs/design/error-mapping.md#problem-catalogue).  Call it from the C{except}
    block, so the traceback is logged.
    """
    log.failure("Execution failed detail={detail}", Failure(), detail=detail)
    return InternalError(detail, details=[ErrorDetail(str(error) or type(error).__name__)])


def _prompt_result(outcome: Outcome) -> dict[str, Any]:
    """The body of a prompt result (docs/design/native-api.md#prompt-result): empty members left out."""
    result: dict[str, Any] = {}
    if outcome.session_id:
        result["session_id"] = outcome.session_id
    result.update(_task_result(outcome))
    return result


_RESULT_ORDER = ("backend", "exit_code", "duration_ms", "output", "error", "token_usage")


def _task_result(outcome: Outcome, order: tuple[str, ...] = _RESULT_ORDER) -> dict[str, Any]:
    """The members of one result, in C{order}, empty ones left out."""
    members: dict[str, Any] = {
        "backend": outcome.backend,
        "exit_code": outcome.exit_code,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.output:
        members["output"] = outcome.output
    if outcome.error:
        members["error"] = outcome.error
    if outcome.usage is not None:
        members["token_usage"] = outcome.usage.as_dict()
    return {key: members[key] for key in order if key in members}


def session_info(record: SessionRecord) -> dict[str, Any]:
    """
    The API's view of a session (docs/design/native-api.md#session-info): the native
    id, parent, error message and metadata stay private.
    """
    info: dict[str, Any] = {
        "id": record.id,
        "backend": record.backend,
        "created_at": format_timestamp(record.created_at),
        "last_used": format_timestamp(record.last_used),
    }
    optional: dict[str, Any] = {
        "working_dir": record.working_dir,
        "model": record.model,
        "initial_prompt": record.initial_prompt,
        "status": record.status,
        "turn_count": record.turn_count,
        "token_usage": record.token_usage.as_dict() if record.token_usage is not None else None,
        "tags": list(record.tags),
        "title": record.title,
    }
    info.update((key, value) for key, value in optional.items() if value)
    return info


def _query(request: IRequest) -> dict[str, str]:
    """The first value of every query parameter, empty values left out."""
    args: dict[bytes, list[bytes]] = request.args or {}
    query = {}
    for key, values in args.items():
        if values and values[0]:
            query[key.decode("utf-8", "replace")] = values[0].decode("utf-8", "replace")
    return query


# What Go's strconv.Atoi accepts: no spaces, no underscores.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _count(args: Mapping[str, str], name: str) -> int | ErrorDetail:
    """A non-negative integer parameter (0 when absent), or what is wrong with it."""
    raw = args.get(name)
    if raw is None:
        return 0
    # Go's Atoi refuses what does not fit in 64 bits (and Python's int()
    # refuses more than 4300 digits).
    if not _INTEGER.fullmatch(raw) or len(raw.lstrip("+-")) > 19 or not -(2**63) <= int(raw) < 2**63:
        return ErrorDetail("invalid integer", f"query.{name}", raw)
    value = int(raw)
    if value < 0:
        return ErrorDetail("expected number >= 0", f"query.{name}", value)
    return value
