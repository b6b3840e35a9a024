# -*- test-case-name: tests.test_service -*-
"""
The service tree: a root L{ClinvkService} with named children.

Building the tree has no side effects; listening starts in
C{privilegedStartService} (so twistd can bind before dropping privileges)
and C{stopService} returns a Deferred that fires only once everything has
really stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorFromThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import IResource
from twisted.web.server import Site
from zope.interface import implementer

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.workdir import dropped_builtin_blocks
from clinvk.config import ClinvkConfig, ServerConfig
from clinvk.keys import KeyLoader
from clinvk.metrics import Metrics
from clinvk.orchestration import Orchestrator, recount_active_sessions
from clinvk.process.admission import Admission
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.installed import InstalledCLI
from clinvk.runs.runtime import BackendRuntime
from clinvk.sessions import ISessionStore
from clinvk.sessions.disk import DiskSessionStore, SessionFiles, in_thread_pool, sessions_directory
from clinvk.sessions.service import SessionStoreService
from clinvk.types import IClinvkReactor
from clinvk.web.bodies import ReadLimits
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.meta import Uptime
from clinvk.web.root import build_root, build_site

log = Logger()


@implementer(IStreamServerEndpoint)
class _AnnouncedEndpoint:
    """
    An endpoint that logs where it listens once it does.

    @param endpoint: The endpoint that listens.
    @param description: Its description, for the log.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, description: str) -> None:
        self._endpoint = endpoint
        self._description = description

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:  # noqa: N803 (Twisted's name)
        def listening(port: IListeningPort) -> IListeningPort:
            log.info(
                "Listening endpoint={endpoint} address={address}",
                endpoint=self._description,
                address=_address(port),
            )
            return port

        return self._endpoint.listen(protocolFactory).addCallback(listening)


def listener(
    description: str, factory: IProtocolFactory, reactor: IClinvkReactor
) -> StreamServerEndpointService:
    """
    A service listening on the server endpoint C{description} while it
    runs, named C{listener:<description>}, which logs where it listens.

    It is Twisted's L{strports.service}: a failure to bind raises from
    C{privilegedStartService} (or from C{startService} when that was not
    called), so that a runner can report it before announcing anything.

    @raise ValueError: If C{description} is invalid.
    """
    service = strports.service(description, factory, reactor=reactor)
    service.endpoint = _AnnouncedEndpoint(service.endpoint, description)
    service.setName(f"listener:{description}")
    return service


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

    @param on_failure: Called with the reason when the service gives up
        after starting (the API keys cannot be loaded); what follows is
        for whoever runs it to decide (a server stops, an embedding
        program goes on).
    @ivar failure: Why the service gave up after starting, or L{None}.
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
        on_failure: Callable[[str], object] = lambda reason: None,
    ) -> None:
        super().__init__()
        self._uptime = uptime
        self._config = config
        self._guards = guards
        self._in_flight = in_flight
        self._clock = clock
        self._on_failure = on_failure
        self.failure: str | None = None
        self.runtime = runtime
        self.orchestrator = orchestrator
        self.root = root
        self.site = site

    @property
    def listeners(self) -> list[StreamServerEndpointService]:
        """The children that listen, in start order."""
        return [child for child in self if isinstance(child, StreamServerEndpointService)]

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
        listeners = self.listeners
        for listening in listeners:
            listening.startService()
        for child in [c for c in self if c not in listeners]:
            child.startService()

    def fail(self, reason: str) -> None:
        """Give up: record C{reason} and tell C{on_failure}."""
        self.failure = reason
        self._on_failure(reason)

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        log.info("Shutting down server")
        Service.stopService(self)
        listeners = self.listeners
        for listening in listeners:
            if listening.running:
                await _stop_child(listening)
        await self._drain()
        for child in reversed([c for c in self if c not in listeners]):
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
        self._looking: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        announced = self._runtime.installed().addCallback(self._announce).addErrback(self._failed)
        self._looking = None if announced.called else announced

    def _announce(self, clis: list[InstalledCLI]) -> None:
        self._looking = None
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

    def _failed(self, failure: Failure) -> None:
        self._looking = None
        if self.running:
            log.failure("Could not look for the backend CLIs", failure)

    def stopService(self) -> Deferred[None]:
        """
        Stop looking: the C{--version} runs still going are stopped, and
        nothing is announced.

        @return: A L{Deferred} firing once the look has ended.
        """
        super().stopService()
        announced, self._looking = self._looking, None
        if announced is None:
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        announced.addBoth(lambda ignored: stopped.callback(None))
        announced.cancel()
        return stopped


class SettledWork(Service):
    """
    Stops once the work that outlives its request has ended
    (L{Orchestrator.settled}): the prompt streams recording their session
    turns and the clean-ups after ephemeral runs.
    """

    name = "settled-work"

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._orchestrator.settled()


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


def build_service(
    config: ClinvkConfig,
    reactor: IClinvkReactor,
    listen: Sequence[str] = (),
    *,
    supervisor: ProcessSupervisor,
    environ: Mapping[str, str],
    home: str,
    on_failure: Callable[[str], object] = lambda reason: None,
) -> ClinvkService:
    """
    Build the whole service tree of the server.  This only creates
    objects: nothing listens, spawns or starts a timer until the tree is
    started.

    @param config: The validated configuration.
    @param reactor: The reactor everything runs on.
    @param listen: Server endpoint descriptions to listen on; by default
        the configured host and port.
    @param supervisor: Runs every child process (as for L{build_core}).
    @param environ: The server's environment (as for L{build_core}).
    @param home: The user's home directory (as for L{build_core}).
    @param on_failure: Called when the service gives up (as for
        L{build_core}).
    @raise ValueError: If an endpoint description is invalid.
    """
    service = build_core(
        config, reactor, supervisor=supervisor, environ=environ, home=home, on_failure=on_failure
    )
    site = service.site
    assert site is not None, "build_core always builds the site"
    for description in listen or [default_listen(config.server)]:
        listener(description, site, reactor).setServiceParent(service)
    return service


def build_core(
    config: ClinvkConfig,
    reactor: IClinvkReactor,
    *,
    supervisor: ProcessSupervisor,
    environ: Mapping[str, str],
    home: str,
    on_failure: Callable[[str], object] = lambda reason: None,
) -> ClinvkService:
    """
    Build the service tree without listeners: everything that serves
    requests and runs CLIs, for L{build_service} to add listeners to or for
    another program to embed (L{clinvk.embed}).  What it takes from the
    system it runs on is given by the caller, the composition root.

    @param supervisor: Runs every child process; it becomes a child of
        the tree (L{ProcessSupervisor.on_this_system} for a real server).
    @param environ: The server's environment: the CLIs and gopass run
        with it, and C{CLINVK_API_KEYS} is read from it.
    @param home: The user's home directory, where sessions are kept
        (C{""} when there is none: a relative directory).
    @param on_failure: Called with the reason when the service gives up
        after starting (L{ClinvkService.fail}).
    """
    uptime = Uptime(reactor)
    availability = BackendAvailability(reactor)
    metrics = Metrics() if config.server.metrics_enabled else None
    runtime = BackendRuntime(
        config=config,
        backends=build_backends(),
        supervisor=supervisor,
        availability=availability,
        clock=reactor,
        environ=environ,
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
        on_failure=on_failure,
    )
    recount: Callable[[], object] = (
        (lambda: Deferred.fromCoroutine(recount_active_sessions(metrics, store)))
        if metrics is not None
        else lambda: None
    )
    SessionStoreService(
        store, reactor, config.session.retention_days, pool, after_clean=recount
    ).setServiceParent(service)
    # Between the two: once the supervisor has stopped every CLI, the
    # streams' session turns are recorded while the store still runs.
    SettledWork(orchestrator).setServiceParent(service)
    supervisor.setServiceParent(service)
    # After the supervisor: it runs gopass, and stops after the loader.
    KeyLoader(
        guards.keys,
        supervisor,
        reactor,
        environ,
        config.server.api_keys_gopass_path,
        on_fatal=service.fail,
    ).setServiceParent(service)
    return service
