# -*- test-case-name: tests.test_service -*-
"""
Listening: the services that listen on server endpoints while they run,
and log where they listen.
"""

from __future__ import annotations

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, quoteStringArgument
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from clinvk.compat.mcp import MCPBridge
from clinvk.config import ServerConfig
from clinvk.types import IClinvkReactor
from clinvk.web.mcp import PREFIX, mcp_site

# Only the CLIs on this machine may reach the MCP endpoint.
LOOPBACK = "127.0.0.1"

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


class MCPListener(Service):
    """
    The MCP endpoint's own listener (docs/design/client-tools.md#mcp-endpoint):
    on 127.0.0.1, at a port the system picks, from the first request with
    client tools until the service stops.  A server whose clients never
    send tools opens no port for it; the bridge learns the URL once it
    listens.

    @param bridge: What the endpoint serves; it asks this listener to
        listen when a run first needs it.
    @param reactor: Where it listens.
    """

    name = "listener:mcp"

    def __init__(self, bridge: MCPBridge, reactor: IClinvkReactor) -> None:
        self._bridge = bridge
        self._reactor = reactor
        self._port: IListeningPort | None = None
        self._listening: Deferred[None] | None = None
        bridge.listen_with(self.listen)

    def listen(self) -> Deferred[None]:
        """
        Listen, once, while the service runs; the Deferred fires when the
        bridge knows the URL (or never will: a failure is logged).
        """
        if self._listening is None:
            if not self.running:
                return succeed(None)
            endpoint = TCP4ServerEndpoint(self._reactor, 0, interface=LOOPBACK)
            listening = endpoint.listen(mcp_site(self._bridge, self._reactor))
            self._listening = listening.addCallbacks(self._listened, self._failed)
        done: Deferred[None] = Deferred()

        def tell(result: object) -> object:
            done.callback(None)
            return result

        self._listening.addBoth(tell)
        return done

    def _listened(self, port: IListeningPort) -> None:
        if not self.running:
            # Stopped while it bound.
            port.stopListening()
            return
        self._port = port
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        self._bridge.listening(f"http://{LOOPBACK}:{address.port}/{PREFIX.decode()}")
        log.info("The MCP endpoint for client tools listens address={address}", address=_address(port))

    def _failed(self, reason: Failure) -> None:
        # The next request with tools tries again.
        self._listening = None
        log.failure("The MCP endpoint for client tools could not listen; requests with tools get 503", reason)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self._bridge.listening("")
        self._listening = None
        port, self._port = self._port, None
        if port is None:
            return None
        return port.stopListening()
