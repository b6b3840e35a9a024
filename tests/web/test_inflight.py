"""
Draining at shutdown (docs/design/decisions.md#d6-no-orphans): the requests in
progress are counted, new work is refused and /health says the server is
shutting down.
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyRequest

from clinvk.testing.reactor import FakeProcessReactor
from clinvk.web.inflight import InFlight
from tests.backends.helpers import config
from tests.helpers import built_service, isolate_home
from tests.web._native import NativeTestCase


class InFlightTests(SynchronousTestCase):
    def test_drain_waits_for_requests(self) -> None:
        in_flight = InFlight()
        first, second = DummyRequest([b""]), DummyRequest([b""])
        for request in (first, second):
            in_flight.track(cast("Request", request))
        drained = in_flight.drain()
        self.assertTrue(in_flight.draining)
        first.finish()
        self.assertNoResult(drained)
        second.processingFailed(Exception("gone"))
        self.flushLoggedErrors()
        self.successResultOf(drained)

    def test_idle_drains_at_once(self) -> None:
        self.successResultOf(InFlight().drain())


class DrainingApiTests(NativeTestCase):
    def test_draining(self) -> None:
        """While draining, /health is 503 shutting_down and new work is refused with 503."""
        running = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        self.server.in_flight.drain()
        health = self.request("GET", "/health")
        self.assertEqual((health.code, json.loads(health.body)["status"]), (503, "shutting_down"))
        self.assertConforms(json.loads(health.body), "HealthResponseBody")
        refused = self.problem(
            self.request("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "y"}), 503
        )
        self.assertEqual(refused["detail"], "server is shutting down")
        response = self.request("GET", "/openai/v1/models")
        self.assertEqual(json.loads(response.body)["error"]["type"], "server_error")
        self.child().exit(0)
        self.assertEqual(self.finish(running).code, 200)


class ServiceDrainTests(SynchronousTestCase):
    def setUp(self) -> None:
        isolate_home(self)

    def service(self) -> tuple[Any, FakeProcessReactor]:
        reactor = FakeProcessReactor()
        service = built_service(config({"server": {"shutdown_timeout_secs": 30}}), reactor, ["tcp:8080"])
        service.startService()
        return service, reactor

    def test_stop_waits_for_requests(self) -> None:
        """The supervisor and the store stop only once the requests in progress have ended."""
        service, _ = self.service()
        request = DummyRequest([b""])
        service._in_flight.track(cast("Request", request))
        stopping = service.stopService()
        self.assertTrue(service.getServiceNamed("process-supervisor").running)
        request.finish()
        self.successResultOf(stopping)
        self.assertFalse(service.getServiceNamed("process-supervisor").running)

    def test_stop_timeout(self) -> None:
        """After shutdown_timeout_secs the rest is cancelled and the stop goes on."""
        service, reactor = self.service()
        service._in_flight.track(cast("Request", DummyRequest([b""])))
        stopping = service.stopService()
        reactor.advance(29)
        self.assertNoResult(stopping)
        reactor.advance(1)
        self.successResultOf(stopping)
