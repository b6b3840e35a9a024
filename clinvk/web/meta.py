# -*- test-case-name: tests.web.test_meta -*-
"""
The meta routes: the index at C{/}, C{/health}
(docs/design/http.md#health-check), the OpenAPI documents, C{/docs} and
C{/schemas/<name>} (docs/design/http.md#openapi-docs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from prometheus_client import CONTENT_TYPE_LATEST

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from clinvk._version import API_VERSION
from clinvk.backends.availability import BackendAvailability
from clinvk.metrics import Metrics
from clinvk.openapi import Operation, build_document, downgrade_to_30, to_yaml
from clinvk.schemas import SchemaSet
from clinvk.sessions import ISessionStore
from clinvk.web._errors import Dialect, route_not_found
from clinvk.web._responses import bytes_response, json_bytes, json_response, mount_path, typed_response
from clinvk.web._routing import family_app, route
from clinvk.web.explorer import ExplorerPage
from clinvk.web.inflight import InFlight

HEALTH = Operation(
    operation_id="healthCheck",
    method="GET",
    path="/health",
    tag="Health",
    summary="Health check",
    description=(
        "200, except while the server shuts down (503, status shutting_down). status is unhealthy "
        "when the session store cannot be read, degraded when a backend CLI is missing from the "
        "server's PATH. Needs no API key."
    ),
    response_schema="HealthResponseBody",
)


_OPENAPI_JSON = b"application/vnd.oai.openapi+json"
_OPENAPI_YAML = b"application/vnd.oai.openapi+yaml"


class Uptime:
    """
    Time since the service started, on the reactor clock.

    It counts from construction until L{restart} is called, which the
    service does when it starts.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._started = clock.seconds()

    def restart(self) -> None:
        """Count from now."""
        self._started = self._clock.seconds()

    def milliseconds(self) -> int:
        """@return: Whole milliseconds since the start."""
        return int((self._clock.seconds() - self._started) * 1000)


def format_uptime(milliseconds: int) -> str:
    """
    Render an uptime as the reference does: rounded to the nearest second
    (halves up), then C{<h>h<m>m<s>s}, C{<m>m<s>s} or C{<s>s}.
    """
    seconds = (milliseconds + 500) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


class OpenAPIDocuments:
    """
    The OpenAPI document in the four forms it is served in (3.1 or 3.0,
    JSON or YAML), each rendered on its first request and then kept.

    Rendering YAML is the slow part of building the meta family, and most
    servers (every test's among them) are never asked for it; a server
    that is asked renders each form once, not once per request.

    @param document: The OpenAPI 3.1 document (L{build_document}).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document
        self._legacy: dict[str, Any] | None = None
        self._rendered: dict[tuple[str, str], bytes] = {}

    def _variant(self, version: str) -> dict[str, Any]:
        if version == "3.1":
            return self._document
        if self._legacy is None:
            self._legacy = downgrade_to_30(self._document)
        return self._legacy

    def rendered(self, version: str, form: str) -> bytes:
        """
        @param version: C{"3.1"} or C{"3.0"}.
        @param form: C{"json"} or C{"yaml"}.
        @return: The document of C{version} in C{form}.
        """
        key = (version, form)
        rendered = self._rendered.get(key)
        if rendered is None:
            document = self._variant(version)
            rendered = json_bytes(document) if form == "json" else to_yaml(document)
            self._rendered[key] = rendered
        return rendered


class MetaApi:
    """
    The meta family: everything outside the three API prefixes.

    @param operations: Every documented operation of every family, for
        the OpenAPI document.
    """

    dialect: ClassVar[Dialect] = Dialect.META
    operations: ClassVar[tuple[Operation, ...]] = (HEALTH,)
    app = family_app(dialect)

    def __init__(
        self,
        *,
        uptime: Uptime,
        availability: BackendAvailability,
        store: ISessionStore,
        in_flight: InFlight,
        metrics: Metrics | None,
        schemas: SchemaSet,
        operations: Iterable[Operation],
        explorer: ExplorerPage,
    ) -> None:
        self._uptime = uptime
        self._availability = availability
        self._store = store
        self._in_flight = in_flight
        self._metrics = metrics
        self._schemas = schemas
        self._explorer = explorer
        # Built now, so that an operation naming an unknown schema stops
        # the start; rendered only when asked for (see OpenAPIDocuments).
        self._documents = OpenAPIDocuments(build_document(operations, schemas))

    @app.route("/", methods=["GET"], strict_slashes=False)
    def index(self, request: IRequest) -> bytes:
        # Where a client (or someone with a browser) that only knows the
        # server's address goes next; paths below the mount point.
        mount = mount_path(request)
        body = {
            "name": "clinvk",
            "docs": f"{mount}/docs",
            "openapi": f"{mount}/openapi.json",
            "health": f"{mount}/health",
            "apis": {
                "native": f"{mount}/api/v1",
                "openai": f"{mount}/openai/v1",
                "anthropic": f"{mount}/anthropic/v1",
            },
        }
        return json_response(request, body)

    @route(app, HEALTH)
    async def health(self, request: IRequest) -> bytes:
        backends = self._availability.cached()
        store = await self._store.health()
        if self._in_flight.draining:
            # Load balancers stop sending work while the server drains
            # (docs/design/decisions.md#d6-no-orphans).
            status = "shutting_down"
        elif not store.available:
            status = "unhealthy"
        elif all(available for _, available in backends):
            status = "ok"
        else:
            status = "degraded"
        milliseconds = self._uptime.milliseconds()
        session_store: dict[str, object] = {
            "available": store.available,
            "session_count": store.session_count,
        }
        if store.error:
            session_store["error"] = store.error
        body: dict[str, object] = {
            "status": status,
            "version": API_VERSION,
            "uptime": format_uptime(milliseconds),
            "uptime_ms": milliseconds,
            "backends": [{"name": name, "available": available} for name, available in backends],
            "session_store": session_store,
        }
        return typed_response(
            request, "HealthResponseBody", body, status=503 if status == "shutting_down" else 200
        )

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        if self._metrics is None:
            # Not served at all unless enabled (docs/design/http.md#prometheus-metrics).
            raise route_not_found("GET", "/metrics")
        return bytes_response(request, self._metrics.exposition(), CONTENT_TYPE_LATEST.encode("ascii"))

    def _document(self, request: IRequest, version: str, form: str) -> bytes:
        content_type = _OPENAPI_JSON if form == "json" else _OPENAPI_YAML
        return bytes_response(request, self._documents.rendered(version, form), content_type)

    @app.route("/openapi.json", methods=["GET"])
    def openapi_json(self, request: IRequest) -> bytes:
        return self._document(request, "3.1", "json")

    @app.route("/openapi.yaml", methods=["GET"])
    def openapi_yaml(self, request: IRequest) -> bytes:
        return self._document(request, "3.1", "yaml")

    @app.route("/openapi-3.0.json", methods=["GET"])
    def openapi_30_json(self, request: IRequest) -> bytes:
        return self._document(request, "3.0", "json")

    @app.route("/openapi-3.0.yaml", methods=["GET"])
    def openapi_30_yaml(self, request: IRequest) -> bytes:
        return self._document(request, "3.0", "yaml")

    @app.route("/docs", methods=["GET"])
    def docs(self, request: IRequest) -> bytes:
        return self._explorer.render(request)

    @app.route("/schemas/<name>", methods=["GET"])
    def schema(self, request: IRequest, name: str) -> bytes:
        # Unknown names answer null, as the reference does.
        name = name.removesuffix(".json")
        schema = self._schemas.schema(name) if name in self._schemas.names else None
        return json_response(request, schema)
