# -*- test-case-name: tests.web.test_errors -*-
"""
The one exception hierarchy of clinvk.

Business code raises these; only L{clinvk.web._errors} turns them into HTTP
responses, in the error dialect of the API family that was called.  Each
class fixes an HTTP status and a stable machine-readable code.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import ClassVar

from attrs import frozen


class _Absent(Enum):
    """
    The type of L{ABSENT}: a value that was not given at all, as opposed to
    a JSON C{null}.
    """

    ABSENT = "ABSENT"


ABSENT = _Absent.ABSENT


@frozen
class ErrorDetail:
    """
    One entry of a problem document's C{errors} array.

    @ivar message: What is wrong.
    @ivar location: Dotted path of the offending part (C{body.tasks[0]}),
        or L{None} when unknown.
    @ivar value: The offending value; L{ABSENT} to omit it.
    """

    message: str
    location: str | None = None
    value: object = ABSENT


class ClinvkError(Exception):
    """
    A failure with a known HTTP status and a stable code.

    @ivar message: Human-readable text, safe to show to the client.
    @ivar details: Per-field details (problem documents' C{errors}).
    @ivar param: The request field the error is about, when there is one
        (the OpenAI dialect reports it).
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: Sequence[ErrorDetail] = (),
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)
        self.param = param


class InvalidRequest(ClinvkError):
    """The request is malformed or fails a semantic check (400)."""

    status = 400
    code = "invalid_request"


class Unauthorized(ClinvkError):
    """No API key, or a wrong one (401)."""

    status = 401
    code = "unauthorized"


class NotFound(ClinvkError):
    """A thing the request names does not exist, such as a session (404)."""

    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    """
    A session could not be found or read (404).

    Its text is the reason, worded as docs/design/session-store.md#session-ids lists
    them; the client is told C{session not found}, with the reason as the
    one detail (docs/design/native-api.md#session-get).

    @ivar reason: Why no session could be used.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("session not found", details=[ErrorDetail(reason)])
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class ModelNotFound(NotFound):
    """A compatibility API was asked for a model it does not list (404)."""

    code = "model_not_found"


class RouteNotFound(ClinvkError):
    """No route serves this path (404, the router's fallback)."""

    status = 404
    code = "route_not_found"


class MethodNotAllowed(ClinvkError):
    """
    The path exists but not with this method (405).

    @ivar allowed: The methods the path does accept, for the C{Allow} header.
    """

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class Conflict(ClinvkError):
    """The request conflicts with the current state (409)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ClinvkError):
    """The request body is larger than the configured limit (413)."""

    status = 413
    code = "request_too_large"


class UnsupportedMediaType(ClinvkError):
    """The request body is not JSON (415)."""

    status = 415
    code = "unsupported_media_type"


class ValidationFailed(ClinvkError):
    """
    The body or query violates its schema (422 on the native API; the
    compatibility APIs report it as 400, as the real APIs do).
    """

    status = 422
    code = "validation_failed"


class RateLimited(ClinvkError):
    """
    Too many requests (429).

    @ivar retry_after: Seconds the client should wait, for C{Retry-After}.
    """

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InternalError(ClinvkError):
    """An unexpected failure; the message is generic by design (500)."""

    status = 500
    code = "internal_error"


class StoreError(InternalError):
    """
    The session store itself failed: its directory could not be read, its
    lock not taken, or a file not written (500).  Its text is the cause;
    an endpoint that names its failure (C{failed to list sessions})
    reports the cause as the detail of that failure
    (docs/design/error-mapping.md#problem-catalogue).
    """


class BackendFailed(ClinvkError):
    """The backend CLI failed before it produced an answer (502)."""

    status = 502
    code = "backend_failed"


class BackendUnavailable(ClinvkError):
    """The backend CLI is not installed or cannot be started (503)."""

    status = 503
    code = "backend_unavailable"


class ShuttingDown(ClinvkError):
    """The server is stopping and takes no new work (503)."""

    status = 503
    code = "shutting_down"


class RunTimedOut(ClinvkError):
    """The request deadline expired (504)."""

    status = 504
    code = "timeout"


class KeysUnavailable(ClinvkError):
    """The API keys have not been loaded (yet): requests are refused, not let through (503)."""

    status = 503
    code = "keys_unavailable"
