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
internal error whose traceback is logged and never sent.  A route may name
its internal failure (docs/design/error-mapping.md#problem-catalogue: C{execution failed},
C{failed to list sessions}); then an unexpected error or a failure of the session store is
that failure, with the cause as its one detail.

Every failure goes through L{render_failure}: the family's JSON error
body before anything is written, or, once a stream has started, the
stream's last frame (L{stream_error_frame}).
"""

from __future__ import annotations

from enum import Enum
from http import HTTPStatus

import attrs
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as _WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as _WerkzeugNotFound

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from clinvk.backends import events
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
    StoreError,
    Unauthorized,
    ValidationFailed,
)
from clinvk.web._responses import bytes_response, described_by, json_bytes, json_response, schema_url
from clinvk.web._sse import DONE, frame
from clinvk.web._streaming import EventOrigin, open_stream

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


# The request attribute where a route notes what its failure is called.
_FAILURE = "_clinvk_failure"


def name_failure(request: IRequest, failure: str) -> None:
    """
    Call an internal failure of C{request}'s endpoint C{failure} instead
    of the generic C{internal server error}: an unexpected error, or a
    failure of the session store, becomes a 500 with that detail and its
    cause as the one entry of C{errors}
    (docs/design/error-mapping.md#problem-catalogue).
    """
    setattr(request, _FAILURE, failure)


def error_from_failure(failure: Failure, request: IRequest) -> ClinvkError:
    """
    Turn any failure of request processing into a L{ClinvkError}, logging
    the traceback of unexpected ones (once, here).
    """
    value = failure.value
    named: str | None = getattr(request, _FAILURE, None)
    method = request.method.decode("latin-1")
    path = request.path.decode("latin-1")
    if isinstance(value, StoreError):
        # Of the hierarchy, the one error that is an incident, not an
        # answer: the operator must hear of it (its cause says enough
        # without a traceback).
        log.error(
            "Session store failed method={method} path={path} request_id={request_id} reason={reason}",
            method=method,
            path=path,
            request_id=_request_id(request),
            reason=str(value),
        )
        if named is not None:
            return InternalError(named, details=[ErrorDetail(str(value))])
    if isinstance(value, ClinvkError):
        return value
    if isinstance(value, _WerkzeugMethodNotAllowed):
        allowed = sorted(m for m in (value.valid_methods or ()) if m != "HEAD")
        return method_not_allowed(method, path, allowed)
    if isinstance(value, _WerkzeugNotFound):
        return route_not_found(method, path)
    if isinstance(value, HTTPException) and value.code is not None and 400 <= value.code < 500:
        # The router refusing the request itself, such as a Host header it
        # cannot encode (there are no redirects in clinvk's routing).
        return InvalidRequest(f"invalid request: {value.description}")
    log.failure(
        "Unhandled error method={method} path={path} request_id={request_id}",
        failure,
        method=method,
        path=path,
        request_id=_request_id(request),
    )
    if named is not None:
        return InternalError(named, details=[ErrorDetail(str(value) or type(value).__name__)])
    return InternalError("internal server error")


def _request_id(request: IRequest) -> str:
    """The id the root gave C{request} (L{clinvk.web._wrappers.RequestIds}), or C{""}."""
    given = request.responseHeaders.getRawHeaders(b"x-request-id")
    return given[0].decode("latin-1") if given else ""


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


def _openai_body(error: ClinvkError) -> dict[str, object]:
    return {
        "error": {
            "message": _compat_message(error),
            "type": _openai_type(_compat_status(error)),
            "param": _compat_param(error),
            "code": error.code,
        }
    }


def _openai(request: IRequest, error: ClinvkError) -> bytes:
    return json_response(request, _openai_body(error), status=_compat_status(error))


_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


# In a stream, the deadline is a timeout_error (docs/design/http.md#request-deadline);
# as a status it is a 504, which the SDK reads as an api_error
# (docs/design/decisions.md#d2-sdk-error-dialects, docs/design/error-mapping.md#compat-error-bodies).
_ANTHROPIC_STREAM_TYPES = {**_ANTHROPIC_TYPES, 504: "timeout_error"}


def _anthropic_type(status: int, *, streaming: bool = False) -> str:
    types = _ANTHROPIC_STREAM_TYPES if streaming else _ANTHROPIC_TYPES
    if status in types:
        return types[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _anthropic_body(error: ClinvkError, *, streaming: bool = False) -> dict[str, object]:
    return {
        "type": "error",
        "error": {
            "type": _anthropic_type(_compat_status(error), streaming=streaming),
            "message": _compat_message(error),
        },
    }


def _anthropic(request: IRequest, error: ClinvkError) -> bytes:
    return json_response(request, _anthropic_body(error), status=_compat_status(error))


def stream_error_frame(dialect: Dialect, error: ClinvkError, origin: EventOrigin | None = None) -> bytes:
    """
    The frame that ends a stream of C{dialect} with C{error}, as the
    official SDKs parse it:

      - native: an NDJSON C{error} event whose content is the error's
        code and message (docs/design/native-api.md#prompt-stream);
      - OpenAI: a C{data:} event holding the error of the JSON dialect,
        then C{data: [DONE]} (docs/design/decisions.md#d2-sdk-error-dialects);
      - Anthropic: an C{event: error} holding the JSON dialect's body, but
        for the deadline, which is a C{timeout_error}.

    @param origin: Who the native event is from; required for the native
        dialect.
    """
    if dialect is Dialect.OPENAI:
        return frame(_openai_body(error)) + DONE
    if dialect is Dialect.ANTHROPIC:
        return frame(_anthropic_body(error, streaming=True), "error")
    if origin is None:
        raise ValueError("a native error event needs the origin of the stream's events")
    event = attrs.evolve(events.error(error.message, 0, code=error.code), timestamp=origin.timestamp)
    return json_bytes(event.wire(origin.backend, origin.session_id))


def render_failure(request: IRequest, dialect: Dialect, failure: Failure) -> bytes:
    """
    Answer C{request}, whose processing failed with C{failure}, in
    C{dialect}: with the error's status and body, or, once a stream has
    started, with the stream's error frame.

    @return: The body for the caller to write; C{b""} once the response
        has started, which can then only end.
    """
    error = error_from_failure(failure, request)
    if not getattr(request, "startedWriting", False):
        return render_error(request, dialect, error)
    stream = open_stream(request)
    if stream is not None:
        origin = stream.origin() if stream.origin is not None else None
        request.write(stream_error_frame(dialect, error, origin))
    return b""


def install_error_handlers(app: Klein, dialect: Dialect) -> None:
    """
    Make every failure of C{app}'s routes render in C{dialect}
    (L{render_failure}).

    Klein skips the handlers once the client has gone away, so a
    cancellation after a disconnect writes nothing.
    """

    def handle(self: object, request: IRequest, failure: Failure) -> bytes:
        return render_failure(request, dialect, failure)

    app.handle_errors(Exception)(handle)
