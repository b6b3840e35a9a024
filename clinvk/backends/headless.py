# -*- test-case-name: tests.backends.test_headless -*-
"""
What each CLI needs to run unattended, and whether this machine and the
configuration give it that (docs/backends.md#cli-quirks).

  - codex runs only inside a Git repository, unless given
    C{--skip-git-repo-check};
  - gemini runs only in a folder it trusts, unless given C{--skip-trust}
    or C{GEMINI_CLI_TRUST_WORKSPACE=true}, and it needs an auth method
    chosen in C{~/.gemini/settings.json} (without one it exits 41);
  - claude needs nothing beyond its login.

These read a few small files: C{clinvk doctor} calls them, never a
request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from attrs import frozen

from clinvk.config import ClinvkConfig


@frozen
class HeadlessNeed:
    """
    One thing a CLI needs to run unattended.

    @ivar backend: The CLI.
    @ivar need: What it needs.
    @ivar met: Whether it has it (for runs in the server's own folder).
    @ivar detail: How it is met, or what would meet it.
    """

    backend: str
    need: str
    met: bool
    detail: str


def headless_needs(
    config: ClinvkConfig, cwd: str, environ: Mapping[str, str], home: str
) -> list[HeadlessNeed]:
    """
    What each backend needs to run unattended, checked for runs in C{cwd}
    (the server's folder, where runs without a C{workdir} go).
    """
    return [
        _codex_repository(config, cwd),
        _gemini_trust(config, cwd, environ, home),
        _gemini_auth(home),
    ]


def _codex_repository(config: ClinvkConfig, cwd: str) -> HeadlessNeed:
    need = "a Git repository as its working folder"
    if "--skip-git-repo-check" in config.backends.codex.extra_flags:
        return HeadlessNeed(
            "codex", need, True, "not needed: backends.codex.extra_flags has --skip-git-repo-check"
        )
    repository = _git_repository(cwd)
    if repository is not None:
        return HeadlessNeed("codex", need, True, f"{cwd} is inside the repository {repository}")
    return HeadlessNeed(
        "codex",
        need,
        False,
        f"{cwd} is not in a Git repository: requests must name a workdir inside one, "
        "or add --skip-git-repo-check to backends.codex.extra_flags",
    )


def _gemini_trust(config: ClinvkConfig, cwd: str, environ: Mapping[str, str], home: str) -> HeadlessNeed:
    need = "a trusted folder"
    if "--skip-trust" in config.backends.gemini.extra_flags:
        return HeadlessNeed("gemini", need, True, "not needed: backends.gemini.extra_flags has --skip-trust")
    if environ.get("GEMINI_CLI_TRUST_WORKSPACE", "").lower() == "true":
        return HeadlessNeed("gemini", need, True, "not needed: GEMINI_CLI_TRUST_WORKSPACE=true")
    trusted = _read_json(os.path.join(home, ".gemini", "trustedFolders.json"))
    if isinstance(trusted, dict) and trusted.get(cwd) == "TRUST_FOLDER":
        return HeadlessNeed("gemini", need, True, f"{cwd} is in ~/.gemini/trustedFolders.json")
    return HeadlessNeed(
        "gemini",
        need,
        False,
        f"{cwd} is not known to be trusted (gemini exits 55): add --skip-trust to "
        "backends.gemini.extra_flags, or trust the folder in gemini once",
    )


def _gemini_auth(home: str) -> HeadlessNeed:
    need = "an auth method in ~/.gemini/settings.json"
    settings = _read_json(os.path.join(home, ".gemini", "settings.json"))
    chosen = _dig(settings, "security", "auth", "selectedType")
    if isinstance(chosen, str) and chosen:
        return HeadlessNeed("gemini", need, True, f"security.auth.selectedType is {chosen}")
    return HeadlessNeed(
        "gemini",
        need,
        False,
        "security.auth.selectedType is not set (gemini exits 41): log in to gemini once",
    )


def _git_repository(path: str) -> str | None:
    """The top of the Git repository holding C{path}, or L{None}."""
    current = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def _read_json(path: str) -> object:
    """The JSON in C{path}, or L{None} when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
