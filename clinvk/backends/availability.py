# -*- test-case-name: tests.test_availability -*-
"""
Whether each backend's CLI is installed (docs/design/cli-runs.md#availability).

A backend is available when an executable of its name is on the server's
C{PATH}.  C{/health} and C{/api/v1/backends} use a 30-second cache, timed
on the reactor clock; executions check afresh every time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IReactorTime

from clinvk.config import BACKEND_NAMES

CACHE_SECONDS = 30.0


class BackendAvailability:
    """
    Availability of the backend CLIs, with a per-backend cache.

    @param clock: The reactor clock that times the cache.
    @param names: The backend names, which are also their binaries' names.
    @param which: Finds an executable on C{PATH} (L{shutil.which}); the
        lookup is a handful of C{stat} calls, cheap enough for the reactor
        thread once per backend every 30 seconds.
    """

    def __init__(
        self,
        clock: IReactorTime,
        names: Sequence[str] = BACKEND_NAMES,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self._clock = clock
        self._names = tuple(sorted(names))
        self._which = which
        self._cache: dict[str, tuple[float, bool]] = {}

    def locate(self, name: str) -> str | None:
        """The absolute path of C{name}'s CLI, looked up now (no cache)."""
        found = self._which(name)
        return os.path.abspath(found) if found is not None else None

    def is_available(self, name: str) -> bool:
        """Check C{name} now, bypassing the cache."""
        return self.locate(name) is not None

    def cached(self) -> list[tuple[str, bool]]:
        """
        @return: C{(name, available)} for every backend, sorted by name,
            each checked at most once per L{CACHE_SECONDS}.
        """
        now = self._clock.seconds()
        result = []
        for name in self._names:
            checked = self._cache.get(name)
            if checked is None or now - checked[0] >= CACHE_SECONDS:
                checked = (now, self.is_available(name))
                self._cache[name] = checked
            result.append((name, checked[1]))
        return result
