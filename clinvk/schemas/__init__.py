# -*- test-case-name: tests.test_schemas -*-
"""
The JSON schemas of the HTTP API, loaded and compiled once.

Each file under C{clinvk/schemas/api/} is one named component (the file
name without C{.json}).  The same files validate request bodies, are served
at C{/schemas/<Name>.json} and become the components of the OpenAPI
document, so what is documented is what is enforced.  A component refers to
another by its file name (C{"$ref": "ErrorDetail.json"}), which resolves
the same way on the server, in the served files and in OpenAPI.

Validation errors are reported as docs/design/error-mapping.md#validation-statuses
says: one L{ErrorDetail} per violation, with the reference's messages, in
the declaration order of the fields and then unexpected properties.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from clinvk.errors import ABSENT, ErrorDetail

# Component URIs only have to be unique and share a hierarchical base, so
# that the relative references between files resolve; nothing is fetched
# (.invalid can never resolve).
_BASE_URI = "http://clinvk.invalid/schemas/"


def _strict_integers(checker: Any, instance: object) -> bool:
    # 5.0 is a number, not an integer, on the wire (docs/design/native-api.md#request-bodies).
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integers),
)


class SchemaSet:
    """
    A set of named JSON schemas with compiled validators.

    @ivar names: The component names, sorted.
    """

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        """
        @param schemas: Component name to schema.
        """
        self._schemas = {name: dict(schema) for name, schema in schemas.items()}
        self._registry: Registry[Any] = Registry().with_resources(
            (_BASE_URI + name + ".json", Resource.from_contents(schema, DRAFT202012))
            for name, schema in self._schemas.items()
        )
        self._validators = {
            name: _Validator({"$ref": _BASE_URI + name + ".json"}, registry=self._registry)
            for name in self._schemas
        }
        self.names = tuple(sorted(self._schemas))

    @classmethod
    def from_directory(cls, directory: Traversable) -> SchemaSet:
        """
        Load every C{*.json} file of C{directory} as a component.
        """
        schemas = {}
        for entry in directory.iterdir():
            if entry.name.endswith(".json"):
                schemas[entry.name[: -len(".json")]] = json.loads(entry.read_text("utf-8"))
        return cls(schemas)

    @classmethod
    def from_package(cls) -> SchemaSet:
        """
        Load the components shipped in C{clinvk/schemas/api/}.
        """
        return cls.from_directory(resources.files("clinvk.schemas").joinpath("api"))

    def schema(self, name: str) -> dict[str, Any]:
        """
        @return: The schema of component C{name}, as written in its file.
        @raise KeyError: If there is no such component.
        """
        return self._schemas[name]

    def check_schemas(self) -> None:
        """
        Check every component against the JSON Schema meta-schema.

        @raise jsonschema.SchemaError: For the first invalid one.
        """
        for schema in self._schemas.values():
            Draft202012Validator.check_schema(schema)

    def validate(
        self,
        name: str,
        instance: Any,
        *,
        location: str = "body",
        match_case: bool = True,
    ) -> tuple[Any, list[ErrorDetail]]:
        """
        Validate C{instance} against component C{name}.

        @param location: The location prefix of reported errors.
        @param match_case: When False, object keys that match a declared
            property name case-insensitively are renamed to it first (the
            native API accepts C{"Backend"} for C{backend}).
        @return: The instance (with keys renamed if asked) and the list of
            violations, empty when it is valid.
        """
        root = self._resolver(name)
        if not match_case:
            instance = self._match_keys(instance, root)
        details: list[tuple[list[float], ErrorDetail]] = []
        reported_required: set[tuple[Any, ...]] = set()
        for error in self._validators[name].iter_errors(instance):
            for path, detail in self._details(error, reported_required, location):
                details.append((_order(root, path), detail))
        details.sort(key=lambda pair: pair[0])
        return instance, [detail for _, detail in details]

    def _resolver(self, name: str) -> _Node:
        return _Node(self._schemas[name], self._registry.resolver(_BASE_URI + name + ".json"))

    def _details(
        self,
        error: ValidationError,
        reported_required: set[tuple[Any, ...]],
        location: str,
    ) -> Iterator[tuple[tuple[Any, ...], ErrorDetail]]:
        path = tuple(error.absolute_path)
        here = _location(location, path)
        keyword = error.validator
        # jsonschema types these as possibly unset; on a reported error they are set.
        expected: Any = error.validator_value
        instance: Any = error.instance
        schema: Any = error.schema
        if keyword == "required":
            for missing in expected:
                # A name required twice (by the object and by a
                # conditional) is reported once.
                if missing not in instance and (*path, missing) not in reported_required:
                    reported_required.add((*path, missing))
                    yield (
                        (*path, missing),
                        ErrorDetail(
                            f"expected required property {missing} to be present",
                            here,
                            instance,
                        ),
                    )
        elif keyword == "additionalProperties":
            declared = schema.get("properties", {})
            for key in instance:
                if key not in declared:
                    yield (
                        (*path, _UNEXPECTED),
                        ErrorDetail("unexpected property", _location(location, (*path, key)), instance),
                    )
        elif keyword == "type":
            yield (
                path,
                ErrorDetail(
                    f"expected {_first_type(expected)}",
                    here,
                    ABSENT if instance is None else instance,
                ),
            )
        elif keyword == "minimum":
            yield path, ErrorDetail(f"expected number >= {expected}", here, instance)
        elif keyword == "enum":
            choices = ", ".join(str(choice) for choice in expected)
            yield path, ErrorDetail(f'expected value to be one of "{choices}"', here, instance)
        else:
            yield path, ErrorDetail(error.message, here, instance)

    def _match_keys(self, instance: Any, node: _Node) -> Any:
        if isinstance(instance, dict):
            names = node.property_names()
            by_lower: dict[str, str] = {name.lower(): name for name in names}
            taken = {key for key in instance if key in names}
            renamed: dict[str, Any] = {}
            for key, value in instance.items():
                name = key
                declared = by_lower.get(str(key).lower())
                if key not in names and declared is not None and declared not in taken:
                    name = declared
                    taken.add(declared)
                # A second spelling of a taken name stays as written, to be
                # reported as an unexpected property whatever the key order.
                child = node.child_property(name) if name in names else None
                renamed[name] = self._match_keys(value, child) if child else value
            return renamed
        if isinstance(instance, list):
            items = node.child_items()
            return [self._match_keys(item, items) if items else item for item in instance]
        return instance


_UNEXPECTED = object()


class _Node:
    """A schema together with the resolver for its relative references."""

    def __init__(self, schema: Mapping[str, Any], resolver: Any) -> None:
        while "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
        self.schema = schema
        self.resolver = resolver

    def property_names(self) -> list[str]:
        return list(self.schema.get("properties", {}))

    def child_property(self, name: str) -> _Node:
        return _Node(self.schema["properties"][name], self.resolver)

    def child_items(self) -> _Node | None:
        items = self.schema.get("items")
        return _Node(items, self.resolver) if isinstance(items, Mapping) else None


def _order(root: _Node, path: tuple[Any, ...]) -> list[float]:
    """
    Sort key of a violation: the declaration position of every key
    along its path, unexpected properties after all declared ones.
    """
    order: list[float] = []
    node: _Node | None = root
    for part in path:
        if isinstance(part, int):
            order.append(part)
            node = node.child_items() if node else None
            continue
        names = node.property_names() if node else []
        if part is _UNEXPECTED or part not in names:
            order.append(float("inf"))
            node = None
        else:
            order.append(names.index(part))
            node = node.child_property(part) if node else None
    return order


def _first_type(types: str | Iterable[str]) -> str:
    if isinstance(types, str):
        return types
    return next((t for t in types if t != "null"), "null")


def _location(prefix: str, path: Iterable[Any]) -> str:
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
