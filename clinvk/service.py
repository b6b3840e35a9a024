# -*- test-case-name: tests.test_service -*-
"""
The services of the tree: the root L{ClinvkService}, which starts its
listeners first and stops in phases, and the small services it holds
beside the parts that serve requests.

Listening starts in C{privilegedStartService} (so twistd can bind before
dropping privileges) and C{stopService} returns a Deferred that fires only
once everything has really stopped.  L{clinvk.assembly} builds the tree.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Site

from clinvk.backends.workdir import dropped_builtin_blocks
from clinvk.config import ClinvkConfig
from clinvk.orchestration import Orchestrator
from clinvk.runs.installed import InstalledCLI
from clinvk.runs.runtime import BackendRuntime
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.meta import Uptime

log = Logger()


class ClinvkService(MultiService):
    """
    The root service.

    It starts the listeners first, so that a port it cannot bind stops
    the start before anything else runs, then its other children in the
    order they were added: the session store, the settling of work beyond
    requests, the process supervisor and the key loader.  It stops in
    phases, each awaited before the next: first the listeners (no new
    requests), then the other children, last added first, so the
    supervisor ends every backend process and the streams record their
    turns before the store writes the last session updates and stops.

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


class WarmProcesses(Service):
    """
    Keeps the backends' warm processes for new conversations
    (docs/design/live-sessions.md#warm-pool) while it runs.

    @param runtime: Starts them; its supervisor must be started first.
    """

    name = "warm-processes"

    def __init__(self, runtime: BackendRuntime) -> None:
        self._runtime = runtime

    def startService(self) -> None:
        super().startService()
        self._runtime.warm_up()

    def stopService(self) -> None:
        super().stopService()
        self._runtime.live.stop_warming()


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
