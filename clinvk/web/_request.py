# -*- test-case-name: tests.web.test_request -*-
"""
Reading a request: a JSON body (presence, content type, syntax, then
schema: docs/design/native-api.md#request-bodies) or the query parameters an
operation declares, each failure with its own status and problem details.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NoReturn

from twisted.web.iweb import IRequest

from clinvk.errors import ErrorDetail, InvalidRequest, UnsupportedMediaType, ValidationFailed
from clinvk.openapi import Parameter
from clinvk.schemas import SchemaSet


def _is_json_media_type(header: str) -> bool:
    """
    The reference's decoder choice: cut at C{;}, drop everything up to the
    first C{+}; empty, C{application/json} or C{json} is JSON.
    """
    media_type = header.split(";", 1)[0].strip()
    if "+" in media_type:
        media_type = media_type.split("+", 1)[1]
    return media_type in ("", "application/json", "json")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """
    C{value} with every unpaired surrogate escape (C{"\\ud800"}) replaced
    by U+FFFD, as Go's decoder does: such a string cannot be encoded to
    reach a CLI.  Paired escapes were already combined by the parser.
    """
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"invalid JSON value {name}")


def read_json(request: IRequest, schemas: SchemaSet, schema: str, *, match_case: bool = True) -> Any:
    """
    Read, parse and validate the JSON body of C{request}.

    @param schemas: Where C{schema} is found.
    @param schema: The component name the body must satisfy.
    @param match_case: When False, property names match case-insensitively
        (the native API's lenience).
    @return: The validated body, with property names as declared.
    @raise InvalidRequest: For an empty body (C{request body is required})
        or malformed JSON.
    @raise UnsupportedMediaType: For a non-JSON C{Content-Type}.
    @raise ValidationFailed: With every schema violation.
    """
    content = request.content
    content.seek(0)
    data: bytes = content.read()
    if not data:
        raise InvalidRequest("request body is required")
    raw_text = data.decode("utf-8", "replace")
    header = (request.getHeader(b"content-type") or b"").decode("latin-1")
    if not _is_json_media_type(header):
        raise UnsupportedMediaType(
            "validation failed",
            details=[ErrorDetail(f"unknown content type: {header}", "body", raw_text)],
        )
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        body, problems = schemas.validate(schema, _without_lone_surrogates(body), match_case=match_case)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidRequest("validation failed", details=[ErrorDetail(str(e), "body", raw_text)]) from None
    except RecursionError:
        # Deeper than the parser, the validator or the clean-up can follow.
        raise InvalidRequest(
            "validation failed", details=[ErrorDetail("JSON nested too deeply", "body", raw_text)]
        ) from None
    if problems:
        raise ValidationFailed("validation failed", details=problems)
    return body


def read_query(request: IRequest, parameters: Iterable[Parameter]) -> dict[str, Any]:
    """
    Read the query parameters of C{request} that C{parameters} declare
    (those of location C{query}; others are ignored): the first non-empty
    value of each, a string as it is, an integer as Go's C{strconv.Atoi}
    reads it and held to its schema's C{minimum}.

    @return: Every declared parameter by name; an absent one is C{""} or
        C{0}.
    @raise ValidationFailed: With one detail per bad parameter, in the
        order of declaration.
    """
    args: dict[bytes, list[bytes]] = request.args or {}
    values: dict[str, Any] = {}
    problems: list[ErrorDetail] = []
    for parameter in parameters:
        if parameter.location != "query":
            continue
        given = args.get(parameter.name.encode("utf-8")) or [b""]
        raw = given[0].decode("utf-8", "replace")
        if parameter.schema.get("type") != "integer":
            values[parameter.name] = raw
            continue
        value = _integer(raw, parameter)
        if isinstance(value, ErrorDetail):
            problems.append(value)
        else:
            values[parameter.name] = value
    if problems:
        raise ValidationFailed("validation failed", details=problems)
    return values


# What Go's strconv.Atoi accepts: no spaces, no underscores.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _integer(raw: str, parameter: Parameter) -> int | ErrorDetail:
    """An integer parameter (0 when absent or empty), or what is wrong with it."""
    if not raw:
        return 0
    location = f"query.{parameter.name}"
    # Go's Atoi refuses what does not fit in 64 bits (and Python's int()
    # refuses more than 4300 digits).
    if not _INTEGER.fullmatch(raw) or len(raw.lstrip("+-")) > 19 or not -(2**63) <= int(raw) < 2**63:
        return ErrorDetail("invalid integer", location, raw)
    value = int(raw)
    minimum = parameter.schema.get("minimum")
    if minimum is not None and value < minimum:
        return ErrorDetail(f"expected number >= {minimum}", location, value)
    return value
