# -*- test-case-name: tests.web.test_misdirected -*-
"""
Requests of an OpenAI or Anthropic SDK pointed at the wrong base URL.

An SDK appends its endpoint to its C{base_url}: the OpenAI SDK
C{/chat/completions} (so its base URL must end in C{/openai/v1}), the
Anthropic SDK C{/v1/messages} (so its base URL is C{/anthropic}).  A base
URL without the prefix, or with one C{/v1} too many or too few, sends
C{/v1/chat/completions}, C{/chat/completions}, C{/v1/messages},
C{/anthropic/v1/v1/messages} and the like, which no route serves.  Such a
404 names the right base URL, and outside the API prefixes it is written
in the SDK's dialect, so that the SDK shows the message
(docs/design/error-mapping.md#misdirected-sdks, docs/design/decisions.md#d2-sdk-error-dialects).
"""

from __future__ import annotations

import re

from attrs import frozen

from twisted.web.iweb import IRequest

from clinvk.errors import RouteNotFound
from clinvk.web._errors import Dialect
from clinvk.web._responses import mount_path, request_host

# What may come before an endpoint when a base URL is wrong: nothing, a
# family prefix, and any number of /v1 (the server's own paths, below its
# mount point).  Anything else (/docs/models) is no base URL mistake.
_BASE = r"(?P<base>(?:/openai|/anthropic|/api)?(?:/v1)*)"


@frozen
class Sdk:
    """
    One SDK whose requests may arrive at the wrong path.

    @ivar api: The API's name in messages.
    @ivar prefix: Where its API is, below the mount point.
    @ivar base_url: The path its SDK's C{base_url} ends with.
    @ivar dialect: How its errors are written.
    @ivar endpoints: Matches a path the SDK requests, with its base.
    """

    api: str
    prefix: str
    base_url: str
    dialect: Dialect
    endpoints: re.Pattern[str]


OPENAI = Sdk(
    api="OpenAI-compatible",
    prefix="/openai/v1",
    base_url="/openai/v1",
    dialect=Dialect.OPENAI,
    endpoints=re.compile(
        _BASE + r"/(?:chat/completions|completions|responses(?:/[^/]+){0,2}|embeddings"
        r"|models(?:/[^/]+)?|moderations)"
    ),
)

ANTHROPIC = Sdk(
    api="Anthropic-compatible",
    prefix="/anthropic/v1",
    base_url="/anthropic",
    dialect=Dialect.ANTHROPIC,
    endpoints=re.compile(
        _BASE + r"/(?:messages(?:/count_tokens|/batches(?:/[^/]+){0,2})?|complete|models(?:/[^/]+)?)"
    ),
)


def sdk_of(path: str, request: IRequest, family: Dialect) -> Sdk | None:
    """
    The SDK that sent C{request} to C{path} (below the mount point)
    instead of to its API, or L{None} when C{path} does not look like a
    base URL mistake.  Whether a route serves C{path} after all is for
    the caller to check.

    Both SDKs may ask for C{/v1/models}: the Anthropic SDK sends an
    C{anthropic-version} header on every request, and a path under
    C{/anthropic/} is the Anthropic SDK's too; otherwise the OpenAI SDK
    is the likelier.

    @param family: The dialect of the family that owns C{path}.
    """
    if family is Dialect.ANTHROPIC or request.getHeader(b"anthropic-version") is not None:
        candidates = (ANTHROPIC, OPENAI)
    else:
        candidates = (OPENAI, ANTHROPIC)
    for sdk in candidates:
        match = sdk.endpoints.fullmatch(path)
        if match is not None:
            # Below the right base URL, the route is simply not there.
            return sdk if match.group("base") != sdk.prefix else None
    return None


def misdirected(request: IRequest, sdk: Sdk) -> RouteNotFound:
    """
    The 404 for C{request}, naming where C{sdk}'s API is and the base URL
    its SDK needs, as this client reaches the server (with the mount
    point).
    """
    method = request.method.decode("latin-1")
    path = request.path.decode("latin-1")
    mount = mount_path(request)
    forwarded = (request.getHeader(b"x-forwarded-proto") or b"").decode("latin-1").strip().lower()
    # The scheme the client used: a TLS-terminating proxy says so.
    scheme = forwarded if forwarded in ("http", "https") else "https" if request.isSecure() else "http"
    return RouteNotFound(
        f"no route {method} {path}: the {sdk.api} API is under {mount}{sdk.prefix}; "
        f"set the SDK's base_url to {scheme}://{request_host(request)}{mount}{sdk.base_url}"
    )
