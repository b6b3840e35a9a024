"""
Tests for L{clinvk.web._errors}: every failure, in each family's dialect,
through the real root resource.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest

from clinvk.errors import (
    BackendFailed,
    BackendUnavailable,
    ClinvkError,
    Conflict,
    ErrorDetail,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RunTimedOut,
    ShuttingDown,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from clinvk.openapi import Operation
from clinvk.web._errors import Dialect, reason_phrase
from clinvk.web._routing import family_app
from clinvk.web._wrappers import AccessLog, RequestIds
from clinvk.web.root import ClinvkRoot
from tests.helpers import Response, call

ERRORS: dict[str, Exception] = {
    "invalid": InvalidRequest("prompt is required"),
    "validation": ValidationFailed(
        "validation failed",
        details=[
            ErrorDetail("expected required property model to be present", "body", {"x": 1}),
            ErrorDetail("expected array", "body.messages", "hi"),
        ],
    ),
    "unauthorized": Unauthorized("missing API key"),
    "not_found": NotFound("session not found", details=[ErrorDetail("no session matches prefix abcd1234")]),
    "conflict": Conflict("a turn is already running on this session"),
    "too_large": PayloadTooLarge("request body exceeds size limit (10 bytes)"),
    "media": UnsupportedMediaType(
        "validation failed", details=[ErrorDetail("unknown content type: text/plain", "body", "{}")]
    ),
    "rate": RateLimited("rate limit exceeded, please retry later", retry_after=3),
    "failed": BackendFailed("claude exited with status 1: not logged in"),
    "unavailable": BackendUnavailable("backend claude is not available"),
    "stopping": ShuttingDown("server is shutting down"),
    "timeout": RunTimedOut("request timed out after 300s"),
    "crash": RuntimeError("secret internal detail"),
}


def raising_family(prefix: str, dialect: Dialect) -> Any:
    """A family whose POST <prefix>/raise/<name> raises ERRORS[name]."""

    class Raising:
        operations: ClassVar[tuple[Operation, ...]] = ()
        app = family_app(dialect)

        @app.route(f"{prefix}/raise/<name>", methods=["POST"])
        def raise_error(self, request: IRequest, name: str) -> bytes:
            raise ERRORS[name]

    Raising.dialect = dialect  # type: ignore[attr-defined]
    return Raising()


def make_root() -> ClinvkRoot:
    return ClinvkRoot(
        mounts=[
            ("/api/v1", raising_family("/api/v1", Dialect.NATIVE)),
            ("/openai", raising_family("/openai/v1", Dialect.OPENAI)),
            ("/anthropic", raising_family("/anthropic/v1", Dialect.ANTHROPIC)),
        ],
        fallback=raising_family("", Dialect.META),
        request_ids=RequestIds("test-host", "AAAAAAAAAA"),
        access_log=AccessLog(Clock()),
    )


class _DialectTests(SynchronousTestCase):
    prefix = ""

    def setUp(self) -> None:
        self.root = make_root()

    def raise_(self, name: str) -> Response:
        return call(self, self.root, "POST", f"{self.prefix}/raise/{name}")

    def json(self, response: Response) -> Any:
        return json.loads(response.body)


class NativeDialectTests(_DialectTests):
    """The native API's families (docs/design/error-mapping.md#error-families)."""

    prefix = "/api/v1"

    def test_problem_document(self) -> None:
        """A handler error is a problem document with $schema, title, status and detail."""
        response = self.raise_("invalid")
        self.assertEqual(response.code, 400)
        self.assertEqual(response.header("Content-Type"), "application/problem+json")
        self.assertEqual(response.header("Link"), '</schemas/ErrorModel.json>; rel="describedBy"')
        self.assertEqual(
            response.body,
            b'{"$schema":"http://localhost:8080/schemas/ErrorModel.json","title":"Bad Request",'
            b'"status":400,"detail":"prompt is required"}\n',
        )

    def test_validation_details(self) -> None:
        """Schema violations are a 422 with one errors entry each."""
        body = self.json(self.raise_("validation"))
        self.assertEqual(body["status"], 422)
        self.assertEqual(body["title"], "Unprocessable Entity")
        self.assertEqual(
            body["errors"],
            [
                {
                    "message": "expected required property model to be present",
                    "location": "body",
                    "value": {"x": 1},
                },
                {"message": "expected array", "location": "body.messages", "value": "hi"},
            ],
        )
        self.assertNotIn("type", body)

    def test_detail_without_location(self) -> None:
        """An entry without location or value omits them."""
        body = self.json(self.raise_("not_found"))
        self.assertEqual(body["errors"], [{"message": "no session matches prefix abcd1234"}])

    def test_middleware_bodies(self) -> None:
        """401, 413 and 429 use the {"error", "message"} body with their headers."""
        unauthorized = self.raise_("unauthorized")
        self.assertEqual(unauthorized.code, 401)
        self.assertEqual(unauthorized.header("WWW-Authenticate"), "Bearer")
        self.assertEqual(unauthorized.body, b'{"error":"unauthorized","message":"missing API key"}\n')
        too_large = self.raise_("too_large")
        self.assertEqual(too_large.code, 413)
        self.assertEqual(
            self.json(too_large),
            {"error": "request_too_large", "message": "request body exceeds size limit (10 bytes)"},
        )
        rate = self.raise_("rate")
        self.assertEqual(rate.code, 429)
        self.assertEqual(rate.header("Retry-After"), "3")
        self.assertEqual(rate.header("Content-Type"), "application/json")
        self.assertEqual(self.json(rate)["error"], "too_many_requests")

    def test_unexpected_error(self) -> None:
        """Anything else is a generic 500 problem; the traceback is logged, not sent."""
        response = self.raise_("crash")
        self.assertEqual(response.code, 500)
        self.assertEqual(self.json(response)["detail"], "internal server error")
        self.assertNotIn(b"secret", response.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_every_status(self) -> None:
        """Each error keeps its status and reason phrase."""
        for name, status in (
            ("conflict", 409),
            ("media", 415),
            ("failed", 502),
            ("unavailable", 503),
            ("timeout", 504),
        ):
            body = self.json(self.raise_(name))
            self.assertEqual((body["status"], body["title"]), (status, reason_phrase(status)))

    def test_route_fallbacks(self) -> None:
        """Unknown path: 404 problem; wrong method: empty 405 with Allow."""
        missing = call(self, self.root, "GET", "/api/v1/nope")
        self.assertEqual(missing.code, 404)
        self.assertEqual(missing.header("Content-Type"), "application/problem+json")
        self.assertEqual(
            missing.body,
            b'{"$schema":"http://localhost:8080/schemas/ErrorModel.json","title":"Not Found",'
            b'"status":404,"detail":"Unknown request URL: GET /api/v1/nope"}\n',
        )
        wrong = call(self, self.root, "GET", "/api/v1/raise/invalid")
        self.assertEqual(wrong.code, 405)
        self.assertEqual(wrong.body, b"")
        self.assertEqual(wrong.header("Allow"), "POST")
        self.assertIsNone(wrong.header("Content-Type"))

    def test_meta_routes_are_native(self) -> None:
        """Paths outside the API prefixes use the native dialect too, but for the plain-text 404."""
        self.assertEqual(call(self, self.root, "GET", "/nope").body, b"404 page not found\n")
        self.assertEqual(self.json(call(self, self.root, "POST", "/raise/invalid"))["status"], 400)


class OpenAIDialectTests(_DialectTests):
    """The OpenAI dialect of docs/design/decisions.md#d2-sdk-error-dialects."""

    prefix = "/openai/v1"

    def error(self, name: str) -> tuple[int, dict[str, Any], Response]:
        response = self.raise_(name)
        return response.code, self.json(response)["error"], response

    def test_shape(self) -> None:
        """{"error": {message, type, param, code}} with the status."""
        code, error, response = self.error("invalid")
        self.assertEqual(code, 400)
        self.assertEqual(response.header("Content-Type"), "application/json")
        self.assertEqual(
            error,
            {
                "message": "prompt is required",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_request",
            },
        )

    def test_validation_is_400_naming_fields(self) -> None:
        """Schema violations are 400 and the message names the fields."""
        code, error, _ = self.error("validation")
        self.assertEqual(code, 400)
        self.assertEqual(
            error["message"],
            "model: expected required property model to be present; messages: expected array",
        )
        self.assertEqual(error["param"], "model")
        self.assertEqual(error["type"], "invalid_request_error")

    def test_types(self) -> None:
        """Each status maps to the type the SDK expects."""
        expected = {
            "unauthorized": (401, "authentication_error"),
            "not_found": (404, "invalid_request_error"),
            "too_large": (413, "invalid_request_error"),
            "media": (415, "invalid_request_error"),
            "rate": (429, "rate_limit_error"),
            "failed": (502, "server_error"),
            "unavailable": (503, "server_error"),
            "timeout": (504, "server_error"),
            "crash": (500, "server_error"),
        }
        for name, (status, kind) in expected.items():
            code, error, _ = self.error(name)
            self.assertEqual((code, error["type"]), (status, kind), name)
        self.flushLoggedErrors(RuntimeError)

    def test_headers_kept(self) -> None:
        """401 and 429 keep WWW-Authenticate and Retry-After."""
        self.assertEqual(self.raise_("unauthorized").header("WWW-Authenticate"), "Bearer")
        self.assertEqual(self.raise_("rate").header("Retry-After"), "3")

    def test_crash_is_generic(self) -> None:
        """An unexpected error leaks nothing."""
        _, error, response = self.error("crash")
        self.assertEqual(error["message"], "internal server error")
        self.assertNotIn(b"secret", response.body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_route_fallbacks(self) -> None:
        """404 and 405 under /openai/ are OpenAI errors."""
        missing = call(self, self.root, "GET", "/openai/v1/nope")
        self.assertEqual(missing.code, 404)
        self.assertEqual(self.json(missing)["error"]["message"], "Unknown request URL: GET /openai/v1/nope")
        self.assertEqual(self.json(missing)["error"]["type"], "invalid_request_error")
        wrong = call(self, self.root, "DELETE", "/openai/v1/raise/x")
        self.assertEqual(wrong.code, 405)
        self.assertEqual(wrong.header("Allow"), "POST")
        self.assertEqual(self.json(wrong)["error"]["type"], "invalid_request_error")
        bare = call(self, self.root, "GET", "/openai")
        self.assertEqual(self.json(bare)["error"]["code"], "route_not_found")


class AnthropicDialectTests(_DialectTests):
    """The Anthropic dialect of docs/design/decisions.md#d2-sdk-error-dialects."""

    prefix = "/anthropic/v1"

    def error(self, name: str) -> tuple[int, dict[str, Any]]:
        response = self.raise_(name)
        body = self.json(response)
        self.assertEqual(body["type"], "error")
        return response.code, body["error"]

    def test_shape(self) -> None:
        """{"type": "error", "error": {type, message}}."""
        self.assertEqual(
            self.error("invalid"), (400, {"type": "invalid_request_error", "message": "prompt is required"})
        )

    def test_types(self) -> None:
        """Each status maps to the type the SDK expects."""
        expected = {
            "validation": (400, "invalid_request_error"),
            "unauthorized": (401, "authentication_error"),
            "not_found": (404, "not_found_error"),
            "too_large": (413, "request_too_large"),
            "media": (415, "invalid_request_error"),
            "rate": (429, "rate_limit_error"),
            "failed": (502, "api_error"),
            "unavailable": (503, "overloaded_error"),
            "stopping": (503, "overloaded_error"),
            "timeout": (504, "api_error"),
            "crash": (500, "api_error"),
        }
        for name, (status, kind) in expected.items():
            code, error = self.error(name)
            self.assertEqual((code, error["type"]), (status, kind), name)
        self.flushLoggedErrors(RuntimeError)

    def test_route_fallbacks(self) -> None:
        """404 is not_found_error; 405 is invalid_request_error with Allow."""
        missing = call(self, self.root, "GET", "/anthropic/v1/nope")
        self.assertEqual((missing.code, self.json(missing)["error"]["type"]), (404, "not_found_error"))
        wrong = call(self, self.root, "PUT", "/anthropic/v1/raise/x")
        self.assertEqual((wrong.code, self.json(wrong)["error"]["type"]), (405, "invalid_request_error"))
        self.assertEqual(wrong.header("Allow"), "POST")


class ClinvkErrorTests(SynchronousTestCase):
    """The exception hierarchy itself."""

    def test_statuses_and_codes(self) -> None:
        """Every class has its own status and a stable code."""
        self.assertEqual(ClinvkError("x").status, 500)
        classes = [type(e) for e in ERRORS.values() if isinstance(e, ClinvkError)]
        self.assertEqual(len({cls.code for cls in classes}), len(classes))
        self.assertEqual(RateLimited("x").retry_after, 1)
