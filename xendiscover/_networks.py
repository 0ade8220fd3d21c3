"""The local networks to sweep, from the machine's interfaces.

The functions here are pure over ``ifaddr`` adapters: :func:`local_networks`
takes the adapters and an "is this interface up?" function as parameters, so
tests feed them as data. Only :func:`system_networks` touches the OS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import ifaddr

from xendiscover import _platform

__all__ = [
    "LocalNetwork",
    "explain_system_networks",
    "interface_flags",
    "interface_is_up",
    "local_networks",
    "system_networks",
    "why_no_networks",
]

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


def interface_flags(name: str) -> int:
    """The interface's ``IFF_*`` flags (``SIOCGIFFLAGS``); 0 if the kernel does not know it.

    An alias such as ``eth0:1`` shares its device's flags. Where
    ``SIOCGIFFLAGS`` is not known to work (its number and ``struct ifreq``
    are Linux's; see :mod:`xendiscover._platform`), every interface is
    reported up and nothing else.
    """
    if not _platform.FEATURES.ifflags:
        return _IFF_UP
    device = name.split(":", 1)[0]
    request = struct.pack("16sH14x", device.encode()[:15], 0)
    try:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request)
    except (OSError, ImportError):
        return 0
    (flags,) = struct.unpack_from("H", reply, 16)
    return int(flags)


def interface_is_up(name: str) -> bool:
    """Whether the interface ``name`` is administratively up (``IFF_UP``).

    ``ifaddr`` reports addresses of down interfaces too, so the sweep asks
    the kernel with ``SIOCGIFFLAGS``. An alias such as ``eth0:1`` shares its
    device's flags. An interface the kernel does not know is not up (see
    :func:`interface_flags` for systems without ``SIOCGIFFLAGS``).
    """
    return bool(interface_flags(name) & _IFF_UP)


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


def _swept(ip: ifaddr.IP) -> bool:
    """Whether an address's network is one a sweep would take (see :func:`local_networks`)."""
    if not isinstance(ip.ip, str):
        return False
    try:
        network = ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}").network
    except ValueError:
        return False
    return network.prefixlen < 32 and not any(network.subnet_of(s) for s in _SKIPPED)


def why_no_networks(
    adapters: Iterable[ifaddr.Adapter],
    *,
    is_up: Callable[[str], bool] = interface_is_up,
    interfaces: Iterable[str] | None = None,
) -> str:
    """Say, in one line, why :func:`local_networks` found nothing to sweep.

    Names the interface and the reason: it does not exist, it is down, or it
    has no IPv4 network a sweep takes (loopback, link-local and single
    addresses are never swept).
    """
    by_name: dict[str, list[ifaddr.IP]] = {}
    for adapter in adapters:
        by_name.setdefault(adapter.name, []).extend(adapter.ips)
    names = list(interfaces) if interfaces is not None else sorted(by_name)
    down = [n for n in names if n in by_name and any(map(_swept, by_name[n])) and not is_up(n)]
    for name in names:
        if name not in by_name:
            return f"interface {name!r} does not exist; name the targets or another interface"
    if interfaces is not None and down:
        return f"interface {down[0]!r} is down; bring it up or name the targets"
    if interfaces is None:
        subject = "no up interface has"
        if down:
            subject = f"no up interface ({', '.join(repr(n) for n in down)} down) has"
    elif len(names) == 1:
        subject = f"interface {names[0]!r} has"
    else:
        subject = f"interfaces {', '.join(repr(n) for n in names)} have"
    return (
        f"{subject} no IPv4 network to sweep (loopback, link-local and /32 networks "
        "are never swept); name the targets"
    )


def explain_system_networks(interfaces: Iterable[str] | None = None) -> str:
    """:func:`why_no_networks` for this machine's interfaces."""
    return why_no_networks(ifaddr.get_adapters(), interfaces=interfaces)
