"""
The files of a run (docs/design/structured-output.md#run-files).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from typing import TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.model import RunFileMaker, RunRequest
from clinvk.runs.runtime import BackendRuntime
from clinvk.runs.scratch import SCRATCH_PREFIX, RunFiles, scratch_path
from clinvk.testing.reactor import FakeProcessReactor
from tests.backends.helpers import config
from tests.helpers import fake_which, started_supervisor

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


class RuntimeFilesTests(SynchronousTestCase):
    """The runtime writes a run's files before its CLI starts and always removes them."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.written: list[Deferred[None]] = []
        self.removed: list[str] = []
        runtime_files = self

        class Pending(RunFiles):
            def write(
                self, directory: str, files: Iterable[tuple[str, bytes | RunFileMaker]]
            ) -> Deferred[None]:
                runtime_files.written.append(Deferred())
                return runtime_files.written[-1]

            def remove(self, directory: str) -> Deferred[None]:
                runtime_files.removed.append(directory)
                return succeed(None)

        self.runtime = BackendRuntime(
            config=config({}),
            backends=build_backends(),
            supervisor=started_supervisor(self.reactor),
            availability=BackendAvailability(self.reactor, which=fake_which({"codex"})),
            clock=self.reactor,
            environ={"PATH": "/usr/local/bin"},
            home=self.mktemp(),
            run_files=Pending(),
        )
        request = RunRequest(backend="codex", prompt="hi", output_schema='{"type":"object"}')
        self.prepared = self.runtime.prepare(request)

    def test_cancelled_while_writing(self) -> None:
        """A run cancelled while its files are written starts no CLI, and its files are removed after."""
        running = Deferred.fromCoroutine(self.runtime.execute(self.prepared))
        self.assertEqual(len(self.written), 1)
        running.cancel()
        self.failureResultOf(running, CancelledError)
        self.assertEqual(self.removed, [self.prepared.options.scratch])
        self.assertEqual(self.reactor.spawned, [])

    def test_removed_after_the_cli(self) -> None:
        """The files go once the CLI has ended, not before."""
        running = Deferred.fromCoroutine(self.runtime.execute(self.prepared))
        self.written[0].callback(None)
        self.assertEqual(self.removed, [])
        self.reactor.spawned[0].exit(1)
        self.successResultOf(running)
        self.assertEqual(self.removed, [self.prepared.options.scratch])

    def test_files_out_of_repr(self) -> None:
        """A prepared run's repr names its files, without their bytes (a client's images)."""
        self.assertIn("files=<output-schema.json>", repr(self.prepared))
