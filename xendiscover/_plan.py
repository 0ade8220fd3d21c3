"""A scan's inputs, checked before the first packet: :func:`plan` → :class:`ScanPlan`."""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypedDict, Unpack

from xendiscover._errors import ScanLimitError, TargetError
from xendiscover._fingerprint import WELL_KNOWN_PORTS
from xendiscover._networks import why_no_networks
from xendiscover._resolve import parse_nameserver
from xendiscover._sources import Discovery, OSSystem, Parts, System, discover_sources
from xendiscover._sweep import Job, ScanStats, auto_workers, default_window
from xendiscover._targets import (
    DEFAULT_MAX_HOSTS,
    DEFAULT_MAX_PROBES,
    Resolver,
    TargetSpace,
    parse_ports,
)


class _LocalNetworks:
    """The type of :data:`LOCAL_NETWORKS` and its siblings: what an automatic run takes.

    Combine them with ``|``: ``LOCAL_NETWORKS | ROUTED_NETWORKS``.
    """

    def __init__(self, parts: Parts, name: str) -> None:
        self.parts = parts
        self._name = name

    def __or__(self, other: _LocalNetworks) -> _LocalNetworks:
        mine, theirs = self.parts, other.parts
        parts = Parts(
            interfaces=mine.interfaces or theirs.interfaces,
            routes=mine.routes or theirs.routes,
            ipv6=mine.ipv6 or theirs.ipv6,
        )
        return _LocalNetworks(parts, f"{self._name} | {other._name}")

    def __repr__(self) -> str:
        return self._name


#: Pass as the targets to sweep the IPv4 networks of this machine's up
#: interfaces (what the command does without targets), the hosts of its
#: IPv4 neighbour table first. A library call never sweeps them unless asked
#: this way.
LOCAL_NETWORKS: Final = _LocalNetworks(Parts(interfaces=True), "LOCAL_NETWORKS")

#: The IPv4 networks behind gateways of the main routing table (``--routes``;
#: see the docs for the routes left out). Combine: ``LOCAL_NETWORKS | ROUTED_NETWORKS``.
ROUTED_NETWORKS: Final = _LocalNetworks(Parts(interfaces=False, routes=True), "ROUTED_NETWORKS")

#: The IPv6 hosts on this machine's links: answers to an ICMPv6 echo to
#: ``ff02::1`` (sent from each global/ULA address) and the IPv6 neighbour
#: table. Global and ULA addresses are swept; link-local ones are listed only.
IPV6_NEIGHBOURS: Final = _LocalNetworks(Parts(interfaces=False, ipv6=True), "IPV6_NEIGHBOURS")

#: What a scan sweeps: target specs, or :data:`LOCAL_NETWORKS` and its siblings.
Targets = Iterable[str] | _LocalNetworks

#: Where an automatic run reads the OS (tests replace it with data).
system_state: Callable[[], System] = OSSystem


if TYPE_CHECKING:
    from xendiscover._backend import Backend
    from xendiscover._resolve import NameResolver

_log = logging.getLogger("xendiscover")

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "IPV6_NEIGHBOURS",
    "LOCAL_NETWORKS",
    "MAX_TIMEOUT",
    "ROUTED_NETWORKS",
    "ScanOptions",
    "ScanPlan",
    "Targets",
    "discovery_of",
    "plan",
]

#: The ports swept when none is named: every Xen management port we know.
DEFAULT_PORTS: tuple[int, ...] = WELL_KNOWN_PORTS

#: Seconds a connect attempt may wait: first attempts' deadline until
#: round-trip times are known, and the last attempt's at an address that has
#: answered on no port (``_sweep._prober.Prober`` has the whole schedule).
DEFAULT_TIMEOUT = 1.0

#: The longest ``timeout`` accepted, in seconds. A connect that has not been
#: answered in a minute will not be; a larger value only lets a tarpit hold
#: the scan (``inf`` would hold it forever).
MAX_TIMEOUT = 60.0

#: Extra attempts after a timeout. At 5% loss each way an attempt at an open
#: port fails about one time in ten; with three retries, one port in 10,000
#: is missed. The retries wait only as long as round-trip times say, and an
#: address silent on every port spreads them over its ports
#: (``_sweep._prober.silent_attempts``), so they cost little on a dark network.
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class ScanPlan:
    """A checked scan, ready to run: every input validated, nothing sent yet.

    Attributes:
        space: The addresses to sweep.
        ports: The TCP ports to try on each address.
        timeout: Seconds one connect attempt may wait.
        retries: Extra attempts after a timeout.
        window: The most connects pending at once.
        nameservers: DNS servers for reverse lookups (system's when empty).
        resolve: Whether to look up names.
        fingerprint: Whether to ask each open port what it is.
        rate: The most connects started per second, or ``None``.
        workers: Probe processes (1: all in this one).
    """

    space: TargetSpace
    ports: tuple[int, ...]
    timeout: float
    retries: int
    window: int
    nameservers: tuple[str, ...]
    resolve: bool
    fingerprint: bool
    rate: float | None = None
    workers: int = 1

    @property
    def total(self) -> int:
        """The number of probes: addresses × ports."""
        return self.space.size * len(self.ports)

    @property
    def job(self) -> Job:
        """What the sweep needs of the plan (:func:`~xendiscover._sweep.sweep`)."""
        return Job(self.space, self.ports, self.timeout, self.retries, self.window, self.rate)


class ScanOptions(TypedDict, total=False):
    """The options of :func:`~xendiscover.scan` and :func:`~xendiscover.discover`.

    All are optional.

    Attributes:
        port: One port or several; all well-known Xen ports by default. A
            string takes nmap's ``-p`` syntax (``"80,443"``, ``"8000-8010"``,
            ``"-"`` for all).
        exclude: Targets to leave out (same syntax as the targets).
        interfaces: With no targets, sweep only these interfaces' networks.
        timeout: Seconds a connect attempt may wait for an answer (1.0, at
            most 60): first attempts' deadline until round-trip times are
            known (it then follows them, never below 0.25 s), and the last
            attempt's at an address that has answered on no port.
        retries: Extra attempts after a timeout, so a lost SYN costs no host
            (3). An address silent on every port spreads them over its
            ports, at least one each.
        concurrency: The most connects in flight; sized from the open-file
            limit by default.
        max_hosts: Refuse sweeps of more addresses than this (65,536).
        max_probes: Refuse sweeps of more probes (addresses × ports) than
            this (1,048,576: every port of 16 addresses).
        resolve: Look up each host's name by PTR (True).
        nameservers: DNS servers for names (``IP`` or ``IP:PORT``); the
            system's resolver configuration by default.
        fingerprint: Probe each open port for the service behind it (True).
        shard: ``(i, n)``: sweep only the i-th of n interleaved shards of the
            targets, so n machines together sweep them exactly once.
        rate: The most new connections per second (no limit by default).
        workers: Probe processes for the sweep; by default one per core for
            sweeps of 32,768 probes or more, else 1.
        backend: All the scan's I/O: connects, streams, probe processes, the
            clock (:class:`~xendiscover.SocketBackend`; tests pass
            :class:`xendiscover.testing.FakeBackend`).
        resolver: Where names come from (tests pass a fake).
        stats: Counters updated as the sweep runs, for progress displays.
    """

    port: int | str | Iterable[int | str] | None
    exclude: Iterable[str]
    interfaces: Iterable[str] | None
    timeout: float
    retries: int
    concurrency: int | None
    max_hosts: int
    max_probes: int
    resolve: bool
    nameservers: Sequence[str]
    fingerprint: bool
    shard: tuple[int, int] | None
    rate: float | None
    workers: int | None
    backend: Backend | None
    resolver: NameResolver | None
    stats: ScanStats | None


def _ports(port: int | str | Iterable[int | str] | None) -> tuple[int, ...]:
    if port is None:
        return DEFAULT_PORTS
    raw = [port] if isinstance(port, int | str) else list(port)
    if not raw:
        return DEFAULT_PORTS
    return tuple(dict.fromkeys(port for p in raw for port in parse_ports(p)))


def _check_numbers(options: ScanOptions) -> None:
    """Refuse out-of-range numeric options, each with a one-line reason."""
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    if not (0 < timeout <= MAX_TIMEOUT and math.isfinite(timeout)):
        raise TargetError(f"invalid timeout {timeout}: must be more than 0 and at most 60 seconds")
    checks = (
        ("retries", options.get("retries"), 0),
        ("concurrency", options.get("concurrency"), 1),
        ("max-hosts", options.get("max_hosts"), 1),
        ("max-probes", options.get("max_probes"), 1),
        ("workers", options.get("workers"), 1),
    )
    for name, value, least in checks:
        if value is not None and value < least:
            raise TargetError(f"invalid {name} {value}: must be {least} or more")
    rate = options.get("rate")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise TargetError(f"invalid rate {rate}: must be more than 0 per second")


def discovery_of(targets: _LocalNetworks, options: ScanOptions, *, send: bool = True) -> Discovery:
    """Read the OS (:data:`system_state`) for what an automatic run of ``targets`` sweeps.

    ``send=False`` sends no ICMPv6 echo (``--list-targets``).
    """
    return discover_sources(
        system_state(),
        targets.parts,
        interfaces=options.get("interfaces"),
        max_hosts=options.get("max_hosts", DEFAULT_MAX_HOSTS),
        send=send,
    )


def _discovered_space(
    targets: _LocalNetworks,
    options: ScanOptions,
    names: Mapping[str, str] | None,
    discovered: Discovery | None,
) -> TargetSpace:
    found = discovered if discovered is not None else discovery_of(targets, options)
    for note in found.notes:
        _log.warning("%s", note)
    for skip in found.skipped:
        if skip.kind == "ipv6-host":
            _log.info("IPv6 host %s on %s: %s", skip.target, skip.interface, skip.reason)
    if not found.networks and not found.targets:
        if targets.parts.interfaces:
            system = system_state()
            interfaces = options.get("interfaces")
            up = lambda name: bool(system.flags(name) & 1)  # noqa: E731
            raise TargetError(why_no_networks(system.adapters(), is_up=up, interfaces=interfaces))
        raise TargetError(f"{targets!r} found nothing to sweep; name the targets")
    first = found.first if options.get("shard") is None else ()  # shards must agree on order
    return TargetSpace.from_networks(
        found.networks,
        exclude=list(options.get("exclude", ())),
        extra=found.targets,
        first=first,
        **_resolver(names),
    )


def _space(
    targets: Targets,
    options: ScanOptions,
    names: Mapping[str, str] | None,
    discovered: Discovery | None = None,
) -> TargetSpace:
    exclude = list(options.get("exclude", ()))
    if not isinstance(targets, _LocalNetworks):
        if targets is None:
            raise TargetError("no target: name the targets, or pass LOCAL_NETWORKS")
        if isinstance(targets, str):
            raise TargetError("targets must be a list of strings, not one string")
        specs = list(targets)
        if not specs:
            raise TargetError("no target: name the targets, or pass LOCAL_NETWORKS")
        if options.get("interfaces"):
            raise TargetError("--interface chooses networks to discover: give it without targets")
        space = TargetSpace.from_specs(specs, exclude=exclude, **_resolver(names))
    else:
        space = _discovered_space(targets, options, names, discovered)
    _warn_unusual(space)
    if (shard := options.get("shard")) is not None:
        space = space.sharded(*shard)
    space.check_size(options.get("max_hosts", DEFAULT_MAX_HOSTS))
    return space


#: Address ranges no management service sits on: named explicitly, they draw a warning.
_UNUSUAL = (
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("ff00::/8"), "multicast"),
)


def _overlaps(space: TargetSpace, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    low, high = int(network.network_address), int(network.broadcast_address)
    return any(
        version == network.version and start <= high and end >= low
        for version, spans in space.intervals
        for start, end in spans
    )


def _warn_unusual(space: TargetSpace) -> None:
    """Warn (not skip) when named targets reach into link-local or multicast space."""
    for network, kind in _UNUSUAL:
        if _overlaps(space, network):
            _log.warning("the targets include %s addresses (%s); they are probed", kind, network)


def _check_probes(addresses: int, ports: int, limit: int) -> None:
    """Refuse a sweep of more than ``limit`` probes (``-p-`` over a network)."""
    if addresses * ports > limit:
        raise ScanLimitError(
            f"refusing to make {addresses * ports:,} probes ({addresses:,} addresses × "
            f"{ports:,} ports; limit {limit:,}); narrow the targets or ports, or raise "
            "the limit with --max-probes"
        )


def _resolver(names: Mapping[str, str] | None) -> dict[str, Resolver]:
    """Host names from a table resolved beforehand, or (no table) the system's resolver."""
    if names is None:
        return {}

    def lookup(name: str) -> str:
        try:
            return names[name]
        except KeyError:
            raise TargetError(f"cannot resolve host name {name!r}") from None

    return {"resolve": lookup}


def plan(
    targets: Targets,
    *,
    resolved: Mapping[str, str] | None = None,
    discovered: Discovery | None = None,
    **options: Unpack[ScanOptions],
) -> ScanPlan:
    """Check a scan's inputs and work out what it will sweep; send nothing.

    ``targets`` are target specs, or :data:`LOCAL_NETWORKS` for the IPv4
    networks of this machine's up interfaces. The I/O options (``backend``,
    ``resolver``, ``stats``) are ignored here; see :class:`ScanOptions` for
    the rest. Changes no process limit.

    Host-name targets are looked up in ``resolved`` (name → address), which
    :func:`~xendiscover.scan` fills beforehand without blocking, through the
    scan's own nameservers; called alone, ``plan`` asks the system's resolver
    (a blocking call). Likewise an automatic run's sources come from
    ``discovered`` when :func:`~xendiscover.scan` read them beforehand.

    Raises:
        TargetError: An input is invalid, or the sweep is too large.
    """
    _check_numbers(options)
    ports = _ports(options.get("port"))
    servers = tuple(parse_nameserver(n) for n in options.get("nameservers", ()))
    space = _space(targets, options, resolved, discovered)
    _check_probes(space.size, len(ports), options.get("max_probes", DEFAULT_MAX_PROBES))
    return ScanPlan(
        space=space,
        ports=ports,
        timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
        retries=options.get("retries", DEFAULT_RETRIES),
        window=options.get("concurrency") or default_window(),
        nameservers=servers,
        resolve=options.get("resolve", True),
        fingerprint=options.get("fingerprint", True),
        rate=options.get("rate"),
        workers=options.get("workers") or auto_workers(space.size * len(ports)),
    )
