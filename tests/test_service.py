"""
Tests for L{clinvk.service}, L{clinvk.listeners} and L{clinvk.assembly}:
the tree, listening and the phased stop.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from clinvk.config import config_from_mapping
from clinvk.listeners import default_listen
from clinvk.runs.installed import InstalledCLI
from clinvk.runs.runtime import BackendRuntime
from clinvk.service import ClinvkService, InstalledCLIAnnouncement
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.web.root import ClinvkSite
from tests.helpers import RefusingReactor, built_service, isolate_home

CONFIG = config_from_mapping(None, {}, source=None)


def build(
    reactor: FakeProcessReactor, listen: list[str] | None = None, config: Any = CONFIG, **kwargs: Any
) -> ClinvkService:
    return built_service(config, reactor, listen or [], **kwargs)


class _IsolatedHome(SynchronousTestCase):
    """The services built keep their sessions in a temporary home."""

    def setUp(self) -> None:
        isolate_home(self)


class BuildTests(_IsolatedHome):
    """Building the tree."""

    def test_no_side_effects(self) -> None:
        """Building listens on nothing and schedules nothing."""
        reactor = FakeProcessReactor()
        build(reactor)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_default_listener(self) -> None:
        """Without --listen the service listens on the configured host and port."""
        reactor = FakeProcessReactor()
        config = config_from_mapping({"server": {"host": "[::1]", "port": 9001}}, {}, source=None)
        service = build(reactor, config=config)
        self.assertEqual(default_listen(config.server), r"tcp:9001:interface=\:\:1")
        service.privilegedStartService()
        [(port, factory, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (9001, "::1"))
        self.assertIsInstance(factory, ClinvkSite)

    def test_named_listeners(self) -> None:
        """Each --listen endpoint is a named child listening where asked."""
        reactor = FakeProcessReactor()
        service = build(reactor, ["tcp:8080:interface=127.0.0.1", "unix:/tmp/clinvk-test.sock"])
        listener = service.getServiceNamed("listener:tcp:8080:interface=127.0.0.1")
        self.assertIsInstance(listener, StreamServerEndpointService)
        self.assertEqual(len(service.listeners), 2)
        service.startService()
        self.assertEqual([(p, i) for p, _, _, i in reactor.tcpServers], [(8080, "127.0.0.1")])
        self.assertEqual([u[0] for u in reactor.unixServers], ["/tmp/clinvk-test.sock"])

    def test_process_supervisor(self) -> None:
        """
        The process supervisor follows the session store (so it stops
        before it) and stops with the tree; the runtime uses it.
        """
        reactor = FakeProcessReactor()
        service = build(reactor, ["tcp:8080"])
        supervisor = service.getServiceNamed("process-supervisor")
        store = service.getServiceNamed("session-store")
        children = list(service)
        self.assertLess(children.index(store), children.index(supervisor))
        self.assertIs(service.runtime._supervisor, supervisor)
        service.startService()
        self.assertTrue(supervisor.running)
        self.successResultOf(service.stopService())
        self.assertFalse(supervisor.running)

    def test_invalid_endpoint(self) -> None:
        """An invalid endpoint description is refused while building."""
        with self.assertRaises(ValueError):
            build(FakeProcessReactor(), ["nope:1"])


class StartTests(_IsolatedHome):
    """Starting."""

    def test_bind_failure_raises(self) -> None:
        """A port in use raises from privilegedStartService, so a runner can report it."""
        service = build(RefusingReactor(), ["tcp:8080"])
        self.assertRaises(CannotListenError, service.privilegedStartService)

    def test_bind_failure_from_start(self) -> None:
        """startService binds (and raises) when privilegedStartService was not called."""
        service = build(RefusingReactor(), ["tcp:8080"])
        self.assertRaises(CannotListenError, service.startService)

    def test_bind_failure_starts_nothing_else(self) -> None:
        """A port in use stops the start before the session store or the supervisor run."""
        service = build(RefusingReactor(), ["tcp:8080"])
        self.assertRaises(CannotListenError, service.startService)
        self.assertFalse(service.getServiceNamed("session-store").running)
        self.assertFalse(service.getServiceNamed("process-supervisor").running)

    def test_replaced_block_list_warning(self) -> None:
        """A configured block list that drops built-in entries is named at start-up."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        config = config_from_mapping(
            {"server": {"blocked_workdir_prefixes": ["/etc", "/srv/private"]}}, {}, source=None
        )
        build(FakeProcessReactor(), ["tcp:8080"], config=config).startService()
        [warning] = [e for e in events if e.get("dropped")]
        self.assertEqual(warning["log_level"], LogLevel.warn)
        self.assertTrue(warning["dropped"].startswith("/var/run,/var/lock,/root"))
        self.assertNotIn("/etc,", warning["dropped"])

    def test_binds_once(self) -> None:
        """privilegedStartService then startService binds once."""
        reactor = FakeProcessReactor()
        service = build(reactor, ["tcp:8080"])
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(reactor.tcpServers), 1)


class StopTests(_IsolatedHome):
    """Stopping in phases."""

    def test_failing_child_does_not_stop_the_stop(self) -> None:
        """A child that fails to stop is logged; the ones before it still stop, and the tree stops."""
        service = build(FakeProcessReactor(), ["tcp:8080"])

        class Broken(Service):
            def stopService(self) -> None:
                raise RuntimeError("stuck")

        Broken().setServiceParent(service)
        service.startService()
        self.successResultOf(service.stopService())
        self.assertFalse(service.getServiceNamed("session-store").running)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_listeners_first_then_children_in_reverse(self) -> None:
        """Listeners stop first; other children stop one at a time, last first."""
        reactor = FakeProcessReactor()
        service = build(reactor, ["tcp:8080"])
        order: list[str] = []
        pending: dict[str, Deferred[None]] = {}

        class Child(Service):
            def stopService(self) -> Deferred[None]:
                super().stopService()
                name = str(self.name)
                order.append(name)
                pending[name] = Deferred()
                return pending[name]

        for name in ("first", "second"):
            child = Child()
            child.setName(name)
            child.setServiceParent(service)
        listener = service.listeners[0]
        service.startService()

        stopped = service.stopService()
        self.assertFalse(listener.running)
        self.assertEqual(order, ["second"])
        self.assertNoResult(stopped)
        pending["second"].callback(None)
        self.assertEqual(order, ["second", "first"])
        self.assertNoResult(stopped)
        pending["first"].callback(None)
        self.successResultOf(stopped)
        self.assertFalse(service.running)

    def test_stop_waits_for_settled_work(self) -> None:
        """
        Once the supervisor has stopped every CLI, the stop waits for the
        orchestrator's work to settle (streams recording their turns) before
        the session store stops.
        """
        service = build(FakeProcessReactor(), ["tcp:8080"])
        settling: Deferred[None] = Deferred()
        seen: list[tuple[bool, bool]] = []

        def settled() -> Deferred[None]:
            seen.append(
                (
                    service.getServiceNamed("process-supervisor").running,
                    service.getServiceNamed("session-store").running,
                )
            )
            return settling

        service.orchestrator.settled = settled  # type: ignore[method-assign]
        service.startService()
        stopped = service.stopService()
        self.assertEqual(seen, [(False, True)])
        self.assertNoResult(stopped)
        self.assertTrue(service.getServiceNamed("session-store").running)
        settling.callback(None)
        self.successResultOf(stopped)
        self.assertFalse(service.getServiceNamed("session-store").running)

    def test_stop_waits_for_port(self) -> None:
        """The stop Deferred fires only once the port has stopped listening."""
        stopping: Deferred[None] = Deferred()

        class SlowToStop(FakeProcessReactor):
            def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
                listening = super().listenTCP(port, factory, backlog, interface)
                listening.stopListening = lambda: stopping
                return listening

        service = build(SlowToStop(), ["tcp:8080"])
        service.startService()
        listener = service.listeners[0]
        stopped = service.stopService()
        self.assertNoResult(stopped)
        self.assertTrue(listener.running)
        stopping.callback(None)
        self.successResultOf(stopped)
        self.assertFalse(listener.running)

    def test_uptime_counts_from_start(self) -> None:
        """Uptime is measured from startService, not from building."""
        reactor = FakeProcessReactor()
        service = build(reactor, ["tcp:8080"])
        reactor.advance(100)
        service.startService()
        reactor.advance(2)
        self.assertEqual(service._uptime.milliseconds(), 2000)


class _LookingRuntime:
    """A runtime whose look for the CLIs ends when the test says."""

    def __init__(self) -> None:
        self.looks: list[Deferred[list[InstalledCLI]]] = []
        self.cancelled = 0

    def installed(self) -> Deferred[list[InstalledCLI]]:
        def cancel(look: Deferred[list[InstalledCLI]]) -> None:
            self.cancelled += 1

        self.looks.append(Deferred(cancel))
        return self.looks[-1]


class AnnouncementTests(SynchronousTestCase):
    """The announcement of the installed CLIs owns its look for them."""

    def setUp(self) -> None:
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)  # type: ignore[arg-type]
        self.runtime = _LookingRuntime()
        self.announcement = InstalledCLIAnnouncement(cast("BackendRuntime", self.runtime), "try the fakes")
        self.announcement.startService()

    def said(self) -> list[str]:
        return [formatEvent(e) for e in self.events if "backend cli" in e.get("log_format", "").lower()]

    def test_announces(self) -> None:
        """Once the CLIs answer, they are named."""
        self.runtime.looks[0].callback(
            [InstalledCLI("claude", "/bin/claude", "2.1.197"), InstalledCLI("codex", None)]
        )
        self.assertEqual(len(self.said()), 2)
        self.successResultOf(self.announcement.stopService())
        self.assertEqual(self.runtime.cancelled, 0)

    def test_stopped_before_the_answer(self) -> None:
        """
        Stopped before the CLIs answer: the look (and so their --version
        runs) is cancelled, the stop is done, and nothing is announced or
        logged as a failure.
        """
        self.successResultOf(self.announcement.stopService())
        self.assertEqual(self.runtime.cancelled, 1)
        self.assertEqual(self.said(), [])
        self.assertEqual([e for e in self.events if e["log_level"] > LogLevel.info], [])

    def test_failure_while_running(self) -> None:
        """A look that fails while the announcement runs is logged."""
        self.runtime.looks[0].errback(RuntimeError("no PATH"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.successResultOf(self.announcement.stopService())
        self.assertEqual(self.runtime.cancelled, 0)
