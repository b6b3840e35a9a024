"""
Prometheus metrics (docs/design/http.md#prometheus-metrics,
docs/design/decisions.md#d4-admission-control) through the real root resource: what
is counted, with which labels, and only when enabled.
"""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.web._native import NativeTestCase, claude_result


class MetricsTests(NativeTestCase):
    config = {"server": {"metrics_enabled": True, "max_concurrent_runs": 1}}

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = self.request("GET", "/metrics")
        self.assertEqual(response.code, 200)
        self.assertTrue((response.header("Content-Type") or "").startswith("text/plain"))
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.body.decode())
            for sample in family.samples
        }

    def test_requests_by_route(self) -> None:
        """Requests are labelled with their route template, unrouted ones as unmatched, with the status sent."""
        self.request("GET", "/api/v1/sessions/abcdef12")
        self.request("GET", "/nope")
        samples = self.samples()
        routed = (
            "clinvk_requests_total",
            (("method", "GET"), ("path", "/api/v1/sessions/:id"), ("status", "404")),
        )
        self.assertEqual(samples[routed], 1)
        unmatched = ("clinvk_requests_total", (("method", "GET"), ("path", "unmatched"), ("status", "404")))
        self.assertEqual(samples[unmatched], 1)

    def test_executions_sessions_and_runs(self) -> None:
        """Executions by outcome, sessions created and active, run slots and the queue."""
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        waiting = self.start(
            "POST", "/api/v1/prompt", {"backend": "claude", "prompt": "y", "ephemeral": True}
        )
        samples = self.samples()
        self.assertEqual(samples[("clinvk_running_processes", ())], 1)
        self.assertEqual(samples[("clinvk_run_queue_depth", ())], 1)
        self.assertEqual(samples[("clinvk_active_sessions", ())], 1)
        self.reactor.advance(2)
        self.child().emit_stdout(claude_result())
        self.child().exit(0)
        self.finish(pending)
        self.child().exit(3)
        self.finish(waiting)
        samples = self.samples()
        self.assertEqual(
            samples[("clinvk_backend_executions_total", (("backend", "claude"), ("status", "success")))], 1
        )
        self.assertEqual(
            samples[("clinvk_backend_executions_total", (("backend", "claude"), ("status", "error")))], 1
        )
        self.assertEqual(samples[("clinvk_sessions_created_total", ())], 1)
        self.assertEqual(samples[("clinvk_active_sessions", ())], 0)
        self.assertEqual(samples[("clinvk_run_queue_wait_seconds_count", ())], 2)

    def test_streams_still_flush(self) -> None:
        """With metrics on, each NDJSON event still arrives as it is produced."""
        _, chunks = self.stream(
            self.start(
                "POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x", "output_format": "stream-json"}
            )
        )
        self.child().emit_stdout(
            b'{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}\n'
        )
        self.assertEqual([e["type"] for e in self.lines(chunks)], ["message"])
        self.child().exit(0)


class MetricsDisabledTests(NativeTestCase):
    def test_not_served(self) -> None:
        response = self.request("GET", "/metrics")
        self.assertEqual((response.code, response.body), (404, b"404 page not found\n"))
        self.assertEqual(json.loads(self.request("GET", "/health").body)["status"], "ok")
