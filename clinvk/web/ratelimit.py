# -*- test-case-name: tests.web.test_guards -*-
"""
A token bucket per client address (docs/design/http.md#rate-limit), on the
reactor clock.
"""

from __future__ import annotations

from attrs import define

from twisted.internet.interfaces import IReactorTime

# The bucket table never grows beyond this many clients.
MAX_CLIENTS = 10_000


@define
class _Bucket:
    tokens: float
    refilled: float
    seen: float


class RateLimiter:
    """
    @param clock: The time buckets refill by.
    @param rps: Tokens added per second.
    @param burst: The bucket capacity; when not positive, twice C{rps}.
    @param cleanup_secs: Buckets unused this long are forgotten; when not
        positive, 180.
    """

    def __init__(self, clock: IReactorTime, rps: float, burst: int, cleanup_secs: int) -> None:
        self._clock = clock
        self.rps = self._rps = rps
        self.burst = burst if burst > 0 else int(2 * rps)
        self._cleanup = float(cleanup_secs if cleanup_secs > 0 else 180)
        self._buckets: dict[str, _Bucket] = {}
        self._cleaned = clock.seconds()

    def allow(self, client: str) -> bool:
        """Take one token from C{client}'s bucket, if it has one."""
        now = self._clock.seconds()
        if now - self._cleaned >= self._cleanup:
            # Clean-up happens as requests arrive: an idle server needs no timer.
            self._forget_idle(now)
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                oldest = min(self._buckets, key=lambda key: self._buckets[key].seen)
                del self._buckets[oldest]
            bucket = self._buckets[client] = _Bucket(float(self.burst), now, now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.refilled) * self._rps)
        bucket.refilled = bucket.seen = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _forget_idle(self, now: float) -> None:
        self._buckets = {key: b for key, b in self._buckets.items() if now - b.seen < self._cleanup}
        self._cleaned = now

    @property
    def clients(self) -> int:
        """How many buckets are kept."""
        return len(self._buckets)
