# -*- test-case-name: tests.test_service -*-
"""
Building the service tree from the configuration: the parts that serve
requests and run CLIs, wired together under a L{ClinvkService}, with or
without listeners.

Building has no side effects: nothing listens, spawns or starts a timer
until the tree is started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import IResource
from twisted.web.server import Site

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.compat.images import FetchImage
from clinvk.compat.mcp import MCPBridge
from clinvk.config import ClinvkConfig
from clinvk.keys import KeyLoader
from clinvk.listeners import MCPListener, default_listen, listener
from clinvk.metrics import Metrics
from clinvk.orchestration import Orchestrator, recount_active_sessions
from clinvk.process.admission import Admission
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.runtime import BackendRuntime
from clinvk.runs.scratch import RunFiles
from clinvk.service import ClinvkService, SettledWork, WarmProcesses
from clinvk.sessions import ISessionStore
from clinvk.sessions.blocking import RunBlocking, synchronously
from clinvk.sessions.disk import DiskSessionStore, SessionFiles, in_thread_pool, sessions_directory
from clinvk.sessions.responses import ResponseFiles, ResponseStore, responses_directory
from clinvk.sessions.service import SessionStoreService
from clinvk.types import IClinvkReactor
from clinvk.web.bodies import ReadLimits
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.meta import Uptime
from clinvk.web.root import build_root, build_site


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


def _on_store_thread(reactor: IClinvkReactor, pool: ThreadPool | None) -> RunBlocking:
    """
    Runs file work on the session store's thread, where the stored
    responses (docs/design/responses-api.md#responses-store) and the runs'
    files (docs/design/structured-output.md#run-files) are written too;
    in place when the store has no thread.
    """
    if pool is None:
        return synchronously
    return in_thread_pool(cast("IReactorFromThreads", reactor), pool)


def _image_fetcher(config: ClinvkConfig, reactor: IClinvkReactor) -> FetchImage | None:
    """
    What fetches the images requests name by URL, when
    C{server.fetch_image_urls} allows it (docs/design/images.md#image-urls):
    each at most the request body limit, within the read timeout.
    """
    server = config.server
    if not server.fetch_image_urls:
        return None
    # Imported only when on: the HTTP client is a tenth of the start-up's imports.
    from treq.client import HTTPClient
    from twisted.web.client import Agent

    from clinvk.web.image_urls import ImageURLFetcher

    client = HTTPClient(Agent(reactor))
    return ImageURLFetcher(
        client, reactor, max_bytes=server.max_request_body_bytes, timeout=float(server.read_timeout_secs)
    )


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
    store, pool = _session_store(reactor, home)
    on_store_thread = _on_store_thread(reactor, pool)
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
        run_files=RunFiles(on_store_thread),
    )
    if metrics is not None:
        metrics.watch_live(runtime.live.counts)
    responses = ResponseStore(ResponseFiles(responses_directory(home)), on_store_thread)
    orchestrator = Orchestrator(runtime=runtime, store=store, clock=reactor, config=config, metrics=metrics)
    guards = Guards.from_config(config.server, reactor)
    in_flight = InFlight()
    bridge = MCPBridge()
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
        responses=responses,
        fetch_image=_image_fetcher(config, reactor),
        bridge=bridge,
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
        store, reactor, config.session.retention_days, pool, after_clean=recount, responses=responses
    ).setServiceParent(service)
    MCPListener(bridge, reactor).setServiceParent(service)
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
    # Last: it starts CLIs once the supervisor runs, and stops first.
    WarmProcesses(runtime).setServiceParent(service)
    return service
