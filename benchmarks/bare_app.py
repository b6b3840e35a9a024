"""
The baseline of row a: a bare Klein app on the same reactor, answering
each route with a fixed JSON body that clinvk sent for it, with no checks,
no logging and no metrics.

C{python -m benchmarks.bare_app PORT ROUTE=FILE...} serves the content of
each FILE at its ROUTE on 127.0.0.1:PORT.  With C{--access-log LOG} first,
it also logs every request with clinvk's own access log event
(L{clinvk.web._wrappers.AccessLog}) as JSON lines to LOG, as C{twist
--log-file LOG} does for clinvk: the cost of that one event, measured.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

from klein import Klein
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    jsonFileLogObserver,
)
from twisted.web.iweb import IRequest
from twisted.web.server import Request, Site

from clinvk.web._wrappers import AccessLog


def bare_app(bodies: dict[str, bytes], access_log: AccessLog | None = None) -> Klein:
    """
    A Klein app serving each of C{bodies} (route to JSON body) to C{GET},
    logging each request to C{access_log} if given.
    """
    app = Klein()
    for route, body in bodies.items():

        def answer(request: IRequest, body: bytes = body) -> bytes:
            if access_log is not None:
                access_log.watch(cast("Request", request), b"bare-request")
            request.setHeader(b"Content-Type", b"application/json")
            return body

        app.route(route, methods=["GET"], endpoint=route)(answer)
    return app


def main(argv: list[str]) -> None:
    # A program of its own, not library code: it runs the global reactor.
    from twisted.internet import reactor as _reactor  # noqa: TID251

    reactor: Any = _reactor
    access_log = None
    if argv[0] == "--access-log":
        # What twist --log-file installs: JSON lines, info and above.
        observer = jsonFileLogObserver(open(argv[1], "a"))
        globalLogBeginner.beginLoggingTo(
            [FilteringLogObserver(observer, [LogLevelFilterPredicate(LogLevel.info)])]
        )
        access_log = AccessLog(reactor)
        argv = argv[2:]
    port = int(argv[0])
    bodies = {}
    for argument in argv[1:]:
        route, _, path = argument.partition("=")
        bodies[route] = Path(path).read_bytes()
    endpoint = TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    endpoint.listen(Site(bare_app(bodies, access_log).resource()))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
