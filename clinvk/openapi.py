# -*- test-case-name: tests.test_openapi -*-
"""
The OpenAPI document, generated from the routes' operation declarations
and the schema files the server validates with.

The document is OpenAPI 3.1, whose schema dialect is the JSON Schema of the
component files, so components are copied with only their references
rewritten.  L{downgrade_to_30} derives the 3.0 variant served at
C{/openapi-3.0.json} for older tools (docs/design/http.md#openapi-docs).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

import yaml
from attrs import field, frozen

from clinvk._version import API_VERSION
from clinvk.schemas import SchemaSet

TITLE = "clinvoker API"
DESCRIPTION = "Unified AI CLI wrapper API for multiple backends"

_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@frozen
class Parameter:
    """A path or query parameter of an operation."""

    name: str
    location: str  # "path" or "query"
    schema: dict[str, Any]
    description: str = ""
    required: bool = False


def _parameters(parameters: Iterable[Parameter]) -> tuple[Parameter, ...]:
    return tuple(parameters)


@frozen
class Operation:
    """
    One documented operation, declared next to the route that serves it.

    @ivar path: The OpenAPI path, with C{{name}} parameters.
    @ivar request_schema: Component name of the JSON request body, if any.
    @ivar response_schema: Component name of the 200 JSON body, if any.
    @ivar stream_media_type: Media type of the streamed 200 variant
        (C{text/event-stream}, C{application/x-ndjson}), if any.
    @ivar stream_schema: Component name of one streamed item, if any.
    @ivar error_media_type: Media type of error responses.
    @ivar error_schema: Component name of error responses.
    """

    operation_id: str
    method: str
    path: str
    tag: str
    summary: str
    description: str = ""
    request_schema: str | None = None
    response_schema: str | None = None
    stream_media_type: str | None = None
    stream_schema: str | None = None
    parameters: tuple[Parameter, ...] = field(default=(), converter=_parameters)
    error_media_type: str = "application/problem+json"
    error_schema: str = "ErrorModel"

    @property
    def klein_path(self) -> str:
        """The path in Klein's (werkzeug's) syntax: C{<name>} parameters."""
        return _PATH_PARAMETER.sub(r"<\1>", self.path)


def _component_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _component(schema: dict[str, Any]) -> dict[str, Any]:
    """
    A schema file as an OpenAPI component: without its own C{$schema} and
    C{$id} keywords, and with C{"$ref": "Name.json"} pointing at
    C{#/components/schemas/Name}.
    """
    component: dict[str, Any] = _rewrite_refs(schema)
    component.pop("$schema", None)
    component.pop("$id", None)
    return component


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                f"#/components/schemas/{value.removesuffix('.json')}"
                if key == "$ref" and isinstance(value, str) and value.endswith(".json")
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _operation_object(operation: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operationId": operation.operation_id,
        "tags": [operation.tag],
        "summary": operation.summary,
    }
    if operation.description:
        result["description"] = operation.description
    if operation.parameters:
        result["parameters"] = [
            {
                "name": parameter.name,
                "in": parameter.location,
                "required": parameter.required or parameter.location == "path",
                "schema": parameter.schema,
                **({"description": parameter.description} if parameter.description else {}),
            }
            for parameter in operation.parameters
        ]
    if operation.request_schema is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _component_ref(operation.request_schema)}},
        }
    content: dict[str, Any] = {}
    if operation.response_schema is not None:
        content["application/json"] = {"schema": _component_ref(operation.response_schema)}
    if operation.stream_media_type is not None:
        # OpenAPI 3.1 describes a stream's items with itemSchema only from
        # 3.2 on; a plain string with a pointer to the item schema it is.
        item = {"type": "string"}
        if operation.stream_schema is not None:
            item["description"] = f"One {operation.stream_schema} per line or event."
        content[operation.stream_media_type] = {"schema": item}
    ok: dict[str, Any] = {"description": "OK"}
    if content:
        ok["content"] = content
    result["responses"] = {
        "200": ok,
        "default": {
            "description": "Error",
            "content": {operation.error_media_type: {"schema": _component_ref(operation.error_schema)}},
        },
    }
    return result


def build_document(operations: Iterable[Operation], schemas: SchemaSet) -> dict[str, Any]:
    """
    The OpenAPI 3.1 document of C{operations}, with every component of
    C{schemas}.

    @raise ValueError: If an operation names a component that does not
        exist.
    """
    paths: dict[str, dict[str, Any]] = {}
    tags: list[str] = []
    for operation in operations:
        named = (
            operation.request_schema,
            operation.response_schema,
            operation.stream_schema,
            operation.error_schema,
        )
        for name in named:
            if name is not None and name not in schemas.names:
                raise ValueError(f"{operation.operation_id} names unknown schema {name!r}")
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation_object(operation)
        if operation.tag not in tags:
            tags.append(operation.tag)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": API_VERSION, "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {"schemas": {name: _component(schemas.schema(name)) for name in schemas.names}},
    }


def _downgrade_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _downgrade_schema(value) for key, value in node.items()}
    kind = result.get("type")
    if isinstance(kind, list):
        others = [t for t in kind if t != "null"]
        if len(others) == 1:
            result["type"] = others[0]
            if "null" in kind:
                result["nullable"] = True
        else:
            del result["type"]
            result["anyOf"] = [{"type": t} for t in others]
            if "null" in kind:
                result["nullable"] = True
    # OpenAPI 3.0 has no conditionals; they only refine validation
    # (PromptRequest's backend becomes optional with a session_id).
    for keyword in ("if", "then", "else"):
        result.pop(keyword, None)
    if "const" in result:
        result["enum"] = [result.pop("const")]
    if "examples" in result:
        examples = result.pop("examples")
        if isinstance(examples, list) and examples:
            result["example"] = examples[0]
    return result


def downgrade_to_30(document: dict[str, Any]) -> dict[str, Any]:
    """
    The OpenAPI 3.0 equivalent of a 3.1 document built by
    L{build_document}: nullable instead of C{null} types, C{example}
    instead of C{examples}, C{enum} instead of C{const}.
    """
    result = copy.deepcopy(document)
    result["openapi"] = "3.0.3"
    result["components"]["schemas"] = {
        name: _downgrade_schema(schema) for name, schema in result["components"]["schemas"].items()
    }
    for path_item in result["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", ()):
                parameter["schema"] = _downgrade_schema(parameter["schema"])
    return result


# libyaml's emitter, where PyYAML was built with it, writes the same text
# several times faster than the pure-Python one (the request that renders
# a document runs on the reactor thread).
try:
    from yaml import CSafeDumper as _YAMLDumper
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml import SafeDumper as _YAMLDumper  # type: ignore[assignment]


def to_yaml(document: dict[str, Any]) -> bytes:
    """The document as YAML, keeping its key order."""
    text: str = yaml.dump(document, Dumper=_YAMLDumper, sort_keys=False, allow_unicode=True)
    return text.encode("utf-8")
