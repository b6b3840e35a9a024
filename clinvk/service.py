# -*- test-case-name: tests.test_service -*-
"""
The service tree: a root L{ClinvkService} with named children.

Building the tree has no side effects; listening starts in
C{privilegedStartService} (so twistd can bind before dropping privileges)
and C{stopService} returns a Deferred that fires only once everything has
really stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import cast

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorFromThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import IResource
from twisted.web.server import Site

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.installed import InstalledCLI
from clinvk.backends.runtime import BackendRuntime
from clinvk.backends.workdir import dropped_builtin_blocks
from clinvk.config import ClinvkConfig, ServerConfig
from clinvk.metrics import Metrics
from clinvk.orchestration import Orchestrator, recount_active_sessions
from clinvk.process.admission import Admission
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.sessions import ISessionStore
from clinvk.sessions.disk import DiskSessionStore, SessionFiles, in_thread_pool, sessions_directory
from clinvk.sessions.service import SessionStoreService
from clinvk.types import IClinvkReactor
from clinvk.web.bodies import ReadLimits
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.keys import KeyLoader
from clinvk.web.meta import Uptime
from clinvk.web.root import build_root, build_site

log = Logger()


class Listener(Service):
    """
    Listens on one endpoint while running.

    A failure to bind raises from L{privilegedStartService} (or from
    L{startService} when that was not called), so a runner can report it
    before announcing anything.

    @ivar description: The endpoint description, for logs and errors.
    @ivar port: The listening port, once bound.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, description: str) -> None:
        self._endpoint = endpoint
        self._factory = factory
        self.description = description
        self.port: IListeningPort | None = None
        self._pending: Deferred[IListeningPort] | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        if self._pending is None and self.port is None:
            self._listen()

    def _listen(self) -> None:
        failures: list[Failure] = []
        pending = self._endpoint.listen(self._factory)
        pending.addCallbacks(self._listening, failures.append)
        if failures:
            failures[0].raiseException()
        if self.port is None:
            # An endpoint that binds asynchronously; log if it fails later.
            self._pending = pending
            pending.addErrback(
                lambda f: log.failure("Could not listen on {endpoint}", f, endpoint=self.description)
            )

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        self._pending = None
        log.info(
            "Listening endpoint={endpoint} address={address}",
            endpoint=self.description,
            address=_address(port),
        )
        return port

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopping = port.stopListening()
        return stopping if isinstance(stopping, Deferred) else succeed(None)


def _address(port: IListeningPort) -> str:
    host = port.getHost()
    if isinstance(host, (IPv4Address, IPv6Address)):
        return f"[{host.host}]:{host.port}" if ":" in host.host else f"{host.host}:{host.port}"
    return str(getattr(host, "name", host))


class ClinvkService(MultiService):
    """
    The root service.

    It starts the listeners first, so that a port it cannot bind stops
    the start before anything else runs, then its other children in the
    order they were added: the session store, then the process
    supervisor.  It stops in phases, each awaited before the next: first the listeners (no new requests), then
    the other children, last added first, so the supervisor ends every
    backend process before the store writes the last session updates and
    stops.

    @ivar failure: Why the service gave up after starting (the API keys
        could not be loaded), or L{None}; runners exit non-zero then.
    @ivar runtime: Runs backend CLIs for requests.
    @ivar orchestrator: Runs prompts and batches, and keeps sessions.
    @ivar root: The root resource of every API, when built with one.
    @ivar site: The HTTP factory serving L{root} that listeners use.
    """

    def __init__(
        self,
        uptime: Uptime,
        runtime: BackendRuntime,
        orchestrator: Orchestrator,
        config: ClinvkConfig,
        guards: Guards | None = None,
        in_flight: InFlight | None = None,
        clock: IReactorTime | None = None,
        *,
        root: IResource | None = None,
        site: Site | None = None,
        stop_reactor_on_failure: bool = True,
    ) -> None:
        super().__init__()
        self._uptime = uptime
        self._config = config
        self._guards = guards
        self._in_flight = in_flight
        self._clock = clock
        self._stop_reactor_on_failure = stop_reactor_on_failure
        self.failure: str | None = None
        self.runtime = runtime
        self.orchestrator = orchestrator
        self.root = root
        self.site = site

    @property
    def listeners(self) -> list[Listener]:
        """The children that listen, in start order."""
        return [child for child in self if isinstance(child, Listener)]

    def startService(self) -> None:
        self._uptime.restart()
        for text in self._config.unknown_keys:
            log.warn(
                "Ignoring an unknown configuration key problem={problem} file={file}",
                problem=text,
                file=self._config.source,
            )
        dropped = dropped_builtin_blocks(self._config.server.blocked_workdir_prefixes)
        if dropped:
            log.warn(
                "blocked_workdir_prefixes replaces the built-in block list dropped={dropped}",
                dropped=",".join(dropped),
            )
        if self._guards is not None:
            self._guards.announce()
        if self._config.server.metrics_enabled:
            log.info("Prometheus metrics enabled at /metrics")
        Service.startService(self)
        # Bind first: a server that cannot listen must start nothing else
        # (a started thread pool would keep the failed process alive).
        children: list[IService] = list(self)
        for listener in [c for c in children if isinstance(c, Listener)]:
            listener.startService()
        for child in [c for c in children if not isinstance(c, Listener)]:
            child.startService()

    def fail(self, reason: str) -> None:
        """
        Give up: record C{reason} and, unless told not to, stop the reactor
        (a clean stop).
        """
        self.failure = reason
        reactor = self._clock
        if self._stop_reactor_on_failure and reactor is not None and IReactorCore.providedBy(reactor):
            cast("IReactorCore", reactor).stop()

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        log.info("Shutting down server")
        Service.stopService(self)
        children: list[IService] = list(self)
        for listener in [c for c in children if isinstance(c, Listener)]:
            await _stop_child(listener)
        await self._drain()
        for child in reversed([c for c in children if not isinstance(c, Listener)]):
            await _stop_child(child)
        log.info("Server stopped")

    async def _drain(self) -> None:
        """
        Let the requests in progress finish, for at most
        C{shutdown_timeout_secs} (docs/design/decisions.md#d6-no-orphans); the
        supervisor then stops the runs of those still going.
        """
        if self._in_flight is None or self._clock is None:
            return
        timeout = self._config.server.shutdown_timeout_secs
        drained = self._in_flight.drain()
        if self._in_flight.count:
            log.info(
                "Draining requests count={count} timeout_secs={timeout}",
                count=self._in_flight.count,
                timeout=timeout,
            )
        try:
            await drained.addTimeout(timeout, self._clock)
        except defer.TimeoutError:
            log.warn(
                "Shutdown timeout reached, cancelling requests count={count}", count=self._in_flight.count
            )


class InstalledCLIAnnouncement(Service):
    """
    Say at start-up which backend CLIs are installed, at which versions;
    when none is, say what to do.  The command-line runners add it; a
    program that embeds clinvk need not.

    @param runtime: Finds the CLIs; it must be started first (it runs
        C{--version} as supervised children).
    @param try_fakes: The command that starts clinvk with its fake CLIs.
    """

    def __init__(self, runtime: BackendRuntime, try_fakes: str) -> None:
        self._runtime = runtime
        self._try_fakes = try_fakes
        self.announced: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self.announced = self._runtime.installed().addCallback(self._announce)
        self.announced.addErrback(lambda f: log.failure("Could not look for the backend CLIs", f))

    def _announce(self, clis: list[InstalledCLI]) -> None:
        if not self.running:
            # Stopped before the CLIs answered: their runs were stopped
            # with the server, which says nothing about the CLIs.
            return
        for cli in clis:
            if cli.path is None:
                log.info("Backend CLI not found backend={backend}", backend=cli.name)
            else:
                log.info(
                    "Found backend CLI backend={backend} version={version} path={path} note={note}",
                    backend=cli.name,
                    version=cli.version or "unknown",
                    path=cli.path,
                    note=cli.describe(),
                )
        if all(cli.path is None for cli in clis):
            log.warn(
                "No backend CLI is installed, so every prompt will fail: install and log in to "
                "claude, codex or gemini, or try clinvk with its fake CLIs try={command}",
                command=self._try_fakes,
            )


async def _stop_child(child: IService) -> None:
    """Stop C{child}; a failure is logged, so that the next still stops."""
    try:
        result = child.stopService()
        if isinstance(result, Deferred):
            await result
    except Exception:
        log.failure("Failed to stop {name}", name=getattr(child, "name", child))


def default_listen(server: ServerConfig) -> str:
    """
    The endpoint of the configured C{host} and C{port}:
    C{tcp:<port>:interface=<host>}.
    """
    return f"tcp:{server.port}:interface={quoteStringArgument(server.bind_host)}"


def _session_store(reactor: IClinvkReactor, home: str) -> tuple[ISessionStore, ThreadPool | None]:
    """
    The session store in the user's home directory.  Its file operations
    run in order on one pool thread, off the reactor thread; a reactor
    without thread support (a test fake) runs them in place.
    """
    files = SessionFiles(sessions_directory(home))
    if not IReactorFromThreads.providedBy(reactor):
        return DiskSessionStore(files), None
    pool = ThreadPool(minthreads=1, maxthreads=1, name="clinvk-sessions")
    return DiskSessionStore(
        files, run_blocking=in_thread_pool(cast("IReactorFromThreads", reactor), pool), clock=reactor
    ), pool


def admission_of(config: ClinvkConfig, clock: IReactorTime, metrics: Metrics | None = None) -> Admission:
    """
    The admission control of the configured run limits
    (docs/design/decisions.md#d4-admission-control), measured when C{metrics} are on.
    """
    server = config.server
    admission = Admission(
        clock,
        max_running=server.max_concurrent_runs,
        max_queued=server.max_queued_runs,
        queue_timeout=float(server.queue_timeout_secs),
        observe_wait=metrics.queue_wait.observe if metrics is not None else lambda seconds: None,
    )
    if metrics is not None:
        metrics.watch_admission(lambda: admission.running, lambda: admission.queued)
    return admission


def configured_site(root: IResource, config: ClinvkConfig, reactor: IReactorTime) -> Site:
    """
    The HTTP factory serving C{root} with the configured protections of
    requests as they arrive: the body size limit, the read and write
    timeouts and the idle-connection timeout (docs/design/http.md#body-limit,
    docs/design/http.md#connection-timeouts).
    """
    server = config.server
    return build_site(
        root,
        reactor,
        server.max_request_body_bytes,
        idle_timeout=float(server.idle_timeout_secs),
        read_limits=ReadLimits(
            reactor,
            request=float(server.read_timeout_secs),
            # The request deadline plus time to write its error
            # (docs/design/http.md#connection-timeouts).
            response=float(max(server.write_timeout_secs, server.request_timeout_secs + 5)),
        ),
    )


def build_service(config: ClinvkConfig, reactor: IClinvkReactor, listen: Sequence[str] = ()) -> ClinvkService:
    """
    Build the whole service tree of the server.  This only creates
    objects: nothing listens, spawns or starts a timer until the tree is
    started.

    @param config: The validated configuration.
    @param reactor: The reactor everything runs on.
    @param listen: Server endpoint descriptions to listen on; by default
        the configured host and port.
    @raise ValueError: If an endpoint description is invalid.
    """
    service = build_core(config, reactor)
    site = service.site
    assert site is not None, "build_core always builds the site"
    for description in listen or [default_listen(config.server)]:
        listener = Listener(serverFromString(reactor, description), site, description)
        listener.setName(f"listener:{description}")
        listener.setServiceParent(service)
    return service


def build_core(
    config: ClinvkConfig, reactor: IClinvkReactor, *, stop_reactor_on_failure: bool = True
) -> ClinvkService:
    """
    Build the service tree without listeners: everything that serves
    requests and runs CLIs, for L{build_service} to add listeners to or for
    another program to embed (L{clinvk.embed}).

    @param stop_reactor_on_failure: Whether a fatal failure after start
        (the API keys cannot be loaded) stops the reactor, as a server
        should; a program that embeds clinvk keeps its reactor.
    """
    uptime = Uptime(reactor)
    availability = BackendAvailability(reactor)
    supervisor = ProcessSupervisor.on_this_system(reactor, float(config.server.kill_grace_secs))
    metrics = Metrics() if config.server.metrics_enabled else None
    home = os.path.expanduser("~")
    if home == "~":
        home = ""  # no home directory: the store falls back to a relative one
    runtime = BackendRuntime(
        config=config,
        backends=build_backends(),
        supervisor=supervisor,
        availability=availability,
        clock=reactor,
        environ=os.environ,
        home=home,
        admission=admission_of(config, reactor, metrics),
        observe_execution=metrics.observe_execution if metrics is not None else None,
    )
    store, pool = _session_store(reactor, home)
    orchestrator = Orchestrator(runtime=runtime, store=store, clock=reactor, config=config, metrics=metrics)
    guards = Guards.from_config(config.server, reactor)
    in_flight = InFlight()
    root = build_root(
        clock=reactor,
        availability=availability,
        uptime=uptime,
        runtime=runtime,
        orchestrator=orchestrator,
        config=config,
        guards=guards,
        in_flight=in_flight,
        metrics=metrics,
    )
    site = configured_site(root, config, reactor)
    service = ClinvkService(
        uptime,
        runtime,
        orchestrator,
        config,
        guards,
        in_flight,
        reactor,
        root=root,
        site=site,
        stop_reactor_on_failure=stop_reactor_on_failure,
    )
    recount: Callable[[], object] = (
        (lambda: Deferred.fromCoroutine(recount_active_sessions(metrics, store)))
        if metrics is not None
        else lambda: None
    )
    SessionStoreService(
        store, reactor, config.session.retention_days, pool, after_clean=recount
    ).setServiceParent(service)
    supervisor.setServiceParent(service)
    # After the supervisor: it runs gopass, and stops after the loader.
    KeyLoader(
        guards.keys,
        supervisor,
        reactor,
        os.environ,
        config.server.api_keys_gopass_path,
        on_fatal=service.fail,
    ).setServiceParent(service)
    return service
