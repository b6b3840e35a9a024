"""
Shared test helpers: an in-memory client over the real root resource.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource

from clinvk.assembly import admission_of, build_service
from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.compat.images import FetchImage
from clinvk.config import ClinvkConfig, config_from_mapping
from clinvk.metrics import Metrics
from clinvk.orchestration import Orchestrator
from clinvk.process.runner import ProcessRunner
from clinvk.process.spawn import Launcher
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.runtime import BackendRuntime
from clinvk.service import ClinvkService
from clinvk.sessions import ISessionStore
from clinvk.sessions.memory import MemorySessionStore
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.types import IClinvkReactor
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.meta import Uptime
from clinvk.web.root import ClinvkRoot, build_root, build_site

BASE = "http://localhost:8080"


def fake_which(installed: Iterable[str]) -> Callable[[str], str | None]:
    """
    A C{shutil.which} that finds exactly the names in C{installed}, looked
    up on every call (so a test may change a set it passed).
    """
    return lambda name: f"/usr/local/bin/{name}" if name in installed else None


def isolate_home(case: SynchronousTestCase) -> str:
    """
    Point C{HOME} at a fresh directory for the duration of C{case}, so
    that a service built by the test keeps its sessions there.
    """
    home: str = case.mktemp()
    os.makedirs(home)
    case.patch(os, "environ", {**os.environ, "HOME": home})
    return home


def fake_supervisor(reactor: FakeProcessReactor, kill_grace: float = 5) -> ProcessSupervisor:
    """A supervisor whose children are C{reactor}'s fake processes (signalled there too)."""
    return ProcessSupervisor(
        ProcessRunner(reactor, launcher=Launcher(), signal_group=reactor.signal_group, kill_grace=kill_grace)
    )


def started_supervisor(reactor: FakeProcessReactor, kill_grace: float = 5) -> ProcessSupervisor:
    """A started L{fake_supervisor}."""
    supervisor = fake_supervisor(reactor, kill_grace)
    supervisor.startService()
    return supervisor


def built_service(
    config: ClinvkConfig, reactor: FakeProcessReactor, listen: Sequence[str] = (), **kwargs: Any
) -> ClinvkService:
    """
    The server's service tree on C{reactor}, as L{build_service} builds it
    for the composition root, but with a L{fake_supervisor}; the process
    environment and home directory (which tests isolate) as they are.
    """
    return build_service(
        config,
        cast("IClinvkReactor", reactor),
        listen,
        supervisor=fake_supervisor(reactor, float(config.server.kill_grace_secs)),
        environ=os.environ,
        home=os.path.expanduser("~"),
        **kwargs,
    )


class RefusingReactor(FakeProcessReactor):
    """A reactor on which every TCP port is taken."""

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


class Server:
    """
    The real root resource over the real orchestration, on a fake process
    reactor and clock, with an in-memory session store.

    The children are one-shot CLIs, whose part a test plays; with C{live},
    conversations keep a live CLI between turns (docs/design/live-sessions.md),
    as they do by default outside the tests.

    @ivar reactor: Spawns nothing; a test plays each child's part.
    @ivar store: The session store.
    @ivar supervisor: Owns the fake children.
    @ivar orchestrator: What the handlers call.
    @ivar root: The root resource.
    """

    def __init__(
        self,
        *,
        reactor: FakeProcessReactor | None = None,
        installed: Iterable[str] = ("claude", "codex", "gemini"),
        config: dict[str, Any] | None = None,
        store: ISessionStore | None = None,
        home: str = "/nonexistent-home",
        api_keys: tuple[str, ...] = (),
        live: bool = False,
        scratch_root: str = "",
        fetch_image: FetchImage | None = None,
    ) -> None:
        self.reactor = reactor or FakeProcessReactor()
        if not live:
            config = {**(config or {})}
            config["server"] = {"live_idle_secs": 0, **config.get("server", {})}
        self.config = config_from_mapping(config, {}, source=None)
        self.metrics = Metrics() if self.config.server.metrics_enabled else None
        self.store = store if store is not None else MemorySessionStore()
        self.availability = BackendAvailability(self.reactor, which=fake_which(installed))
        self.supervisor = started_supervisor(self.reactor)
        self.runtime = BackendRuntime(
            config=self.config,
            backends=build_backends(),
            supervisor=self.supervisor,
            availability=self.availability,
            clock=self.reactor,
            environ={"PATH": "/usr/local/bin"},
            home=home,
            admission=admission_of(self.config, self.reactor, self.metrics),
            observe_execution=self.metrics.observe_execution if self.metrics else None,
            scratch_root=scratch_root,
        )
        if self.metrics is not None:
            self.metrics.watch_live(self.runtime.live.counts)
        self.in_flight = InFlight()
        self.orchestrator = Orchestrator(
            runtime=self.runtime,
            store=self.store,
            clock=self.reactor,
            config=self.config,
            metrics=self.metrics,
        )
        self.root = build_root(
            clock=self.reactor,
            availability=self.availability,
            uptime=Uptime(self.reactor),
            runtime=self.runtime,
            orchestrator=self.orchestrator,
            config=self.config,
            guards=Guards.from_config(self.config.server, self.reactor, api_keys),
            in_flight=self.in_flight,
            metrics=self.metrics,
            fetch_image=fetch_image,
        )


def make_root(
    clock: Clock | None = None, installed: Iterable[str] = ("claude", "codex", "gemini")
) -> tuple[ClinvkRoot, Clock]:
    """The real root resource on a fake clock, with the given CLIs installed."""
    reactor = FakeProcessReactor()
    if clock is not None:
        # Tests that bring their own clock drive time through it.
        reactor.seconds = clock.seconds  # type: ignore[method-assign]
        reactor.callLater = clock.callLater  # type: ignore[method-assign]
    server = Server(reactor=reactor, installed=installed)
    return server.root, clock or reactor


class Response:
    """A finished response: status, headers and body."""

    def __init__(self, code: int, headers: dict[bytes, list[bytes]], body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (any case), or None."""
        for key, values in self.headers.items():
            if key.lower() == name.lower().encode("ascii"):
                return values[0].decode("latin-1")
        return None


def stub_over_site(root: IResource) -> Any:
    """
    A L{StubTreq} whose requests go through the server's own site
    (L{build_site}) rather than the default C{Site} treq builds, so that
    they are parsed as the server parses them.
    """
    stub: Any = StubTreq(root)
    agent = stub._agent
    agent._serverFactory = build_site(root, agent._memoryReactor)
    return stub


def call(
    case: SynchronousTestCase,
    resource: IResource,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    base: str = BASE,
) -> Response:
    """Make one request to C{resource} and return the complete response."""
    stub: Any = StubTreq(resource)
    response = case.successResultOf(stub.request(method, base + path, data=data, headers=headers or {}))
    body = case.successResultOf(response.content())
    return Response(response.code, dict(response.headers.getAllRawHeaders()), body)
