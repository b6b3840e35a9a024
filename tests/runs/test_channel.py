"""
Tests for L{clinvk.runs.channel}: the one stream channel.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from clinvk.runs.channel import OneResult, StreamChannel


@implementer(IPushProducer)
class Source:
    """A producer that records what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def take(case: SynchronousTestCase, channel: StreamChannel[str, int]) -> str:
    """The next item, which must be there already."""
    return case.successResultOf(Deferred.fromCoroutine(channel.__anext__()))


async def drain(channel: StreamChannel[str, int]) -> list[str]:
    return [item async for item in channel]


class IterationTests(SynchronousTestCase):
    """The consumer sees every item in order, then the end."""

    def test_items_then_end(self) -> None:
        """Items put before and while the consumer waits arrive in order; close ends the iteration."""
        channel: StreamChannel[str, int] = StreamChannel()
        channel.put("a")
        draining = Deferred.fromCoroutine(drain(channel))
        self.assertNoResult(draining)
        channel.put("b")
        self.assertNoResult(draining)
        channel.close(7)
        self.assertEqual(self.successResultOf(draining), ["a", "b"])
        self.assertEqual(self.successResultOf(channel.result()), 7)
        # Iterating again after the end ends at once.
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(drain(channel))), [])

    def test_fail(self) -> None:
        """A failed stream ends the iteration after its items; the result and a pending start fail."""
        channel: StreamChannel[str, int] = StreamChannel()
        started = channel.started()
        channel.put("a")
        channel.fail(Failure(ValueError("boom")))
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(drain(channel))), ["a"])
        self.failureResultOf(channel.result(), ValueError)
        self.failureResultOf(started, ValueError)

    def test_put_after_end_goes_nowhere(self) -> None:
        """An item put once the stream has ended is dropped, not an error."""
        channel: StreamChannel[str, int] = StreamChannel()
        channel.close(0)
        channel.put("late")
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(drain(channel))), [])


class StartTests(SynchronousTestCase):
    """L{StreamChannel.started} tells whether the source runs."""

    def test_running(self) -> None:
        """Waiters before and after running() fire."""
        channel: StreamChannel[str, int] = StreamChannel()
        before = channel.started()
        self.assertNoResult(before)
        channel.running()
        self.successResultOf(before)
        self.successResultOf(channel.started())

    def test_refused_stream_goes_on(self) -> None:
        """A refusal fails started() but the stream still carries items and a result."""
        channel: StreamChannel[str, int] = StreamChannel()
        channel.refuse(Failure(RuntimeError("no slot")))
        self.failureResultOf(channel.started(), RuntimeError)
        channel.put("why")
        channel.close(1)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(drain(channel))), ["why"])
        self.assertEqual(self.successResultOf(channel.result()), 1)

    def test_close_starts(self) -> None:
        """A stream that ends without its source having run counts as started (a dry run, say)."""
        channel: StreamChannel[str, int] = StreamChannel()
        started = channel.started()
        channel.close(0)
        self.successResultOf(started)


class FlowControlTests(SynchronousTestCase):
    """A consumer that falls behind pauses the source; catching up resumes it."""

    def test_pause_and_resume(self) -> None:
        """At the high-water mark the source pauses once; at the low-water mark it resumes once."""
        source = Source()
        channel: StreamChannel[str, int] = StreamChannel(high_water=3, low_water=1)
        channel.running(source)
        for item in "abcd":
            channel.put(item)
        self.assertEqual(source.calls, ["pause"])
        self.assertEqual(take(self, channel), "a")
        self.assertEqual(take(self, channel), "b")
        self.assertEqual(source.calls, ["pause"])
        self.assertEqual(take(self, channel), "c")
        self.assertEqual(source.calls, ["pause", "resume"])

    def test_no_pause_after_cancel(self) -> None:
        """A cancelled stream never pauses its source: the source is being stopped."""
        source = Source()
        channel: StreamChannel[str, int] = StreamChannel(high_water=1, low_water=0)
        channel.running(source)
        channel.cancel()
        channel.put("a")
        self.assertEqual(source.calls, [])


class CancelTests(SynchronousTestCase):
    """The consumer's cancel stops the producer and ends the iteration."""

    def test_cancel_wakes_and_stops(self) -> None:
        """A waiting consumer's iteration ends; the producer's stop is called once."""
        stops: list[None] = []
        channel: StreamChannel[str, int] = StreamChannel()
        channel.stop_with(lambda: stops.append(None))
        draining = Deferred.fromCoroutine(drain(channel))
        channel.cancel()
        channel.cancel()
        self.assertEqual(self.successResultOf(draining), [])
        self.assertEqual(len(stops), 1)
        self.assertTrue(channel.cancelled)

    def test_cancelled_start_wait(self) -> None:
        """A consumer that stops waiting for the start has gone: the stream is cancelled."""
        stops: list[None] = []
        channel: StreamChannel[str, int] = StreamChannel()
        channel.stop_with(lambda: stops.append(None))
        waiting = channel.started()
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual((len(stops), channel.cancelled), (1, True))
        # The start arriving later reaches nobody that has stopped waiting.
        channel.running()

    def test_stop_after_cancel(self) -> None:
        """A stop registered after the consumer cancelled is called at once."""
        stops: list[None] = []
        channel: StreamChannel[str, int] = StreamChannel()
        channel.cancel()
        channel.stop_with(lambda: stops.append(None))
        self.assertEqual(len(stops), 1)

    def test_queued_items_dropped(self) -> None:
        """After a cancel, items still queued are not delivered: the consumer has gone."""
        channel: StreamChannel[str, int] = StreamChannel()
        channel.put("a")
        channel.cancel()
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(drain(channel))), [])


class OneResultTests(SynchronousTestCase):
    """L{OneResult} gives its one result to every waiter."""

    def test_waiters_before_and_after(self) -> None:
        """Waiters before and after the result get it; a second result is ignored."""
        one: OneResult[int] = OneResult()
        early = one.wait()
        one.arrive(1)
        one.arrive(2)
        self.assertEqual((self.successResultOf(early), self.successResultOf(one.wait())), (1, 1))
        self.assertTrue(one.arrived)

    def test_failure(self) -> None:
        """A failure reaches every waiter."""
        one: OneResult[int] = OneResult()
        early = one.wait()
        one.arrive(Failure(KeyError("k")))
        self.failureResultOf(early, KeyError)
        self.failureResultOf(one.wait(), KeyError)
