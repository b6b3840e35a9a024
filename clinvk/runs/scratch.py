# -*- test-case-name: tests.runs.test_scratch -*-
"""
The files a run's command line names (a schema for codex's
C{--output-schema}, an image for its C{--image}), kept in a directory of
the run's own that exists only while the run does
(docs/design/structured-output.md#run-files).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from clinvk.model import RunFileMaker
from clinvk.sessions.blocking import RunBlocking, synchronously

log = Logger()

# The prefix of every run's directory, so that one left by a crash is
# recognisable for what it is.
SCRATCH_PREFIX = "clinvk-run-"


def scratch_path(root: str = "") -> str:
    """
    A new, unguessable directory path for one run's files, under C{root}
    (by default the system's temporary directory).  Nothing is created.
    """
    return os.path.join(root or tempfile.gettempdir(), SCRATCH_PREFIX + secrets.token_hex(12))


class RunFiles:
    """
    Writes runs' files and removes them, away from the reactor thread
    when given a thread to do it on.

    @param run_blocking: Runs the file operations; by default at once.
    """

    def __init__(self, run_blocking: RunBlocking = synchronously) -> None:
        self._run_blocking = run_blocking

    def write(self, directory: str, files: Iterable[tuple[str, bytes | RunFileMaker]]) -> Deferred[None]:
        """
        Create C{directory}, readable by this user alone, holding C{files}:
        bytes written to a new file, or what a maker makes at its path.

        @return: A Deferred failing with the L{OSError} (or the thread
            pool's refusal) when it could not; the directory is then gone.
        """
        wanted = tuple(files)

        def write() -> None:
            os.mkdir(directory, 0o700)
            try:
                for name, content in wanted:
                    if callable(content):
                        content(os.path.join(directory, name))
                        continue
                    descriptor = os.open(
                        os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                    )
                    with os.fdopen(descriptor, "wb") as file:
                        file.write(content)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise

        return self._run_blocking(write)

    def remove(self, directory: str) -> Deferred[None]:
        """
        Remove C{directory} and what it holds.  This never fails: where
        the thread is gone (the server stopping), it is removed at once.
        """

        def remove() -> None:
            shutil.rmtree(directory, ignore_errors=True)

        def at_once(failure: object) -> None:
            log.debug("Removing a run's files in place: {failure}", failure=failure)
            remove()

        return self._run_blocking(remove).addErrback(at_once)
