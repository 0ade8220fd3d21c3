"""libvirt (16509) fingerprint: the pre-authentication ``AUTH_LIST`` call.

A valid reply proves libvirt, not Xen: a KVM host answers the same. Telling
the hypervisor needs an opened connection, which needs authentication, so
the verdict is always ``unknown`` (service ``libvirt``), never Xen.
"""

from __future__ import annotations

import struct

from xendiscover._fingerprint._common import NeedMoreData, closed_silently, evidence
from xendiscover._model import Fingerprint

__all__ = [
    "AUTH_LIST_REQUEST",
    "REMOTE_PROC_AUTH_LIST",
    "REMOTE_PROGRAM",
    "build_auth_list",
    "encode_packet",
    "parse_auth_list",
]

#: ``REMOTE_PROGRAM`` from libvirt's ``remote_protocol.x``.
REMOTE_PROGRAM = 0x20008086
#: The protocol version of ``REMOTE_PROGRAM``.
REMOTE_VERSION = 1
#: ``REMOTE_PROC_AUTH_LIST``: allowed before authentication.
REMOTE_PROC_AUTH_LIST = 66

_HEADER = struct.Struct(">IIIIIII")  # length, prog, vers, proc, type, serial, status
_CALL, _REPLY = 0, 1
_MAX_PACKET = 4 * 1024 * 1024
_AUTH_NAMES = {0: "none", 1: "sasl", 2: "polkit"}


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


#: The 28-byte ``AUTH_LIST`` call, serial 1.
AUTH_LIST_REQUEST = encode_packet(REMOTE_PROC_AUTH_LIST, kind=_CALL, serial=1, status=0)


def build_auth_list(*, host: str, nonce: str) -> bytes:
    """Build the libvirt probe: ``AUTH_LIST`` (lists auth types, opens nothing)."""
    return AUTH_LIST_REQUEST


def _auth_types(payload: bytes) -> str:
    if len(payload) < 4:
        return "?"
    (count,) = struct.unpack_from(">I", payload)
    names = []
    for index in range(min(count, 4, (len(payload) - 4) // 4)):
        (kind,) = struct.unpack_from(">i", payload, 4 + 4 * index)
        names.append(_AUTH_NAMES.get(kind, str(kind)))
    return ",".join(names) or "none listed"


def parse_auth_list(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``AUTH_LIST``.

    Same program, version and procedure, type REPLY: libvirt (status 0 lists
    the auth types; an error reply proves libvirt too). Anything else that
    arrived is *not-xen*.
    """
    if not data:
        if closed:
            return closed_silently()
        raise NeedMoreData("no reply yet")
    if len(data) < _HEADER.size:
        expected = AUTH_LIST_REQUEST[4:8]  # the program number, after the length
        if closed or not expected.startswith(data[4:8]):
            return Fingerprint(None, "not-xen", evidence("not libvirt RPC", data))
        raise NeedMoreData("header incomplete")
    length, prog, vers, proc, kind, _serial, status = _HEADER.unpack_from(data)
    valid = (
        _HEADER.size <= length <= _MAX_PACKET
        and prog == REMOTE_PROGRAM
        and vers == REMOTE_VERSION
        and proc == REMOTE_PROC_AUTH_LIST
        and kind == _REPLY
    )
    if not valid:
        return Fingerprint(None, "not-xen", evidence("not libvirt RPC", data))
    if status != 0:
        return Fingerprint("libvirt", "unknown", evidence("libvirt AUTH_LIST error reply"))
    payload = data[_HEADER.size : length]
    if len(payload) < min(length - _HEADER.size, 8) and not closed:
        raise NeedMoreData("payload incomplete")
    label = f"libvirt AUTH_LIST reply (auth {_auth_types(payload)}); Xen or KVM"
    return Fingerprint("libvirt", "unknown", evidence(label))
