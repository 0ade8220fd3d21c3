"""The values that flow out of a scan: what was found on each port, and on each machine.

:class:`Finding` is one open port, as :func:`xendiscover.scan` streams it.
:class:`Host` is one machine, as :func:`xendiscover.discover` returns it: the
findings of every address it was seen at, grouped by :func:`group_findings`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from xendiscover._names import is_dns_name

__all__ = [
    "CONFIDENCE_RANK",
    "NO_PRODUCT",
    "VERDICT_RANK",
    "XEN_VERDICTS",
    "Confidence",
    "Finding",
    "Fingerprint",
    "Host",
    "HostnameSource",
    "PortFinding",
    "Product",
    "Service",
    "Verdict",
    "group_findings",
    "product_fields",
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


#: How sure a product or version is.
#:
#: - ``certain``: the bytes only that product writes (xapi's 404 page, its
#:   ``MESSAGE_METHOD_UNKNOWN`` shapes).
#: - ``firm``: a trait the product does not let an administrator change (the
#:   header layout of a release, a method list, the pool certificate).
#: - ``tentative``: something an administrator may edit (a landing page).
Confidence = Literal["certain", "firm", "tentative"]

#: Surest first.
CONFIDENCE_RANK: Final[Mapping[Confidence, int]] = {"certain": 0, "firm": 1, "tentative": 2}


@dataclass(frozen=True, slots=True)
class Product:
    """What product (and which version of it) answered, as ``nmap -sV`` would say it.

    Attributes:
        name: The product: ``"XCP-ng"``, ``"XenServer"``, ``"Citrix Hypervisor"``,
            ``"xapi"`` (brand unknown), ``"xend"``, ``"libvirt"``,
            ``"Xen Orchestra"`` (a management appliance, not a host).
        version: The product's version or a bound (``"8.3"``, ``">= 24.17.0"``),
            or ``None``.
        confidence: How sure the name and version are (see :data:`Confidence`).
        cpe: A CPE 2.2 name where one exists (``cpe:/a:citrix:xenserver:6.0.2``).
        info: More, as nmap's "extra info" (``"xapi >= 24.17.0"``), or ``None``.
        evidence: What it rests on, printable ASCII.
    """

    name: str
    version: str | None = None
    confidence: Confidence = "tentative"
    cpe: str | None = None
    info: str | None = None
    evidence: str = ""

    def describe(self) -> str:
        """The product in a few words: ``XCP-ng 8.3 (xapi >= 24.17.0)``."""
        text = self.name if self.version is None else f"{self.name} {self.version}"
        return text if self.info is None else f"{text} ({self.info})"

    def as_dict(self) -> dict[str, object]:
        """The product fields of a service record (``None`` when unknown)."""
        return {
            "product": self.name,
            "version": self.version,
            "confidence": self.confidence,
            "cpe": self.cpe,
            "product_info": self.info,
            "product_evidence": self.evidence,
        }


#: The product fields of a service record whose product is unknown.
NO_PRODUCT: Final[Mapping[str, object]] = {
    "product": None,
    "version": None,
    "confidence": None,
    "cpe": None,
    "product_info": None,
    "product_evidence": None,
}


def product_fields(product: Product | None) -> dict[str, object]:
    """The product fields of a record: :meth:`Product.as_dict`, or all ``None``."""
    return product.as_dict() if product is not None else dict(NO_PRODUCT)


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
        key_fingerprints: SHA-256 (lowercase hex) of the SubjectPublicKeyInfo
            of each certificate xapi generated for this host that the peer
            proved it holds the key of (the pool certificate, xapi's
            self-signed default); never a CA-signed one.
        product: The product and version, where the replies tell.
    """

    service: Service | None
    verdict: Verdict
    evidence: str = ""
    host_uuid: str | None = None
    names: tuple[str, ...] = ()
    key_fingerprints: tuple[str, ...] = ()
    product: Product | None = None


#: The fingerprint of a port that was only connected to, never probed.
UNPROBED = Fingerprint(service=None, verdict="unknown", evidence="")


def _address_key(address: str) -> tuple[int, int]:
    """A key that orders addresses as addresses (IPv4 first), not as text."""
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


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
        host_uuid: The host's UUID, where the service names it (a claim).
        certificate_names: DNS names from the service's TLS certificate.
        key_fingerprints: The keys of xapi-generated certificates the service
            proved it holds (see :attr:`Fingerprint.key_fingerprints`).
        product: The product and version, where known.
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
    key_fingerprints: tuple[str, ...] = ()
    product: Product | None = None

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """A key that orders findings by address (IPv4 first), then port."""
        return (*_address_key(self.address), self.port)

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
            "key_fingerprints": list(self.key_fingerprints),
            **product_fields(self.product),
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
        product: The product and version, where known.
    """

    address: str
    port: int
    service: Service | None
    verdict: Verdict
    evidence: str
    latency_ms: float
    product: Product | None = None

    def as_dict(self) -> dict[str, object]:
        """The service as a JSON-ready dictionary."""
        return {
            "address": self.address,
            "port": self.port,
            "service": self.service,
            "verdict": self.verdict,
            "evidence": self.evidence,
            "latency_ms": round(self.latency_ms, 3),
            **product_fields(self.product),
        }


@dataclass(frozen=True, slots=True)
class Host:
    """One machine: every address it was seen at, its best name, its services.

    Attributes:
        address: Its representative address: the lowest address its
            confirmed name resolves to, else its lowest address (IPv4 first).
            Always one of ``addresses``, chosen the same way on every run.
        addresses: Every address it was seen at, sorted (IPv4 first).
        hostname: Its best name, or ``None``; see ``hostname_source``.
        hostname_source: How the name is known (see :data:`HostnameSource`).
        host_uuid: The UUID its XAPI pool certificate claims, else ``None``.
            A claim: see ``uuid_conflict``.
        verdict: The strongest verdict of its services.
        services: What answered on each open port, by address then port.
        key_fingerprints: The keys (SHA-256 of the SubjectPublicKeyInfo,
            lowercase hex) of the xapi-generated certificates it proved it
            holds, sorted: what tells this machine apart from every other.
        uuid_conflict: Another machine of the same scan claims the same
            ``host_uuid`` under another key: one of them copied it.
    """

    address: str
    addresses: tuple[str, ...]
    hostname: str | None
    hostname_source: HostnameSource | None
    host_uuid: str | None
    verdict: Verdict
    services: tuple[PortFinding, ...]
    key_fingerprints: tuple[str, ...] = ()
    uuid_conflict: bool = False

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
        """A key that orders machines by their representative address (IPv4 first)."""
        return _address_key(self.address)

    @property
    def product(self) -> Product | None:
        """The surest product any of its services names (a Xen service first), or ``None``."""
        known = [s for s in self.services if s.product is not None]
        if not known:
            return None
        best = min(
            known,
            key=lambda s: (
                VERDICT_RANK[s.verdict],
                CONFIDENCE_RANK[s.product.confidence] if s.product else 3,
                s.product.version is None if s.product else True,
                _address_key(s.address),
                s.port,
            ),
        )
        return best.product

    def as_dict(self) -> dict[str, object]:
        """The machine as a JSON-ready dictionary (one machine record, schema v3)."""
        return {
            "address": self.address,
            "addresses": list(self.addresses),
            "hostname": self.hostname,
            "hostname_source": self.hostname_source,
            "host_uuid": self.host_uuid,
            "key_fingerprints": list(self.key_fingerprints),
            "uuid_conflict": self.uuid_conflict,
            "verdict": self.verdict,
            "services": [s.as_dict() for s in self.services],
        }


class _Groups:
    """Union-find over finding indices: joined by a shared address or proven key."""

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


def _best_name(findings: list[Finding]) -> tuple[str | None, HostnameSource | None]:
    """The lowest address's confirmed PTR name, else an unconfirmed one, else a certificate's."""
    ordered = sorted(findings, key=lambda f: f.sort_key)
    for wanted in ("ptr", "ptr-unconfirmed"):
        for finding in ordered:
            if finding.hostname is not None and finding.hostname_source == wanted:
                return finding.hostname, wanted
    for finding in ordered:
        if finding.certificate_names:
            return finding.certificate_names[0], "certificate"
    return None, None


def _representative(
    findings: list[Finding], name: str | None, source: HostnameSource | None
) -> str:
    """The lowest address the confirmed name resolves to, else the lowest address."""
    confirmed = [
        f.address
        for f in findings
        if source == "ptr" and f.hostname == name and f.hostname_source == "ptr"
    ]
    return min(confirmed or [f.address for f in findings], key=_address_key)


def _machine(findings: list[Finding]) -> Host:
    name, source = _best_name(findings)
    uuids = sorted({f.host_uuid.lower() for f in findings if f.host_uuid})
    ordered = sorted(findings, key=lambda f: f.sort_key)
    return Host(
        address=_representative(findings, name, source),
        addresses=tuple(sorted({f.address for f in findings}, key=_address_key)),
        hostname=name,
        hostname_source=source,
        host_uuid=uuids[0] if uuids else None,
        verdict=min((f.verdict for f in findings), key=VERDICT_RANK.__getitem__),
        services=tuple(
            PortFinding(
                f.address, f.port, f.service, f.verdict, f.evidence, f.latency_ms, f.product
            )
            for f in ordered
        ),
        key_fingerprints=tuple(sorted({k for f in findings for k in f.key_fingerprints})),
        uuid_conflict=len(uuids) > 1,
    )


def _flag_conflicts(hosts: list[Host]) -> list[Host]:
    """Mark every machine whose ``host_uuid`` another machine claims too."""
    claims: dict[str, int] = {}
    for host in hosts:
        if host.host_uuid is not None:
            claims[host.host_uuid] = claims.get(host.host_uuid, 0) + 1
    return [
        dataclasses.replace(host, uuid_conflict=True)
        if host.host_uuid is not None and claims[host.host_uuid] > 1
        else host
        for host in hosts
    ]


def group_findings(findings: Iterable[Finding]) -> list[Host]:
    """Group findings into machines, sorted by representative address.

    Findings are one machine when they share an address, or when they
    present the same key in a certificate xapi generated for one host (its
    pool certificate, or its self-signed default one): the TLS handshake
    proved the key, so this groups a multi-homed XAPI host on every release.
    A UUID is a claim anyone can copy, never a reason to join; two machines
    that claim one UUID are both marked ``uuid_conflict``. A CA-signed
    certificate is never a reason to join either (one wildcard certificate
    may sit on many hosts). The result does not depend on the order of the
    findings.
    """
    items = sorted(findings, key=lambda f: f.sort_key)
    groups = _Groups(len(items))
    seen: dict[tuple[str, str], int] = {}
    for index, finding in enumerate(items):
        keys = [("address", finding.address)]
        keys += [("key", key.lower()) for key in finding.key_fingerprints]
        for key in keys:
            if key in seen:
                groups.join(seen[key], index)
            else:
                seen[key] = index
    members: dict[int, list[Finding]] = {}
    for index, finding in enumerate(items):
        members.setdefault(groups.find(index), []).append(finding)
    hosts = _flag_conflicts([_machine(group) for group in members.values()])
    return sorted(hosts, key=lambda h: h.sort_key)
