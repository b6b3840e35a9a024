"""
Tests for L{clinvk.embed}, the surface for programs that embed clinvk.

These run on a fake reactor and spawn nothing; the example program of
C{docs/examples/embedding} runs real CLIs in
L{tests.integration.test_embedding_example}.
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

import clinvk.embed
from clinvk.embed import ChainStep, Clinvk, NotRunning, RunRequest, config_from_mapping
from clinvk.testing.fake_cli import install
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.types import IClinvkReactor
from tests.helpers import fake_supervisor, isolate_home


def build(reactor: FakeProcessReactor, config: Any = None) -> Clinvk:
    # The fake processes' signals go to the fake reactor, never to real
    # process groups that happen to have their pids.
    return Clinvk.build(cast("IClinvkReactor", reactor), config, supervisor=fake_supervisor(reactor))


class SurfaceTests(SynchronousTestCase):
    """What the module offers."""

    def test_exports(self) -> None:
        """Every name of C{__all__} exists, and nothing private is exported."""
        for name in clinvk.embed.__all__:
            self.assertTrue(hasattr(clinvk.embed, name), name)
            self.assertFalse(name.startswith("_"), name)

    def test_not_a_reactor(self) -> None:
        """A reactor that cannot run processes is refused at once."""
        self.assertRaises(TypeError, Clinvk.build, cast("IClinvkReactor", Clock()))


class LifecycleTests(SynchronousTestCase):
    """Calls are refused unless the service runs."""

    def setUp(self) -> None:
        home = isolate_home(self)
        # The fakes are found on PATH, so their backends are available.
        fakes = install(os.path.join(home, "bin"))
        os.environ["PATH"] = f"{fakes}{os.pathsep}{os.environ.get('PATH', '')}"
        self.reactor = FakeProcessReactor()
        self.clinvk = build(self.reactor)

    def assert_refused_everywhere(self) -> None:
        request = RunRequest(backend="claude", prompt="hi")
        calls = [
            self.clinvk.prompt(request),
            self.clinvk.stream(request),
            self.clinvk.parallel([request]),
            self.clinvk.chain([ChainStep(request)]),
            self.clinvk.compare(["claude"], "hi"),
        ]
        for call in calls:
            failure = self.failureResultOf(call, NotRunning)
            self.assertIn("start Clinvk.service first", failure.getErrorMessage())

    def test_before_start(self) -> None:
        """Before the service starts, every call fails with L{NotRunning}."""
        self.assert_refused_everywhere()

    def test_after_stop(self) -> None:
        """Once the service has stopped, every call fails with L{NotRunning}."""
        self.clinvk.service.startService()
        self.successResultOf(self.clinvk.service.stopService())
        self.assert_refused_everywhere()

    def test_dry_run(self) -> None:
        """
        While the service runs, a direct call runs through clinvk: a dry
        run reports the command line it would run.
        """
        self.clinvk.service.startService()
        self.addCleanup(self.clinvk.service.stopService)
        outcome = self.successResultOf(
            self.clinvk.prompt(RunRequest(backend="claude", prompt="hi", dry_run=True, ephemeral=True))
        )
        self.assertEqual(outcome.exit_code, 0, outcome.error)
        self.assertIn("claude", outcome.output)
        self.assertEqual(self.reactor.spawned, [])

    def test_listens_on_nothing(self) -> None:
        """Started, embedded clinvk listens on nothing: the program serves its resource."""
        self.clinvk.service.startService()
        self.addCleanup(self.clinvk.service.stopService)
        self.assertEqual(self.reactor.tcpServers, [])

    def test_failure_keeps_the_reactor(self) -> None:
        """
        When clinvk gives up (its API keys come from gopass, which is not
        installed), the failure is recorded and its APIs answer 503, but
        the program's reactor keeps running.
        """
        os.environ["PATH"] = os.path.join(os.environ["HOME"], "bin")
        config = config_from_mapping({"server": {"api_keys_gopass_path": "clinvk/keys"}}, {}, source=None)
        clinvk = build(self.reactor, config)
        clinvk.service.startService()
        self.addCleanup(clinvk.service.stopService)
        self.assertIn("gopass", clinvk.failure or "")
        self.assertFalse(self.reactor.hasStopped)
        client: Any = StubTreq(clinvk.resource)
        response = self.successResultOf(client.get("http://example.invalid/api/v1/backends"))
        self.assertEqual(response.code, 503)
        self.successResultOf(response.content())


class MountTests(SynchronousTestCase):
    """The resource serves every API below wherever it is mounted."""

    def test_site(self) -> None:
        """
        L{Clinvk.site} serves the program's tree with the server's
        protections: its idle timeout, its body limit as requests arrive,
        and no form parsing (a malformed upload is the route's 415).
        """
        isolate_home(self)
        config = config_from_mapping(
            {"server": {"idle_timeout_secs": 42, "max_request_body_bytes": 1000}}, {}, source=None
        )
        clinvk = build(FakeProcessReactor(), config)
        clinvk.service.startService()
        self.addCleanup(clinvk.service.stopService)
        root = Resource()
        root.putChild(b"clinvk", clinvk.resource)
        site = clinvk.site(root)
        self.assertEqual(site.timeOut, 42)
        self.assertEqual(site.requestFactory.max_body, 1000)  # type: ignore[attr-defined]

        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"POST /clinvk/api/v1/prompt HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1\r\n\r\n\x00"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 415 "), transport.value())

    def test_under_a_prefix(self) -> None:
        """Mounted at C{/tools/clinvk}, C{/health} and the OpenAI models are below it."""
        isolate_home(self)
        reactor = FakeProcessReactor()
        clinvk = build(reactor, config_from_mapping({"server": {"metrics_enabled": True}}, {}, source=None))
        clinvk.service.startService()
        self.addCleanup(clinvk.service.stopService)
        tools = Resource()
        tools.putChild(b"clinvk", clinvk.resource)
        root = Resource()
        root.putChild(b"tools", tools)
        client: Any = StubTreq(root)

        response = self.successResultOf(client.get("http://example.invalid/tools/clinvk/health"))
        self.assertEqual(response.code, 200)
        health = json.loads(self.successResultOf(response.content()))
        self.assertIn("uptime", health)
        # The schema it names is below the mount point too, and is served there.
        self.assertEqual(
            health["$schema"], "https://example.invalid/tools/clinvk/schemas/HealthResponseBody.json"
        )
        self.assertEqual(
            response.headers.getRawHeaders(b"link"),
            [b'</tools/clinvk/schemas/HealthResponseBody.json>; rel="describedBy"'],
        )
        for path in ("/tools/clinvk/schemas/HealthResponseBody.json", "/tools/clinvk/docs"):
            response = self.successResultOf(client.get("http://example.invalid" + path))
            self.assertEqual(response.code, 200, path)
            self.successResultOf(response.content())

        response = self.successResultOf(client.get("http://example.invalid/tools/clinvk/openai/v1/models"))
        self.assertEqual(response.code, 200)
        models = json.loads(self.successResultOf(response.content()))
        self.assertEqual(models["object"], "list")

        response = self.successResultOf(client.get("http://example.invalid/tools/clinvk/metrics"))
        self.assertEqual(response.code, 200)
        # Requests are counted by their path below the mount point.
        self.assertIn(
            b'clinvk_requests_total{method="GET",path="/health",status="200"} 1.0',
            self.successResultOf(response.content()),
        )
