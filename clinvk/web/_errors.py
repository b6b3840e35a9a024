# -*- test-case-name: tests.web.test_errors -*-
"""
The single place where failures become HTTP responses.

Each API family has its own error dialect:

  - the native API and the meta routes use the reference's families
    (docs/design/error-mapping.md#error-families): problem documents,
    the C{{"error", "message"}} bodies of the middleware (401, 413, 429)
    and the router's empty 405; an unknown path is a plain-text 404
    outside the API prefixes (the meta dialect) and a problem document
    under C{/api/v1/};
  - C{/openai/} answers C{{"error": {"message", "type", "param", "code"}}};
  - C{/anthropic/} answers C{{"type": "error", "error": {"type",
    "message"}}} (docs/design/decisions.md#d2-sdk-error-dialects,
    docs/design/error-mapping.md#compat-error-bodies).

Business code raises L{clinvk.errors.ClinvkError}; anything else is an
internal error whose traceback is logged and never sent.
"""

from __future__ import annotations

from enum import Enum
from http import HTTPStatus

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as _WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as _WerkzeugNotFound

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from clinvk.errors import (
    ABSENT,
    ClinvkError,
    ErrorDetail,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    RouteNotFound,
    Unauthorized,
    ValidationFailed,
)
from clinvk.web._responses import bytes_response, described_by, json_response, schema_url

log = Logger()


class Dialect(Enum):
    """The error dialect of an API family."""

    NATIVE = "native"
    # The native dialect, except that an unknown path is the router's
    # plain-text 404: the paths outside the API prefixes.
    META = "meta"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


# Reason phrases as the reference (Go's net/http) writes them; Python's own
# table renamed some of them (413, 422) in later versions.
_REASONS = {
    413: "Request Entity Too Large",
    422: "Unprocessable Entity",
}


def reason_phrase(status: int) -> str:
    """@return: The standard reason phrase of C{status}."""
    if status in _REASONS:
        return _REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Status"


def error_from_failure(failure: Failure, request: IRequest) -> ClinvkError:
    """
    Turn any failure of request processing into a L{ClinvkError}, logging
    the traceback of unexpected ones.
    """
    value = failure.value
    if isinstance(value, ClinvkError):
        return value
    method = request.method.decode("latin-1")
    path = request.path.decode("latin-1")
    if isinstance(value, _WerkzeugMethodNotAllowed):
        allowed = sorted(m for m in (value.valid_methods or ()) if m != "HEAD")
        return method_not_allowed(method, path, allowed)
    if isinstance(value, _WerkzeugNotFound):
        return route_not_found(method, path)
    if isinstance(value, HTTPException) and value.code is not None and 400 <= value.code < 500:
        # The router refusing the request itself, such as a Host header it
        # cannot encode (there are no redirects in clinvk's routing).
        return InvalidRequest(f"invalid request: {value.description}")
    log.failure("Unhandled error method={method} path={path}", failure, method=method, path=path)
    return InternalError("internal server error")


def route_not_found(method: str, path: str) -> RouteNotFound:
    """The router's 404 for C{method path}."""
    return RouteNotFound(f"Unknown request URL: {method} {path}")


def method_not_allowed(method: str, path: str, allowed: list[str]) -> MethodNotAllowed:
    """The router's 405 for C{method path}, given the methods it accepts."""
    return MethodNotAllowed(
        f"Method {method} is not allowed for {path} (allowed: {', '.join(allowed)})", allowed
    )


def render_error(request: IRequest, dialect: Dialect, error: ClinvkError) -> bytes:
    """
    Write the status and headers of C{error} to C{request} in C{dialect}
    and return the body.
    """
    if isinstance(error, MethodNotAllowed):
        request.setHeader(b"Allow", ", ".join(error.allowed).encode("ascii"))
    elif isinstance(error, Unauthorized):
        request.setHeader(b"WWW-Authenticate", b"Bearer")
    elif isinstance(error, RateLimited):
        request.setHeader(b"Retry-After", str(error.retry_after).encode("ascii"))
    if dialect is Dialect.OPENAI:
        return _openai(request, error)
    if dialect is Dialect.ANTHROPIC:
        return _anthropic(request, error)
    if dialect is Dialect.META and isinstance(error, RouteNotFound):
        request.setResponseCode(404)
        return bytes_response(request, b"404 page not found\n", b"text/plain; charset=utf-8")
    return _native(request, error)


def _native(request: IRequest, error: ClinvkError) -> bytes:
    if isinstance(error, MethodNotAllowed):
        request.setResponseCode(405)
        # An empty body with no content type, as the reference's router.
        return bytes_response(request, b"", None)
    if isinstance(error, (Unauthorized, PayloadTooLarge, RateLimited)):
        return json_response(request, {"error": error.code, "message": error.message}, status=error.status)
    problem: dict[str, object] = {
        "$schema": schema_url(request, "ErrorModel"),
        "title": reason_phrase(error.status),
        "status": error.status,
        "detail": error.message,
    }
    if error.details:
        problem["errors"] = [_detail(detail) for detail in error.details]
    described_by(request, "ErrorModel")
    return json_response(request, problem, status=error.status, content_type=b"application/problem+json")


def _detail(detail: ErrorDetail) -> dict[str, object]:
    entry: dict[str, object] = {"message": detail.message}
    if detail.location is not None:
        entry["location"] = detail.location
    if detail.value is not ABSENT and detail.value is not None:
        entry["value"] = detail.value
    return entry


def _compat_status(error: ClinvkError) -> int:
    # The real APIs answer schema violations with 400, not 422
    # (docs/design/decisions.md#d2-sdk-error-dialects).
    return 400 if isinstance(error, ValidationFailed) else error.status


def _compat_message(error: ClinvkError) -> str:
    """The message, naming the offending fields of a validation failure."""
    if not error.details:
        return error.message
    return "; ".join(
        f"{field}: {detail.message}" if (field := _field(detail)) else detail.message
        for detail in error.details
    )


_MISSING = "expected required property "


def _field(detail: ErrorDetail) -> str | None:
    """
    The request field a detail is about: its location below the body, or
    the property it says is missing.
    """
    if detail.location is None:
        return None
    path = detail.location.removeprefix("body").removeprefix(".")
    if detail.message.startswith(_MISSING):
        missing = detail.message.removeprefix(_MISSING).split(" ", 1)[0]
        return f"{path}.{missing}" if path else missing
    return path or "body"


def _compat_param(error: ClinvkError) -> str | None:
    if error.param is not None:
        return error.param
    for detail in error.details:
        field = _field(detail)
        if field and field != "body":
            return field
    return None


def _openai_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _openai(request: IRequest, error: ClinvkError) -> bytes:
    status = _compat_status(error)
    body = {
        "error": {
            "message": _compat_message(error),
            "type": _openai_type(status),
            "param": _compat_param(error),
            "code": error.code,
        }
    }
    return json_response(request, body, status=status)


_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def _anthropic_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _anthropic(request: IRequest, error: ClinvkError) -> bytes:
    status = _compat_status(error)
    body = {
        "type": "error",
        "error": {"type": _anthropic_type(status), "message": _compat_message(error)},
    }
    return json_response(request, body, status=status)


def install_error_handlers(app: Klein, dialect: Dialect) -> None:
    """
    Make every failure of C{app}'s routes render in C{dialect}.

    Klein skips the handlers once the client has gone away, so a
    cancellation after a disconnect writes nothing; a failure after a
    streamed response has started only ends it.
    """

    def handle(self: object, request: IRequest, failure: Failure) -> bytes:
        error = error_from_failure(failure, request)
        if getattr(request, "startedWriting", False):
            # A stream is under way: its status is sent and its body is
            # not a problem document; it can only end here.
            return b""
        return render_error(request, dialect, error)

    app.handle_errors(Exception)(handle)
