# -*- test-case-name: tests.sessions.test_blocking -*-
"""
Running the store's blocking work away from the reactor thread: in a
thread pool in production, at once in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from clinvk.sessions.record import StoreError

_T = TypeVar("_T")


class RunBlocking(Protocol):
    """
    Runs blocking work somewhere and reports its result: C{run(work)}
    returns a L{Deferred} firing with C{work()}'s result or failure.
    """

    def __call__(self, work: Callable[[], _T], /) -> Deferred[_T]: ...


def in_thread_pool(reactor: IReactorFromThreads, pool: ThreadPool) -> RunBlocking:
    """
    A L{RunBlocking} running work in C{pool}; with a one-thread pool the
    operations are serialised, as L{clinvk.sessions.files.SessionFiles}
    requires.
    """

    def run(work: Callable[[], _T], /) -> Deferred[_T]:
        if getattr(pool, "joined", False):
            # A stopped pool would drop the work and never answer.
            return fail(StoreError("the session store has stopped"))
        return deferToThreadPool(reactor, pool, work)

    return run


def synchronously(work: Callable[[], _T], /) -> Deferred[_T]:
    """
    The L{RunBlocking} that runs work at once in the calling thread, for
    tests.
    """
    return maybeDeferred(work)
