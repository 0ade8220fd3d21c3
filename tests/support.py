"""Small helpers shared by the tests."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

#: The ``listeners`` fixture: bind listening sockets on addresses and a port.
Listen = Callable[[list[str], int], list[socket.socket]]
#: The ``dnsmasq`` fixture: serve PTR records, return ``IP:PORT``.
Dnsmasq = Callable[[dict[str, str]], str]


def hosts_of(net: str, *offsets: int) -> list[str]:
    network = ipaddress.ip_network(net)
    return [str(network.network_address + o) for o in offsets]


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
