# -*- test-case-name: tests.compat.test_structured -*-
"""
Structured output (docs/design/structured-output.md): a request's
C{response_format} (chat completions) or C{text.format} (Responses) as
what the CLI is asked for, and its answer checked against it before the
client sees it.

A C{json_schema} format goes to the CLI's own support (claude
C{--json-schema}, codex C{--output-schema}); a backend without one is a
400.  A C{json_object} format, which no CLI takes as such, is an
instruction after the turn's prompt on every backend; the answer is then
checked to be one JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import frozen
from jsonschema import exceptions as schema_errors
from jsonschema.validators import validator_for

from clinvk.backends import events
from clinvk.errors import BackendFailed, InvalidRequest
from clinvk.interfaces import IBackend
from clinvk.model import RunRequest, RunResult
from clinvk.runs.channel import StreamChannel
from clinvk.runs.runtime import EventChannel

# What a json_object request adds after its turn's prompt (L{instructed}).
JSON_OBJECT_INSTRUCTION = (
    "Answer with one JSON object and nothing else: no text before or after it and no Markdown code fence."
)

# The largest schema taken, as compact JSON: claude takes it as one
# command-line argument, which Linux limits to 128 KiB.
MAX_SCHEMA_BYTES = 64 * 1024

# The schema a json_object answer is checked against.
_ANY_OBJECT: Mapping[str, Any] = {"type": "object"}

# How much of a mismatching answer a 502 quotes.
_QUOTED = 200


@frozen
class AnswerFormat:
    """
    The shape a request asks its answer to have.

    @ivar schema: The JSON schema of a C{json_schema} format; L{None} for
        C{json_object}.
    @ivar param: Where the request said so, for errors (C{response_format},
        C{text.format}).
    """

    schema: Mapping[str, Any] | None
    param: str

    def run_options(self, backend: IBackend) -> tuple[str, str]:
        """
        What the CLI is told: the schema for its own support, as JSON text
        (L{clinvk.model.RunRequest.output_schema}), and an instruction to
        follow the turn's prompt (L{instructed}); either may be C{""}.

        @raise InvalidRequest: For a schema on a backend that cannot keep
            to one.
        """
        if self.schema is None:
            return "", JSON_OBJECT_INSTRUCTION
        if not backend.structured_output:
            raise InvalidRequest(
                f"{self.param} json_schema is not supported by the {backend.name} backend: "
                "its CLI cannot hold an answer to a schema (claude and codex can)",
                param=self.param,
            )
        return json.dumps(self.schema, separators=(",", ":"), sort_keys=True), ""

    def checked(self, text: str) -> str:
        """
        The answer C{text} as the client gets it: one JSON value, matching
        the schema (a C{json_object} answer may come in a code fence, which
        is taken off).

        @raise BackendFailed: When it does not match (502: the backend
            answered, but not as asked).
        """
        answer = text.strip()
        if self.schema is None:
            answer = _unfenced(answer)
        try:
            value = json.loads(answer)
        except ValueError as e:
            raise BackendFailed(
                f"the answer is not the JSON {self.param} asks for ({e}): {_quoted(answer)}"
            ) from None
        schema = _ANY_OBJECT if self.schema is None else self.schema
        try:
            error = schema_errors.best_match(validator_for(schema)(schema).iter_errors(value))
        except RecursionError:
            raise InvalidRequest(
                f"{self.param} schema cannot be applied: it refers to itself without end", param=self.param
            ) from None
        if error is not None:
            where = "/".join(str(step) for step in error.absolute_path) or "the answer"
            raise BackendFailed(
                f"the answer does not match {self.param}: {where}: {error.message}: {_quoted(answer)}"
            )
        return answer


def chat_answer_format(response_format: Mapping[str, Any] | None) -> AnswerFormat | None:
    """
    The format of a chat completion request's C{response_format}
    (C{{"type": "json_schema", "json_schema": {"name", "schema", …}}} or
    C{{"type": "json_object"}}); L{None} for plain text.

    @raise InvalidRequest: For a schema missing or not a JSON schema.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return AnswerFormat(None, "response_format")
    if kind != "json_schema":
        return None
    inner = response_format.get("json_schema")
    schema = inner.get("schema") if isinstance(inner, Mapping) else None
    return AnswerFormat(_valid_schema(schema, "response_format.json_schema.schema"), "response_format")


def responses_answer_format(text: Mapping[str, Any] | None) -> AnswerFormat | None:
    """
    The format of a Responses request's C{text.format}
    (C{{"type": "json_schema", "name", "schema", …}} or
    C{{"type": "json_object"}}); L{None} for plain text.

    @raise InvalidRequest: As L{chat_answer_format}.
    """
    asked = (text or {}).get("format") or {}
    kind = asked.get("type")
    if kind == "json_object":
        return AnswerFormat(None, "text.format")
    if kind != "json_schema":
        return None
    return AnswerFormat(_valid_schema(asked.get("schema"), "text.format.schema"), "text.format")


def _valid_schema(schema: object, param: str) -> dict[str, Any]:
    """
    C{schema}, checked to be a JSON schema that can be applied here: valid
    by its metaschema, small enough for a command line, its C{$ref}s local
    pointers that resolve.
    """
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{param} is required: a JSON schema object", param=param)
    if len(json.dumps(schema, separators=(",", ":"))) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"{param} is larger than {MAX_SCHEMA_BYTES} bytes", param=param)
    try:
        validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as e:
        raise InvalidRequest(f"{param} is not a valid JSON schema: {e.message}", param=param) from None
    except Exception as e:
        # A $schema that is no string, say: no metaschema to check it by.
        raise InvalidRequest(f"{param} is not a valid JSON schema: {e}", param=param) from None
    for reference in _references(schema):
        if not _resolves(schema, reference):
            raise InvalidRequest(
                f"{param} has a $ref that is not a pointer into the schema itself: {reference}", param=param
            )
    return schema


def _references(value: object) -> list[str]:
    """Every C{$ref} in C{value}."""
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for item in value.values() for ref in _references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


def _resolves(schema: dict[str, Any], reference: str) -> bool:
    """Whether C{reference} is C{#} or a JSON pointer C{#/…} to a part of C{schema}."""
    if reference == "#":
        return True
    if not reference.startswith("#/"):
        return False
    target: Any = schema
    for step in reference[2:].split("/"):
        step = step.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and step in target:
            target = target[step]
        elif isinstance(target, list) and step.isdigit() and int(step) < len(target):
            target = target[int(step)]
        else:
            return False
    return True


def _unfenced(text: str) -> str:
    """C{text} without a Markdown code fence around it, if it has one."""
    if not (text.startswith("```") and text.endswith("```")) or len(text) < 6:
        return text
    inside = text[3:-3]
    first_line, _, rest = inside.partition("\n")
    # The fence's info string (json) is on its first line.
    return (rest if first_line.strip().isalnum() or not first_line.strip() else inside).strip()


def _quoted(text: str) -> str:
    return json.dumps(text if len(text) <= _QUOTED else text[:_QUOTED] + "...")


def instructed(request: RunRequest, instruction: str) -> RunRequest:
    """
    C{request} with C{instruction} after its prompt: said with this turn
    only, out of the system prompt, so that the conversation (whose root
    hashes the system prompt) and its live process go on.
    """
    if not instruction:
        return request
    return attrs.evolve(request, prompt=f"{request.prompt}\n\n{instruction}")


def answered(result: RunResult, text: str) -> EventChannel:
    """
    A finished stream of one message, C{text}, ending with C{result}: a
    checked answer, streamed to a client that asked for a stream.
    """
    channel: EventChannel = StreamChannel()
    channel.running()
    channel.put(events.message(text, 0))
    channel.close(result)
    return channel
