# -*- test-case-name: tests.backends.test_flags -*-
"""
Unified options to CLI flags (docs/design/cli-runs.md#flag-mapping) and the
allow-list that request C{extra} flags must pass
(docs/design/cli-runs.md#extra-flags).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from attrs import frozen

from clinvk.model import UnifiedOptions

Flags = tuple[str, ...]


@frozen
class FlagTable:
    """
    One backend's column of the mapping table of docs/design/cli-runs.md#flag-mapping.

    Values that are not in a mapping (including C{""} and C{default})
    produce no flags.
    """

    approval: Mapping[str, Flags]
    sandbox: Mapping[str, Flags]
    output: Mapping[str, Flags]
    verbose: Flags = ()
    dry_run: Flags = ()
    max_turns: Callable[[int], Flags] | None = None
    system_prompt: Callable[[str], Flags] | None = None
    ephemeral: Flags = ()


def mapped_flags(table: FlagTable, options: UnifiedOptions) -> list[str]:
    """
    The mapped-flag list, in the order of docs/design/cli-runs.md#flag-mapping: approval,
    sandbox, output, verbose, dry run, max tokens (never anything), max
    turns, system prompt, ephemeral, then the extra flags.
    """
    flags: list[str] = []
    flags += table.approval.get(options.approval_mode, ())
    flags += table.sandbox.get(options.sandbox_mode, ())
    flags += table.output.get(options.output_format, ())
    if options.verbose:
        flags += table.verbose
    if options.dry_run:
        flags += table.dry_run
    if options.max_turns > 0 and table.max_turns is not None:
        flags += table.max_turns(options.max_turns)
    if options.system_prompt and table.system_prompt is not None:
        flags += table.system_prompt(options.system_prompt)
    if options.ephemeral:
        flags += table.ephemeral
    flags += options.extra
    return flags


COMMON_ALLOWED = frozenset({"-v", "-m", "-o", "-q", "-h", "--help", "--version"})

BOOLEAN_FLAGS = frozenset(
    {
        "--verbose",
        "--print",
        "--no-session-persistence",
        "--continue",
        "--fork-session",
        "--json",
        "--full-auto",
        "--quiet",
        "--yolo",
        "--debug",
        "--color",
        "--disable-color",
        "-v",
        "-q",
        "-h",
        "--help",
        "--version",
    }
)


def check_extra_flags(backend: str, allowed: frozenset[str], extra: Sequence[str]) -> str | None:
    """
    Walk a request's C{extra} list as docs/design/cli-runs.md#extra-flags does.

    @param allowed: The backend's own allowed flag names, lowercase (the
        common short flags are always allowed).
    @return: The error text of the first offending token, or L{None}.
    """
    may_take_value = False
    for token in extra:
        if not token.startswith("-"):
            if not may_take_value:
                return f"invalid flag format: {token} (must start with - or --)"
            may_take_value = False
            continue
        name = token.split("=", 1)[0].lower()
        if name not in allowed and name not in COMMON_ALLOWED:
            return f"flag not allowed for {backend}: {token}"
        may_take_value = name not in BOOLEAN_FLAGS and "=" not in token
    return None
