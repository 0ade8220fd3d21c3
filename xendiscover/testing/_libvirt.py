"""A fake of libvirtd's TCP listener (16509), with auth sasl or none."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from xendiscover.testing._server import (
    FakeServer,
    _Conn,
)

__all__ = [
    "FakeLibvirt",
]

_LIBVIRT_HEADER = struct.Struct(">IIIIIII")
_REMOTE_PROGRAM = 0x20008086
_PROC_OPEN, _PROC_CLOSE, _PROC_TYPE, _PROC_VERSION = 1, 2, 3, 4
_PROC_HOSTNAME, _PROC_AUTH_LIST = 59, 66
# virNetServerProgram refuses a packet longer than this (virnetprotocol.x).
_LIBVIRT_MAX_PACKET = 32 * 1024 * 1024
# virErrorNumber VIR_ERR_OPERATION_INVALID / VIR_ERR_AUTH_FAILED, VIR_FROM_RPC.
_VIR_ERR_OPERATION_INVALID, _VIR_ERR_AUTH_FAILED, _VIR_FROM_RPC = 55, 45, 7


def _xdr_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">I", len(data)) + data + b"\x00" * (-len(data) % 4)


def _remote_error(code: int, message: str) -> bytes:
    """A ``remote_error`` (virnetprotocol.x): code, domain, message, level, then nulls."""
    return (
        struct.pack(">ii", code, _VIR_FROM_RPC)
        + struct.pack(">I", 1)
        + _xdr_string(message)
        + struct.pack(">i", 2)  # VIR_ERR_ERROR
        + b"\x00" * 16  # dom, str1, str2, str3: NULL
        + struct.pack(">ii", 0, 0)
        + b"\x00" * 4  # net: NULL
    )


class FakeLibvirt(FakeServer):
    """libvirtd's TCP listener (16509), with ``auth_tcp`` ``"sasl"`` or ``"none"``.

    Follows libvirt 9.0.0 ``src/rpc/virnetprotocol.x`` (packets, errors) and
    ``src/remote/remote_protocol.x`` (``REMOTE_PROGRAM`` calls), as
    ``src/remote/remote_daemon_dispatch.c`` answers them. Reads
    length-prefixed RPC packets; the connection stays open between calls, as
    libvirtd keeps it. Answers:

    - ``AUTH_LIST`` (66) with :attr:`auth_types` (0 none, 1 SASL, 2 polkit);
    - with auth ``none`` only (``auth_types=(0,)``): ``CONNECT_OPEN`` (1),
      ``CONNECT_GET_TYPE`` (3: :attr:`hv_type`, ``"Xen"`` for the libxl
      driver, ``"QEMU"``, ``"TEST"``), ``CONNECT_GET_HOSTNAME`` (59) and
      ``CONNECT_CLOSE`` (2); type and host name only once opened;
    - every other call, and every call before authentication when auth is
      required, gets an error reply (the fake never acts, nor authenticates).

    A packet length libvirtd cannot accept (an HTTP request's, say) closes
    the connection.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        auth_types: The auth types to list.
        hv_type: What ``CONNECT_GET_TYPE`` answers.
        hostname: What ``CONNECT_GET_HOSTNAME`` answers.
        hv_version: What ``CONNECT_GET_VERSION`` (4) answers: ``major *
            1,000,000 + minor * 1,000 + release`` (4017000: Xen 4.17.0).

    Attributes:
        procs: Every procedure number called, in order.
        opened: Every ``CONNECT_OPEN`` as ``(name, flags)`` (``name`` is
            ``None`` for a NULL ``remote_string``).
    """

    description = "libvirtd (TCP)"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_types: Iterable[int] = (1,),
        hv_type: str = "QEMU",
        hostname: str = "fake-libvirt-host",
        hv_version: int = 8002002,
    ) -> None:
        super().__init__(host, port)
        self.auth_types = tuple(auth_types)
        self.hv_type = hv_type
        self.hostname = hostname
        self.hv_version = hv_version
        self.procs: list[int] = []
        self.opened: list[tuple[str | None, int]] = []
        if self.auth_types == (0,):
            self.description = f"libvirtd (TCP, auth none, {hv_type})"

    def _open_args(self, payload: bytes) -> tuple[str | None, int]:
        present = struct.unpack_from(">I", payload)[0] if len(payload) >= 4 else 0
        if not present:
            return None, struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
        size = struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
        name = payload[8 : 8 + size].decode("utf-8", "replace")
        offset = 8 + size + (-size % 4)
        flags = struct.unpack_from(">I", payload, offset)[0] if len(payload) >= offset + 4 else 0
        return name, flags

    def answer(self, proc: int, payload: bytes, opened: bool) -> tuple[int, bytes]:
        """Answer one call of ``REMOTE_PROGRAM``: ``(status, payload)``.

        Args:
            proc: The procedure number.
            payload: The call's XDR arguments.
            opened: Whether this connection has opened a hypervisor connection.
        """
        self.procs.append(proc)
        if proc == _PROC_AUTH_LIST:
            types = self.auth_types
            return 0, struct.pack(f">I{len(types)}i", len(types), *types)
        if self.auth_types != (0,):
            return 1, _remote_error(_VIR_ERR_AUTH_FAILED, "authentication required")
        if proc == _PROC_OPEN:
            self.opened.append(self._open_args(payload))
            return 0, b""
        if opened and proc == _PROC_TYPE:
            return 0, _xdr_string(self.hv_type)
        if opened and proc == _PROC_VERSION:
            return 0, struct.pack(">Q", self.hv_version)
        if opened and proc == _PROC_HOSTNAME:
            return 0, _xdr_string(self.hostname)
        if opened and proc == _PROC_CLOSE:
            return 0, b""
        return 1, _remote_error(_VIR_ERR_OPERATION_INVALID, "operation invalid: not supported")

    async def _packet(self, conn: _Conn) -> bytes | None:
        """Read one packet; ``None`` at the end of the stream or an impossible length."""
        while len(conn.buffer) < 4:
            if not await conn.more():
                return None
        (length,) = struct.unpack_from(">I", conn.buffer)
        if not _LIBVIRT_HEADER.size <= length <= _LIBVIRT_MAX_PACKET:
            return None  # libvirtd drops a packet length it cannot accept
        while len(conn.buffer) < length:
            if not await conn.more():
                return None
        return conn.take(length)

    async def _serve(self, conn: _Conn) -> None:
        opened = False
        while (packet := await self._packet(conn)) is not None:
            _, prog, vers, proc, kind, serial, _ = _LIBVIRT_HEADER.unpack_from(packet)
            if (prog, vers, kind) != (_REMOTE_PROGRAM, 1, 0):
                return
            status, payload = self.answer(proc, packet[_LIBVIRT_HEADER.size :], opened)
            if status == 0 and proc in (_PROC_OPEN, _PROC_CLOSE):
                opened = proc == _PROC_OPEN
            header = _LIBVIRT_HEADER.pack(
                _LIBVIRT_HEADER.size + len(payload), prog, vers, proc, 1, serial, status
            )
            await conn.send(header + payload)
