"""
Helpers for the backend tests: configurations and options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinvk.backends.options import unified_options
from clinvk.config import ClinvkConfig, config_from_mapping
from clinvk.model import RunRequest, UnifiedOptions

DATA = Path(__file__).parent.parent / "data"


def config(raw: dict[str, Any] | None = None) -> ClinvkConfig:
    """A validated configuration from C{raw}."""
    return config_from_mapping(raw, {}, source=None)


def options(
    backend: str = "claude", raw: dict[str, Any] | None = None, *, streaming: bool = False, **request: Any
) -> UnifiedOptions:
    """The unified options of a request for C{backend} under configuration C{raw}."""
    return unified_options(
        RunRequest(backend=backend, prompt="p", **request), config(raw), streaming=streaming
    )


def sample(name: str) -> str:
    """A recorded CLI output under tests/data."""
    return (DATA / name).read_text("utf-8")
