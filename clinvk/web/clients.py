# -*- test-case-name: tests.web.test_guards -*-
"""
Who a request comes from (docs/design/http.md#client-address): the TCP peer,
or, only when the peer is a configured trusted proxy, the address the proxy
forwarded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from twisted.web.iweb import IRequest

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(entries: Iterable[str]) -> list[_Network]:
    """The valid entries of C{trusted_proxies}, single addresses or CIDRs."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def _valid_ip(text: str) -> str | None:
    text = text.strip(" \t")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


class ClientAddresses:
    """
    @param trusted_proxies: C{server.trusted_proxies}; invalid entries are
        ignored, and with none at all forwarding headers never count.
    """

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = _networks(trusted_proxies)

    def _is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def of(self, request: IRequest) -> str:
        """The client address of C{request}, for rate limiting and logs."""
        peer = request.getClientAddress()
        host = str(getattr(peer, "host", "") or "")
        if not self._trusted or not self._is_trusted(host):
            return host
        forwarded = (request.getHeader(b"x-forwarded-for") or b"").decode("latin-1")
        real_ip = (request.getHeader(b"x-real-ip") or b"").decode("latin-1")
        return _valid_ip(forwarded.split(",", 1)[0]) or _valid_ip(real_ip) or host
