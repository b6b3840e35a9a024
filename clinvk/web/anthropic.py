# -*- test-case-name: tests.web.test_root -*-
"""
The Anthropic-compatible API under C{/anthropic/v1} (api-anthropic.md).

Its routes arrive with the compatibility issue; already now every failure
under C{/anthropic/} is an Anthropic error body (DECISIONS D2).
"""

from __future__ import annotations

from typing import ClassVar

from clinvk.openapi import Operation
from clinvk.web._errors import Dialect
from clinvk.web._routing import family_app


class AnthropicApi:
    """The C{/anthropic} family."""

    dialect: ClassVar[Dialect] = Dialect.ANTHROPIC
    operations: ClassVar[tuple[Operation, ...]] = ()
    app = family_app(dialect)
