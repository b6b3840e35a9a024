# -*- test-case-name: tests.runs.test_channel -*-
"""
The one way a stream of items goes from the code that produces it to the
code that consumes it, such as a run's events to an HTTP response.

The producer puts items, says when its source runs, and ends the stream
with a result or a failure.  The consumer iterates the items with
C{async for}, waits for the start and the result, and may cancel.  A
consumer that falls behind pauses the source (an L{IPushProducer}, such
as a CLI's output), so a slow client slows the CLI instead of filling the
server's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure

ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)
ResultT = TypeVar("ResultT")

# A consumer this many items behind pauses the source; it resumes at the low mark.
HIGH_WATER = 64
LOW_WATER = 16


class _End:
    """The mark after the last item."""


_END = _End()


class Sink(Protocol[ItemT_contra]):
    """
    What a producer that does not own a channel may do with it: add items
    and say when its source runs.  Ending the stream is the owner's call.
    """

    def put(self, item: ItemT_contra) -> None:
        """Add C{item}."""

    def running(self, source: IPushProducer | None = None) -> None:
        """The source runs; C{source} may be paused while the consumer is behind."""


class OneResult(Generic[ResultT]):
    """
    A result that arrives once and that any number of waiters may ask for,
    before or after it arrives.
    """

    def __init__(self) -> None:
        self._result: ResultT | Failure | None = None
        self._arrived = False
        self._waiters: list[Deferred[ResultT]] = []

    @property
    def arrived(self) -> bool:
        """Whether the result has arrived."""
        return self._arrived

    def arrive(self, result: ResultT | Failure) -> None:
        """Deliver C{result} (or a failure) to every waiter; later calls are ignored."""
        if self._arrived:
            return
        self._arrived, self._result = True, result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._deliver(waiter)

    def wait(self, on_cancel: Callable[[], object] | None = None) -> Deferred[ResultT]:
        """
        A new Deferred firing with the result.  Cancelled, it fails with
        C{CancelledError} and gets nothing more; C{on_cancel} is then called.
        """

        def cancel(waiter: Deferred[ResultT]) -> None:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if on_cancel is not None:
                on_cancel()

        waiter: Deferred[ResultT] = Deferred(cancel)
        if self._arrived:
            self._deliver(waiter)
        else:
            self._waiters.append(waiter)
        return waiter

    def _deliver(self, waiter: Deferred[ResultT]) -> None:
        result = self._result
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)  # type: ignore[arg-type]


class StreamChannel(Generic[ItemT, ResultT]):
    """
    Items from one producer to one consumer, then a result.

    Producer side: L{put}, L{running}, L{refuse}, L{close}, L{fail} and
    L{stop_with}.  Consumer side: C{async for}, L{started}, L{result} and
    L{cancel}.
    """

    def __init__(self, *, high_water: int = HIGH_WATER, low_water: int = LOW_WATER) -> None:
        self._items: DeferredQueue[ItemT | _End] = DeferredQueue()
        self._high_water = high_water
        self._low_water = low_water
        self._source: IPushProducer | None = None
        self._paused = False
        self._ended = False
        self._cancelled = False
        self._stop: Callable[[], object] | None = None
        self._start: OneResult[None] = OneResult()
        self._result: OneResult[ResultT] = OneResult()

    # -- producer side

    def put(self, item: ItemT) -> None:
        """
        Add C{item}; pause the source when the consumer is too far behind.
        Once the stream has ended (a cancelled run's last output, say), the
        item goes nowhere.
        """
        if self._ended:
            return
        self._items.put(item)
        behind = len(self._items.pending) >= self._high_water
        if behind and self._source is not None and not self._paused and not self._cancelled:
            self._paused = True
            self._source.pauseProducing()

    def running(self, source: IPushProducer | None = None) -> None:
        """
        The source runs: L{started} fires.

        @param source: What to pause while the consumer is behind, if anything.
        """
        self._source = source
        self._start.arrive(None)

    def refuse(self, reason: Failure) -> None:
        """The source will never run: L{started} fails with C{reason}; the stream goes on."""
        self._start.arrive(reason)

    def close(self, result: ResultT) -> None:
        """No more items; the stream's result is C{result}."""
        self._end()
        self._start.arrive(None)
        self._result.arrive(result)

    def fail(self, reason: Failure) -> None:
        """No more items; the stream failed with C{reason}, and so does L{started} if still waiting."""
        self._end()
        self._start.arrive(reason)
        self._result.arrive(reason)

    def stop_with(self, stop: Callable[[], object]) -> None:
        """
        What L{cancel} calls to stop the producer (cancelling its work, say);
        called at once if the consumer has already cancelled.
        """
        self._stop = stop
        if self._cancelled:
            stop()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._source = None
            self._items.put(_END)

    # -- consumer side

    @property
    def cancelled(self) -> bool:
        """Whether the consumer has gone."""
        return self._cancelled

    def started(self) -> Deferred[None]:
        """
        A Deferred firing once the source runs or the stream has ended, and
        failing with the reason the source refused to run, if it did.
        Cancelling it cancels the stream: a consumer that stops waiting for
        the start (its client gone while the run waits for a slot) has gone.
        """
        return self._start.wait(self.cancel)

    def result(self) -> Deferred[ResultT]:
        """A Deferred firing with the stream's result once it has ended."""
        return self._result.wait()

    def cancel(self) -> None:
        """The consumer has gone: stop the producer, and end the iteration at once."""
        if self._cancelled:
            return
        self._cancelled = True
        if self._stop is not None:
            self._stop()
        # Wake a waiting consumer; the producer's end mark may follow.
        self._items.put(_END)

    def __aiter__(self) -> StreamChannel[ItemT, ResultT]:
        return self

    async def __anext__(self) -> ItemT:
        if self._cancelled:
            raise StopAsyncIteration
        item = await self._items.get()
        if isinstance(item, _End):
            # Later calls end too.
            self._items.put(item)
            raise StopAsyncIteration
        if self._paused and len(self._items.pending) <= self._low_water and self._source is not None:
            self._paused = False
            self._source.resumeProducing()
        return item
