"""Certificates for fake XAPI hosts, made the way xapi makes its own.

xapi's stunnel serves two certificates: the host's (``ocaml/gencert/
selfcert.ml``: CN is the host name or FQDN, the SAN lists its DNS names and
management IP addresses) and, to clients that send SNI ``xapi:pool``, the
pool certificate (``ocaml/gencert/gencert.ml``, ``xapi_stunnel_server.ml``:
CN is the host's installation UUID). :class:`XapiIdentity` makes both with
``cryptography``, at the moment a test asks, and a server TLS context that
picks between them by SNI as stunnel does.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["POOL_SNI", "XapiIdentity"]

#: The SNI name for which xapi's stunnel serves the pool certificate.
POOL_SNI = "xapi:pool"


def _uuid4() -> str:
    return str(uuid.uuid4())


def _certificate(
    common_name: str, dns: tuple[str, ...], ips: tuple[str, ...]
) -> tuple[bytes, bytes]:
    """A self-signed P-256 certificate and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class XapiIdentity:
    """Who a fake XAPI host says it is, in its two certificates.

    Attributes:
        hostname: The host certificate's CN and SAN DNS name.
        addresses: Management IP addresses listed in the host certificate's SAN.
        uuid: The host UUID: the pool certificate's CN (a fresh one by default).
    """

    hostname: str
    addresses: tuple[str, ...] = ()
    uuid: str = field(default_factory=_uuid4)

    def tls_context(self) -> ssl.SSLContext:
        """A server context: the host certificate, or the pool one for SNI ``xapi:pool``."""
        return _contexts(self)


@functools.cache
def _contexts(identity: XapiIdentity) -> ssl.SSLContext:
    host = _context(*_certificate(identity.hostname, (identity.hostname,), identity.addresses))
    pool = _context(*_certificate(identity.uuid, (), ()))

    def choose(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        if name == POOL_SNI:
            sock.context = pool

    host.sni_callback = choose
    return host
