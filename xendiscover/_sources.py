"""What an automatic run sweeps, and why: interfaces, routes, neighbours, IPv6 echo.

Every decision here is a pure function over OS data passed in as values
(``ifaddr`` adapters, :class:`~xendiscover._netlink.Route` and
:class:`~xendiscover._netlink.Neighbour` lists, echo answers), returning a
:class:`Discovery`: the :class:`Source` of every target, each
:class:`Skipped` thing with its reason, and the addresses to probe first.
:class:`System` is the one edge that reads the OS (``ifaddr``, netlink, an
ICMPv6 echo); tests pass another.

The parts of an automatic run (:class:`Parts`):

- ``interfaces``: the IPv4 networks of the up interfaces (as before), with
  the addresses of the IPv4 neighbour table (reachable, stale, delay) probed
  first, so that hosts known to be alive are reported first.
- ``routes``: IPv4 networks behind a gateway of the main routing table
  (:func:`routed_networks` has the rules).
- ``ipv6``: IPv6 hosts on the links: answers to an ICMPv6 echo to ``ff02::1``
  and the IPv6 neighbour table (:func:`ipv6_hosts`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import ifaddr

from xendiscover import _netlink as nl
from xendiscover._errors import TargetError
from xendiscover._networks import LocalNetwork, interface_flags, local_networks

__all__ = [
    "ALIVE_STATES",
    "Discovery",
    "EchoAnswer",
    "OSSystem",
    "Parts",
    "Skipped",
    "Source",
    "StaticSystem",
    "System",
    "alive_neighbours",
    "discover_sources",
    "echo_sources",
    "interface_skips",
    "ipv6_hosts",
    "routed_networks",
    "system_echo",
]

IPv4Net = ipaddress.IPv4Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Neighbour states that say a host answered lately (``ip neigh``): their
#: addresses are probed first. ``failed`` and ``incomplete`` did not answer.
ALIVE_STATES = frozenset({"reachable", "stale", "delay", "probe"})

# <net/if.h>
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFF_POINTOPOINT = 0x10

_LOOPBACK4 = IPv4Net("127.0.0.0/8")
_LINK_LOCAL4 = IPv4Net("169.254.0.0/16")
_LINK_LOCAL6 = ipaddress.IPv6Network("fe80::/10")
_ULA = ipaddress.IPv6Network("fc00::/7")
_GLOBAL6 = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True)
class Parts:
    """Which sources an automatic run takes.

    Attributes:
        interfaces: The IPv4 networks of the up interfaces.
        routes: IPv4 networks behind gateways (``--routes``).
        ipv6: IPv6 hosts on the links (echo to ``ff02::1`` and the neighbour table).
    """

    interfaces: bool = True
    routes: bool = False
    ipv6: bool = False


@dataclass(frozen=True)
class Source:
    """Something that will be swept, and where it came from.

    Attributes:
        kind: ``interface``, ``route``, ``ipv6-echo`` or ``ipv6-neighbour``.
        target: A network or an address.
        interface: The interface it is reached through, when known.
        addresses: How many addresses of it are swept.
        detail: More about it (``via 10.0.0.1``), or empty.
    """

    kind: str
    target: str
    interface: str | None
    addresses: int
    detail: str = ""


@dataclass(frozen=True)
class Skipped:
    """Something left out of the sweep, with the reason.

    Attributes:
        kind: ``interface``, ``network``, ``route``, ``ipv6-route`` or ``ipv6-host``.
        target: The interface's name, the network or the address.
        interface: The interface, when it is not the target itself.
        reason: Why it is not swept.
    """

    kind: str
    target: str
    interface: str | None
    reason: str


@dataclass(frozen=True)
class Discovery:
    """What an automatic run sweeps: its sources, what it leaves out, what goes first.

    Attributes:
        networks: The IPv4 networks of the up interfaces (the sweep's base).
        sources: Every source, in the order they are listed.
        skipped: Everything left out, each with its reason.
        first: Addresses known to be alive, probed before the others.
        notes: One-line remarks for the user (a refused ping socket).
    """

    networks: tuple[LocalNetwork, ...] = ()
    sources: tuple[Source, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    first: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def targets(self) -> list[str]:
        """The target specs of the sources other than the interface networks."""
        return [s.target for s in self.sources if s.kind != "interface"]


@dataclass(frozen=True)
class EchoAnswer:
    """A host that answered an ICMPv6 echo to ``ff02::1``.

    Attributes:
        address: The address it answered from.
        interface: The interface the echo went out on.
    """

    address: ipaddress.IPv6Address
    interface: str


class System(Protocol):
    """The OS state an automatic run reads (tests pass their own)."""

    def adapters(self) -> Sequence[ifaddr.Adapter]:
        """The interfaces and their addresses (``ifaddr.get_adapters()``)."""

    def flags(self, name: str) -> int:
        """An interface's ``IFF_*`` flags (0 if it does not exist)."""

    def name_of(self, index: int) -> str | None:
        """An interface's name from its index."""

    def routes(self, family: int) -> list[nl.Route]:
        """Every route of ``family``, all tables."""

    def neighbours(self, family: int) -> list[nl.Neighbour]:
        """The neighbour table of ``family``."""

    def lookup(self, address: IPAddress) -> nl.Route | None:
        """The route the kernel takes to ``address``; ``None`` if it has none."""

    def echo(self, sources: Sequence[tuple[str, str]]) -> tuple[list[EchoAnswer], str | None]:
        """Echo ``ff02::1`` from each ``(interface, source address)``: answers, and a note."""


# ------------------------------------------------------------------ interfaces


def _ipv4_skip(network: IPv4Net, up: bool) -> str | None:
    if network.subnet_of(_LOOPBACK4):
        return "loopback"
    if network.subnet_of(_LINK_LOCAL4):
        return "link-local"
    if network.prefixlen >= 32:
        return "a single address (/32)"
    return None if up else "interface down"


def _ipv6_skip(network: ipaddress.IPv6Network) -> str:
    if network.prefixlen == 128 and network.network_address == ipaddress.IPv6Address("::1"):
        return "loopback"
    if network.subnet_of(_LINK_LOCAL6):
        return "link-local"
    return f"IPv6 /{network.prefixlen}: too large to walk (hosts come from echo and neighbours)"


def interface_skips(
    adapters: Iterable[ifaddr.Adapter],
    *,
    flags: Callable[[str], int],
    interfaces: Iterable[str] | None = None,
) -> list[Skipped]:
    """Each interface and network an automatic run does not walk, with the reason.

    Down interfaces once each; then each network that is loopback,
    link-local, a single address, or IPv6 (a /64 cannot be walked).
    """
    wanted = set(interfaces) if interfaces is not None else None
    skipped: list[Skipped] = []
    for adapter in adapters:
        if wanted is not None and adapter.name not in wanted:
            continue
        bits = flags(adapter.name)
        up = bool(bits & _IFF_UP)
        if not up:
            skipped.append(Skipped("interface", adapter.name, None, "down"))
        elif bits & _IFF_LOOPBACK:
            skipped.append(Skipped("interface", adapter.name, None, "loopback"))
            continue
        for ip in adapter.ips:
            reason: str | None
            if isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    net4 = ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}").network
                    reason = _ipv4_skip(net4, up)
                    if reason is not None:
                        skipped.append(Skipped("network", str(net4), adapter.name, reason))
                continue
            with contextlib.suppress(ValueError):
                net6 = ipaddress.IPv6Interface(f"{ip.ip[0]}/{ip.network_prefix}").network
                reason = _ipv6_skip(net6) if up else "interface down"
                skipped.append(Skipped("network", str(net6), adapter.name, reason))
    return skipped


# ------------------------------------------------------------------ routes


@dataclass(frozen=True)
class _Link:
    """An IPv4 network of one of our interfaces (up or down)."""

    network: IPv4Net
    interface: str
    up: bool


def _links(adapters: Iterable[ifaddr.Adapter], flags: Callable[[str], int]) -> list[_Link]:
    links = []
    for adapter in adapters:
        up = bool(flags(adapter.name) & _IFF_UP)
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    net = ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}").network
                    links.append(_Link(net, adapter.name, up))
    return links


_SPLIT_DEFAULTS = frozenset({IPv4Net("0.0.0.0/1"), IPv4Net("128.0.0.0/1")})


def _shape_reason(route: nl.Route) -> str | None:
    """Why a route's type or prefix alone rules it out."""
    if route.type != "unicast":
        return f"{route.type} route"
    if route.destination.prefixlen == 0:
        return "default route"
    if route.destination in _SPLIT_DEFAULTS:
        return "split default route (0/1 + 128/1, as VPN clients install)"
    if route.destination.prefixlen == route.destination.max_prefixlen:
        return "host route"
    if route.gateway is None:
        return "no gateway (on-link route)"
    return None


def _link_reason(destination: IPv4Net, links: Sequence[_Link]) -> str | None:
    for link in links:
        if destination.overlaps(link.network):
            if link.up:
                return f"already on-link ({link.network} on {link.interface})"
            return f"the network of {link.interface}, which is down"
    return None


@dataclass(frozen=True)
class _RouteRules:
    """What :func:`routed_networks` checks a route against."""

    links: Sequence[_Link]
    name_of: Callable[[int], str | None]
    flags: Callable[[str], int]
    lookup: Callable[[IPAddress], nl.Route | None]
    interfaces: frozenset[str] | None
    max_hosts: int


def _device_reason(device: str | None, rules: _RouteRules) -> str | None:
    if rules.interfaces is not None:
        if device in rules.interfaces:
            return None
        return f"over {device}, which is not named with --interface"
    if device is not None and rules.flags(device) & _IFF_POINTOPOINT:
        return f"over point-to-point device {device} (a VPN?); name it with -i to sweep it"
    return None


def _lookup_reason(route: nl.Route, rules: _RouteRules) -> str | None:
    """Whether the kernel really sends the prefix this way (policy rules apply)."""
    probe = ipaddress.ip_address(int(route.destination.network_address) + 1)
    found = rules.lookup(probe)
    if found is None or found.type != "unicast":
        return f"the kernel has no route to {probe} (policy routing)"
    if found.gateway != route.gateway or found.oif != route.oif or found.table != route.table:
        via = found.gateway or "on-link"
        return f"policy routing sends {probe} via {via} (table {found.table})"
    return None


def _route_reason(route: nl.Route, device: str | None, rules: _RouteRules) -> str | None:
    assert isinstance(route.destination, IPv4Net)
    reason = (
        _shape_reason(route)
        or _link_reason(route.destination, rules.links)
        or _device_reason(device, rules)
    )
    if reason is None and (size := route.destination.num_addresses - 2) > rules.max_hosts:
        reason = f"{size:,} addresses, more than --max-hosts {rules.max_hosts:,}"
    return reason or _lookup_reason(route, rules)


def routed_networks(
    routes: Iterable[nl.Route],
    *,
    adapters: Iterable[ifaddr.Adapter],
    flags: Callable[[str], int],
    name_of: Callable[[int], str | None],
    lookup: Callable[[IPAddress], nl.Route | None],
    interfaces: Iterable[str] | None = None,
    max_hosts: int,
) -> tuple[list[Source], list[Skipped]]:
    """The IPv4 networks behind gateways worth sweeping, and every route left out.

    Kept: unicast IPv4 routes of the main table with a gateway. Left out,
    each with its reason: other tables, default routes and split defaults
    (``0/1`` + ``128/1`` from VPN clients), host routes, blackhole /
    unreachable / prohibit routes, on-link routes, prefixes already on an
    interface (or on one that is down), routes over point-to-point devices
    (VPNs) unless their interface is named, prefixes larger than
    ``max_hosts``, and prefixes the kernel sends elsewhere when asked for one
    of their addresses (policy routing). IPv6 routes behind a gateway are
    listed and never swept.
    """
    rules = _RouteRules(
        links=_links(adapters, flags),
        name_of=name_of,
        flags=flags,
        lookup=lookup,
        interfaces=frozenset(interfaces) if interfaces is not None else None,
        max_hosts=max_hosts,
    )
    kept: list[Source] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for route in routes:
        if route.table != nl.RT_TABLE_MAIN or str(route.destination) in seen:
            continue
        seen.add(str(route.destination))
        device = name_of(route.oif) if route.oif is not None else None
        if route.destination.version == 6:
            if route.gateway is not None and route.destination.prefixlen > 0:
                why = "IPv6 routed prefix: listed, never swept"
                skipped.append(Skipped("ipv6-route", str(route.destination), device, why))
            continue
        if route.gateway is None and any(route.destination == k.network for k in rules.links):
            continue  # an interface's own network: listed with the interfaces
        reason = _route_reason(route, device, rules)
        if reason is not None:
            skipped.append(Skipped("route", str(route.destination), device, reason))
            continue
        size = route.destination.num_addresses - 2
        kept.append(Source("route", str(route.destination), device, size, f"via {route.gateway}"))
    return kept, skipped


# ------------------------------------------------------------------ neighbours


def alive_neighbours(
    neighbours: Iterable[nl.Neighbour], networks: Sequence[LocalNetwork]
) -> list[str]:
    """IPv4 neighbours known alive inside the swept networks: probed first."""
    own = {a for n in networks for a in n.own_addresses}
    found = [
        n.address
        for n in neighbours
        if isinstance(n.address, ipaddress.IPv4Address)
        and n.states & ALIVE_STATES
        and n.address not in own
        and any(n.address in net.network for net in networks)
    ]
    return [str(a) for a in sorted(set(found))]


def _v6_own(adapters: Iterable[ifaddr.Adapter]) -> dict[str, list[ipaddress.IPv6Address]]:
    """Each interface's IPv6 addresses."""
    own: dict[str, list[ipaddress.IPv6Address]] = {}
    for adapter in adapters:
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    own.setdefault(adapter.name, []).append(ipaddress.IPv6Address(ip.ip[0]))
    return own


def echo_sources(
    adapters: Iterable[ifaddr.Adapter],
    *,
    flags: Callable[[str], int],
    interfaces: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    """``(interface, address)`` for each global or ULA address of each up interface."""
    wanted = set(interfaces) if interfaces is not None else None
    pairs = []
    for name, addresses in _v6_own(adapters).items():
        bits = flags(name)
        if (wanted is not None and name not in wanted) or not bits & _IFF_UP:
            continue
        if bits & _IFF_LOOPBACK:
            continue
        pairs += [(name, str(a)) for a in addresses if a in _GLOBAL6 or a in _ULA]
    return pairs


@dataclass
class _Hosts:
    """IPv6 candidates gathered from echo answers and neighbours."""

    sources: dict[str, Source] = field(default_factory=dict)
    link_local: dict[str, Skipped] = field(default_factory=dict)


def ipv6_hosts(
    answers: Iterable[EchoAnswer],
    neighbours: Iterable[nl.Neighbour],
    *,
    own: Iterable[IPAddress],
    name_of: Callable[[int], str | None],
    interfaces: Iterable[str] | None = None,
) -> tuple[list[Source], list[Skipped]]:
    """IPv6 hosts to sweep, from echo answers and the neighbour table.

    Global and ULA addresses are swept. A link-local address (``fe80::/10``)
    is not: it needs a scope and says nothing a global address does not; it
    is listed as the same machine as a global address with the same
    link-layer address, or as a link-local-only host.
    """
    wanted = set(interfaces) if interfaces is not None else None
    mine = set(own)
    hosts = _Hosts()
    by_mac: dict[str, str] = {}
    entries: list[tuple[ipaddress.IPv6Address, str | None, str, str | None]] = [
        (a.address, a.interface, "ipv6-echo", None) for a in answers
    ]
    entries += [
        (n.address, name_of(n.ifindex), "ipv6-neighbour", n.lladdr)
        for n in neighbours
        if isinstance(n.address, ipaddress.IPv6Address) and n.states & ALIVE_STATES
    ]
    for address, device, kind, mac in entries:
        if address in mine or address.is_multicast or (wanted and device not in wanted):
            continue
        text = str(address)
        if address in _LINK_LOCAL6:
            hosts.link_local.setdefault(text, Skipped("ipv6-host", text, device, mac or ""))
        elif text not in hosts.sources:
            hosts.sources[text] = Source(kind, text, device, 1)
        if mac and address not in _LINK_LOCAL6:
            by_mac.setdefault(mac, text)
    skipped = [
        Skipped(s.kind, s.target, s.interface, _link_local_reason(s.reason, by_mac))
        for s in hosts.link_local.values()
    ]
    return list(hosts.sources.values()), skipped


def _link_local_reason(mac: str, by_mac: dict[str, str]) -> str:
    if mac and mac in by_mac:
        return f"link-local address of {by_mac[mac]} (same link-layer address {mac})"
    return "link-local only: not swept (no global or ULA address; fe80:: needs a scope)"


# ------------------------------------------------------------------ the whole discovery


def _interface_sources(networks: Sequence[LocalNetwork]) -> list[Source]:
    return [
        Source(
            "interface",
            str(n.network),
            ",".join(n.interfaces),
            max(0, n.network.num_addresses - (2 if n.network.prefixlen < 31 else 0))
            - len(n.own_addresses),
        )
        for n in networks
    ]


@dataclass
class _Gathered:
    """What :func:`discover_sources` has found so far."""

    system: System
    adapters: list[ifaddr.Adapter]
    wanted: list[str] | None
    sources: list[Source] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def neighbours(self, family: int) -> list[nl.Neighbour]:
        """A neighbour table; one that cannot be read is empty, with a note."""
        try:
            return self.system.neighbours(family)
        except nl.NetlinkError as exc:
            self.notes.append(f"cannot read the neighbour table ({exc}): no hosts from it")
            return []

    def routes(self, max_hosts: int) -> None:
        """Add the networks behind gateways.

        Raises:
            TargetError: The routing table cannot be read.
        """
        try:
            routes = self.system.routes(socket.AF_INET) + self.system.routes(socket.AF_INET6)
            kept, left = routed_networks(
                routes,
                adapters=self.adapters,
                flags=self.system.flags,
                name_of=self.system.name_of,
                lookup=self.system.lookup,
                interfaces=self.wanted,
                max_hosts=max_hosts,
            )
        except nl.NetlinkError as exc:
            raise TargetError(f"cannot read the routing table: {exc}") from None
        self.sources += kept
        self.skipped += left

    def ipv6(self, send: bool) -> None:
        """Add the IPv6 hosts of the links: echo answers (if ``send``) and neighbours."""
        pairs = echo_sources(self.adapters, flags=self.system.flags, interfaces=self.wanted)
        answers: list[EchoAnswer] = []
        if not send:
            self.notes.append(
                "no ICMPv6 echo is sent with --list-targets: IPv6 hosts from neighbours"
            )
        elif pairs:
            answers, note = self.system.echo(pairs)
            self.notes += [note] if note else []
        own = [a for addresses in _v6_own(self.adapters).values() for a in addresses]
        found, left = ipv6_hosts(
            answers,
            self.neighbours(socket.AF_INET6),
            own=own,
            name_of=self.system.name_of,
            interfaces=self.wanted,
        )
        self.sources += found
        self.skipped += left


def discover_sources(
    system: System,
    parts: Parts,
    *,
    interfaces: Iterable[str] | None = None,
    max_hosts: int,
    send: bool = True,
) -> Discovery:
    """Read the OS through ``system`` and decide what an automatic run sweeps.

    ``send=False`` (``--list-targets``) sends no ICMPv6 echo: the IPv6 hosts
    then come from the neighbour table alone, and a note says so. A
    neighbour table that cannot be read gives a note, not an error.

    Raises:
        TargetError: ``parts.routes`` and the routing table cannot be read.
    """
    wanted = list(interfaces) if interfaces is not None else None
    got = _Gathered(system, list(system.adapters()), wanted)
    is_up = lambda name: bool(system.flags(name) & _IFF_UP)  # noqa: E731
    networks = local_networks(got.adapters, is_up=is_up, interfaces=wanted)
    got.skipped += interface_skips(got.adapters, flags=system.flags, interfaces=wanted)
    first: list[str] = []
    if parts.interfaces:
        got.sources += _interface_sources(networks)
        if networks:
            first = alive_neighbours(got.neighbours(socket.AF_INET), networks)
    if parts.routes:
        got.routes(max_hosts)
    if parts.ipv6:
        got.ipv6(send)
    return Discovery(
        networks=tuple(networks) if parts.interfaces else (),
        sources=tuple(got.sources),
        skipped=tuple(got.skipped),
        first=tuple(first),
        notes=tuple(got.notes),
    )


# ------------------------------------------------------------------ the OS edge

#: How long the echo to ``ff02::1`` waits for answers, in seconds, after the
#: last request: hosts on a link answer in milliseconds.
ECHO_WAIT = 1.0
#: The most answers kept from one echo (a link of 10,000 hosts is listed
#: as far as this).
MAX_ECHO_ANSWERS = 4096
_ECHO_REQUEST = 128
_ECHO_REPLY = 129
_ALL_NODES = "ff02::1"


def _echo_socket() -> tuple[socket.socket, bool]:
    """A ping socket; a raw ICMPv6 socket where ping sockets are refused (root only).

    Returns the socket and whether it is raw (its replies are not filtered).

    Raises:
        PermissionError: Neither is allowed.
    """
    try:
        return socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6), False
    except PermissionError:
        return socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6), True


def _ping_range() -> str:
    try:
        return " ".join(Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        return "unknown"


@dataclass
class _Echo:
    """One echo request sent: its socket, whether raw, and its interface."""

    sock: socket.socket
    raw: bool
    interface: str
    index: int = 0

    def send(self, ident: int, sequence: int) -> None:
        """Send an echo request to ``ff02::1`` on the interface."""
        request = struct.pack("!BBHHH", _ECHO_REQUEST, 0, 0, ident, sequence)
        self.sock.sendto(request, (_ALL_NODES, 0, 0, self.index))


def _send_echo(source: str, interface: str, ident: int) -> _Echo:
    """Send one echo to ``ff02::1%interface`` from ``source``; return the socket to read."""
    index = socket.if_nametoindex(interface)
    sock, raw = _echo_socket()
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind((source, 0, 0, index))
        echo = _Echo(sock, raw, interface, index)
        echo.send(ident, 1)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return echo


def _answer(echo: _Echo, ident: int) -> EchoAnswer | None:
    """The echo reply waiting on ``echo``'s socket, or ``None`` (another message)."""
    try:
        data, peer = echo.sock.recvfrom(2048)
    except OSError:  # nothing after all, or an ICMP error queued on the socket
        return None
    if data[:1] != bytes([_ECHO_REPLY]) or (echo.raw and data[4:6] != ident.to_bytes(2, "big")):
        return None
    try:
        return EchoAnswer(ipaddress.IPv6Address(str(peer[0]).split("%", 1)[0]), echo.interface)
    except ValueError:
        return None


def _answers(echoes: list[_Echo], ident: int) -> list[EchoAnswer]:
    """Every reply to ``echoes`` within :data:`ECHO_WAIT` (one wait for them all)."""
    answers: list[EchoAnswer] = []
    with selectors.DefaultSelector() as selector:
        for echo in echoes:
            selector.register(echo.sock, selectors.EVENT_READ, echo)
        start = time.monotonic()
        deadline, resend = start + ECHO_WAIT, start + ECHO_WAIT / 4
        while (left := deadline - time.monotonic()) > 0 and len(answers) < MAX_ECHO_ANSWERS:
            if resend and time.monotonic() >= resend:
                resend = 0.0  # once: a multicast request is lost more easily than a unicast one
                for echo in echoes:
                    with contextlib.suppress(OSError):
                        echo.send(ident, 2)
            wait = left if not resend else max(0.0, min(left, resend - time.monotonic()))
            for key, _ in selector.select(wait):
                if (found := _answer(key.data, ident)) is not None:
                    answers.append(found)
    return answers


def system_echo(sources: Sequence[tuple[str, str]]) -> tuple[list[EchoAnswer], str | None]:
    """Echo ``ff02::1`` once from each ``(interface, address)``; the answers and a note.

    Every request is sent first, then the answers are read for
    :data:`ECHO_WAIT` seconds, once; each request is repeated once after a
    quarter of that (a lost multicast packet must not hide a link's hosts).
    Where neither a ping socket nor (as root) a raw socket is allowed, no
    echo is sent and the note says so once.
    """
    echoes: list[_Echo] = []
    failed: list[str] = []
    ident = os.getpid() & 0xFFFF
    try:
        for interface, source in sources:
            try:
                echoes.append(_send_echo(source, interface, ident))
            except PermissionError:
                return [], (
                    "ICMPv6 ping sockets are not allowed for this group (net.ipv4."
                    f"ping_group_range is {_ping_range()}): IPv6 hosts come from the "
                    "neighbour table alone"
                )
            except OSError as exc:  # the interface went away, lost its address, ...
                failed.append(
                    f"the ICMPv6 echo from {source} on {interface} failed: {exc.strerror}"
                )
        return (_answers(echoes, ident) if echoes else []), "; ".join(failed) or None
    finally:
        for echo in echoes:
            echo.sock.close()


class OSSystem:
    """The real :class:`System`: ``ifaddr``, ``SIOCGIFFLAGS``, netlink, ICMPv6 echo."""

    def __init__(self, exchange: nl.Exchange = nl.exchange) -> None:
        self._exchange = exchange

    def adapters(self) -> Sequence[ifaddr.Adapter]:
        """See :class:`System`."""
        return list(ifaddr.get_adapters())

    def flags(self, name: str) -> int:
        """See :class:`System`."""
        return interface_flags(name)

    def name_of(self, index: int) -> str | None:
        """See :class:`System`."""
        try:
            return socket.if_indextoname(index)
        except OSError:
            return None

    def routes(self, family: int) -> list[nl.Route]:
        """See :class:`System`."""
        return nl.parse_routes(self._exchange(nl.route_dump(family)))

    def neighbours(self, family: int) -> list[nl.Neighbour]:
        """See :class:`System`."""
        return nl.parse_neighbours(self._exchange(nl.neighbour_dump(family)))

    def lookup(self, address: IPAddress) -> nl.Route | None:
        """See :class:`System`."""
        return nl.parse_lookup(self._exchange(nl.route_lookup(address)))

    def echo(self, sources: Sequence[tuple[str, str]]) -> tuple[list[EchoAnswer], str | None]:
        """See :class:`System`."""
        return system_echo(sources)


@dataclass
class StaticSystem:
    """A :class:`System` made of data: what tests (and ``--list-targets`` tests) read.

    Attributes:
        adapter_list: The interfaces (``ifaddr.Adapter`` values).
        flag_table: Each interface's ``IFF_*`` flags (missing: 0, unknown).
        index_names: Interface index → name.
        route_table: Family → routes.
        neighbour_table: Family → neighbours.
        lookups: Address → the route a lookup gives (missing: no route).
        answers: What an echo to ``ff02::1`` gets back.
        echo_note: The note an echo returns (a refused ping socket).
        echoed: Each ``(interface, source)`` an echo was asked from, in order.
    """

    adapter_list: list[ifaddr.Adapter] = field(default_factory=list)
    flag_table: dict[str, int] = field(default_factory=dict)
    index_names: dict[int, str] = field(default_factory=dict)
    route_table: dict[int, list[nl.Route]] = field(default_factory=dict)
    neighbour_table: dict[int, list[nl.Neighbour]] = field(default_factory=dict)
    lookups: dict[str, nl.Route] = field(default_factory=dict)
    answers: list[EchoAnswer] = field(default_factory=list)
    echo_note: str | None = None
    echoed: list[tuple[str, str]] = field(default_factory=list)

    def adapters(self) -> Sequence[ifaddr.Adapter]:
        """See :class:`System`."""
        return self.adapter_list

    def flags(self, name: str) -> int:
        """See :class:`System`."""
        return self.flag_table.get(name.split(":", 1)[0], 0)

    def name_of(self, index: int) -> str | None:
        """See :class:`System`."""
        return self.index_names.get(index)

    def routes(self, family: int) -> list[nl.Route]:
        """See :class:`System`."""
        return list(self.route_table.get(family, []))

    def neighbours(self, family: int) -> list[nl.Neighbour]:
        """See :class:`System`."""
        return list(self.neighbour_table.get(family, []))

    def lookup(self, address: IPAddress) -> nl.Route | None:
        """See :class:`System`."""
        return self.lookups.get(str(address))

    def echo(self, sources: Sequence[tuple[str, str]]) -> tuple[list[EchoAnswer], str | None]:
        """See :class:`System`."""
        self.echoed += sources
        return list(self.answers), self.echo_note
