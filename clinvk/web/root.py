# -*- test-case-name: tests.web.test_root -*-
"""
The root resource: the cross-cutting wrappers, then dispatch to the API
family that owns the path.

Families are mounted by path prefix; each keeps seeing the full path, so
its routes are written as the client sees them.  Everything outside the
prefixes belongs to the meta family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from clinvk.backends.availability import BackendAvailability
from clinvk.compat.conversations import Conversations
from clinvk.compat.images import FetchImage
from clinvk.compat.mcp import MCPBridge
from clinvk.compat.runs import CompatRunner
from clinvk.config import ClinvkConfig
from clinvk.errors import ClinvkError, InvalidRequest, ShuttingDown
from clinvk.metrics import Metrics
from clinvk.orchestration import Orchestrator
from clinvk.runs.runtime import BackendRuntime
from clinvk.schemas import SchemaSet
from clinvk.sessions.responses import ResponseStore
from clinvk.web._errors import Dialect, method_not_allowed, render_failure, route_not_found
from clinvk.web._misdirected import Sdk, misdirected, sdk_of
from clinvk.web._responses import remember_mount_path
from clinvk.web._routing import ApiFamily, allowed_methods, route_template
from clinvk.web._wrappers import AccessLog, RequestIds
from clinvk.web.anthropic import AnthropicApi
from clinvk.web.bodies import ReadLimits, limited_request
from clinvk.web.explorer import ExplorerPage
from clinvk.web.guards import Guards
from clinvk.web.inflight import InFlight
from clinvk.web.meta import MetaApi, Uptime
from clinvk.web.native import NativeApi
from clinvk.web.openai import OpenAIApi


class ClinvkRoot(Resource):
    """
    The root of clinvk's URL space.

    @param mounts: C{(prefix, family)} pairs; a family owns its prefix and
        every path below it.  Prefixes are matched against the decoded path
        below wherever the root itself is mounted.
    @param fallback: The family of every other path.
    """

    isLeaf = True

    def __init__(
        self,
        *,
        mounts: Sequence[tuple[str, ApiFamily]],
        fallback: ApiFamily,
        request_ids: RequestIds,
        access_log: AccessLog,
        guards: Guards | None = None,
        in_flight: InFlight | None = None,
        metrics: Metrics | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()
        self._metrics = metrics
        self._clock = clock
        self._guards = guards or Guards.permissive()
        self._in_flight = in_flight or InFlight()
        self._mounts = [(prefix, family, family.app.resource()) for prefix, family in mounts]
        self._fallback = (fallback, fallback.app.resource())
        self._request_ids = request_ids
        self._access_log = access_log

    def _family_for(self, request: IRequest) -> tuple[ApiFamily, IResource]:
        # Prefixes are ASCII, so Latin-1 decoding picks the same family as
        # UTF-8 and also works for paths that are not UTF-8.
        path = _router_path(request, "latin-1")
        for prefix, family, resource in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return family, resource
        return self._fallback

    def render(self, request: IRequest) -> bytes | int:
        remember_mount_path(request)
        request_id = self._request_ids.assign(request)
        guards = self._guards
        client = guards.clients.of(request)
        self._access_log.watch(cast("Request", request), request_id, client)
        family, resource = self._family_for(request)
        # Preflights are answered first, never refused
        # (docs/design/http.md#check-order), and every other answer, refusals
        # included, carries CORS headers.
        if guards.cors.is_preflight(request):
            return guards.cors.answer_preflight(request)
        guards.cors.decorate(request)
        dialect = family.dialect
        try:
            path = _check_routable(request)
            sdk = _misdirected_sdk(request, family, path)
            if sdk is not None and dialect is Dialect.META:
                # Outside the API prefixes, answer the SDK in its own
                # dialect (refusals too), so that it shows the message.
                dialect = sdk.dialect
            guards.check(request, path, client)
            self._record(request, family, path)
            if self._in_flight.draining and path != "/health":
                raise ShuttingDown("server is shutting down")
            self._in_flight.track(cast("Request", request))
            if sdk is not None:
                raise misdirected(request, sdk)
            if request.method == b"HEAD":
                raise _head_error(request, family)
            result: bytes | int = resource.render(request)
        except Exception:
            # The refusals before routing take the same path as the routes' errors.
            return render_failure(request, dialect, Failure())
        return result

    def _record(self, request: IRequest, family: ApiFamily, path: str) -> None:
        """Count C{request} in the metrics once its response has ended, with the status sent."""
        metrics, clock = self._metrics, self._clock
        if metrics is None or clock is None:
            return
        method = request.method.decode("latin-1")
        label = route_template(family, path, method)
        started = clock.seconds()

        def ended(result: object) -> None:
            status = request.code if request.code else 200  # type: ignore[attr-defined]
            metrics.observe_request(method, label, status, clock.seconds() - started)

        cast("Request", request).notifyFinish().addBoth(ended)


def _router_path(request: IRequest, encoding: str = "utf-8") -> str:
    """The decoded path the family's router sees, below the root's mount point."""
    return "/" + "/".join(segment.decode(encoding) for segment in request.postpath)


def _check_routable(request: IRequest) -> str:
    """
    Refuse, in the family's dialect, what the router would mishandle.

    @return: The path the router sees (L{_router_path}).

    @raise RouteNotFound: For a path with a doubled leading slash (Twisted
        would hand the router C{/x} for C{//x}, and paths match exactly) or
        one that is not UTF-8 once unquoted (Klein would log it as a
        critical error).
    @raise InvalidRequest: For a C{Host} header that is not UTF-8.
    """
    try:
        path = _router_path(request)
    except UnicodeDecodeError:
        raise route_not_found(request.method.decode("latin-1"), request.path.decode("latin-1")) from None
    if len(request.postpath) > 1 and request.postpath[0] == b"":
        raise route_not_found(request.method.decode("latin-1"), request.path.decode("latin-1"))
    try:
        (request.getHeader(b"host") or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the Host header is not UTF-8") from None
    return path


def _misdirected_sdk(request: IRequest, family: ApiFamily, path: str) -> Sdk | None:
    """
    The SDK whose request for an endpoint of its API arrived at C{path}
    instead, because its base URL is wrong; L{None} for any other request,
    and for every path a route of C{family} serves.
    """
    sdk = sdk_of(path, request, family.dialect)
    if sdk is None or allowed_methods(family, path):
        return None
    return sdk


def _head_error(request: IRequest, family: ApiFamily) -> ClinvkError:
    """
    No route answers C{HEAD} (docs/design/native-api.md#native-routing): 405 where the
    path exists, 404 elsewhere.
    """
    path = _router_path(request)
    allowed = allowed_methods(family, path)
    if allowed:
        return method_not_allowed("HEAD", path, allowed)
    return route_not_found("HEAD", path)


def build_root(
    *,
    clock: IReactorTime,
    availability: BackendAvailability,
    uptime: Uptime,
    runtime: BackendRuntime,
    orchestrator: Orchestrator,
    config: ClinvkConfig,
    guards: Guards | None = None,
    in_flight: InFlight | None = None,
    metrics: Metrics | None = None,
    responses: ResponseStore | None = None,
    fetch_image: FetchImage | None = None,
    bridge: MCPBridge | None = None,
) -> ClinvkRoot:
    """
    The root resource with every family mounted.

    @param clock: Times request durations.
    @param availability: Backend availability for C{/health} and
        C{/api/v1/backends}.
    @param uptime: The service's uptime for C{/health}.
    @param runtime: Runs the compatibility APIs' executions.
    @param orchestrator: Runs what native requests ask for.
    @param config: The server's configuration.
    @param guards: The checks before routing; by default those of the
        configuration, without API keys.
    @param in_flight: Counts the requests in progress, for a graceful
        shutdown.
    @param metrics: Where requests are counted and C{/metrics} reads
        from, when metrics are enabled.
    @param responses: Where the Responses API keeps responses; by default
        in memory.
    @param fetch_image: Fetches the images requests name by URL; by
        default none is fetched (docs/design/images.md#image-urls).
    @param bridge: Serves requests' client tools to the CLIs
        (docs/design/client-tools.md#mcp-bridge); without it, a request
        with tools is a 503.
    """
    in_flight = in_flight or InFlight()
    schemas = SchemaSet.from_package()
    native = NativeApi(
        orchestrator=orchestrator, availability=availability, schemas=schemas, config=config, clock=clock
    )
    compat = CompatRunner(runtime)
    conversations = Conversations(
        runner=compat,
        orchestrator=orchestrator,
        enabled=config.server.compat_sessions,
        bridge=bridge,
        clock=clock,
        tool_call_timeout_secs=config.server.tool_call_timeout_secs,
    )
    openai = OpenAIApi(
        runner=compat,
        conversations=conversations,
        clock=clock,
        schemas=schemas,
        config=config,
        responses=responses,
        fetch_image=fetch_image,
    )
    anthropic = AnthropicApi(
        runner=compat,
        conversations=conversations,
        clock=clock,
        schemas=schemas,
        config=config,
        fetch_image=fetch_image,
    )
    operations = (
        *NativeApi.operations,
        *MetaApi.operations,
        *OpenAIApi.operations,
        *AnthropicApi.operations,
    )
    meta = MetaApi(
        uptime=uptime,
        availability=availability,
        store=orchestrator.store,
        in_flight=in_flight,
        metrics=metrics,
        schemas=schemas,
        operations=operations,
        explorer=ExplorerPage.from_package(),
    )
    return ClinvkRoot(
        mounts=[("/api/v1", native), ("/openai", openai), ("/anthropic", anthropic)],
        fallback=meta,
        request_ids=RequestIds.for_this_process(),
        access_log=AccessLog(clock),
        guards=guards or Guards.from_config(config.server, clock),
        in_flight=in_flight,
        metrics=metrics,
        clock=clock,
    )


class ClinvkSite(Site):
    """A Site that leaves request logging to L{AccessLog}."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def build_site(
    root: IResource,
    reactor: IReactorTime,
    max_body: int = 0,
    idle_timeout: float | None = None,
    read_limits: ReadLimits | None = None,
) -> Site:
    """
    The HTTP factory serving C{root}, timed by C{reactor}.  Tracebacks are
    never displayed to clients; bodies over C{max_body} bytes (when
    positive) are dropped as they arrive; a connection silent for
    C{idle_timeout} seconds is closed, and one that sends a request slower
    than C{read_limits} allow gets 408.
    """
    factory = limited_request(max_body, read_limits)
    # Bodies are read by the routes, as JSON.  Twisted's own parsing of form
    # uploads would answer a malformed multipart body with a bare 400 before
    # any route runs; without it, such a body gets the route's 415.
    return ClinvkSite(
        root, reactor=reactor, requestFactory=factory, timeout=idle_timeout, parsePOSTFormSubmission=False
    )
