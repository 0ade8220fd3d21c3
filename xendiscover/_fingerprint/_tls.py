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
server, which xend's plain relocation port is not), and XAPI naming (the host
name in the certificate, or the host UUID in the pool certificate that
stunnel serves for SNI ``xapi:pool``).
"""

from __future__ import annotations

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
    "CertificateNames",
    "certificate_names",
    "host_names",
    "pool_uuid",
    "tls_server_fingerprint",
    "xapi_pool_fingerprint",
]

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


def pool_uuid(der: bytes | None) -> str | None:
    """The host UUID in a XAPI pool certificate's CN (SNI ``xapi:pool``), canonical, or ``None``.

    Since 2021, xapi's stunnel serves a second certificate to clients that
    send SNI ``xapi:pool`` (``ocaml/gencert/gencert.ml``,
    ``xapi_stunnel_server.ml``); its CN is the host's installation UUID. A CN
    that is not a UUID gives ``None``.
    """
    names = certificate_names(der)
    if names is None or names.common_name is None:
        return None
    try:
        return str(uuid.UUID(names.common_name))
    except ValueError:
        return None


def xapi_pool_fingerprint(der: bytes | None) -> Fingerprint:
    """The ``on_handshake`` verdict of the pool-certificate probe: the UUID, if any."""
    found = pool_uuid(der)
    if found is None:
        return Fingerprint("xapi", "unknown", "no host UUID in the pool certificate")
    return Fingerprint("xapi", "confirmed", f"pool certificate: {found}", host_uuid=found)
