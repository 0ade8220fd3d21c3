"""A tiny DNS responder for tests: PTR answers with arbitrary label bytes.

dnsmasq refuses to serve some bytes (and escapes others); a hostile reverse
zone need not. This answers every PTR query for the configured reverse names
with the configured raw labels, every A/AAAA query with nothing, on one
loopback UDP port, until stopped. Nothing else.
"""

from __future__ import annotations

import socket
import struct
import threading


def _qname(packet: bytes, offset: int) -> tuple[bytes, int]:
    labels = []
    while (length := packet[offset]) != 0:
        labels.append(packet[offset + 1 : offset + 1 + length])
        offset += 1 + length
    return b".".join(labels).lower(), offset + 1


def _name(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


class RawPtrServer:
    """Serve ``{reverse name: [raw label, ...]}`` as PTR records on ``address``.

    An empty label list makes the server stay silent for that name (a slow
    or dead reverse zone).
    """

    def __init__(self, address: str, records: dict[str, list[bytes]]) -> None:
        self._records = {name.encode().lower(): labels for name, labels in records.items()}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, 0))
        self._sock.settimeout(0.1)
        self.nameserver = f"{address}:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawPtrServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            reply = self._answer(packet)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def _answer(self, packet: bytes) -> bytes | None:
        if len(packet) < 12:
            return None
        ident = packet[:2]
        name, end = _qname(packet, 12)
        qtype = struct.unpack("!H", packet[end : end + 2])[0]
        question = packet[12 : end + 4]
        labels = self._records.get(name) if qtype == 12 else None
        if labels == []:  # a zone whose server never answers
            return None
        if labels is None:  # NOERROR, no answer
            return ident + b"\x81\x80" + struct.pack("!HHHH", 1, 0, 0, 0) + question
        data = _name(labels)
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 12, 1, 60, len(data)) + data
        return ident + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0) + question + answer
