"""
The files of a run (docs/design/structured-output.md#run-files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from clinvk.runs.scratch import SCRATCH_PREFIX, RunFiles, scratch_path

_T = TypeVar("_T")


class ScratchPathTests(SynchronousTestCase):
    def test_path(self) -> None:
        """A new, unguessable name under the root, or the system's temporary directory; nothing made."""
        root = self.mktemp()
        first, second = scratch_path(root), scratch_path(root)
        self.assertNotEqual(first, second)
        self.assertEqual(os.path.dirname(first), root)
        self.assertRegex(os.path.basename(first), f"^{SCRATCH_PREFIX}[0-9a-f]{{24}}$")
        self.assertFalse(os.path.exists(root))
        self.assertEqual(os.path.dirname(scratch_path()), tempfile.gettempdir())


class RunFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.mkdir(self.root)
        self.directory = os.path.join(self.root, "run")

    def test_write_and_remove(self) -> None:
        """The directory and its files are this user's alone; removing takes all."""
        files = RunFiles()
        self.successResultOf(files.write(self.directory, [("a.json", b"{}"), ("b.png", b"\x89PNG")]))
        self.assertEqual(os.stat(self.directory).st_mode & 0o777, 0o700)
        with open(os.path.join(self.directory, "b.png"), "rb") as image:
            self.assertEqual(image.read(), b"\x89PNG")
        self.assertEqual(os.stat(os.path.join(self.directory, "a.json")).st_mode & 0o777, 0o600)
        self.successResultOf(files.remove(self.directory))
        self.assertEqual(os.listdir(self.root), [])

    def test_failed_write_leaves_nothing(self) -> None:
        """A write that fails part way removes what it made, and fails."""
        failure = self.failureResultOf(RunFiles().write(self.directory, [("a", b"1"), ("a", b"2")]))
        failure.trap(FileExistsError)
        self.assertEqual(os.listdir(self.root), [])

    def test_remove_without_thread(self) -> None:
        """With its thread gone (the server stopping), removing happens at once, and never fails."""

        def stopped(work: Callable[[], _T]) -> Deferred[_T]:
            return fail(RuntimeError("the pool has stopped"))

        self.successResultOf(RunFiles().write(self.directory, [("a", b"1")]))
        self.successResultOf(RunFiles(stopped).remove(self.directory))
        self.assertFalse(os.path.exists(self.directory))
        self.successResultOf(RunFiles(stopped).remove(self.directory))
