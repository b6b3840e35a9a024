# -*- test-case-name: tests.web.test_request -*-
"""
Reading a JSON request body: presence, content type, syntax, then schema
(docs/design/native-api.md#request-bodies), each failure with its own status and
problem details.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from twisted.web.iweb import IRequest

from clinvk.errors import ErrorDetail, InvalidRequest, UnsupportedMediaType, ValidationFailed
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
