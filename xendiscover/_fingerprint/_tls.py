"""What a peer's TLS certificate says, read safely: names for evidence, never trust.

The driver hands the peer's DER certificate to a probe's ``on_handshake``
hook right after a TLS handshake completes (see
:class:`~xendiscover._fingerprint._probes.Probe`). Everything here is pure:
bytes in, values out. Certificates are hostile input like any reply: they are
decoded by the ``cryptography`` library (never by hand), only the first
:data:`MAX_DER` bytes are accepted, at most :data:`MAX_NAMES` names of each
kind are kept, and every name comes back as printable ASCII of bounded length
(see :func:`~xendiscover._fingerprint._common.excerpt`).

Two users: the 8002 relocation check (a completed handshake proves a TLS
server, which xend's plain relocation port is not), and XAPI identity: the
host name in its default certificate, and -- the only proof -- the keys of
the certificates xapi generated for the host (:func:`xapi_identity`).

xapi's stunnel serves the pool certificate (xapi >= 1.291, XenServer 8 /
XCP-ng 8.3) to a client that sends SNI ``pool``: xen-api
``ocaml/libs/stunnel/stunnel.ml`` (``let pool = { sni = Some "pool"; ... }``).
Any other SNI, or none, gets the default certificate. The pool
certificate's subject is ONE multi-valued RDN ``{CN=<installation UUID>,
serialNumber=<creation time as a float>}`` with no extensions
(``ocaml/gencert/selfcert.ml``).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xendiscover._fingerprint._common import evidence, excerpt
from xendiscover._model import Fingerprint

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "MAX_DER",
    "MAX_NAMES",
    "NAME_LIMIT",
    "POOL_SNI",
    "CertificateKey",
    "CertificateNames",
    "XapiCertificates",
    "certificate_key",
    "certificate_names",
    "host_names",
    "pool_uuid",
    "tls_server_fingerprint",
    "xapi_identity",
    "xapi_pool_handshake",
]

#: The SNI name xapi's own client sends for the pool certificate (``stunnel.ml``).
POOL_SNI = "pool"

#: The largest certificate accepted, in bytes (real ones are 1-2 KiB).
MAX_DER = 16 * 1024
#: The most DNS names (and, separately, IP addresses) kept from one certificate.
MAX_NAMES = 16
#: The longest single name or subject kept, in characters.
NAME_LIMIT = 64


@dataclass(frozen=True, slots=True)
class CertificateNames:
    """The names a certificate claims, escaped and bounded.

    Attributes:
        subject: The subject as an RFC 4514 string (``CN=host,O=...``).
        common_name: The first subject ``CN``, or ``None``.
        dns_names: ``subjectAltName`` DNS names, in certificate order.
        ip_addresses: ``subjectAltName`` IP addresses, as text.
    """

    subject: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]


def _clean(text: str) -> str:
    """Printable ASCII, at most :data:`NAME_LIMIT` characters."""
    return excerpt(text.encode("utf-8", "backslashreplace"), NAME_LIMIT)


def _common_name(cert: x509.Certificate) -> str | None:
    from cryptography.x509.oid import NameOID

    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        text = value if isinstance(value, str) else value.decode("latin-1")
        return _clean(text)
    return None


def _alt_names(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from cryptography import x509

    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (), ()
    names = extension.value
    dns = names.get_values_for_type(x509.DNSName)[:MAX_NAMES]
    ips = names.get_values_for_type(x509.IPAddress)[:MAX_NAMES]
    return tuple(_clean(name) for name in dns), tuple(_clean(str(ip)) for ip in ips)


def certificate_names(der: bytes | None) -> CertificateNames | None:
    """Read the names out of a DER certificate, as hostile input.

    Args:
        der: The certificate as the peer sent it (``None``: none was sent).

    Returns:
        The names, or ``None`` when there is no certificate, it is larger
        than :data:`MAX_DER`, or it does not decode (any decoding error of
        the subject, extensions included, counts as "does not decode").
    """
    if not der or len(der) > MAX_DER:
        return None
    # Imported here, on the first certificate: cryptography costs about 16 MB
    # of memory, which a sweep that meets no TLS peer never needs.
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        common_name = _common_name(cert)
        dns_names, ip_addresses = _alt_names(cert)
    except (ValueError, TypeError, UnicodeError):
        return None
    return CertificateNames(_clean(subject), common_name, dns_names, ip_addresses)


def tls_server_fingerprint(der: bytes | None) -> Fingerprint:
    """The verdict on a peer that completed a TLS handshake where xend speaks plain TCP.

    xend's relocation server (8002) never speaks TLS (its SSL variant has its
    own port, ``xend-relocation-ssl-port``, 8003): a completed handshake is
    an ordinary TLS server, so the verdict is ``not-xen``, with the
    certificate subject as evidence.

    Args:
        der: The peer's DER certificate (``None`` if it sent none).
    """
    names = certificate_names(der)
    if names is None:
        label = "TLS handshake completed (no readable certificate)"
        return Fingerprint(None, "not-xen", evidence(label))
    shown = names.subject or "empty subject"
    return Fingerprint(None, "not-xen", evidence("TLS server, subject", shown.encode("ascii")))


def host_names(der: bytes | None) -> tuple[str, ...]:
    """The names a (XAPI host) certificate gives its host: the CN, then the SAN DNS names.

    xapi's default certificate (``ocaml/gencert/selfcert.ml``) has the host
    name or FQDN as its CN and lists the DNS names in its SAN. Names only:
    the caller checks them as DNS names, and an admin-installed certificate
    may say anything, so they are never proof of identity.
    """
    names = certificate_names(der)
    if names is None:
        return ()
    found = ((names.common_name,) if names.common_name else ()) + names.dns_names
    return tuple(dict.fromkeys(found))


def _load(der: bytes | None) -> x509.Certificate | None:
    if not der or len(der) > MAX_DER:
        return None
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError):
        return None


def _pool_layout(cert: x509.Certificate) -> str | None:
    """The UUID of a subject laid out as xapi's pool certificate, else ``None``.

    ``selfcert.ml`` writes ONE multi-valued RDN: ``{CN=<uuid>,
    serialNumber=<float>}``; the CN must be a UUID.
    """
    from cryptography.x509.oid import NameOID

    rdns = list(cert.subject.rdns)
    if len(rdns) != 1:
        return None
    values = {attribute.oid: attribute.value for attribute in rdns[0]}
    if set(values) != {NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER}:
        return None
    common_name = values[NameOID.COMMON_NAME]
    try:
        float(str(values[NameOID.SERIAL_NUMBER]))
        return str(uuid.UUID(str(common_name)))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CertificateKey:
    """What a certificate proves, once a TLS handshake with it completed.

    Attributes:
        sha256: SHA-256 of its SubjectPublicKeyInfo (DER), lowercase hex: the
            key the peer proved it holds.
        self_signed: Its issuer is its subject: made on the host (as xapi
            makes its default and pool certificates), not signed by a CA.
        pool_uuid: The UUID, when the subject has the pool certificate's
            layout (see :func:`_pool_layout`) and it is self-signed; else
            ``None``. A claim: anyone may copy a UUID into a certificate.
    """

    sha256: str
    self_signed: bool
    pool_uuid: str | None


def certificate_key(der: bytes | None) -> CertificateKey | None:
    """Read a certificate's key fingerprint, whether it is self-signed, and a pool UUID.

    Args:
        der: The certificate the peer presented in a completed handshake.

    Returns:
        The facts, or ``None`` if there is no readable certificate.
    """
    cert = _load(der)
    if cert is None:
        return None
    from cryptography.hazmat.primitives import serialization

    try:
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self_signed = cert.issuer == cert.subject
        claimed = _pool_layout(cert) if self_signed else None
    except (ValueError, TypeError, UnicodeError):
        return None
    return CertificateKey(hashlib.sha256(spki).hexdigest(), self_signed, claimed)


@dataclass(frozen=True, slots=True)
class XapiCertificates:
    """What a XAPI host's two certificates say and prove.

    Attributes:
        names: The default certificate's names (:func:`host_names`).
        key_fingerprints: The keys of the xapi-generated certificates among
            them (self-signed: the default one on releases and hosts where an
            administrator did not replace it, and the pool certificate).
        host_uuid: The UUID in the pool certificate, or ``None`` (no pool
            certificate: a release before xapi 1.291, or not read).
        pool_certificate: Whether a distinct pool certificate was served.
    """

    names: tuple[str, ...]
    key_fingerprints: tuple[str, ...]
    host_uuid: str | None
    pool_certificate: bool


def xapi_identity(default: bytes | None, pool: bytes | None) -> XapiCertificates:
    """Weigh the certificate of the confirming handshake and the one served for SNI ``pool``.

    A release without a pool certificate serves its default certificate for
    SNI ``pool`` too: only a *distinct*, self-signed certificate with the
    pool layout counts as one. A CA-signed certificate adds no key: an
    administrator may install one wildcard certificate on many hosts.
    """
    own = certificate_key(default)
    other = certificate_key(pool) if pool and pool != default else None
    is_pool = other is not None and other.pool_uuid is not None
    keys = [found.sha256 for found in (own, other) if found is not None and found.self_signed]
    return XapiCertificates(
        names=host_names(default),
        key_fingerprints=tuple(dict.fromkeys(keys)),
        host_uuid=other.pool_uuid if is_pool and other is not None else None,
        pool_certificate=is_pool,
    )


def pool_uuid(der: bytes | None) -> str | None:
    """The host UUID a XAPI pool certificate claims, canonical, or ``None``.

    Only a self-signed certificate with the pool layout (one multi-valued
    RDN ``{CN=<uuid>, serialNumber=<float>}``) names one.
    """
    found = certificate_key(der)
    return found.pool_uuid if found is not None else None


def xapi_pool_handshake(der: bytes | None) -> Fingerprint:
    """The ``on_handshake`` hook of the pool-certificate probe: stop after the handshake.

    The certificate itself is weighed by :func:`xapi_identity`.
    """
    shown = "pool certificate read" if der else "no certificate for SNI pool"
    return Fingerprint("xapi", "unknown", shown)
