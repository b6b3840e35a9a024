"""
Request validation of the native API (docs/design/native-api.md#request-bodies and
the handler checks of docs/design/native-api.md#native-api): 400 versus 415
versus 422, exactly.
"""

from __future__ import annotations

import json
from typing import Any

from tests.web._native import NativeTestCase


class PromptValidationTests(NativeTestCase):
    """POST /api/v1/prompt: presence, content type, syntax, schema, handler checks."""

    def errors(self, body: Any, status: int = 422) -> list[dict[str, Any]]:
        problem = self.problem(self.request("POST", "/api/v1/prompt", body), status)
        self.assertEqual(problem["detail"], "validation failed")
        errors: list[dict[str, Any]] = problem["errors"]
        return errors

    def test_empty_body(self) -> None:
        """An empty body: 400 request body is required, no errors array."""
        problem = self.problem(self.request("POST", "/api/v1/prompt", data=b""), 400)
        self.assertEqual(problem["detail"], "request body is required")
        self.assertNotIn("errors", problem)

    def test_missing_both(self) -> None:
        """{} misses backend and prompt: both reported in one 422."""
        self.assertEqual(
            [e["message"] for e in self.errors({})],
            [
                "expected required property backend to be present",
                "expected required property prompt to be present",
            ],
        )

    def test_missing_backend_is_422(self) -> None:
        """A missing key is a schema violation (422), not a handler check (400)."""
        self.assertEqual(
            self.errors({"prompt": "x"}),
            [
                {
                    "message": "expected required property backend to be present",
                    "location": "body",
                    "value": {"prompt": "x"},
                }
            ],
        )

    def test_empty_backend(self) -> None:
        """An empty backend is 400 backend is required, checked before the prompt."""
        for body in ({"backend": "", "prompt": "x"}, {"backend": "", "prompt": ""}):
            problem = self.problem(self.request("POST", "/api/v1/prompt", body), 400)
            self.assertEqual(problem["detail"], "backend is required")
            self.assertNotIn("errors", problem)

    def test_empty_prompt(self) -> None:
        """An empty prompt is 400 prompt is required."""
        problem = self.problem(
            self.request("POST", "/api/v1/prompt", {"backend": "claude", "prompt": ""}), 400
        )
        self.assertEqual(problem["detail"], "prompt is required")

    def test_malformed_json(self) -> None:
        """Truncated JSON: 400 with the raw text as the value."""
        problem = self.problem(self.request("POST", "/api/v1/prompt", data=b'{"backend":'), 400)
        self.assertEqual(problem["detail"], "validation failed")
        [error] = problem["errors"]
        self.assertEqual((error["location"], error["value"]), ("body", '{"backend":'))

    def test_content_types(self) -> None:
        """text/plain and form types are 415; no type and JSON with parameters are JSON."""
        body = json.dumps({"backend": "claude", "prompt": "x", "dry_run": True}).encode()
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            problem = self.problem(
                self.request("POST", "/api/v1/prompt", data=body, headers={"Content-Type": content_type}), 415
            )
            self.assertEqual(problem["errors"][0]["message"], f"unknown content type: {content_type}")
        for content_type in ("", "application/json; charset=utf-8", "application/vnd.acme+json"):
            response = self.request(
                "POST", "/api/v1/prompt", data=body, headers={"Content-Type": content_type}
            )
            self.assertEqual(response.code, 200, content_type)

    def test_unexpected_property(self) -> None:
        """Unknown members are refused at their location."""
        body = {"backend": "claude", "prompt": "x", "foo": 1}
        self.assertEqual(
            self.errors(body), [{"message": "unexpected property", "location": "body.foo", "value": body}]
        )

    def test_case_insensitive_names(self) -> None:
        """Property names match whatever their case."""
        answer = self.post("/api/v1/prompt", {"Backend": "claude", "PROMPT": "x", "dry_run": True})
        self.assertEqual(answer["exit_code"], 0)

    def test_types(self) -> None:
        """Wrong types are reported with the reference's messages and locations."""
        base = {"backend": "claude", "prompt": "x"}
        cases: list[tuple[dict[str, Any], str, str]] = [
            ({"max_turns": "5"}, "expected integer", "body.max_turns"),
            ({"max_turns": 2.5}, "expected integer", "body.max_turns"),
            ({"extra": "--verbose"}, "expected array", "body.extra"),
            ({"extra": [1]}, "expected string", "body.extra[0]"),
            ({"prompt": None}, "expected string", "body.prompt"),
            ({"metadata": {"a": 1}}, "expected string", "body.metadata.a"),
        ]
        for extra, message, location in cases:
            [error] = self.errors({**base, **extra})
            self.assertEqual((error["message"], error["location"]), (message, location), extra)

    def test_null_optional_is_absent(self) -> None:
        """null for an optional member is the member left out."""
        answer = self.post(
            "/api/v1/prompt", {"backend": "claude", "prompt": "x", "model": None, "dry_run": True}
        )
        self.assertEqual(answer["exit_code"], 0)

    def test_not_an_object(self) -> None:
        """A JSON array body is 422 expected object at body."""
        self.assertEqual(self.errors([])[0]["message"], "expected object")

    def test_all_violations_together(self) -> None:
        """Several violations, in declaration order, then unexpected properties."""
        messages = [e["message"] for e in self.errors({"prompt": 5, "foo": 1})]
        self.assertEqual(
            messages,
            ["expected required property backend to be present", "expected string", "unexpected property"],
        )


class BatchValidationTests(NativeTestCase):
    """The handler checks of parallel, chain and compare, in their order."""

    def detail(self, path: str, body: Any, status: int = 400) -> str:
        detail: str = self.problem(self.request("POST", path, body), status)["detail"]
        return detail

    def test_parallel(self) -> None:
        """Empty or null tasks, then the first task's empty backend or prompt (0-based)."""
        self.assertEqual(self.detail("/api/v1/parallel", {"tasks": []}), "tasks are required")
        self.assertEqual(self.detail("/api/v1/parallel", {"tasks": None}), "tasks are required")
        tasks = [{"backend": "claude", "prompt": "a"}, {"backend": "claude", "prompt": ""}]
        self.assertEqual(self.detail("/api/v1/parallel", {"tasks": tasks}), "tasks[1].prompt is required")
        tasks = [{"backend": "", "prompt": ""}]
        self.assertEqual(self.detail("/api/v1/parallel", {"tasks": tasks}), "tasks[0].backend is required")

    def test_parallel_task_has_no_dry_run(self) -> None:
        """A task's dry_run is an unexpected property at its own location."""
        problem = self.problem(
            self.request(
                "POST", "/api/v1/parallel", {"tasks": [{"backend": "claude", "prompt": "x", "dry_run": True}]}
            ),
            422,
        )
        self.assertEqual(problem["errors"][0]["location"], "body.tasks[0].dry_run")

    def test_chain(self) -> None:
        """The four chain checks, in order."""
        step = {"backend": "claude", "prompt": "x"}
        self.assertEqual(self.detail("/api/v1/chain", {"steps": []}), "steps are required")
        ephemeral = "chain is always ephemeral; pass_session_id and persist_sessions are not supported"
        self.assertEqual(self.detail("/api/v1/chain", {"steps": [step], "pass_session_id": True}), ephemeral)
        self.assertEqual(self.detail("/api/v1/chain", {"steps": [step], "persist_sessions": True}), ephemeral)
        steps = [step, {"backend": "claude", "prompt": "use {{session}}"}]
        self.assertEqual(
            self.detail("/api/v1/chain", {"steps": steps}),
            "chain step 2 uses {{session}} but sessions are not persisted",
        )
        steps = [step, {"backend": "", "prompt": "x"}]
        self.assertEqual(self.detail("/api/v1/chain", {"steps": steps}), "steps[1].backend is required")

    def test_chain_step_fields(self) -> None:
        """Steps have no output_format."""
        problem = self.problem(
            self.request(
                "POST",
                "/api/v1/chain",
                {"steps": [{"backend": "claude", "prompt": "x", "output_format": "json"}]},
            ),
            422,
        )
        self.assertEqual(problem["errors"][0]["location"], "body.steps[0].output_format")

    def test_compare(self) -> None:
        """Backends are checked before the prompt; compare has no extra flags."""
        self.assertEqual(
            self.detail("/api/v1/compare", {"backends": [], "prompt": ""}), "backends are required"
        )
        self.assertEqual(
            self.detail("/api/v1/compare", {"backends": ["claude"], "prompt": ""}), "prompt is required"
        )
        problem = self.problem(
            self.request("POST", "/api/v1/compare", {"backends": ["claude"], "prompt": "x", "extra": []}), 422
        )
        self.assertEqual(problem["errors"][0]["location"], "body.extra")
