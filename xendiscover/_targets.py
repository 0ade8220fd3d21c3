"""What to sweep: target specifications parsed into a lazy address space.

A :class:`TargetSpace` is a handful of integer intervals per address family,
merged so that overlapping targets are probed once. It counts its addresses
without listing them and walks them lazily, so its memory does not grow with
the size of the sweep.

Target syntax follows nmap's:

======================  ==============================================
``10.0.0.0/24``         a network, every address in it
``10.0.0.7``            one address (IPv6 too: ``fd00::7``)
``10.0.0.10-10.0.0.40`` an inclusive range (IPv6 too)
``10.0.0.10-40``        the same, the last octet only
``10.0.0.1-40,50``      octet lists: a range or number per comma
``10.0.0-1.*``          a range or ``*`` (0-255) in any octet
``db1.example.org``     a host name, resolved now to its first address
======================  ==============================================

In an octet, ``-20`` is ``0-20`` and ``200-`` is ``200-255``, as in nmap.
Ports follow nmap's ``-p`` syntax too (:func:`parse_ports`): ``80,443``,
``8000-8010``, ``-1024``, ``60000-`` and ``-`` (every port, 1-65535).
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from xendiscover._errors import ScanLimitError, TargetError
from xendiscover._networks import LocalNetwork

__all__ = [
    "DEFAULT_MAX_HOSTS",
    "DEFAULT_MAX_PROBES",
    "MAX_TARGET_RANGES",
    "TargetSpace",
    "host_name_of",
    "parse_port",
    "parse_ports",
    "parse_target",
    "parse_target_spans",
]

#: The largest sweep, in addresses, allowed without ``max_hosts``.
DEFAULT_MAX_HOSTS = 65_536

#: The most probes (addresses × ports) allowed without ``max_probes``: every
#: port (``-p-``) of 16 addresses, or the default ports of 149,796.
DEFAULT_MAX_PROBES = 1_048_576

#: The most separate ranges one octet target may name (``*.*.*.1`` names
#: 16,777,216): beyond it the target is refused, whatever ``max_hosts`` says.
MAX_TARGET_RANGES = 65_536

#: Four dot-separated octets of digits, ``*``, ``-`` and ``,`` (nmap's syntax).
_OCTETS = re.compile(r"[0-9*,-]+(?:\.[0-9*,-]+){3}", re.ASCII)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_Interval = tuple[int, int]  # inclusive bounds
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
_BYTES = {4: 4, 6: 16}

Resolver = Callable[[str], str]


def _resolve_first(name: str) -> str:
    """The first address the system resolver gives for ``name``."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise TargetError(f"cannot resolve host name {name!r}") from None
    return str(infos[0][4][0])


def _looks_like_hostname(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return bool(text) and all(
        0 < len(label) <= 63
        and label.replace("-", "").replace("_", "").isalnum()
        and label.isascii()
        and not label.startswith("-")
        for label in labels
    )


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also passes ``²`` and ``٥``, which ``int()`` refuses."""
    return text.isascii() and text.isdigit()


def host_name_of(spec: str) -> str | None:
    """The host name a target names, or ``None`` for networks, addresses and ranges."""
    text = spec.strip()
    if _OCTETS.fullmatch(text):
        return None
    if "/" in text or _ip(text) is not None or ("-" in text and _ip(text.split("-", 1)[0])):
        return None
    if _looks_like_hostname(text) and not _digits(text.replace(".", "")):
        return text
    return None


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _parse_range(spec: str, text: str) -> tuple[int, _Interval] | None:
    """Parse ``a.b.c.d-e.f.g.h`` or ``a.b.c.d-h``; ``None`` if ``text`` is no range."""
    first_text, dash, last_text = text.partition("-")
    if not dash or (first := _ip(first_text)) is None:
        return None
    last = _ip(last_text)
    if last is None and first.version == 4 and _digits(last_text):
        if int(last_text) > 255:
            raise TargetError(f"invalid range {spec!r}: {last_text} is not an octet")
        last = ipaddress.IPv4Address((int(first) & ~0xFF) | int(last_text))
    if last is None or last.version != first.version:
        raise TargetError(f"invalid range {spec!r}")
    if int(last) < int(first):
        raise TargetError(f"invalid range {spec!r}: it ends before it starts")
    return first.version, (int(first), int(last))


def _bounds(spec: str, text: str, low: int, high: int) -> _Interval:
    """Parse ``N``, ``A-B``, ``-B`` or ``A-`` between ``low`` and ``high`` (nmap's ranges)."""
    if not text:
        raise TargetError(f"{spec!r}: an empty part")
    first, dash, last = text.partition("-")
    if not dash:
        last = first
    first, last = first or str(low), last or str(high)
    if not (_digits(first) and _digits(last)):
        raise TargetError(f"{spec!r}: {text!r} is not a number or a range")
    start, end = int(first), int(last)
    if not (low <= start <= high and low <= end <= high):
        raise TargetError(f"{spec!r}: {text!r} is outside {low}-{high}")
    if end < start:
        raise TargetError(f"{spec!r}: {text!r} ends before it starts")
    return start, end


def _octet(spec: str, text: str) -> list[_Interval]:
    """One octet of an nmap target: ``*``, or a comma list of numbers and ranges."""
    if text == "*":
        return [(0, 255)]
    try:
        return _merge(_bounds(spec, part, 0, 255) for part in text.split(","))
    except TargetError as exc:
        raise TargetError(
            f"invalid target {exc}".replace("outside 0-255", "not an octet")
        ) from None


def _octet_spans(spec: str, text: str) -> list[tuple[int, _Interval]]:
    """The intervals of an IPv4 target with ranges, lists or ``*`` in its octets.

    Octets after the last one that is not ``*`` (or ``0-255``) only widen
    each interval, so ``10.*.*.*`` is one interval and ``10.0.0-3.*`` four
    blocks of 256 merged into one.
    """
    octets = [_octet(spec, part) for part in text.split(".")]
    varying = [i for i, spans in enumerate(octets) if spans != [(0, 255)]]
    last = varying[-1] if varying else 0
    block = 256 ** (3 - last)
    prefixes = [[v for lo, hi in spans for v in range(lo, hi + 1)] for spans in octets[:last]]
    count = math.prod(len(values) for values in prefixes) * len(octets[last])
    if count > MAX_TARGET_RANGES:
        raise TargetError(
            f"invalid target {spec!r}: {count:,} separate ranges (at most {MAX_TARGET_RANGES:,})"
        )
    spans = []
    for prefix in itertools.product(*prefixes):
        base = sum(value * 256 ** (3 - i) for i, value in enumerate(prefix))
        spans += [(4, (base + lo * block, base + (hi + 1) * block - 1)) for lo, hi in octets[last]]
    return spans


def parse_target_spans(
    spec: str, *, resolve: Resolver = _resolve_first
) -> list[tuple[int, _Interval]]:
    """Parse one target into ``(IP version, inclusive interval)`` pairs.

    Most targets are one interval; one with lists or ranges in its octets
    (``10.0.0-3.1-40,50``) may be several.

    Raises:
        TargetError: ``spec`` is none of the accepted forms (the message quotes it).
    """
    text = spec.strip()
    if _OCTETS.fullmatch(text) and _ip(text) is None:
        return _octet_spans(spec, text)
    return [parse_target(spec, resolve=resolve)]


def parse_target(spec: str, *, resolve: Resolver = _resolve_first) -> tuple[int, _Interval]:
    """Parse one target into its IP version and an inclusive integer interval.

    Targets with lists or ``*`` in their octets name several intervals: see
    :func:`parse_target_spans`, which takes every form.

    Args:
        spec: A network, address, range or host name (see the module doc).
        resolve: Turns a host name into an address; the system resolver by
            default. Tests pass a function.

    Raises:
        TargetError: ``spec`` is none of the accepted forms.
    """
    text = spec.strip()
    if not text:
        raise TargetError("empty target")
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise TargetError(f"invalid network {spec!r}") from None
        return net.version, (int(net.network_address), int(net.broadcast_address))
    if (single := _ip(text)) is not None:
        return single.version, (int(single), int(single))
    if (span := _parse_range(spec, text)) is not None:
        return span
    if host_name_of(text) is not None:
        address = ipaddress.ip_address(resolve(text))
        return address.version, (int(address), int(address))
    raise TargetError(f"invalid target {spec!r}")


def parse_port(text: str | int) -> int:
    """Parse a TCP port number, 1 to 65535.

    Raises:
        TargetError: ``text`` is not a number in that range.
    """
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise TargetError(f"invalid port {text!r}: not a number") from None
    if not 1 <= port <= 65535:
        raise TargetError(f"invalid port {port}: must be 1 to 65535")
    return port


def parse_ports(text: str | int) -> tuple[int, ...]:
    """Parse a port list in nmap's ``-p`` syntax into ports, in order, each once.

    ``80``, ``80,443``, ``8000-8010``, ``-1024`` (1-1024), ``60000-``
    (60000-65535) and ``-`` (every port, 1-65535), combined with commas.

    Raises:
        TargetError: A part is no port or range of 1 to 65535 (the message
            quotes the list and the part).
    """
    if isinstance(text, int):
        return (parse_port(text),)
    spec = text.strip()
    if not spec:
        raise TargetError("invalid port list '': empty")
    ports: dict[int, None] = {}
    for part in spec.split(","):
        try:
            start, end = _bounds(spec, part.strip(), 1, 65535)
        except TargetError as exc:
            raise TargetError(f"invalid port list {exc}") from None
        ports.update(dict.fromkeys(range(start, end + 1)))
    return tuple(ports)


def _merge(intervals: Iterable[_Interval]) -> list[_Interval]:
    merged: list[_Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract(intervals: list[_Interval], holes: list[_Interval]) -> list[_Interval]:
    result: list[_Interval] = []
    for start, end in intervals:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end < cursor or hole_start > end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start - 1))
            cursor = max(cursor, hole_end + 1)
        if cursor <= end:
            result.append((cursor, end))
    return result


@dataclass(frozen=True)
class TargetSpace:
    """A set of addresses to sweep, held as merged intervals.

    Build one with :meth:`from_specs` (explicit targets) or
    :meth:`from_networks` (auto-discovered local networks).

    Attributes:
        intervals: For each IP version (4, 6), sorted disjoint inclusive
            integer intervals.
        shard: ``(i, n)``: this space is the i-th of n interleaved shards of
            the intervals (see :meth:`sharded`); ``(1, 1)`` is all of it.
        first: Addresses of the space walked before the others, as
            ``(version, integer)`` (hosts known to be alive). Only the order
            changes: a shard holds the same addresses either way. Probe
            processes walk their parts in the plain order.
    """

    intervals: tuple[tuple[int, tuple[_Interval, ...]], ...]
    shard: tuple[int, int] = (1, 1)
    first: tuple[tuple[int, int], ...] = ()

    @classmethod
    def _build(
        cls,
        include: Iterable[tuple[int, _Interval]],
        exclude: Iterable[tuple[int, _Interval]] = (),
    ) -> TargetSpace:
        by_version: dict[int, list[_Interval]] = {4: [], 6: []}
        holes: dict[int, list[_Interval]] = {4: [], 6: []}
        for version, interval in include:
            by_version[version].append(interval)
        for version, interval in exclude:
            holes[version].append(interval)
        return cls(
            tuple(
                (version, tuple(_subtract(_merge(spans), _merge(holes[version]))))
                for version, spans in sorted(by_version.items())
            )
        )

    @classmethod
    def from_specs(
        cls,
        specs: Iterable[str],
        *,
        exclude: Iterable[str] = (),
        resolve: Resolver = _resolve_first,
    ) -> TargetSpace:
        """The addresses named by target specifications, less the excluded ones.

        Raises:
            TargetError: A specification is malformed or a name does not resolve.
        """
        return cls._build(
            [span for s in specs for span in parse_target_spans(s, resolve=resolve)],
            [span for s in exclude for span in parse_target_spans(s, resolve=resolve)],
        )

    @classmethod
    def from_networks(
        cls,
        networks: Iterable[LocalNetwork],
        *,
        exclude: Iterable[str] = (),
        resolve: Resolver = _resolve_first,
        extra: Iterable[str] = (),
        first: Iterable[str] = (),
    ) -> TargetSpace:
        """The hosts of local networks, less their network, broadcast and own addresses.

        A /31 has two hosts and no broadcast address (RFC 3021). ``extra``
        targets (routed networks, less their network and broadcast
        addresses; IPv6 hosts) join them; addresses in ``first`` that are in
        the space are walked before the others.

        Raises:
            TargetError: An exclusion is malformed or a name does not resolve.
        """
        include: list[tuple[int, _Interval]] = []
        holes = [span for s in exclude for span in parse_target_spans(s, resolve=resolve)]
        nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, frozenset[IPAddress]]]
        nets = [(n.network, frozenset(n.own_addresses)) for n in networks]
        nets += [(ipaddress.ip_network(spec), frozenset()) for spec in extra]
        for net, own in nets:
            low, high = int(net.network_address), int(net.broadcast_address)
            if net.prefixlen < net.max_prefixlen - 1:
                low, high = low + 1, high - 1
            include.append((net.version, (low, high)))
            holes.extend((net.version, (int(a), int(a))) for a in own)
        space = cls._build(include, holes)
        return replace(space, first=space._inside(first))

    def _inside(self, addresses: Iterable[str]) -> tuple[tuple[int, int], ...]:
        """The addresses that are in the space, once each, in the order given."""
        found: dict[tuple[int, int], None] = {}
        spans = dict(self.intervals)
        for text in addresses:
            address = ipaddress.ip_address(text)
            value = int(address)
            if any(a <= value <= b for a, b in spans.get(address.version, ())):
                found[(address.version, value)] = None
        return tuple(found)

    def sharded(self, index: int, count: int) -> TargetSpace:
        """The ``index``-th of ``count`` shards (1-based), as zmap and masscan split.

        Address number k of the whole space (in walking order, from 0)
        belongs to shard ``k % count + 1``: the shards are disjoint, together
        they are the whole space, and each is spread across all of it, so no
        one machine gets all the dark space.

        Raises:
            TargetError: Not ``1 <= index <= count``.
        """
        if not 1 <= index <= count:
            raise TargetError(f"invalid shard {index}/{count}: need 1 <= I <= N")
        return replace(self, shard=(index, count))

    def split(self, parts: int) -> list[TargetSpace]:
        """Split the space into ``parts`` interleaved, disjoint spaces that cover it.

        A space that is already a shard splits into shards of that shard, so
        ``--shard`` and worker processes compose.
        """
        index, count = self.shard
        return [replace(self, shard=(index + count * j, count * parts)) for j in range(parts)]

    @property
    def size(self) -> int:
        """The number of addresses in the space (an IPv6 /64 has 2**64)."""
        total = sum(end - start + 1 for _, spans in self.intervals for start, end in spans)
        first, step = self.shard[0] - 1, self.shard[1]
        return max(0, (total - first + step - 1) // step)

    def _position(self, version: int, value: int) -> int:
        """The address's number in the whole space's walking order, from 0."""
        index = 0
        for each, spans in self.intervals:
            for start, end in spans:
                if each == version and start <= value <= end:
                    return index + value - start
                index += end - start + 1
        raise ValueError("not in the space")

    def __iter__(self) -> Iterator[tuple[socket.AddressFamily, str]]:
        """Walk the addresses lazily as ``(family, address text)`` pairs.

        The shard's addresses among :attr:`first` come first; then the rest.
        """
        first, step = self.shard[0] - 1, self.shard[1]
        early = {
            (version, value)
            for version, value in self.first
            if self._position(version, value) % step == first
        }
        for version, value in self.first:
            if (version, value) in early:
                yield _FAMILY[version], _text(version, value)
        index = 0  # of the interval's first address, in the whole space
        for version, spans in self.intervals:
            family = _FAMILY[version]
            size = _BYTES[version]
            to_text = socket.inet_ntoa if version == 4 else _inet6_ntoa
            for start, end in spans:
                skip = (first - index) % step
                for value in range(start + skip, end + 1, step):
                    if early and (version, value) in early:
                        continue
                    yield family, to_text(value.to_bytes(size, "big"))
                index += end - start + 1

    def check_size(self, max_hosts: int = DEFAULT_MAX_HOSTS) -> None:
        """Refuse a sweep of more than ``max_hosts`` addresses.

        Raises:
            ScanLimitError: The space is larger than ``max_hosts``.
        """
        size = self.size
        if size > max_hosts:
            raise ScanLimitError(
                f"refusing to sweep {size:,} addresses (limit {max_hosts:,}); "
                "narrow the targets or raise the limit with --max-hosts"
            )


def _text(version: int, value: int) -> str:
    packed = value.to_bytes(_BYTES[version], "big")
    return socket.inet_ntoa(packed) if version == 4 else _inet6_ntoa(packed)


def _inet6_ntoa(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, packed)
