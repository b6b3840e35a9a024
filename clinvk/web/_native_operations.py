# -*- test-case-name: tests.test_openapi,tests.web -*-
"""
What the native API under C{/api/v1} contributes to the OpenAPI document:
one L{Operation} per route (docs/design/native-api.md#native-routing), which L{clinvk.web.native}
routes and L{clinvk.openapi} describes.
"""

from __future__ import annotations

from clinvk.openapi import Operation, Parameter

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

OPERATIONS: tuple[Operation, ...] = (
    PROMPT,
    PARALLEL,
    CHAIN,
    COMPARE,
    BACKENDS,
    LIST_SESSIONS,
    GET_SESSION,
    DELETE_SESSION,
)
