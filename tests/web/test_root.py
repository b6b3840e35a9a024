"""
Tests for L{clinvk.web.root}: dispatch by prefix, exact routing, request
ids and the access log.
"""

from __future__ import annotations

import json
import re
from typing import cast

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from clinvk.web._wrappers import AccessLog, RequestIds
from tests.helpers import call, make_root


class RoutingTests(SynchronousTestCase):
    """Routing rules of docs/design/native-api.md#native-routing that hold on every prefix."""

    def setUp(self) -> None:
        self.root, self.clock = make_root()

    def test_exact_paths(self) -> None:
        """Trailing slashes and doubled slashes are 404, never a redirect."""
        for path in ("/health/", "//health", "/health//", "/openapi.json/", "/docs/", "/schemas/"):
            response = call(self, self.root, "GET", path)
            self.assertEqual((response.code, response.body), (404, b"404 page not found\n"), path)

    def test_mounted_under_a_prefix(self) -> None:
        """Mounted below another path, families are chosen below the mount point."""
        parent = Resource()
        parent.putChild(b"clinvk", self.root)
        openai = call(self, parent, "GET", "/clinvk/openai/v1/nope")
        self.assertEqual(
            json.loads(openai.body)["error"]["message"], "Unknown request URL: GET /clinvk/openai/v1/nope"
        )
        self.assertEqual(call(self, parent, "GET", "/clinvk/health").code, 200)
        self.assertEqual(call(self, parent, "GET", "/clinvk//health").code, 404)

    def test_percent_encoded_prefix(self) -> None:
        """A percent-encoded prefix belongs to the family it decodes to."""
        response = call(self, self.root, "GET", "/open%61i/v1/nope")
        self.assertEqual(json.loads(response.body)["error"]["type"], "invalid_request_error")

    def test_bad_host(self) -> None:
        """A Host header the router cannot use is a 400, not a 404."""
        response = call(self, self.root, "GET", "/health", headers={"Host": "a..b"})
        self.assertEqual(response.code, 400)
        self.assertEqual(json.loads(response.body)["status"], 400)

    def test_not_utf8(self) -> None:
        """A path that is not UTF-8 is a quiet 404 in the family's dialect."""
        self.assertEqual(call(self, self.root, "GET", "/%ff").body, b"404 page not found\n")
        response = call(self, self.root, "GET", "/anthropic/v1/%ff")
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["type"]), (404, "not_found_error")
        )
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_host_not_utf8(self) -> None:
        """A Host header that is not UTF-8 is a 400 problem, not a logged crash."""
        request = Request(DummyChannel())
        request.requestHeaders.setRawHeaders(b"host", [b"\xff"])
        request.method = b"GET"
        request.uri = request.path = b"/health"
        request.prepath, request.postpath = [], [b"health"]
        body = self.root.render(request)
        assert isinstance(body, bytes)
        self.assertEqual(request.code, 400)
        self.assertEqual(json.loads(body)["detail"], "the Host header is not UTF-8")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_head_is_not_get(self) -> None:
        """HEAD on a GET route is 405 with Allow: GET; on an unknown path, 404."""
        response = call(self, self.root, "HEAD", "/health")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.header("Allow"), "GET")
        self.assertEqual(call(self, self.root, "HEAD", "/nope").code, 404)

    def test_head_in_compat_dialect(self) -> None:
        """HEAD under /openai/ answers in the OpenAI dialect (a JSON error, without its body)."""
        response = call(self, self.root, "HEAD", "/openai/v1/models")
        self.assertEqual((response.code, response.header("Allow")), (405, "GET"))
        self.assertEqual(response.header("Content-Type"), "application/json")
        self.assertEqual(response.body, b"")

    def test_options_without_preflight(self) -> None:
        """OPTIONS is not a registered method: 405."""
        response = call(self, self.root, "OPTIONS", "/health")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.header("Allow"), "GET")

    def test_wrong_method(self) -> None:
        """POST on a GET route is 405 with an empty body."""
        response = call(self, self.root, "POST", "/health", data=b"{}")
        self.assertEqual((response.code, response.body, response.header("Allow")), (405, b"", "GET"))

    def test_prefixes(self) -> None:
        """Each prefix answers unknown paths in its own dialect."""
        native = call(self, self.root, "GET", "/api/v1/nope")
        self.assertEqual((native.code, native.header("Content-Type")), (404, "application/problem+json"))
        self.assertEqual(json.loads(native.body)["detail"], "Unknown request URL: GET /api/v1/nope")
        openai = json.loads(call(self, self.root, "GET", "/openai/v1/nope").body)
        self.assertEqual(openai["error"]["type"], "invalid_request_error")
        anthropic = json.loads(call(self, self.root, "GET", "/anthropic/v1/nope").body)
        self.assertEqual(anthropic["error"]["type"], "not_found_error")
        # A path that only starts like a prefix is not under it.
        self.assertEqual(call(self, self.root, "GET", "/openaix").body, b"404 page not found\n")


class RequestIdTests(SynchronousTestCase):
    """X-Request-Id (docs/design/http.md#request-id)."""

    def setUp(self) -> None:
        self.root, self.clock = make_root()

    def test_generated(self) -> None:
        """Without one, ids are <host>/<tag>-<counter>, counting from 1."""
        first = call(self, self.root, "GET", "/health").header("X-Request-Id")
        second = call(self, self.root, "GET", "/nope").header("X-Request-Id")
        assert first is not None and second is not None
        pattern = r"(.+)/([A-Za-z0-9]{10})-(\d{6,})"
        first_match = re.fullmatch(pattern, first)
        second_match = re.fullmatch(pattern, second)
        assert first_match is not None and second_match is not None
        self.assertEqual(first_match.group(1, 2), second_match.group(1, 2))
        self.assertEqual(int(second_match.group(3)), int(first_match.group(3)) + 1)

    def test_given(self) -> None:
        """A client's id is echoed verbatim, on errors too."""
        for path in ("/health", "/nope", "/openai/v1/nope"):
            response = call(self, self.root, "GET", path, headers={"X-Request-Id": "abc"})
            self.assertEqual(response.header("X-Request-Id"), "abc")

    def test_counter_format(self) -> None:
        """The counter has at least six digits."""
        ids = RequestIds("host", "TAGTAGTAG0")
        request = Request(DummyChannel())
        self.assertEqual(ids.assign(request), b"host/TAGTAGTAG0-000001")
        ids._counter = 999_998
        self.assertEqual(ids.assign(Request(DummyChannel())), b"host/TAGTAGTAG0-999999")
        self.assertEqual(ids.assign(Request(DummyChannel())), b"host/TAGTAGTAG0-1000000")

    def test_no_trace_headers(self) -> None:
        """Tracing headers are ignored and never returned."""
        response = call(self, self.root, "GET", "/health", headers={"traceparent": "garbage"})
        self.assertEqual(response.code, 200)
        self.assertIsNone(response.header("traceparent"))


class AccessLogTests(SynchronousTestCase):
    """One log event per request (docs/design/http.md#access-log)."""

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(cast("TestCase", self), globalLogPublisher)

    def access_events(self) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("log_format", "").startswith("request ")]

    def test_fields(self) -> None:
        """The event has method, path, status, bytes, duration and request id."""
        root, _ = make_root()
        response = call(self, root, "GET", "/nope", headers={"X-Request-Id": "rid-1"})
        [event] = self.access_events()
        self.assertEqual(event["method"], "GET")
        self.assertEqual(event["path"], "/nope")
        self.assertEqual(event["status"], 404)
        self.assertEqual(event["bytes"], len(response.body))
        self.assertEqual(event["duration_ms"], 0)
        self.assertEqual(event["request_id"], "rid-1")

    def test_duration_and_disconnect(self) -> None:
        """The duration comes from the clock; a client gone before any answer logs 499."""
        clock = Clock()
        log = AccessLog(clock)
        request = Request(DummyChannel())
        request.method = b"POST"
        request.path = b"/api/v1/prompt"
        log.watch(request, b"rid-2")
        clock.advance(1.25)
        request.connectionLost(Failure(ConnectionDone()))
        [event] = self.access_events()
        self.assertEqual((event["status"], event["duration_ms"], event["bytes"]), (499, 1250, 0))
