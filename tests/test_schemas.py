"""
Tests for L{clinvk.schemas}: loading, compiling and the reference's
validation messages (docs/design/error-mapping.md#validation-statuses).
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import ABSENT, ErrorDetail
from clinvk.schemas import SchemaSet

TEST_SCHEMAS = Path(__file__).parent / "data" / "schemas"


class PackageSchemasTests(SynchronousTestCase):
    """The schema files shipped in the package."""

    def test_valid_schemas(self) -> None:
        """Every shipped component is a valid JSON Schema."""
        schemas = SchemaSet.from_package()
        schemas.check_schemas()
        self.assertIn("ErrorModel", schemas.names)
        self.assertIn("HealthResponseBody", schemas.names)

    def test_references_resolve(self) -> None:
        """References between files resolve when validating."""
        schemas = SchemaSet.from_package()
        _, problems = schemas.validate(
            "ErrorModel", {"title": "Bad Request", "status": 400, "errors": [{"location": "x"}]}
        )
        self.assertEqual(
            problems,
            [
                ErrorDetail(
                    "expected required property message to be present",
                    "body.errors[0]",
                    {"location": "x"},
                )
            ],
        )


class ValidationTests(SynchronousTestCase):
    """Violations are reported as the reference reports them."""

    def setUp(self) -> None:
        self.schemas = SchemaSet.from_directory(TEST_SCHEMAS)
        self.schemas.check_schemas()

    def check(self, instance: object) -> list[ErrorDetail]:
        return self.schemas.validate("Prompt", instance)[1]

    def test_errors_md_example(self) -> None:
        """The example of docs/design/error-mapping.md#problem-documents: required, type, then unexpected."""
        body = {"prompt": 5, "foo": 1}
        self.assertEqual(
            self.check(body),
            [
                ErrorDetail("expected required property backend to be present", "body", body),
                ErrorDetail("expected string", "body.prompt", 5),
                ErrorDetail("unexpected property", "body.foo", body),
            ],
        )

    def test_all_missing(self) -> None:
        """{} reports both missing properties, in declaration order."""
        self.assertEqual(
            [d.message for d in self.check({})],
            [
                "expected required property backend to be present",
                "expected required property prompt to be present",
            ],
        )

    def test_not_an_object(self) -> None:
        """A body that is not an object is 'expected object' at body."""
        self.assertEqual(self.check([]), [ErrorDetail("expected object", "body", [])])
        self.assertEqual(self.check(None), [ErrorDetail("expected object", "body", ABSENT)])

    def test_integers_are_strict(self) -> None:
        """5.0 and "5" are not integers; 5 is."""
        base = {"backend": "claude", "prompt": "x"}
        self.assertEqual(self.check({**base, "max_turns": 5}), [])
        self.assertEqual(
            self.check({**base, "max_turns": 5.0}), [ErrorDetail("expected integer", "body.max_turns", 5.0)]
        )
        self.assertEqual(
            self.check({**base, "max_turns": "5"}), [ErrorDetail("expected integer", "body.max_turns", "5")]
        )
        self.assertEqual(
            self.check({**base, "max_turns": True}), [ErrorDetail("expected integer", "body.max_turns", True)]
        )

    def test_nulls(self) -> None:
        """null is absent for optional fields and a type error for required ones."""
        self.assertEqual(self.check({"backend": "claude", "prompt": "x", "model": None}), [])
        self.assertEqual(
            self.check({"backend": "claude", "prompt": None}),
            [ErrorDetail("expected string", "body.prompt")],
        )

    def test_nested_locations(self) -> None:
        """Array elements and nested objects have dotted, indexed locations."""
        body = {
            "backend": "c",
            "prompt": "p",
            "extra": ["ok", 1],
            "tasks": [{"prompt": 2}],
            "options": {"limit": -1},
        }
        self.assertEqual(
            self.check(body),
            [
                ErrorDetail("expected string", "body.extra[1]", 1),
                ErrorDetail("expected number >= 0", "body.options.limit", -1),
                ErrorDetail(
                    "expected required property backend to be present", "body.tasks[0]", {"prompt": 2}
                ),
                ErrorDetail("expected string", "body.tasks[0].prompt", 2),
            ],
        )

    def test_case_insensitive_names(self) -> None:
        """With match_case off, names are matched to their declared case."""
        body, problems = self.schemas.validate(
            "Prompt",
            {
                "Backend": "claude",
                "PROMPT": "x",
                "Options": {"Verbose": True},
                "tasks": [{"BACKEND": "c", "prompt": "p"}],
            },
            match_case=False,
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            body,
            {
                "backend": "claude",
                "prompt": "x",
                "options": {"verbose": True},
                "tasks": [{"backend": "c", "prompt": "p"}],
            },
        )

    def test_case_sensitive_by_default(self) -> None:
        """By default a differently cased name is an unexpected property."""
        self.assertIn(
            ErrorDetail("unexpected property", "body.Backend", {"Backend": "claude", "prompt": "x"}),
            self.check({"Backend": "claude", "prompt": "x"}),
        )

    def test_exact_case_wins(self) -> None:
        """
        With an exact and a differently cased key, the exact one is kept and
        the other reported, in either order.
        """
        for body in (
            {"backend": "claude", "Backend": "codex", "prompt": "x"},
            {"Backend": "codex", "backend": "claude", "prompt": "x"},
        ):
            matched, problems = self.schemas.validate("Prompt", body, match_case=False)
            self.assertEqual(matched["backend"], "claude")
            self.assertEqual([p.location for p in problems], ["body.Backend"])

    def test_two_spellings(self) -> None:
        """Two case variants of one name: the first is matched, the second reported."""
        _, problems = self.schemas.validate(
            "Prompt", {"backend": "c", "PROMPT": "x", "Prompt": "y"}, match_case=False
        )
        self.assertEqual([p.location for p in problems], ["body.Prompt"])
