# -*- test-case-name: tests.backends.test_headless -*-
"""
What the CLIs need to run unattended, and whether this machine and the
configuration give it them (docs/design/cli-runs.md#unattended-needs):
each backend says what it needs (L{clinvk.interfaces.IBackend.headless_needs});
this module asks them all and holds the small file readers they share.

These read a few small files: C{clinvk doctor} calls them, never a
request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from clinvk.config import ClinvkConfig
from clinvk.interfaces import IBackend
from clinvk.model import HeadlessNeed


def headless_needs(
    config: ClinvkConfig,
    backends: Mapping[str, IBackend],
    cwd: str,
    environ: Mapping[str, str],
    home: str,
) -> list[HeadlessNeed]:
    """
    What each backend needs to run unattended, checked for runs in C{cwd}
    (the server's folder, where runs without a C{workdir} go), backend by
    backend in the order of their names.
    """
    return [
        need
        for name, backend in sorted(backends.items())
        for need in backend.headless_needs(config.backends.get(name), cwd, environ, home)
    ]


def git_repository(path: str) -> str | None:
    """The top of the Git repository holding C{path}, or L{None}."""
    current = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def read_json(path: str) -> object:
    """The JSON in C{path}, or L{None} when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def dig(value: object, *keys: str) -> object:
    """The value under C{keys} in nested JSON objects, or L{None} where one is missing."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
