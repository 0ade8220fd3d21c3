"""The values that flow out of a scan: what was found on each port, and on each machine.

:class:`Finding` is one open port, as :func:`xendiscover.scan` streams it.
:class:`Host` is one machine, as :func:`xendiscover.discover` returns it: the
findings of every address it was seen at, grouped by :func:`group_findings`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from xendiscover._names import is_dns_name

__all__ = [
    "VERDICT_RANK",
    "XEN_VERDICTS",
    "Finding",
    "Fingerprint",
    "Host",
    "HostnameSource",
    "PortFinding",
    "Service",
    "Verdict",
    "group_findings",
]

#: How sure a fingerprint is that a Xen management service answered.
#:
#: - ``confirmed``: the peer spoke the service's own protocol.
#: - ``likely``: the peer behaved the way the service does, without proving it
#:   (a default xend closes at once on clients outside its hosts-allow list).
#: - ``unknown``: the port is open, but the probe could not tell.
#: - ``not-xen``: the peer answered, and the answer is something else.
Verdict = Literal["confirmed", "likely", "unknown", "not-xen"]

#: Strongest first: a machine's verdict is the strongest of its services'.
VERDICT_RANK: Final[Mapping[Verdict, int]] = {
    "confirmed": 0,
    "likely": 1,
    "unknown": 2,
    "not-xen": 3,
}

#: Verdicts that make a machine a Xen machine.
XEN_VERDICTS: Final[frozenset[Verdict]] = frozenset({"confirmed", "likely"})

#: The management service a fingerprint recognised, or ``None``.
Service = Literal["xend-relocation", "xend-http", "xend-xmlrpc", "xapi", "libvirt"]

#: How a machine's name is known.
#:
#: - ``ptr``: a reverse (PTR) name whose forward (A/AAAA) lookup, through the
#:   same nameservers, includes the address (forward-confirmed, FCrDNS). The
#:   only name trusted as an identity.
#: - ``ptr-unconfirmed``: a PTR name that is not forward-confirmed, or is not
#:   a valid DNS name (shown escaped). Whoever controls the reverse zone
#:   chose it.
#: - ``certificate``: a DNS name from the TLS certificate a service presented.
#:   An admin or the peer chose it; a name, never proof.
HostnameSource = Literal["ptr", "ptr-unconfirmed", "certificate"]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a probe of one open port concluded.

    Attributes:
        service: The management service recognised, or ``None``.
        verdict: How sure the probe is (see :data:`Verdict`).
        evidence: A short, printable excerpt of what decided it.
        host_uuid: The host's UUID, where the service names it (XAPI's pool
            certificate), else ``None``.
        names: DNS names the service presented (a TLS certificate's CN and
            SAN), already checked as DNS names.
    """

    service: Service | None
    verdict: Verdict
    evidence: str = ""
    host_uuid: str | None = None
    names: tuple[str, ...] = ()


#: The fingerprint of a port that was only connected to, never probed.
UNPROBED = Fingerprint(service=None, verdict="unknown", evidence="")


@dataclass(frozen=True, slots=True)
class Finding:
    """One open port, as :func:`xendiscover.scan` yields it.

    Attributes:
        address: The IP address, as text (``"10.0.0.7"``, ``"fd00::7"``).
        port: The TCP port that accepted the connection.
        service: The management service recognised, or ``None``.
        verdict: How sure the fingerprint is (see :data:`Verdict`).
        evidence: A short excerpt of what the fingerprint decided on.
        latency_ms: How long the TCP handshake took, in milliseconds.
        hostname: The address's PTR name, or ``None`` (see ``hostname_source``).
        hostname_source: ``ptr`` (forward-confirmed), ``ptr-unconfirmed``,
            or ``None`` when there is no PTR name.
        host_uuid: The host's UUID, where the service names it.
        certificate_names: DNS names from the service's TLS certificate.
    """

    address: str
    port: int
    service: Service | None = None
    verdict: Verdict = "unknown"
    evidence: str = ""
    latency_ms: float = 0.0
    hostname: str | None = None
    hostname_source: HostnameSource | None = None
    host_uuid: str | None = None
    certificate_names: tuple[str, ...] = ()

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """A key that orders findings by address (IPv4 first), then port."""
        ip = ipaddress.ip_address(self.address)
        return (ip.version, int(ip), self.port)

    def as_dict(self) -> dict[str, object]:
        """The record as a JSON-ready dictionary (one ``jsonl`` line)."""
        return {
            "address": self.address,
            "port": self.port,
            "service": self.service,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "latency_ms": round(self.latency_ms, 3),
            "hostname": self.hostname,
            "hostname_source": self.hostname_source,
            "host_uuid": self.host_uuid,
        }


@dataclass(frozen=True, slots=True)
class PortFinding:
    """One service of a machine: what answered on one port of one address.

    Attributes:
        address: The address the port was found open at.
        port: The TCP port.
        service: The management service recognised, or ``None``.
        verdict: How sure the fingerprint is.
        evidence: A short excerpt of what the fingerprint decided on.
        latency_ms: How long the TCP handshake took, in milliseconds.
    """

    address: str
    port: int
    service: Service | None
    verdict: Verdict
    evidence: str
    latency_ms: float

    def as_dict(self) -> dict[str, object]:
        """The service as a JSON-ready dictionary."""
        return {
            "address": self.address,
            "port": self.port,
            "service": self.service,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "latency_ms": round(self.latency_ms, 3),
        }


def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


@dataclass(frozen=True, slots=True)
class Host:
    """One machine: every address it was seen at, its best name, its services.

    Attributes:
        address: The address it was first found at.
        addresses: Every address it was seen at, sorted (IPv4 first).
        hostname: Its best name, or ``None``; see ``hostname_source``.
        hostname_source: How the name is known (see :data:`HostnameSource`).
        host_uuid: Its UUID where a service named it (XAPI), else ``None``.
        verdict: The strongest verdict of its services.
        services: What answered on each open port, by address then port.
    """

    address: str
    addresses: tuple[str, ...]
    hostname: str | None
    hostname_source: HostnameSource | None
    host_uuid: str | None
    verdict: Verdict
    services: tuple[PortFinding, ...]

    @property
    def key(self) -> str:
        """Its identity in inventories and lists: a confirmed PTR name, else the address.

        A name that is not forward-confirmed (or came from a certificate) is
        never a key: whoever controls a reverse zone or a certificate could
        otherwise pass as any trusted host.
        """
        if self.hostname_source == "ptr" and self.hostname and is_dns_name(self.hostname):
            return self.hostname
        return self.address

    @property
    def display_name(self) -> str:
        """The name to show a person: its best name if it has one, else the address."""
        return self.hostname or self.address

    @property
    def sort_key(self) -> tuple[int, int]:
        """A key that orders machines by their first address (IPv4 first)."""
        return _address_key(self.address)

    def as_dict(self) -> dict[str, object]:
        """The machine as a JSON-ready dictionary (one element of ``--format json``)."""
        return {
            "address": self.address,
            "addresses": list(self.addresses),
            "hostname": self.hostname,
            "hostname_source": self.hostname_source,
            "host_uuid": self.host_uuid,
            "verdict": self.verdict,
            "services": [s.as_dict() for s in self.services],
        }


class _Groups:
    """Union-find over finding indices: joined by a shared address or host UUID."""

    def __init__(self, count: int) -> None:
        self._parent = list(range(count))

    def find(self, i: int) -> int:
        while self._parent[i] != i:
            self._parent[i] = self._parent[self._parent[i]]
            i = self._parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


def _best_name(findings: list[Finding], first: str) -> tuple[str | None, HostnameSource | None]:
    """A confirmed PTR name (the first address's first), else unconfirmed, else certificate."""
    ordered = sorted(findings, key=lambda f: (f.address != first, _address_key(f.address)))
    for wanted in ("ptr", "ptr-unconfirmed"):
        for finding in ordered:
            if finding.hostname is not None and finding.hostname_source == wanted:
                return finding.hostname, wanted
    for finding in ordered:
        if finding.certificate_names:
            return finding.certificate_names[0], "certificate"
    return None, None


def _machine(findings: list[Finding]) -> Host:
    first = findings[0].address
    name, source = _best_name(findings, first)
    uuid = next((f.host_uuid for f in findings if f.host_uuid), None)
    ordered = sorted(findings, key=lambda f: f.sort_key)
    return Host(
        address=first,
        addresses=tuple(sorted({f.address for f in findings}, key=_address_key)),
        hostname=name,
        hostname_source=source,
        host_uuid=uuid,
        verdict=min((f.verdict for f in findings), key=VERDICT_RANK.__getitem__),
        services=tuple(
            PortFinding(f.address, f.port, f.service, f.verdict, f.evidence, f.latency_ms)
            for f in ordered
        ),
    )


def group_findings(findings: Iterable[Finding]) -> list[Host]:
    """Group findings into machines, sorted by first address.

    Findings are one machine when they share an address, or a ``host_uuid``
    (a multi-homed XAPI host). A machine's ``address`` is that of the first
    of its findings given (the order a scan found them in).
    """
    items = list(findings)
    groups = _Groups(len(items))
    seen: dict[tuple[str, str], int] = {}
    for index, finding in enumerate(items):
        keys = [("address", finding.address)]
        if finding.host_uuid:
            keys.append(("uuid", finding.host_uuid.lower()))
        for key in keys:
            if key in seen:
                groups.join(seen[key], index)
            else:
                seen[key] = index
    members: dict[int, list[Finding]] = {}
    for index, finding in enumerate(items):
        members.setdefault(groups.find(index), []).append(finding)
    return sorted((_machine(group) for group in members.values()), key=lambda h: h.sort_key)
