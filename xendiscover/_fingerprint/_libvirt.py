"""libvirt (16509) fingerprint: ``AUTH_LIST``, then, only without auth, the hypervisor type.

The first call is ``AUTH_LIST``, the one procedure libvirtd accepts before
authentication. Its reply proves libvirt, not Xen (a KVM host answers the
same). When the daemon asks for authentication (SASL, polkit) the exchange
stops there: the verdict is ``unknown`` (service ``libvirt``), and no
authentication is ever attempted. When it offers ``none``, no credential is
needed for the rest, which changes nothing on the host::

    AUTH_LIST -> CONNECT_OPEN (read-only, the daemon's default URI)
              -> CONNECT_GET_TYPE -> CONNECT_GET_VERSION
              -> CONNECT_GET_HOSTNAME -> CONNECT_CLOSE

and the type decides: ``Xen`` (the libxl driver, or the old xen driver) is
``confirmed``; ``QEMU``, ``TEST``, ``LXC`` and the rest are ``not-xen``.
``CONNECT_GET_VERSION`` gives the hypervisor's version (``major * 1,000,000
+ minor * 1,000 + release``: 4017000 is Xen 4.17.0) for the product.

The exchange is multi-step: :func:`parse_libvirt` is handed the cumulative
bytes of the connection, walks the replies from the first byte, and returns
:class:`~xendiscover._fingerprint._common.Continue` with the next call while
one is due. Packets are built here by plain struct packing.

Upstream: libvirt (9.0.0, as in Debian 12) ``src/rpc/virnetprotocol.x``
(packet header: length, prog, vers, proc, type, serial, status; ``struct
virNetMessageError``) and ``src/remote/remote_protocol.x`` (``REMOTE_PROGRAM
= 0x20008086``, version 1; procedures ``CONNECT_OPEN = 1``, ``CONNECT_CLOSE =
2``, ``CONNECT_GET_TYPE = 3``, ``CONNECT_GET_VERSION = 4``
(``remote_connect_get_version_ret { unsigned hyper hv_ver; }``),
``CONNECT_GET_HOSTNAME = 59``, ``AUTH_LIST =
66``; ``remote_connect_open_args { remote_string name; unsigned int flags; }``,
``remote_auth_type``: 0 none, 1 SASL, 2 polkit); ``VIR_CONNECT_RO = 1`` from
``include/libvirt/libvirt-host.h``. An empty name means the daemon's default
URI (``virConnectOpenInternal`` treats ``""`` as ``NULL``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from xendiscover._fingerprint._common import (
    Continue,
    NeedMoreData,
    ParseResult,
    closed_silently,
    evidence,
    excerpt,
)
from xendiscover._fingerprint._product import libvirt_product
from xendiscover._model import Fingerprint

__all__ = [
    "AUTH_LIST_REQUEST",
    "CONVERSATION",
    "REMOTE_PROC_AUTH_LIST",
    "REMOTE_PROC_CONNECT_CLOSE",
    "REMOTE_PROC_CONNECT_GET_HOSTNAME",
    "REMOTE_PROC_CONNECT_GET_TYPE",
    "REMOTE_PROC_CONNECT_GET_VERSION",
    "REMOTE_PROC_CONNECT_OPEN",
    "REMOTE_PROGRAM",
    "VIR_CONNECT_RO",
    "Packet",
    "build_auth_list",
    "decode_packet",
    "encode_packet",
    "parse_auth_list",
    "parse_libvirt",
    "type_verdict",
    "xdr_string",
]

#: ``REMOTE_PROGRAM`` from libvirt's ``remote_protocol.x``.
REMOTE_PROGRAM = 0x20008086
#: The protocol version of ``REMOTE_PROGRAM``.
REMOTE_VERSION = 1
#: ``REMOTE_PROC_CONNECT_OPEN``.
REMOTE_PROC_CONNECT_OPEN = 1
#: ``REMOTE_PROC_CONNECT_CLOSE``.
REMOTE_PROC_CONNECT_CLOSE = 2
#: ``REMOTE_PROC_CONNECT_GET_TYPE``.
REMOTE_PROC_CONNECT_GET_TYPE = 3
#: ``REMOTE_PROC_CONNECT_GET_HOSTNAME``.
REMOTE_PROC_CONNECT_GET_HOSTNAME = 59
#: ``CONNECT_GET_VERSION``: the hypervisor's version, an unsigned 64-bit number.
REMOTE_PROC_CONNECT_GET_VERSION = 4
#: ``REMOTE_PROC_AUTH_LIST``: allowed before authentication.
REMOTE_PROC_AUTH_LIST = 66
#: ``VIR_CONNECT_RO``: open read-only.
VIR_CONNECT_RO = 1

_HEADER = struct.Struct(">IIIIIII")  # length, prog, vers, proc, type, serial, status
_CALL, _REPLY = 0, 1
_MAX_PACKET = 4 * 1024 * 1024
_AUTH_NONE = 0
_AUTH_NAMES = {0: "none", 1: "sasl", 2: "polkit"}
#: The longest type or host name kept from a reply, in characters.
_NAME_LIMIT = 40


def encode_packet(proc: int, *, kind: int, serial: int, status: int, payload: bytes = b"") -> bytes:
    """One libvirt RPC packet of ``REMOTE_PROGRAM`` (length prefix included)."""
    header = _HEADER.pack(
        _HEADER.size + len(payload),
        REMOTE_PROGRAM,
        REMOTE_VERSION,
        proc,
        kind,
        serial,
        status,
    )
    return header + payload


def xdr_string(text: bytes) -> bytes:
    """An XDR ``string``: its length, its bytes, zero padding to a multiple of 4."""
    return struct.pack(">I", len(text)) + text + b"\x00" * (-len(text) % 4)


def _call(proc: int, serial: int, payload: bytes = b"") -> bytes:
    return encode_packet(proc, kind=_CALL, serial=serial, status=0, payload=payload)


#: The 28-byte ``AUTH_LIST`` call, serial 1.
AUTH_LIST_REQUEST = _call(REMOTE_PROC_AUTH_LIST, 1)

#: The calls after ``AUTH_LIST`` when it offers ``none``, one per step, with
#: serials 2 to 6. ``CONNECT_OPEN``'s name is a present, empty
#: ``remote_string`` (XDR: 1, then the empty string), flags read-only.
CONVERSATION: tuple[tuple[int, bytes], ...] = (
    (
        REMOTE_PROC_CONNECT_OPEN,
        _call(
            REMOTE_PROC_CONNECT_OPEN,
            2,
            struct.pack(">I", 1) + xdr_string(b"") + struct.pack(">I", VIR_CONNECT_RO),
        ),
    ),
    (REMOTE_PROC_CONNECT_GET_TYPE, _call(REMOTE_PROC_CONNECT_GET_TYPE, 3)),
    (REMOTE_PROC_CONNECT_GET_VERSION, _call(REMOTE_PROC_CONNECT_GET_VERSION, 4)),
    (REMOTE_PROC_CONNECT_GET_HOSTNAME, _call(REMOTE_PROC_CONNECT_GET_HOSTNAME, 5)),
    (REMOTE_PROC_CONNECT_CLOSE, _call(REMOTE_PROC_CONNECT_CLOSE, 6)),
)


def build_auth_list(*, host: str, nonce: str) -> bytes:
    """Build the libvirt probe: ``AUTH_LIST`` (lists auth types, opens nothing)."""
    return AUTH_LIST_REQUEST


@dataclass(frozen=True, slots=True)
class Packet:
    """One reply packet of ``REMOTE_PROGRAM``.

    Attributes:
        proc: The procedure it answers.
        serial: The serial of the call it answers.
        status: 0 OK, 1 error (the payload is then a ``remote_error``).
        payload: The XDR payload after the header.
    """

    proc: int
    serial: int
    status: int
    payload: bytes


class _NotLibvirt(Exception):
    """The bytes are not a libvirt reply packet."""


def decode_packet(data: bytes, offset: int = 0) -> tuple[Packet, int] | None:
    """Decode the reply packet at ``offset``.

    Returns:
        The packet and the offset just past it, or ``None`` if it is not
        complete yet.

    Raises:
        _NotLibvirt: The bytes cannot be a ``REMOTE_PROGRAM`` reply.
    """
    if len(data) - offset < _HEADER.size:
        expected = AUTH_LIST_REQUEST[4:8]  # the program number, after the length
        if not expected.startswith(data[offset + 4 : offset + 8]):
            raise _NotLibvirt
        return None
    length, prog, vers, proc, kind, serial, status = _HEADER.unpack_from(data, offset)
    valid = (
        _HEADER.size <= length <= _MAX_PACKET
        and prog == REMOTE_PROGRAM
        and vers == REMOTE_VERSION
        and kind == _REPLY
    )
    if not valid:
        raise _NotLibvirt
    if len(data) - offset < length:
        return None
    payload = data[offset + _HEADER.size : offset + length]
    return Packet(proc, serial, status, payload), offset + length


def _read_string(payload: bytes, offset: int = 0) -> str | None:
    """An XDR string at ``offset`` as bounded printable text, or ``None``."""
    if len(payload) < offset + 4:
        return None
    (size,) = struct.unpack_from(">I", payload, offset)
    text = payload[offset + 4 : offset + 4 + min(size, 1024)]
    return excerpt(text, _NAME_LIMIT)


def _error_message(packet: Packet) -> str:
    """The message of a ``remote_error`` payload (code, domain, optional message)."""
    if len(packet.payload) >= 12 and struct.unpack_from(">I", packet.payload, 8)[0] == 1:
        return _read_string(packet.payload, 12) or "error"
    return "error"


def _auth_types(payload: bytes) -> list[int]:
    if len(payload) < 4:
        return []
    (count,) = struct.unpack_from(">I", payload)
    count = min(count, 20, (len(payload) - 4) // 4)  # REMOTE_AUTH_TYPE_LIST_MAX
    return [struct.unpack_from(">i", payload, 4 + 4 * index)[0] for index in range(count)]


def _auth_label(types: list[int]) -> str:
    return ",".join(_AUTH_NAMES.get(kind, str(kind)) for kind in types[:4]) or "none listed"


def _split(data: bytes) -> tuple[list[Packet], bool]:
    """The complete reply packets in ``data``, and whether a partial one follows.

    Raises:
        _NotLibvirt: The first packet is not a libvirt reply (a later bad
            packet ends the list instead: the peer is libvirt all the same).
    """
    packets: list[Packet] = []
    offset = 0
    while offset < len(data) and len(packets) <= len(CONVERSATION):
        try:
            decoded = decode_packet(data, offset)
        except _NotLibvirt:
            if not packets:
                raise
            return packets, False
        if decoded is None:
            return packets, True
        packet, offset = decoded
        packets.append(packet)
    return packets, False


def type_verdict(kind: str, hostname: str | None, version: int | None = None) -> Fingerprint:
    """The verdict from ``CONNECT_GET_TYPE``: ``Xen`` is confirmed, any other type not Xen.

    The product is the hypervisor, with its version from ``CONNECT_GET_VERSION``.
    """
    where = f" on {hostname}" if hostname else ""
    label = f"libvirt type {kind}{where}"
    product = libvirt_product(kind, version)
    if kind == "Xen":
        return Fingerprint("libvirt", "confirmed", evidence(label), product=product)
    return Fingerprint("libvirt", "not-xen", evidence(label), product=product)


def _version(packet: Packet) -> int | None:
    """The ``hv_ver`` of a ``CONNECT_GET_VERSION`` reply, or ``None``."""
    if packet.status != 0 or len(packet.payload) < 8:
        return None
    return int(struct.unpack_from(">Q", packet.payload)[0])


def _after_auth(auth: Packet, closed: bool) -> Fingerprint | None:
    """The verdict on an ``AUTH_LIST`` reply that ends the exchange, or ``None`` to go on."""
    if auth.proc != REMOTE_PROC_AUTH_LIST:
        return Fingerprint(None, "not-xen", evidence("not a libvirt AUTH_LIST reply"))
    if auth.status != 0:
        label = "libvirt AUTH_LIST error reply"
        return Fingerprint("libvirt", "unknown", evidence(label), product=_LIBVIRT)
    types = _auth_types(auth.payload)
    if _AUTH_NONE not in types:
        label = f"libvirt, auth {_auth_label(types)} required; Xen or KVM"
        return Fingerprint("libvirt", "unknown", evidence(label), product=_LIBVIRT)
    if closed:
        label = f"libvirt (auth {_auth_label(types)}); Xen or KVM"
        return Fingerprint("libvirt", "unknown", evidence(label), product=_LIBVIRT)
    return None


#: What an AUTH_LIST reply alone proves: libvirt, not which hypervisor.
_LIBVIRT = libvirt_product(None, None)

# The calls whose failure ends the exchange; the host name and the close
# are courtesies, and their failure changes no verdict.
_REQUIRED = frozenset({REMOTE_PROC_CONNECT_OPEN, REMOTE_PROC_CONNECT_GET_TYPE})


def _step_failed(step: int, packet: Packet) -> Fingerprint | None:
    """The verdict if the reply to ``step`` is not the answer expected, else ``None``."""
    proc, request = CONVERSATION[step - 1]
    serial = _HEADER.unpack_from(request)[5]
    if packet.proc != proc or packet.serial != serial:
        return Fingerprint("libvirt", "unknown", evidence("libvirt, unexpected reply"))
    if packet.status != 0 and proc in _REQUIRED:
        label = f"libvirt (auth none), call {proc} failed: {_error_message(packet)}"
        return Fingerprint("libvirt", "unknown", evidence(label))
    return None


def _conversation(replies: list[Packet], closed: bool) -> ParseResult:
    """Walk the replies after ``AUTH_LIST``; the next call, or the verdict."""
    kind: str | None = None
    hostname: str | None = None
    version: int | None = None
    for step, packet in enumerate(replies[1:], start=1):
        failed = _step_failed(step, packet)
        if failed is not None:
            return failed
        proc = CONVERSATION[step - 1][0]
        if proc == REMOTE_PROC_CONNECT_GET_TYPE:
            kind = _read_string(packet.payload)
        elif proc == REMOTE_PROC_CONNECT_GET_VERSION:
            version = _version(packet)
        elif proc == REMOTE_PROC_CONNECT_GET_HOSTNAME:
            hostname = _read_string(packet.payload) if packet.status == 0 else None
    step = len(replies)
    if step > len(CONVERSATION) or closed:
        if kind is None:
            label = "libvirt (auth none); Xen or KVM"
            return Fingerprint("libvirt", "unknown", evidence(label), product=_LIBVIRT)
        return type_verdict(kind, hostname, version)
    return Continue(step, CONVERSATION[step - 1][1])


def parse_libvirt(data: bytes, *, closed: bool, nonce: str = "") -> ParseResult:
    """Read the cumulative replies of the libvirt exchange (see the module docstring).

    Returns:
        A verdict, or :class:`Continue` with the next call (never once
        ``closed``: then the best verdict from the replies so far).

    Raises:
        NeedMoreData: A reply is incomplete and the peer is still open.
    """
    if not data:
        if closed:
            return closed_silently()
        raise NeedMoreData("no reply yet")
    try:
        replies, partial = _split(data)
    except _NotLibvirt:
        return Fingerprint(None, "not-xen", evidence("not libvirt RPC", data))
    if not replies:
        if closed:
            return Fingerprint(None, "not-xen", evidence("not libvirt RPC", data))
        raise NeedMoreData("reply incomplete")
    ended = _after_auth(replies[0], closed and len(replies) == 1)
    if ended is not None:
        return ended
    if partial and not closed:
        raise NeedMoreData("reply incomplete")
    return _conversation(replies, closed)


def parse_auth_list(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``AUTH_LIST`` alone: libvirt, never more (Xen or KVM).

    The verdict :func:`parse_libvirt` reaches when the exchange cannot go
    past ``AUTH_LIST``: a driver without multi-step support, say.
    """
    found = parse_libvirt(data, closed=closed, nonce=nonce)
    if isinstance(found, Continue):
        found = parse_libvirt(data, closed=True, nonce=nonce)
    if isinstance(found, Continue):  # pragma: no cover - closed=True never continues
        return Fingerprint("libvirt", "unknown", evidence("libvirt; Xen or KVM"))
    return found
