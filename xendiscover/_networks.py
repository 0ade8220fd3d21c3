"""The local networks to sweep, from the machine's interfaces.

The functions here are pure over ``ifaddr`` adapters: :func:`local_networks`
takes the adapters and an "is this interface up?" function as parameters, so
tests feed them as data. Only :func:`system_networks` touches the OS.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import ifaddr

__all__ = ["LocalNetwork", "interface_is_up", "local_networks", "system_networks"]

# From <linux/sockios.h> and <net/if.h>.
_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1

#: Networks never swept automatically: loopback and IPv4 link-local.
_SKIPPED = (
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("169.254.0.0/16"),
)


@dataclass(frozen=True)
class LocalNetwork:
    """An IPv4 network one of our interfaces sits on.

    Attributes:
        network: The network, at the interface's real prefix length.
        interfaces: The names of the interfaces on it (several when the same
            network is configured twice).
        own_addresses: Our own addresses inside it, which are never probed.
    """

    network: ipaddress.IPv4Network
    interfaces: tuple[str, ...] = ()
    own_addresses: frozenset[ipaddress.IPv4Address] = field(default_factory=frozenset)


def interface_is_up(name: str) -> bool:
    """Whether the interface ``name`` is administratively up (``IFF_UP``).

    ``ifaddr`` reports addresses of down interfaces too, so the sweep asks
    the kernel with ``SIOCGIFFLAGS``. An alias such as ``eth0:1`` shares its
    device's flags. An interface the kernel does not know is not up.
    """
    device = name.split(":", 1)[0]
    request = struct.pack("16sH14x", device.encode()[:15], 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
    except OSError:
        return False
    (flags,) = struct.unpack_from("H", reply, 16)
    return bool(flags & _IFF_UP)


def local_networks(
    adapters: Iterable[ifaddr.Adapter],
    *,
    is_up: Callable[[str], bool] = interface_is_up,
    interfaces: Iterable[str] | None = None,
) -> list[LocalNetwork]:
    """The IPv4 networks worth sweeping, from ``ifaddr`` adapters.

    Keeps the networks of interfaces that are up, at their real prefix
    length; skips loopback, link-local and single-address (``/32``)
    networks; merges a network seen on several interfaces into one entry.
    IPv6 networks are never swept automatically: a /64 cannot be walked.

    Args:
        adapters: What ``ifaddr.get_adapters()`` returned (or test data).
        is_up: Tells whether an interface is up; defaults to the kernel's flag.
        interfaces: If given, only adapters with these names are used.

    Returns:
        The networks, ordered by address.
    """
    wanted = set(interfaces) if interfaces is not None else None
    found: dict[ipaddress.IPv4Network, tuple[list[str], set[ipaddress.IPv4Address]]] = {}
    for adapter in adapters:
        if wanted is not None and adapter.name not in wanted:
            continue
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):  # IPv6 addresses come as tuples
                continue
            with contextlib.suppress(ValueError):
                iface = ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}")
                network = iface.network
                if network.prefixlen >= 32 or any(network.subnet_of(s) for s in _SKIPPED):
                    continue
                if not is_up(adapter.name):
                    continue
                names, own = found.setdefault(network, ([], set()))
                if adapter.name not in names:
                    names.append(adapter.name)
                own.add(iface.ip)
    return [
        LocalNetwork(network=net, interfaces=tuple(names), own_addresses=frozenset(own))
        for net, (names, own) in sorted(found.items())
    ]


def system_networks(interfaces: Iterable[str] | None = None) -> list[LocalNetwork]:
    """The networks of this machine's interfaces (the one call to ``ifaddr``)."""
    return local_networks(ifaddr.get_adapters(), interfaces=interfaces)
