# -*- test-case-name: tests.test_service -*-
"""
Listening: the services that listen on server endpoints while they run,
and log where they listen.
"""

from __future__ import annotations

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from clinvk.config import ServerConfig
from clinvk.types import IClinvkReactor

# The events keep the namespace of the server's other start-up events
# ("[clinvk.service#info] Listening ...", as docs/operations.md shows),
# so that what filters the log on it still finds them.
log = Logger(namespace="clinvk.service")


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


def default_listen(server: ServerConfig) -> str:
    """
    The endpoint of the configured C{host} and C{port}:
    C{tcp:<port>:interface=<host>}.
    """
    return f"tcp:{server.port}:interface={quoteStringArgument(server.bind_host)}"
