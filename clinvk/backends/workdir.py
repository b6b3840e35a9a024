# -*- test-case-name: tests.backends.test_workdir -*-
"""
The working-directory rules of docs/design/http.md#workdir-rules.

A handful of C{stat} calls on the reactor thread: cheap, and done before
anything starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

BUILTIN_BLOCKED = (
    "/etc",
    "/var/run",
    "/var/lock",
    "/root",
    "/sys",
    "/proc",
    "/dev",
    "/usr/bin",
    "/usr/sbin",
    "/bin",
    "/sbin",
    "/boot",
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
)


def dropped_builtin_blocks(blocked: Sequence[str]) -> list[str]:
    """
    The built-in blocked prefixes a configured block list leaves out: a
    configured list replaces the built-in one, which operators should be
    told about (docs/design/http.md#workdir-rules).
    """
    if not blocked:
        return []
    return [prefix for prefix in BUILTIN_BLOCKED if prefix not in blocked]


def matches_prefix(path: str, prefix: str) -> bool:
    """
    Path-boundary-aware prefix match: C{/etc} matches C{/etc} and
    C{/etc/nginx}, not C{/etcfoo}; C{/etc/} matches C{/etc/nginx} only.
    """
    if not prefix.startswith("/"):
        return False
    if path == prefix:
        return True
    return path.startswith(prefix if prefix.endswith("/") else prefix + "/")


def check_workdir(workdir: str, *, allowed: Sequence[str], blocked: Sequence[str]) -> str | None:
    """
    Check a requested working directory.

    @param allowed: C{server.allowed_workdir_prefixes}; empty allows any.
    @param blocked: C{server.blocked_workdir_prefixes}; empty means the
        built-in list, non-empty replaces it.
    @return: The error text of the first failed rule, or L{None}.
    """
    if workdir == "":
        return None
    if not os.path.isabs(workdir):
        return "invalid work directory: must be an absolute path"
    try:
        real = os.path.realpath(os.path.normpath(workdir), strict=True)
    except FileNotFoundError:
        return f"work directory does not exist: {workdir}"
    except OSError as e:
        return f"cannot resolve work directory: {e.strerror or e}"
    except ValueError as e:
        # A NUL byte: no path can contain one.
        return f"cannot resolve work directory: {e}"
    for prefix in blocked or BUILTIN_BLOCKED:
        if matches_prefix(real, prefix):
            return f"work directory not allowed: {workdir} (blocked path)"
    if allowed and not any(matches_prefix(real, prefix) for prefix in allowed):
        return f"work directory not allowed: {workdir} (not in allowed paths)"
    try:
        if not os.path.isdir(real):
            os.stat(real)
            return f"work directory is not a directory: {workdir}"
    except FileNotFoundError:
        return f"work directory does not exist: {workdir}"
    except OSError as e:
        return f"cannot access work directory: {e.strerror or e}"
    return None
