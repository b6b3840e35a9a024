# -*- test-case-name: tests.web -*-
"""
The native REST API under C{/api/v1} (docs/design/native-api.md#native-api): prompts, batches,
backends and sessions.

Handlers translate JSON into calls of the L{Orchestrator} and outcomes
back into JSON.  Problems of a run are part of its result (HTTP 200);
only malformed requests and unknown sessions are HTTP errors, which the
handlers raise and the family's error handler answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from clinvk.backends.availability import BackendAvailability
from clinvk.backends.options import effective_format
from clinvk.config import ClinvkConfig
from clinvk.errors import InvalidRequest
from clinvk.model import RunRequest
from clinvk.openapi import Operation
from clinvk.orchestration import ChainStep, Orchestrator, Outcome
from clinvk.schemas import SchemaSet
from clinvk.sessions import SessionRecord, format_timestamp
from clinvk.web._errors import Dialect
from clinvk.web._native_operations import (
    BACKENDS,
    CHAIN,
    COMPARE,
    DELETE_SESSION,
    GET_SESSION,
    LIST_SESSIONS,
    OPERATIONS,
    PARALLEL,
    PROMPT,
)
from clinvk.web._request import read_json, read_query
from clinvk.web._responses import typed_response, write_json
from clinvk.web._routing import family_app, route
from clinvk.web._streaming import stream_ndjson
from clinvk.web.deadline import RequestDeadline


class NativeApi:
    """
    The C{/api/v1} family.

    @param orchestrator: Runs what requests ask for and keeps the sessions.
    @param availability: Which CLIs are installed.
    @param schemas: Validates request bodies.
    @param config: The server's configuration (the default output format,
        the request deadline).
    @param clock: Times the request deadline; stamps the error event that
        ends a stream.
    @ivar deadline: The request deadline of every route.
    """

    dialect: ClassVar[Dialect] = Dialect.NATIVE
    operations: ClassVar[tuple[Operation, ...]] = OPERATIONS
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
        self._clock = clock
        self.deadline = RequestDeadline(clock, float(config.server.request_timeout_secs))
        self._availability = availability
        self._schemas = schemas
        self._config = config

    def _body(self, request: IRequest, schema: str) -> dict[str, Any]:
        body: dict[str, Any] = read_json(request, self._schemas, schema, match_case=False)
        return body

    @route(app, PROMPT, failure="execution failed")
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
            # A run refused a slot is a 429 like any other, not a 200 with
            # the refusal in the stream; a wait cancelled cancels the run.
            await stream.started()
            await stream_ndjson(request, stream, self._clock)
            return None
        outcome = await self._orchestrator.prompt(run, metadata=metadata, session_id=session_id)
        write_json(request, _prompt_result(outcome))
        return None

    @route(app, PARALLEL, failure="parallel execution failed")
    async def parallel(self, request: IRequest) -> bytes:
        body = self._body(request, "ParallelRequest")
        tasks = body.get("tasks") or []
        if not tasks:
            raise InvalidRequest("tasks are required", param="tasks")
        _check_items(tasks, "tasks")
        outcome = await self._orchestrator.parallel(
            [_run_request(task) for task in tasks],
            max_parallel=body.get("max_parallel") or 0,
            fail_fast=bool(body.get("fail_fast")),
            dry_run=bool(body.get("dry_run")),
        )
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

    @route(app, CHAIN, failure="chain execution failed")
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
        outcome = await self._orchestrator.chain(
            [ChainStep(_run_request(step), _text(step, "name")) for step in steps],
            stop_on_failure=bool(body.get("stop_on_failure")),
            pass_working_dir=bool(body.get("pass_working_dir")),
            dry_run=bool(body.get("dry_run")),
        )
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

    @route(app, COMPARE, failure="compare execution failed")
    async def compare(self, request: IRequest) -> bytes:
        body = self._body(request, "CompareRequest")
        backends: list[str] = body.get("backends") or []
        if not backends:
            raise InvalidRequest("backends are required", param="backends")
        prompt = body["prompt"]
        if not prompt:
            raise InvalidRequest("prompt is required", param="prompt")
        model = _text(body, "model")
        outcome = await self._orchestrator.compare(
            backends,
            prompt,
            model=model,
            workdir=_text(body, "workdir"),
            sequential=bool(body.get("sequential")),
            dry_run=bool(body.get("dry_run")),
        )
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
        live = self._orchestrator.live_status()
        backends = [
            {"name": name, "available": available, "live": live.get(name, "off")}
            for name, available in self._availability.cached()
        ]
        return typed_response(request, "BackendsResponseBody", {"backends": backends})

    @route(app, LIST_SESSIONS, failure="failed to list sessions")
    async def list_sessions(self, request: IRequest) -> bytes:
        query = read_query(request, LIST_SESSIONS.parameters)
        page = await self._orchestrator.list_sessions(
            backend=query["backend"], status=query["status"], limit=query["limit"], offset=query["offset"]
        )
        return typed_response(
            request,
            "SessionsResponseBody",
            {
                "sessions": [session_info(record) for record in page.sessions],
                "total": page.total,
                "limit": query["limit"],
                "offset": query["offset"],
            },
        )

    @route(app, GET_SESSION, failure="failed to read session")
    async def get_session(self, request: IRequest, id: str) -> bytes:
        record = await self._orchestrator.session(id)
        return typed_response(request, "SessionInfo", session_info(record))

    @route(app, DELETE_SESSION, failure="failed to delete session")
    async def delete_session(self, request: IRequest, id: str) -> bytes:
        await self._orchestrator.delete_session(id)
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
    The API's view of a session (docs/design/native-api.md#session-info): the native id, parent,
    error message and metadata stay private.
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
