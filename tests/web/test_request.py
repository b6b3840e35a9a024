"""
Tests for L{clinvk.web._request}: the order and form of body checks of
docs/design/native-api.md#request-bodies, and the declared query parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, cast

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from clinvk.errors import ErrorDetail, ValidationFailed
from clinvk.openapi import Operation, Parameter
from clinvk.schemas import SchemaSet
from clinvk.web._errors import Dialect
from clinvk.web._request import read_json, read_query
from clinvk.web._responses import json_response
from clinvk.web._routing import family_app
from clinvk.web._wrappers import AccessLog, RequestIds
from clinvk.web.root import ClinvkRoot
from tests.helpers import Response, call

SCHEMAS = SchemaSet.from_directory(Path(__file__).parent.parent / "data" / "schemas")


class EchoApi:
    """Echoes the validated body of POST /api/v1/echo."""

    dialect: ClassVar[Dialect] = Dialect.NATIVE
    operations: ClassVar[tuple[Operation, ...]] = ()
    app = family_app(dialect)

    @app.route("/api/v1/echo", methods=["POST"])
    def echo(self, request: IRequest) -> bytes:
        return json_response(request, read_json(request, SCHEMAS, "Prompt", match_case=False))


class ReadJsonTests(SynchronousTestCase):
    """Each check, in order, with its status and problem."""

    def setUp(self) -> None:
        self.root = ClinvkRoot(
            mounts=[("/api/v1", EchoApi())],
            fallback=EchoApi(),
            request_ids=RequestIds("h", "t"),
            access_log=AccessLog(Clock()),
        )

    def post(self, data: bytes, content_type: str | None = "application/json") -> tuple[Response, Any]:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        response = call(self, self.root, "POST", "/api/v1/echo", data=data, headers=headers)
        return response, json.loads(response.body)

    def test_valid(self) -> None:
        """A valid body comes through, with property names as declared."""
        response, body = self.post(b'{"Backend":"claude","PROMPT":"x"}')
        self.assertEqual(response.code, 200)
        self.assertEqual(body, {"backend": "claude", "prompt": "x"})

    def test_empty_body(self) -> None:
        """An empty body is 400 'request body is required', without errors, even with a bad type."""
        for content_type in ("application/json", "text/plain"):
            response, body = self.post(b"", content_type)
            self.assertEqual(response.code, 400)
            self.assertEqual(body["detail"], "request body is required")
            self.assertNotIn("errors", body)

    def test_content_types(self) -> None:
        """JSON types, +json suffixes and no type at all are JSON; others are 415."""
        data = b'{"backend":"claude","prompt":"x"}'
        for accepted in (
            None,
            "",
            "application/json",
            "application/json; charset=utf-8",
            "application/vnd.acme+json",
            "json",
        ):
            self.assertEqual(self.post(data, accepted)[0].code, 200, accepted)
        for refused in ("text/plain", "application/x-www-form-urlencoded", "APPLICATION/JSON"):
            response, body = self.post(data, refused)
            self.assertEqual(response.code, 415, refused)
            self.assertEqual(
                body["errors"],
                [{"message": f"unknown content type: {refused}", "location": "body", "value": data.decode()}],
            )
            self.assertEqual(body["detail"], "validation failed")

    def test_malformed(self) -> None:
        """Malformed JSON is 400 with the raw body as the value."""
        response, body = self.post(b'{"backend":')
        self.assertEqual(response.code, 400)
        self.assertEqual(body["detail"], "validation failed")
        [error] = body["errors"]
        self.assertEqual((error["location"], error["value"]), ("body", '{"backend":'))
        self.assertTrue(error["message"])

    def test_deeply_nested(self) -> None:
        """JSON nested beyond the parser's depth is a 400, not a crash."""
        response, body = self.post(b"[" * 100_000)
        self.assertEqual(response.code, 400)
        self.assertEqual(body["errors"][0]["message"], "JSON nested too deeply")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_not_json_values(self) -> None:
        """NaN and invalid UTF-8 are malformed JSON too."""
        self.assertEqual(self.post(b'{"backend":NaN,"prompt":"x"}')[0].code, 400)
        self.assertEqual(self.post(b'{"backend":"\xff","prompt":"x"}')[0].code, 400)

    def test_schema_violations(self) -> None:
        """Violations are all reported in one 422."""
        response, body = self.post(b'{"prompt":5,"foo":1}')
        self.assertEqual(response.code, 422)
        self.assertEqual(
            [(e["message"], e["location"]) for e in body["errors"]],
            [
                ("expected required property backend to be present", "body"),
                ("expected string", "body.prompt"),
                ("unexpected property", "body.foo"),
            ],
        )

    def test_not_an_object(self) -> None:
        """A JSON body that is not an object is 422 'expected object'."""
        response, body = self.post(b"[]")
        self.assertEqual(response.code, 422)
        self.assertEqual(body["errors"], [{"message": "expected object", "location": "body", "value": []}])


LISTING = (
    Parameter("backend", "query", {"type": "string"}),
    Parameter("limit", "query", {"type": "integer", "minimum": 0}),
    Parameter("page", "query", {"type": "integer", "minimum": 1}),
    Parameter("id", "path", {"type": "string"}),
)


def query_request(args: dict[bytes, list[bytes]]) -> IRequest:
    request = DummyRequest([b"sessions"])
    request.args = args
    return cast("IRequest", request)


class ReadQueryTests(SynchronousTestCase):
    """L{read_query} reads what an operation's parameters declare."""

    def test_declared(self) -> None:
        """The first value of each declared query parameter, typed; the rest ignored."""
        query = read_query(
            query_request(
                {b"backend": [b"claude", b"codex"], b"limit": [b"+7"], b"id": [b"x"], b"other": [b"1"]}
            ),
            LISTING,
        )
        self.assertEqual(query, {"backend": "claude", "limit": 7, "page": 0})

    def test_absent_or_empty(self) -> None:
        """A parameter absent or given empty first is C{""} or 0."""
        expected = {"backend": "", "limit": 0, "page": 0}
        self.assertEqual(read_query(query_request({}), LISTING), expected)
        self.assertEqual(
            read_query(query_request({b"limit": [b"", b"5"], b"backend": [b""]}), LISTING), expected
        )

    def test_problems(self) -> None:
        """Every bad integer is one detail, in the order of declaration, its minimum from its schema."""
        error = self.assertRaises(
            ValidationFailed,
            read_query,
            query_request({b"page": [b"0"], b"limit": [b"1_000"]}),
            LISTING,
        )
        self.assertEqual(
            error.details,
            (
                ErrorDetail("invalid integer", "query.limit", "1_000"),
                ErrorDetail("expected number >= 1", "query.page", 0),
            ),
        )
