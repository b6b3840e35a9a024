# -*- test-case-name: tests.web.test_root -*-
"""
What every API family has in common: a Klein app with exact-path routing,
an error dialect and the operations it documents.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from clinvk.openapi import Operation
from clinvk.web._errors import Dialect, install_error_handlers, name_failure
from clinvk.web.deadline import RequestDeadline


def family_app(dialect: Dialect) -> Klein:
    """
    A Klein app for one API family.

    Paths match exactly: no merging of duplicate slashes and no
    trailing-slash redirects (docs/design/native-api.md#native-routing), and every
    failure renders in C{dialect}.
    """
    app = Klein()
    app.url_map.merge_slashes = False
    install_error_handlers(app, dialect)
    return app


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def route(app: Klein, operation: Operation, *, failure: str | None = None) -> Callable[[_Handler], _Handler]:
    """
    Route the method of C{operation} at its path on C{app}.  A handler that
    is a coroutine runs under the C{deadline} of its family, when it has one.
    Handlers raise; the family's error handler answers (L{clinvk.web._errors}).

    @param failure: What an internal failure of the handler is called
        (L{clinvk.web._errors.name_failure}); by default it is the
        generic C{internal server error}.
    """

    def decorate(handler: _Handler) -> _Handler:
        @functools.wraps(handler)
        def handle(self: Any, request: IRequest, *args: Any, **kwargs: Any) -> Any:
            if failure is not None:
                name_failure(request, failure)
            result = handler(self, request, *args, **kwargs)
            deadline: RequestDeadline | None = getattr(self, "deadline", None)
            if deadline is None or not inspect.iscoroutine(result):
                return result
            return deadline.limit(request, Deferred.fromCoroutine(result))

        app.route(operation.klein_path, methods=[operation.method])(handle)
        # The class keeps the handler itself, so that it can be called
        # (and type-checked) as written.
        return handler

    return decorate


class ApiFamily(Protocol):
    """
    One API family, mounted by the root under its path prefix.

    @cvar dialect: How its errors are written.
    @cvar operations: What it contributes to the OpenAPI document.
    @ivar app: Its Klein app, bound to the instance.
    """

    dialect: ClassVar[Dialect]
    operations: ClassVar[tuple[Operation, ...]]

    @property
    def app(self) -> Klein: ...


def allowed_methods(family: ApiFamily, path: str) -> list[str]:
    """
    @return: The methods C{family} serves at C{path}, sorted, without the
        C{HEAD} werkzeug adds to every C{GET} route (clinvk serves no
        C{HEAD}).
    """
    adapter = family.app.url_map.bind("localhost")
    return sorted(m for m in adapter.allowed_methods(path) if m != "HEAD")


_PARAMETER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def route_template(family: ApiFamily, path: str, method: str) -> str:
    """
    The route C{path} belongs to, with C{:name} parameters
    (C{/api/v1/sessions/:id}), for metric labels; C{unmatched} for a path
    no route serves.
    """
    return _cached_template(family.app.url_map, path, method)


# Matching costs more than the rest of a small request's routing: the
# templates of recently seen paths are kept (a bounded number, since paths
# with ids are many).
@functools.lru_cache(maxsize=1024)
def _cached_template(url_map: Map, path: str, method: str) -> str:
    adapter = url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path, method=method, return_rule=True)
    except MethodNotAllowed as e:
        methods = list(e.valid_methods or ())
        if not methods:
            return "unmatched"
        rule, _ = adapter.match(path, method=methods[0], return_rule=True)
    except HTTPException:
        return "unmatched"
    return _PARAMETER.sub(r":\1", rule.rule)
