# -*- test-case-name: tests.backends.test_backends -*-
"""
The backend CLIs clinvk drives: C{claude}, C{codex} and C{gemini}.
"""

from __future__ import annotations

from clinvk.backends.claude import ClaudeBackend
from clinvk.backends.codex import CodexBackend
from clinvk.backends.gemini import GeminiBackend
from clinvk.interfaces import IBackend


def build_backends() -> dict[str, IBackend]:
    """The registered backends by name, sorted by name."""
    backends: list[IBackend] = [ClaudeBackend(), CodexBackend(), GeminiBackend()]
    return {backend.name: backend for backend in sorted(backends, key=lambda b: b.name)}
