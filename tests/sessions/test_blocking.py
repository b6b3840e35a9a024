"""
Tests for L{clinvk.sessions.blocking}: running blocking work in a thread
pool, or at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

from clinvk.sessions.blocking import in_thread_pool, synchronously
from clinvk.sessions.record import StoreError


class InThreadPoolTests(SynchronousTestCase):
    """L{in_thread_pool} runs work in a pool and reports it in the reactor thread."""

    def test_in_thread_pool(self) -> None:
        """L{in_thread_pool} runs the work in the pool and delivers its result in the reactor thread."""
        calls: list[str] = []

        class Reactor:
            def callFromThread(  # noqa: N802
                self, f: Callable[..., object], *args: object, **kwargs: object
            ) -> None:
                calls.append("reactor")
                f(*args, **kwargs)

        class Pool:
            def callInThreadWithCallback(  # noqa: N802
                self, on_result: Callable[[bool, object], None], f: Callable[[], object]
            ) -> None:
                calls.append("pool")
                on_result(True, f())

        run = in_thread_pool(Reactor(), Pool())  # type: ignore[arg-type]
        self.assertEqual(self.successResultOf(run(lambda: 42)), 42)
        self.assertEqual(calls, ["pool", "reactor"])

    def test_stopped_pool(self) -> None:
        """Once its pool has stopped, the runner fails at once instead of never answering."""
        pool = ThreadPool(minthreads=1, maxthreads=1)
        pool.stop()
        run = in_thread_pool(cast("IReactorFromThreads", object()), pool)
        self.failureResultOf(run(lambda: 42), StoreError)


class SynchronouslyTests(SynchronousTestCase):
    """L{synchronously} runs work at once in the calling thread."""

    def test_result(self) -> None:
        """The work has run when the call returns, and its Deferred has fired with its result."""
        calls: list[str] = []

        def work() -> int:
            calls.append("work")
            return 42

        done = synchronously(work)
        self.assertEqual(calls, ["work"])
        self.assertEqual(self.successResultOf(done), 42)

    def test_failure(self) -> None:
        """An exception of the work becomes the failure of the Deferred."""

        def work() -> int:
            raise StoreError("broken")

        self.assertEqual(str(self.failureResultOf(synchronously(work), StoreError).value), "broken")
