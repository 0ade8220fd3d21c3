"""The values that flow out of a scan: what was found, and what it is."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fingerprint", "Host", "Service", "Verdict"]

#: How sure a fingerprint is that a Xen management service answered.
#:
#: - ``confirmed``: the peer spoke the service's own protocol.
#: - ``likely``: the peer behaved the way the service does, without proving it
#:   (a default xend closes at once on clients outside its hosts-allow list).
#: - ``unknown``: the port is open, but the probe could not tell.
#: - ``not-xen``: the peer answered, and the answer is something else.
Verdict = Literal["confirmed", "likely", "unknown", "not-xen"]

#: The management service a fingerprint recognised, or ``None``.
Service = Literal["xend-relocation", "xend-http", "xend-xmlrpc", "xapi", "libvirt"]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a probe of one open port concluded.

    Attributes:
        service: The management service recognised, or ``None``.
        verdict: How sure the probe is (see :data:`Verdict`).
        evidence: A short, printable excerpt of what decided it.
    """

    service: Service | None
    verdict: Verdict
    evidence: str = ""


#: The fingerprint of a port that was only connected to, never probed.
UNPROBED = Fingerprint(service=None, verdict="unknown", evidence="")


@dataclass(frozen=True, slots=True)
class Host:
    """One open port found by a scan.

    Attributes:
        address: The IP address, as text (``"10.0.0.7"``, ``"fd00::7"``).
        port: The TCP port that accepted the connection.
        hostname: The name from a reverse (PTR) lookup, or ``None``.
        latency_ms: How long the TCP handshake took, in milliseconds.
        service: The management service recognised, or ``None``.
        verdict: How sure the fingerprint is (see :data:`Verdict`).
        evidence: A short excerpt of what the fingerprint decided on.
    """

    address: str
    port: int
    hostname: str | None = None
    latency_ms: float = 0.0
    service: Service | None = None
    verdict: Verdict = "unknown"
    evidence: str = ""

    @property
    def display_name(self) -> str:
        """The hostname if there is one, otherwise the address."""
        return self.hostname or self.address

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """A key that orders hosts by address (IPv4 first), then port."""
        ip = ipaddress.ip_address(self.address)
        return (ip.version, int(ip), self.port)

    def as_dict(self) -> dict[str, object]:
        """The record as a JSON-ready dictionary (the ``--json`` schema)."""
        return {
            "address": self.address,
            "port": self.port,
            "hostname": self.hostname,
            "service": self.service,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "latency_ms": round(self.latency_ms, 3),
        }
