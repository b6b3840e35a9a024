# -*- test-case-name: tests.backends.test_options -*-
"""
From a request to the options of a run: configuration layering
(docs/design/cli-runs.md#option-layering), model aliases
(docs/design/cli-runs.md#model-aliases, each backend has its own) and
output formats (docs/design/cli-runs.md#output-formats).
"""

from __future__ import annotations

from collections.abc import Mapping

from clinvk.config import ClinvkConfig
from clinvk.interfaces import IBackend
from clinvk.model import ImageInput, RunRequest, UnifiedOptions

REQUESTED_FORMATS = ("", "default", "text", "json", "stream-json")


def resolve_model(backend: IBackend, model: str) -> str:
    """
    The model for C{backend}'s command line: one of its aliases resolved
    (exactly as written), anything else as is.
    """
    aliases: Mapping[str, str] = backend.aliases
    return aliases.get(model, model)


def prompt_with_system(options: UnifiedOptions, prompt: str) -> str:
    """
    The prompt with the system prompt in front, for CLIs that have no flag
    for it (docs/design/cli-runs.md#flag-mapping).
    """
    return f"{options.system_prompt}\n\n{prompt}" if options.system_prompt else prompt


def effective_format(requested: str, config: ClinvkConfig) -> str:
    """
    The effective requested format (docs/design/cli-runs.md#output-formats): the request's, else
    C{output.format}, else C{json}; never C{""} or C{default}.
    """
    for value in (requested, config.output.format):
        value = value.strip().lower()
        if value and value != "default":
            return value
    return "json"


def unified_options(request: RunRequest, config: ClinvkConfig, *, streaming: bool) -> UnifiedOptions:
    """
    Layer the configuration under C{request} (docs/design/cli-runs.md#option-layering).

    @param streaming: Whether the caller streams events; the CLI is then
        asked for C{stream-json}, otherwise for C{json} whatever was
        requested (docs/design/cli-runs.md#output-formats).
    @raise KeyError: If the backend has no configuration section (pre-flight
        rejects unknown backends first).
    """
    flags = config.unified_flags
    section = config.backends.get(request.backend)

    approval_mode = request.approval_mode or flags.approval_mode
    sandbox_mode = request.sandbox_mode or flags.sandbox_mode
    max_turns = request.max_turns or (flags.max_turns if flags.max_turns > 0 else 0)
    max_tokens = request.max_tokens or (flags.max_tokens if flags.max_tokens > 0 else 0)
    # A backend's own setting overrides an explicit "default" too.
    if section.approval_mode and approval_mode in ("", "default"):
        approval_mode = section.approval_mode
    if section.sandbox_mode and sandbox_mode in ("", "default"):
        sandbox_mode = section.sandbox_mode

    return UnifiedOptions(
        model=request.model or section.model,
        approval_mode=approval_mode,
        sandbox_mode=sandbox_mode,
        output_format="stream-json" if streaming else "json",
        verbose=request.verbose or flags.verbose,
        dry_run=request.dry_run or flags.dry_run,
        max_tokens=max_tokens,
        max_turns=max_turns,
        system_prompt=request.system_prompt or section.system_prompt,
        allowed_tools=section.allowed_tools,
        extra=(*request.extra, *section.extra_flags),
        ephemeral=request.ephemeral,
        output_schema=request.output_schema,
        images=shown_images(request),
        client_tools=request.client_tools,
    )


def shown_images(request: RunRequest) -> tuple[ImageInput, ...]:
    """
    The images of C{request} that its prompt shows, once each, in the
    order their markers first appear (docs/design/images.md#image-markers).
    """
    found = {image.marker: image for image in request.images}
    positions = {marker: request.prompt.find(marker) for marker in found}
    shown = sorted((position, marker) for marker, position in positions.items() if position >= 0)
    return tuple(found[marker] for _, marker in shown)
