# -*- test-case-name: tests.backends.test_backends -*-
"""
The backend CLIs clinvk drives: C{claude}, C{codex} and C{gemini}.

Each backend is one module, C{clinvk.backends.<name>}, whose C{backend}
provides L{IBackend}: its aliases, flags, command lines, parsers, needs and
clean-up.  A backend is registered by its name in
L{clinvk.config.BACKEND_NAMES}, which the configuration (its
C{backends.<name>} section and C{CLINVK_<NAME>_MODEL}) and this registry
both read: adding a backend touches its module and that one line.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from clinvk import config
from clinvk.interfaces import IBackend


def build_backends(names: Iterable[str] | None = None) -> dict[str, IBackend]:
    """
    The registered backends by name, sorted by name.

    @param names: The backends' names, each naming its module; by default
        L{clinvk.config.BACKEND_NAMES}.
    @raise TypeError: If a module's C{backend} does not provide L{IBackend}.
    @raise ValueError: If a module's C{backend} goes by another name.
    """
    backends: dict[str, IBackend] = {}
    for name in sorted(config.BACKEND_NAMES if names is None else names):
        backend = IBackend(importlib.import_module(f"{__name__}.{name}").backend)
        if backend.name != name:
            raise ValueError(f"{__name__}.{name}.backend is named {backend.name!r}")
        backends[name] = backend
    return backends
