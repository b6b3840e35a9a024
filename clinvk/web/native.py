# -*- test-case-name: tests.web.test_root -*-
"""
The native REST API under C{/api/v1} (api-rest.md).

Its routes arrive with the native-API issue; until then it answers every
path under its prefix with the router's plain-text 404.
"""

from __future__ import annotations

from typing import ClassVar

from clinvk.openapi import Operation
from clinvk.web._errors import Dialect
from clinvk.web._routing import family_app


class NativeApi:
    """The C{/api/v1} family."""

    dialect: ClassVar[Dialect] = Dialect.NATIVE
    operations: ClassVar[tuple[Operation, ...]] = ()
    app = family_app(dialect)
