"""
Tests for L{clinvk.web._misdirected}: an SDK pointed at the wrong base URL
is told, in its own dialect, where the API is (issue 16).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from tests.helpers import Response, call, make_root
from tests.web._native import NativeTestCase

OPENAI_HINT = (
    "the OpenAI-compatible API is under /openai/v1; set the SDK's base_url to http://localhost:8080/openai/v1"
)
ANTHROPIC_HINT = "the Anthropic-compatible API is under /anthropic/v1; set the SDK's base_url to http://localhost:8080/anthropic"


class MisdirectedTests(SynchronousTestCase):
    """Through the real root resource."""

    def setUp(self) -> None:
        self.root, _ = make_root()

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return call(self, self.root, method, path, **kwargs)

    def openai_error(self, response: Response) -> str:
        """The message of an OpenAI 404 error body."""
        self.assertEqual((response.code, response.header("Content-Type")), (404, "application/json"))
        error = json.loads(response.body)["error"]
        self.assertEqual(
            (error["type"], error["param"], error["code"]), ("invalid_request_error", None, "route_not_found")
        )
        message: str = error["message"]
        return message

    def anthropic_error(self, response: Response) -> str:
        """The message of an Anthropic 404 error body."""
        self.assertEqual((response.code, response.header("Content-Type")), (404, "application/json"))
        body = json.loads(response.body)
        self.assertEqual((body["type"], body["error"]["type"]), ("error", "not_found_error"))
        message: str = body["error"]["message"]
        return message

    def test_openai_paths(self) -> None:
        """The OpenAI SDK's endpoints below a base URL without /openai/v1 name the right one."""
        for method, path in (
            ("POST", "/v1/chat/completions"),
            ("POST", "/chat/completions"),
            ("GET", "/v1/models"),
            ("GET", "/models"),
            ("GET", "/v1/models/claude"),
            ("POST", "/v1/responses"),
            ("POST", "/v1/completions"),
            ("POST", "/v1/embeddings"),
            ("POST", "/openai/chat/completions"),
            ("POST", "/openai/v1/v1/chat/completions"),
        ):
            message = self.openai_error(self.request(method, path))
            self.assertEqual(message, f"no route {method} {path}: {OPENAI_HINT}")

    def test_anthropic_paths(self) -> None:
        """The Anthropic SDK's endpoints below a base URL other than /anthropic name the right one."""
        for path in (
            "/v1/messages",
            "/messages",
            "/v1/messages/count_tokens",
            "/v1/complete",
            "/anthropic/messages",
            "/anthropic/v1/v1/messages",
        ):
            message = self.anthropic_error(self.request("POST", path))
            self.assertEqual(message, f"no route POST {path}: {ANTHROPIC_HINT}")

    def test_models_of_either_sdk(self) -> None:
        """/v1/models is the Anthropic SDK's when it says so with its anthropic-version header."""
        response = self.request("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"})
        self.assertEqual(self.anthropic_error(response), f"no route GET /v1/models: {ANTHROPIC_HINT}")

    def test_right_base_url(self) -> None:
        """Below the right base URL an unknown route keeps its plain 404 of the family's dialect."""
        self.assertEqual(
            self.openai_error(self.request("POST", "/openai/v1/embeddings")),
            "Unknown request URL: POST /openai/v1/embeddings",
        )
        self.assertEqual(
            self.anthropic_error(self.request("GET", "/anthropic/v1/files")),
            "Unknown request URL: GET /anthropic/v1/files",
        )

    def test_family_dialect_kept(self) -> None:
        """Under an API prefix the answer keeps that prefix's dialect, with the hint."""
        self.assertEqual(
            self.openai_error(self.request("POST", "/openai/v1/messages")),
            f"no route POST /openai/v1/messages: {ANTHROPIC_HINT}",
        )
        native = self.request("POST", "/api/v1/chat/completions")
        self.assertEqual((native.code, native.header("Content-Type")), (404, "application/problem+json"))
        self.assertEqual(
            json.loads(native.body)["detail"], f"no route POST /api/v1/chat/completions: {OPENAI_HINT}"
        )

    def test_routes_unchanged(self) -> None:
        """Real routes, with the wrong method too, are not taken for misdirected ones."""
        self.assertEqual(self.request("GET", "/openai/v1/models").code, 200)
        wrong = self.request("GET", "/openai/v1/chat/completions")
        self.assertEqual((wrong.code, wrong.header("Allow")), (405, "POST"))
        wrong = self.request("GET", "/anthropic/v1/messages")
        self.assertEqual((wrong.code, wrong.header("Allow")), (405, "POST"))
        self.assertEqual(self.request("GET", "/schemas/models").code, 200)

    def test_other_paths_plain(self) -> None:
        """Paths that are no SDK's, or not below a base URL mistake, keep the plain-text 404."""
        for path in ("/nope", "/v1", "/v1/nope", "/docs/models", "/health/messages", "/openaix/v1/models"):
            response = self.request("GET", path)
            self.assertEqual((response.code, response.body), (404, b"404 page not found\n"), path)

    def test_head(self) -> None:
        """HEAD of a misdirected path is its 404, without a body."""
        response = self.request("HEAD", "/v1/models")
        self.assertEqual(
            (response.code, response.header("Content-Type"), response.body), (404, "application/json", b"")
        )

    def test_mounted_and_proxied(self) -> None:
        """The base URL has the mount point, and the scheme a TLS-terminating proxy reports."""
        parent = Resource()
        parent.putChild(b"clinvk", self.root)
        response = call(
            self,
            parent,
            "POST",
            "/clinvk/v1/chat/completions",
            headers={"Host": "api.example.com", "X-Forwarded-Proto": "https"},
        )
        self.assertEqual(
            self.openai_error(response),
            "no route POST /clinvk/v1/chat/completions: the OpenAI-compatible API is under /clinvk/openai/v1; "
            "set the SDK's base_url to https://api.example.com/clinvk/openai/v1",
        )
        response = call(self, parent, "POST", "/clinvk/v1/messages", headers={"Host": "10.0.0.5:8080"})
        self.assertEqual(
            self.anthropic_error(response),
            "no route POST /clinvk/v1/messages: the Anthropic-compatible API is under /clinvk/anthropic/v1; "
            "set the SDK's base_url to http://10.0.0.5:8080/clinvk/anthropic",
        )


class MisdirectedGuardsTests(NativeTestCase):
    """The guards come first, and answer in the SDK's dialect too."""

    def setUp(self) -> None:
        self.use_server(
            api_keys=("k1",),
            config={"server": {"rate_limit_enabled": True, "rate_limit_rps": 1, "rate_limit_burst": 2}},
        )

    def test_key_then_rate_limit(self) -> None:
        """Without a key: the SDK's 401; with one: the hint; over the limit: the SDK's 429."""
        refused = self.request("POST", "/v1/chat/completions", {})
        self.assertEqual(
            (refused.code, json.loads(refused.body)["error"]["type"]), (401, "authentication_error")
        )
        found = self.request("POST", "/v1/messages", {}, headers={"X-Api-Key": "k1"})
        self.assertEqual(
            (found.code, json.loads(found.body)["error"]["message"]),
            (404, f"no route POST /v1/messages: {ANTHROPIC_HINT}"),
        )
        limited = self.request("POST", "/v1/messages", {}, headers={"X-Api-Key": "k1"})
        self.assertEqual((limited.code, json.loads(limited.body)["error"]["type"]), (429, "rate_limit_error"))
        self.assertIsNotNone(limited.header("X-Request-Id"))
