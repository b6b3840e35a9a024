# -*- test-case-name: tests.test_metrics -*-
"""
Prometheus metrics (docs/design/http.md#prometheus-metrics,
docs/design/decisions.md#d4-admission-control), in a registry the service owns:
an embedding program's own metrics never mix with clinvk's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from attrs import frozen
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twisted.logger import Logger

log = Logger()

REQUEST_BUCKETS = tuple(0.001 * 2**k for k in range(15))
EXECUTION_BUCKETS = tuple(0.1 * 2**k for k in range(12))
QUEUE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Every metric clinvk records, registered in a registry of its own."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        self.requests = Counter(
            "clinvk_requests",
            "Total number of HTTP requests",
            ["method", "path", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "clinvk_request_duration_seconds",
            "HTTP request duration in seconds",
            ["method", "path"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.executions = Counter(
            "clinvk_backend_executions",
            "Total number of backend executions",
            ["backend", "status"],
            registry=registry,
        )
        self.execution_duration = Histogram(
            "clinvk_backend_execution_duration_seconds",
            "Backend execution duration in seconds",
            ["backend"],
            buckets=EXECUTION_BUCKETS,
            registry=registry,
        )
        self.active_sessions = Gauge("clinvk_active_sessions", "Number of active sessions", registry=registry)
        self.sessions_created = Counter(
            "clinvk_sessions_created", "Total number of sessions created", registry=registry
        )
        self.running_processes = Gauge(
            "clinvk_running_processes", "Backend processes holding a run slot", registry=registry
        )
        self.queued_runs = Gauge("clinvk_run_queue_depth", "Runs waiting for a run slot", registry=registry)
        self.queue_wait = Histogram(
            "clinvk_run_queue_wait_seconds",
            "Seconds runs waited for a run slot",
            buckets=QUEUE_BUCKETS,
            registry=registry,
        )

    def watch_admission(self, running: Callable[[], int], queued: Callable[[], int]) -> None:
        """Read the running and queued gauges from admission control when scraped."""
        self.running_processes.set_function(lambda: float(running()))
        self.queued_runs.set_function(lambda: float(queued()))

    def watch_live(self, counts: Callable[[], LiveCounts]) -> None:
        """
        Read the live-session figures (docs/design/live-sessions.md#live-metrics)
        from C{counts} when scraped.
        """
        self.registry.register(_LiveCollector(counts))

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        self.requests.labels(method, path, str(status)).inc()
        self.request_duration.labels(method, path).observe(seconds)

    def observe_execution(self, backend: str, succeeded: bool, seconds: float) -> None:
        self.executions.labels(backend, "success" if succeeded else "error").inc()
        self.execution_duration.labels(backend).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


@frozen
class LiveCounts:
    """
    The live processes of conversations, and what happened to them
    (docs/design/live-sessions.md#live-metrics).

    @ivar live: Live processes now (starting, idle or busy).
    @ivar idle: Live processes waiting for a turn.
    @ivar warm: Processes started ahead for new conversations.
    @ivar warm_taken: New conversations that took a warm process.
    @ivar cold_starts: Live processes started, each paying a CLI start-up.
    @ivar reused: Turns served by a process that was already live.
    @ivar evicted: Idle processes ended to make room for another.
    @ivar expired: Processes ended after C{server.live_idle_secs} without a turn.
    """

    live: int
    idle: int
    warm: int
    warm_taken: int
    cold_starts: int
    reused: int
    evicted: int
    expired: int


class _LiveCollector(Collector):
    """Reads L{LiveCounts} at each scrape: the pool keeps the numbers, not the registry."""

    def __init__(self, counts: Callable[[], LiveCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield GaugeMetricFamily("clinvk_live_processes", "Live CLI processes of conversations", counts.live)
        yield GaugeMetricFamily(
            "clinvk_live_idle_processes", "Live CLI processes waiting for a turn", counts.idle
        )
        yield GaugeMetricFamily(
            "clinvk_warm_processes", "CLI processes started ahead for new conversations", counts.warm
        )
        yield CounterMetricFamily(
            "clinvk_live_warm_taken", "New conversations that took a warm CLI process", counts.warm_taken
        )
        yield CounterMetricFamily(
            "clinvk_live_cold_starts", "Live CLI processes started (each a cold start)", counts.cold_starts
        )
        yield CounterMetricFamily(
            "clinvk_live_reused_turns", "Turns served by an already live CLI process", counts.reused
        )
        yield CounterMetricFamily(
            "clinvk_live_evicted", "Idle live processes ended to make room for another", counts.evicted
        )
        yield CounterMetricFamily(
            "clinvk_live_expired",
            "Live processes ended after server.live_idle_secs without a turn",
            counts.expired,
        )
