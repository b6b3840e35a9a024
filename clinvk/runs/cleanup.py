# -*- test-case-name: tests.runs.test_runtime -*-
"""
The clean-up after an ephemeral run: the native session the CLI left
behind is deleted (docs/design/cli-runs.md#ephemeral-cleanup), without holding the
run's answer back.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Mapping

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.errors import ShuttingDown
from clinvk.interfaces import IBackend
from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessSpec
from clinvk.process.supervisor import ProcessSupervisor

log = Logger()

# How long the clean-up of a native session may take.
CLEANUP_TIMEOUT = 30.0


class NativeSessionCleanup:
    """
    Deletes the native sessions of ephemeral runs, each in the background
    and kept until it ends.

    @param supervisor: Owns the clean-up commands it starts.
    @param clock: Dates the session files and paces the file search.
    @param environ: The clean-up commands' environment.
    @param home: The user's home directory (where CLIs keep sessions).
    """

    def __init__(
        self, supervisor: ProcessSupervisor, clock: IReactorTime, environ: Mapping[str, str], home: str
    ) -> None:
        self._supervisor = supervisor
        self._clock = clock
        self._environ = dict(environ)
        self._home = home
        self._under_way: set[Deferred[None]] = set()

    @property
    def under_way(self) -> int:
        """How many clean-ups are under way."""
        return len(self._under_way)

    def settled(self) -> Deferred[None]:
        """A Deferred firing once the clean-ups under way have ended (they never fail)."""
        return DeferredList(list(self._under_way)).addCallback(lambda _: None)

    def start(self, backend: IBackend, executable: str, native_id: str) -> None:
        """
        Clean up after a run in the background: Gemini's
        C{--delete-session} is a CLI start of its own, seconds long.
        """
        cleanup = Deferred.fromCoroutine(self._clean_up(backend, executable, native_id))
        self._under_way.add(cleanup)

        def done(result: object) -> None:
            self._under_way.discard(cleanup)
            if isinstance(result, Failure):
                log.failure("Native session clean-up failed backend={backend}", result, backend=backend.name)

        cleanup.addBoth(done)

    async def _clean_up(self, backend: IBackend, executable: str, native_id: str) -> None:
        command = backend.cleanup_command(executable, native_id)
        if command is not None:
            spec = ProcessSpec(argv=command, env=self._environ, timeout=CLEANUP_TIMEOUT)
            try:
                run = self._supervisor.start(
                    spec, BufferedCapture(64 * 1024), label=f"{backend.name} clean-up"
                )
            except ShuttingDown:
                # The run's own result matters more than its tidying-up.
                log.info("Skipped native session clean-up backend={backend}", backend=backend.name)
            else:
                await run.wait()
        roots = backend.session_file_roots(self._home)
        if roots:
            await self._delete_session_file(roots[0], native_id)

    async def _delete_session_file(self, root: str, native_id: str) -> None:
        """
        Delete the first file under C{root} whose name holds C{native_id}:
        today's dated directory first, then the whole tree, one directory
        per reactor turn so that a large tree never stalls the reactor.
        """
        today = time.localtime(self._clock.seconds())
        dated = os.path.join(root, f"{today.tm_year:04d}", f"{today.tm_mon:02d}", f"{today.tm_mday:02d}")
        if _delete_matching(dated, native_id):
            return
        pending = deque([root])
        while pending:
            directory = pending.popleft()
            if _delete_matching(directory, native_id, subdirectories=pending):
                return
            await deferLater(self._clock, 0, lambda: None)


def _delete_matching(directory: str, native_id: str, subdirectories: deque[str] | None = None) -> bool:
    """
    Delete the first regular file in C{directory} whose name contains
    C{native_id}; queue its subdirectories.  Errors are ignored.
    """
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and native_id in entry.name:
                    os.unlink(entry.path)
                    return True
                if subdirectories is not None and entry.is_dir(follow_symlinks=False):
                    subdirectories.append(entry.path)
    except OSError:
        pass
    return False
