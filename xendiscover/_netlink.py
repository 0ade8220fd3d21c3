"""Routes and neighbours from the kernel, over rtnetlink: a small sans-IO parser.

Bytes in, values out (``rtnetlink(7)``, ``netlink(7)``): :func:`route_dump`,
:func:`neighbour_dump` and :func:`route_lookup` build requests;
:func:`parse_routes` and :func:`parse_neighbours` read the kernel's replies
into frozen :class:`Route` and :class:`Neighbour` values. Only route and
neighbour messages are understood; anything else in a reply is skipped.

The one function that touches a socket is :func:`exchange` (``AF_NETLINK``,
``NETLINK_ROUTE``, no privileges needed); callers take it as a parameter so
that tests feed recorded replies instead. pyroute2 has the same layouts but
imports in ~0.7 s, too slow for a command's start.

Message layout (all integers in host byte order)::

    nlmsghdr  len:u32 type:u16 flags:u16 seq:u32 pid:u32
    rtmsg     family dst_len src_len tos table protocol scope type:u8 flags:u32
    ndmsg     family pad:u8 pad:u16 ifindex:i32 state:u16 flags:u8 type:u8
    rtattr    len:u16 type:u16 payload, padded to 4 bytes
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")

__all__ = [
    "RTN_NAMES",
    "Exchange",
    "Neighbour",
    "NetlinkError",
    "Route",
    "exchange",
    "neighbour_dump",
    "parse_lookup",
    "parse_neighbours",
    "parse_routes",
    "route_dump",
    "route_lookup",
]

# <linux/netlink.h>
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
# <linux/rtnetlink.h>
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_GETNEIGH = 30
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PREFSRC = 7
RTA_TABLE = 15
NDA_DST = 1
NDA_LLADDR = 2
#: Ask a lookup's reply to name the table the route came from (Linux 4.4+).
RTM_F_LOOKUP_TABLE = 0x1000
RT_TABLE_MAIN = 254

#: Route types (``rtm_type``), by number, as ``ip route`` prints them.
RTN_NAMES: dict[int, str] = {
    1: "unicast",
    2: "local",
    3: "broadcast",
    4: "anycast",
    5: "multicast",
    6: "blackhole",
    7: "unreachable",
    8: "prohibit",
    9: "throw",
    10: "nat",
    11: "xresolve",
}

#: Neighbour states (``ndm_state`` bits), as ``ip neigh`` prints them.
NUD_NAMES: dict[int, str] = {
    0x01: "incomplete",
    0x02: "reachable",
    0x04: "stale",
    0x08: "delay",
    0x10: "probe",
    0x20: "failed",
    0x40: "noarp",
    0x80: "permanent",
}

_HEADER = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTATTR = struct.Struct("=HH")
_ADDRESS_BYTES: dict[int, int] = {socket.AF_INET: 4, socket.AF_INET6: 16}

#: The most messages one reply may carry: a routing table of a million
#: routes is read as far as this and no further.
MAX_MESSAGES = 200_000


class NetlinkError(Exception):
    """The kernel refused a request (``errno`` set), or a reply is malformed (``errno`` 0)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class Route:
    """One route, as the kernel reports it (``ip route show table all``).

    Attributes:
        destination: The prefix (``0.0.0.0/0`` for a default route).
        type: The route type: ``unicast``, ``blackhole``, ``unreachable``,
            ``prohibit``, ``local``, ... (see :data:`RTN_NAMES`).
        table: The routing table's number (254 is ``main``).
        gateway: The next hop, or ``None`` for an on-link route.
        oif: The output interface's index, or ``None``.
        scope: ``rtm_scope`` (0 universe, 253 link, 254 host).
        protocol: ``rtm_protocol`` (2 kernel, 3 boot, 4 static, ...).
        prefsrc: The preferred source address, or ``None``.
    """

    destination: ipaddress.IPv4Network | ipaddress.IPv6Network
    type: str
    table: int
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    oif: int | None = None
    scope: int = 0
    protocol: int = 0
    prefsrc: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None


@dataclass(frozen=True)
class Neighbour:
    """One neighbour-table entry (``ip neigh``).

    Attributes:
        address: The neighbour's IP address.
        ifindex: The interface it was seen on.
        states: Its state names (``reachable``, ``stale``, ...; see :data:`NUD_NAMES`).
        lladdr: Its link-layer address, ``aa:bb:...``, or ``None``.
        router: Whether it announced itself as a router (``NTF_ROUTER``).
    """

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ifindex: int
    states: frozenset[str]
    lladdr: str | None = None
    router: bool = False


# ------------------------------------------------------------------ requests


def _request(kind: int, flags: int, body: bytes, seq: int) -> bytes:
    return _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body


def _attribute(kind: int, payload: bytes) -> bytes:
    size = _RTATTR.size + len(payload)
    return _RTATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def route_dump(family: int, seq: int = 1) -> bytes:
    """A request for every route of ``family`` (``AF_INET``/``AF_INET6``), all tables."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return _request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, body, seq)


def neighbour_dump(family: int, seq: int = 1) -> bytes:
    """A request for the neighbour table of ``family``."""
    return _request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, _NDMSG.pack(family, 0, 0, 0, 0), seq)


def route_lookup(address: ipaddress.IPv4Address | ipaddress.IPv6Address, seq: int = 1) -> bytes:
    """A request for the route the kernel would take to ``address`` (``ip route get``).

    Policy rules apply, as for a real packet; the reply names the table.
    """
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    body = _RTMSG.pack(family, address.max_prefixlen, 0, 0, 0, 0, 0, 0, RTM_F_LOOKUP_TABLE)
    return _request(RTM_GETROUTE, NLM_F_REQUEST, body + _attribute(RTA_DST, address.packed), seq)


# ------------------------------------------------------------------ replies


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split a reply into ``(type, body)``; stop at ``NLMSG_DONE``; raise on an error."""
    offset = count = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise NetlinkError(f"truncated netlink message at byte {offset}")
        body = data[offset + _HEADER.size : offset + length]
        offset += (length + 3) & ~3
        count += 1
        if count > MAX_MESSAGES:
            raise NetlinkError(f"more than {MAX_MESSAGES:,} netlink messages in one reply")
        if kind == NLMSG_DONE:
            return
        if kind == NLMSG_ERROR:
            _raise_error(body)
            continue  # an acknowledgement (error 0)
        yield kind, body
    if offset < len(data):
        raise NetlinkError(f"{len(data) - offset} stray bytes after the last netlink message")


def _raise_error(body: bytes) -> None:
    if len(body) < 4:
        raise NetlinkError("truncated netlink error message")
    (code,) = struct.unpack_from("=i", body)
    if code:
        raise NetlinkError(f"netlink request refused: errno {-code}", -code)


def _attributes(data: bytes, offset: int) -> dict[int, bytes]:
    """The TLV attributes from ``offset`` on; the first of a repeated type wins."""
    found: dict[int, bytes] = {}
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            raise NetlinkError(f"truncated route attribute at byte {offset}")
        found.setdefault(kind & 0x3FFF, data[offset + _RTATTR.size : offset + length])
        offset += (length + 3) & ~3
    return found


def _address(
    family: int, raw: bytes | None
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if raw is None:
        return None
    if len(raw) != _ADDRESS_BYTES.get(family, -1):
        raise NetlinkError(f"an address of {len(raw)} bytes in family {family}")
    return ipaddress.ip_address(raw)


def _index(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    if len(raw) != 4:
        raise NetlinkError("an interface index that is not 4 bytes")
    return int(struct.unpack("=I", raw)[0])


def _route(body: bytes) -> Route | None:
    if len(body) < _RTMSG.size:
        raise NetlinkError("truncated route message")
    family, dst_len, _src, _tos, table, protocol, scope, kind, _flags = _RTMSG.unpack_from(body)
    if family not in _ADDRESS_BYTES:
        return None
    attrs = _attributes(body, _RTMSG.size)
    if RTA_TABLE in attrs:
        table = _index(attrs[RTA_TABLE]) or table
    zero = b"\0" * _ADDRESS_BYTES[family]
    base = _address(family, attrs.get(RTA_DST, zero))
    assert base is not None
    try:
        destination = ipaddress.ip_network(f"{base}/{dst_len}")
    except ValueError:
        raise NetlinkError(f"an invalid route prefix {base}/{dst_len}") from None
    return Route(
        destination=destination,
        type=RTN_NAMES.get(kind, str(kind)),
        table=table,
        gateway=_address(family, attrs.get(RTA_GATEWAY)),
        oif=_index(attrs.get(RTA_OIF)),
        scope=scope,
        protocol=protocol,
        prefsrc=_address(family, attrs.get(RTA_PREFSRC)),
    )


def _parse(data: bytes, wanted: int, parse: Callable[[bytes], _T | None]) -> list[_T]:
    """Each message of type ``wanted`` in ``data``, parsed; ``None`` results left out."""
    parsed = (parse(body) for kind, body in _messages(data) if kind == wanted)
    return [item for item in parsed if item is not None]


def parse_routes(data: bytes) -> list[Route]:
    """The routes in a reply to :func:`route_dump` (or :func:`route_lookup`).

    Raises:
        NetlinkError: The kernel refused the request, or the bytes are malformed.
    """
    return _parse(data, RTM_NEWROUTE, _route)


def parse_lookup(data: bytes) -> Route | None:
    """The route of a reply to :func:`route_lookup`; ``None`` when the kernel has none.

    A lookup that finds no route (``unreachable``, ``prohibit``, no default)
    or a blackhole is refused by the kernel with an errno; that is ``None``.

    Raises:
        NetlinkError: The bytes are malformed.
    """
    try:
        routes = parse_routes(data)
    except NetlinkError as exc:
        if exc.errno:
            return None
        raise
    return routes[0] if routes else None


def _lladdr(raw: bytes | None) -> str | None:
    return None if not raw else ":".join(f"{b:02x}" for b in raw)


def _neighbour(body: bytes) -> Neighbour | None:
    if len(body) < _NDMSG.size:
        raise NetlinkError("truncated neighbour message")
    family, ifindex, state, flags, _type = _NDMSG.unpack_from(body)
    attrs = _attributes(body, _NDMSG.size)
    if family not in _ADDRESS_BYTES or NDA_DST not in attrs:
        return None
    address = _address(family, attrs[NDA_DST])
    assert address is not None
    return Neighbour(
        address=address,
        ifindex=ifindex,
        states=frozenset(name for bit, name in NUD_NAMES.items() if state & bit),
        lladdr=_lladdr(attrs.get(NDA_LLADDR)),
        router=bool(flags & 0x80),
    )


def parse_neighbours(data: bytes) -> list[Neighbour]:
    """The entries in a reply to :func:`neighbour_dump`.

    Raises:
        NetlinkError: The kernel refused the request, or the bytes are malformed.
    """
    return _parse(data, RTM_NEWNEIGH, _neighbour)


# ------------------------------------------------------------------ the I/O edge

#: Sends one request, returns the whole reply (every datagram, up to ``NLMSG_DONE``
#: for a dump). :func:`exchange` is the real one; tests pass recorded replies.
Exchange = Callable[[bytes], bytes]

#: How long :func:`exchange` waits for the kernel, in seconds (it answers in
#: microseconds; this bounds a pathological case, never a normal one).
EXCHANGE_TIMEOUT = 2.0
_RECV_BYTES = 1 << 16
#: The most bytes of one reply kept (a full Internet table is ~100 MB; we want
#: a site's routes, not the Internet's).
MAX_REPLY_BYTES = 32 << 20


def _done(chunk: bytes, dump: bool) -> bool:
    """Whether ``chunk`` ends the reply: ``NLMSG_DONE``/an error, or any reply to a lookup."""
    offset = 0
    while offset + _HEADER.size <= len(chunk):
        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(chunk, offset)
        if kind in (NLMSG_DONE, NLMSG_ERROR) or not dump:
            return True
        offset += max(_HEADER.size, (length + 3) & ~3)
    return False


def exchange(request: bytes) -> bytes:
    """Send ``request`` to the kernel's routing netlink; return its whole reply.

    Raises:
        NetlinkError: The socket failed, the kernel is silent past
            :data:`EXCHANGE_TIMEOUT`, or the reply is larger than
            :data:`MAX_REPLY_BYTES`.
    """
    dump = bool(_HEADER.unpack_from(request)[2] & NLM_F_DUMP)
    deadline = time.monotonic() + EXCHANGE_TIMEOUT
    chunks: list[bytes] = []
    size = 0
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.bind((0, 0))
            sock.sendall(request)
            while True:
                sock.settimeout(max(0.0, deadline - time.monotonic()))
                chunk = sock.recv(_RECV_BYTES)
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise NetlinkError(f"a netlink reply of more than {MAX_REPLY_BYTES:,} bytes")
                if not chunk or _done(chunk, dump):
                    return b"".join(chunks)
    except TimeoutError:
        raise NetlinkError(f"no netlink reply in {EXCHANGE_TIMEOUT} s") from None
    except OSError as exc:
        raise NetlinkError(f"netlink: {exc.strerror or exc}", exc.errno or 0) from None
