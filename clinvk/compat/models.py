# -*- test-case-name: tests.compat.test_models -*-
"""
Which backend a compatibility request runs on, with which model, and the
identifiers and token estimates of its answer; what each backend's model
can do through these APIs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from clinvk.interfaces import IBackend
from clinvk.model import TokenUsage


def openai_backend(model: str, backends: Mapping[str, IBackend]) -> str:
    """
    The backend of an OpenAI model name
    (docs/design/openai-api.md#openai-model-mapping): a backend's
    own name, else the first backend, in the order of their names, one of
    whose L{model markers<IBackend.model_markers>} it contains
    (case-sensitive: C{claude}, C{gpt}, C{gemini}), else the default
    backend (L{compat_default}).
    """
    if model in backends:
        return model
    for name, backend in sorted(backends.items()):
        if any(marker in model for marker in backend.model_markers):
            return name
    return compat_default(backends)


def anthropic_backend(model: str, backends: Mapping[str, IBackend]) -> str:
    """The backend of an Anthropic model name: a backend's own name, else the default backend (Claude)."""
    return model if model in backends else compat_default(backends)


def compat_default(backends: Mapping[str, IBackend]) -> str:
    """
    The backend a compatibility request runs on when its model chooses
    none: the one that says it is L{the default<IBackend.default_for_compat>}.

    @raise LookupError: If none says so.
    """
    for name, backend in sorted(backends.items()):
        if backend.default_for_compat:
            return name
    raise LookupError("no backend is the default of the compatibility APIs")


def run_model(model: str, backends: Mapping[str, IBackend]) -> str:
    """
    The model to pass to the CLI: none for a bare backend name (the CLIs
    know no model called C{claude}), the name itself otherwise.
    """
    return "" if model in backends else model


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


def capabilities(backend: IBackend, *, conversations: bool) -> dict[str, bool]:
    """
    What a request for C{backend}'s model gets through the compatibility
    APIs today (docs/design/openai-api.md#openai-models-list): streamed
    answers a few tokens at a time, images, the client's tools, answers
    held to a JSON schema (docs/design/structured-output.md), and a
    conversation continued in the CLI's own session.

    @param conversations: Whether the server continues conversations
        (C{server.compat_sessions}).
    """
    return {
        "streaming_tokens": bool(backend.streams_tokens),
        "images": True,
        "tools": bool(backend.client_tools),
        "structured_output": bool(backend.structured_output),
        "resume": conversations,
    }


def estimate_tokens(text: str) -> int:
    """
    Tokens in C{text}, estimated at four bytes of UTF-8 a token (the rate
    of L{usage_or_estimate}), and at least one for any text.
    """
    size = len(text.encode("utf-8"))
    return max(1, size // 4) if size else 0
