"""
Tests for L{clinvk.process.admission}: slots, the FIFO queue, its bound
and its timeout (docs/design/decisions.md#d4-admission-control).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import RateLimited
from clinvk.process.admission import Admission


class AdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.waits: list[float] = []
        self.admission = Admission(self.clock, 2, 2, 60, observe_wait=self.waits.append)

    def test_slots_then_fifo(self) -> None:
        """Two runs at once; the next wait in order and get freed slots first come, first served."""
        self.successResultOf(self.admission.acquire())
        self.successResultOf(self.admission.acquire())
        third, fourth = self.admission.acquire(), self.admission.acquire()
        self.assertNoResult(third)
        self.assertEqual((self.admission.running, self.admission.queued), (2, 2))
        self.clock.advance(3)
        self.admission.release()
        self.successResultOf(third)
        self.assertNoResult(fourth)
        self.assertEqual(self.waits, [0.0, 0.0, 3.0])

    def test_queue_full(self) -> None:
        for _ in range(4):
            self.admission.acquire()
        failure = self.failureResultOf(self.admission.acquire(), RateLimited)
        self.assertEqual(failure.value.retry_after, 1)

    def test_wait_times_out(self) -> None:
        for _ in range(2):
            self.admission.acquire()
        waiting = self.admission.acquire()
        self.clock.advance(60)
        self.failureResultOf(waiting, RateLimited)
        self.assertEqual(self.admission.queued, 0)

    def test_cancel_leaves_the_queue(self) -> None:
        for _ in range(2):
            self.admission.acquire()
        waiting: Deferred[None] = self.admission.acquire()
        waiting.cancel()
        self.failureResultOf(waiting)
        self.assertEqual((self.admission.queued, self.clock.getDelayedCalls()), (0, []))
        self.admission.release()
        self.assertEqual(self.admission.running, 1)

    def test_unlimited(self) -> None:
        admission = Admission.unlimited(self.clock)
        for _ in range(100):
            self.successResultOf(admission.acquire())
