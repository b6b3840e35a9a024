# -*- test-case-name: tests.web.test_root -*-
"""
The OpenAI-compatible API under C{/openai/v1} (api-openai.md).

Its routes arrive with the compatibility issue; already now every failure
under C{/openai/} is an OpenAI error body (DECISIONS D2).
"""

from __future__ import annotations

from typing import ClassVar

from clinvk.openapi import Operation
from clinvk.web._errors import Dialect
from clinvk.web._routing import family_app


class OpenAIApi:
    """The C{/openai} family."""

    dialect: ClassVar[Dialect] = Dialect.OPENAI
    operations: ClassVar[tuple[Operation, ...]] = ()
    app = family_app(dialect)
