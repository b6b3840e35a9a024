# -*- test-case-name: tests.compat.test_models -*-
"""
Which backend a compatibility request runs on, with which model, and the
identifiers and token estimates of its answer.
"""

from __future__ import annotations

import secrets

from clinvk.config import BACKEND_NAMES
from clinvk.model import TokenUsage


def openai_backend(model: str) -> str:
    """
    The backend of an OpenAI model name
    (docs/design/openai-api.md#openai-model-mapping): a backend's own
    name, else the first of C{claude}, C{gpt}, C{gemini} it contains
    (case-sensitive), else Claude.
    """
    if model in BACKEND_NAMES:
        return model
    for marker, backend in (("claude", "claude"), ("gpt", "codex"), ("gemini", "gemini")):
        if marker in model:
            return backend
    return "claude"


def anthropic_backend(model: str) -> str:
    """The backend of an Anthropic model name: a backend's own name, else Claude."""
    return model if model in BACKEND_NAMES else "claude"


def run_model(model: str) -> str:
    """
    The model to pass to the CLI: none for a bare backend name (the CLIs
    know no model called C{claude}), the name itself otherwise.
    """
    return "" if model in BACKEND_NAMES else model


def new_id(prefix: str) -> str:
    """A unique answer id: C{prefix} and 24 random lowercase hex digits."""
    return prefix + secrets.token_hex(12)


def usage_or_estimate(usage: TokenUsage | None, prompt: str, output: str) -> tuple[int, int]:
    """
    Input and output tokens: as the CLI reported them, else estimated at
    four bytes of UTF-8 a token.
    """
    if usage is not None:
        return usage.input_tokens, usage.output_tokens
    return len(prompt.encode("utf-8")) // 4, len(output.encode("utf-8")) // 4
