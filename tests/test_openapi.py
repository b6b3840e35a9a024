"""
Tests for L{clinvk.openapi}: documents built from operations and schema
files, valid as OpenAPI 3.1 and 3.0.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

from twisted.trial.unittest import SynchronousTestCase

from clinvk.openapi import Operation, Parameter, build_document, downgrade_to_30, to_yaml
from clinvk.schemas import SchemaSet

TEST_SCHEMAS = Path(__file__).parent / "data" / "schemas"

OPERATIONS = [
    Operation(
        operation_id="executePrompt",
        method="POST",
        path="/api/v1/prompt",
        tag="Custom API",
        summary="Execute a prompt",
        request_schema="Prompt",
        response_schema="Task",
        stream_media_type="application/x-ndjson",
        error_schema="Options",
    ),
    Operation(
        operation_id="getSession",
        method="GET",
        path="/api/v1/sessions/{id}",
        tag="Custom API",
        summary="Get session",
        parameters=[Parameter("id", "path", {"type": "string"}, "Session id or prefix")],
        response_schema="Options",
        error_schema="Options",
    ),
    Operation(
        operation_id="listSessions",
        method="GET",
        path="/api/v1/sessions",
        tag="Custom API",
        summary="List sessions",
        parameters=[Parameter("limit", "query", {"type": ["integer", "null"], "minimum": 0})],
        error_schema="Options",
    ),
]


class DocumentTests(SynchronousTestCase):
    """The 3.1 document."""

    def setUp(self) -> None:
        self.schemas = SchemaSet.from_directory(TEST_SCHEMAS)
        self.document = build_document(OPERATIONS, self.schemas)

    def test_valid(self) -> None:
        """The document is valid OpenAPI 3.1."""
        validate(self.document)
        self.assertEqual(self.document["openapi"], "3.1.0")
        self.assertEqual(
            self.document["info"],
            {
                "title": "clinvoker API",
                "version": "1.0.0",
                "description": "Unified AI CLI wrapper API for multiple backends",
            },
        )

    def test_operations(self) -> None:
        """Each operation appears under its path and method with its id, tag and summary."""
        operation = self.document["paths"]["/api/v1/prompt"]["post"]
        self.assertEqual(operation["operationId"], "executePrompt")
        self.assertEqual(operation["tags"], ["Custom API"])
        self.assertEqual(operation["summary"], "Execute a prompt")
        self.assertEqual(
            operation["requestBody"]["content"]["application/json"]["schema"],
            {"$ref": "#/components/schemas/Prompt"},
        )
        self.assertEqual(
            set(operation["responses"]["200"]["content"]), {"application/json", "application/x-ndjson"}
        )
        self.assertEqual(
            self.document["paths"]["/api/v1/sessions/{id}"]["get"]["parameters"][0]["required"], True
        )

    def test_components_are_the_schema_files(self) -> None:
        """Every schema file is a component, with references rewritten."""
        components = self.document["components"]["schemas"]
        self.assertEqual(set(components), set(self.schemas.names))
        self.assertEqual(
            components["Prompt"]["properties"]["options"], {"$ref": "#/components/schemas/Options"}
        )
        self.assertEqual(
            components["Prompt"]["properties"]["tasks"]["items"], {"$ref": "#/components/schemas/Task"}
        )

    def test_schema_keywords_dropped(self) -> None:
        """A file's own $schema and $id keywords are not part of the component."""
        schemas = SchemaSet(
            {
                "X": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "$id": "x",
                    "type": "object",
                    "properties": {"$schema": {"type": "string"}},
                }
            }
        )
        self.assertEqual(
            build_document([], schemas)["components"]["schemas"]["X"],
            {"type": "object", "properties": {"$schema": {"type": "string"}}},
        )

    def test_klein_path(self) -> None:
        """OpenAPI path parameters become werkzeug converters."""
        self.assertEqual(OPERATIONS[1].klein_path, "/api/v1/sessions/<id>")

    def test_unknown_component(self) -> None:
        """An operation naming a missing component is refused."""
        with self.assertRaises(ValueError) as raised:
            build_document([Operation("x", "GET", "/x", "T", "X")], self.schemas)
        self.assertEqual(str(raised.exception), "x names unknown schema 'ErrorModel'")

    def test_yaml(self) -> None:
        """The YAML rendering is the same document."""
        self.assertEqual(yaml.safe_load(to_yaml(self.document)), self.document)


class DowngradeTests(SynchronousTestCase):
    """The 3.0 variant."""

    def setUp(self) -> None:
        self.document = build_document(OPERATIONS, SchemaSet.from_directory(TEST_SCHEMAS))
        self.legacy = downgrade_to_30(self.document)

    def test_valid(self) -> None:
        """The downgraded document is valid OpenAPI 3.0."""
        validate(self.legacy)
        self.assertEqual(self.legacy["openapi"], "3.0.3")

    def test_nullable(self) -> None:
        """A [T, "null"] type becomes T with nullable."""
        prompt = self.legacy["components"]["schemas"]["Prompt"]
        self.assertEqual(prompt["properties"]["model"], {"type": "string", "nullable": True})
        parameter = self.legacy["paths"]["/api/v1/sessions"]["get"]["parameters"][0]
        self.assertEqual(parameter["schema"], {"type": "integer", "nullable": True, "minimum": 0})

    def test_original_untouched(self) -> None:
        """Downgrading does not change the 3.1 document."""
        self.assertEqual(
            self.document["components"]["schemas"]["Prompt"]["properties"]["model"],
            {"type": ["string", "null"]},
        )

    def test_examples_and_const(self) -> None:
        """examples becomes example, const becomes a one-value enum."""
        self.assertEqual(
            downgrade_to_30(
                {
                    "openapi": "3.1.0",
                    "paths": {},
                    "components": {"schemas": {"X": {"const": "a", "examples": ["a", "b"]}}},
                }
            )["components"]["schemas"]["X"],
            {"enum": ["a"], "example": "a"},
        )
