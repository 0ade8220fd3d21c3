"""Certificates for fake XAPI hosts, made the way xapi makes its own, when a test asks.

xapi's stunnel serves two certificates (xen-api, ``ocaml/gencert/``):

- the host's default one (``selfcert.ml`` ``host``): self-signed, CN the host
  name or FQDN, the SAN its DNS names and management IP addresses; an
  administrator may replace it with a CA-signed one
  (``host.install_server_certificate``);
- from xapi 1.291 (XenServer 8, XCP-ng 8.3), the pool certificate
  (``selfcert.ml`` ``xapi_pool``), served only to a client that sends SNI
  ``pool`` (``ocaml/libs/stunnel/stunnel.ml``): self-signed, a fresh key per
  host, its subject ONE multi-valued RDN ``{CN=<installation UUID>,
  serialNumber=<creation time as a float>}``, no extensions.

Every key here is generated with ``cryptography`` at the moment a test asks
for it and lives only in memory and a temporary directory: no private key
ships in the package.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["POOL_SNI", "XapiIdentity", "fake_certificate_pem", "fake_tls_context"]

#: The SNI name for which xapi's stunnel serves the pool certificate.
POOL_SNI = "pool"

_Key = ec.EllipticCurvePrivateKey


def _uuid4() -> str:
    return str(uuid.uuid4())


def _alt_names(dns: tuple[str, ...], ips: tuple[str, ...]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    return alt + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]


def _sign(
    subject: x509.Name,
    key: _Key,
    *,
    issuer: tuple[x509.Name, _Key] | None = None,
    alt: list[x509.GeneralName] | None = None,
    ca: bool = False,
) -> x509.Certificate:
    """A P-256 certificate for ``key``: self-signed, or signed by ``issuer``."""
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    return builder.sign(issuer_key, hashes.SHA256())


def _new_key() -> _Key:
    return ec.generate_private_key(ec.SECP256R1())


def _cn(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pool_subject(host_uuid: str) -> x509.Name:
    """``selfcert.ml``'s pool subject: one RDN holding both the CN and serialNumber."""
    created = f"{time.time():.6f}"
    return x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, host_uuid),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, created),
                ]
            )
        ]
    )


@functools.cache
def _test_ca() -> tuple[x509.Name, _Key]:
    """A certificate authority that exists only in this process (for CA-signed fakes)."""
    key = _new_key()
    return _cn("xendiscover test CA (trust nothing)"), key


def _load_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return context


def _context(cert: x509.Certificate, key: _Key) -> ssl.SSLContext:
    return _load_context(*_pem(cert, key))


def _pem(cert: x509.Certificate, key: _Key) -> tuple[bytes, bytes]:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@functools.cache
def fake_certificate_pem() -> tuple[bytes, bytes]:
    """Return a self-signed test certificate (CN ``xendiscover-fake-xapi``) and its key, PEM.

    Made on first use in this process (real servers in tests load it from a
    temporary file); it protects nothing and must never be trusted.
    """
    key = _new_key()
    return _pem(_sign(_cn("xendiscover-fake-xapi"), key), key)


def fake_tls_context() -> ssl.SSLContext:
    """Return a server TLS context with :func:`fake_certificate_pem`'s certificate."""
    return _load_context(*fake_certificate_pem())


@dataclass(frozen=True, eq=False)
class XapiIdentity:
    """Who a fake XAPI host is: its certificates, and the keys behind them.

    One identity is one host: every fake given the same :class:`XapiIdentity`
    object serves the same certificates with the same keys (a multi-homed
    host). Two identities are two hosts, whatever their fields say -- an
    impostor is an identity with another host's ``uuid``.

    Attributes:
        hostname: The default certificate's CN and SAN DNS name.
        addresses: Management IP addresses listed in its SAN.
        uuid: The host UUID: the pool certificate's CN (a fresh one by default).
        pool_certificate: Serve a pool certificate for SNI ``pool`` (xapi >=
            1.291); ``False``: a Citrix Hypervisor 8.2 / XCP-ng 8.2 era host,
            whose default certificate answers every SNI.
        ca_signed: The default certificate is signed by a test CA, as one an
            administrator installed (an identity shared by several fakes is
            then one wildcard certificate on many hosts).
    """

    hostname: str
    addresses: tuple[str, ...] = ()
    uuid: str = field(default_factory=_uuid4)
    pool_certificate: bool = True
    ca_signed: bool = False

    def certificates(self) -> tuple[bytes, bytes | None]:
        """The DER of the default certificate, and of the pool one (``None`` if none)."""
        made = _made(self)
        pool = made.pool[0].public_bytes(serialization.Encoding.DER) if made.pool else None
        return made.default[0].public_bytes(serialization.Encoding.DER), pool

    def tls_context(self) -> ssl.SSLContext:
        """A server context: the default certificate, or the pool one for SNI ``pool``."""
        return _made(self).context


@dataclass(frozen=True)
class _Made:
    default: tuple[x509.Certificate, _Key]
    pool: tuple[x509.Certificate, _Key] | None
    context: ssl.SSLContext


@functools.cache
def _made(identity: XapiIdentity) -> _Made:
    key = _new_key()
    alt = _alt_names((identity.hostname,), identity.addresses)
    issuer = _test_ca() if identity.ca_signed else None
    default = (_sign(_cn(identity.hostname), key, issuer=issuer, alt=alt), key)
    host = _context(*default)
    if not identity.pool_certificate:
        return _Made(default, None, host)
    pool_key = _new_key()
    pool = (_sign(_pool_subject(identity.uuid), pool_key), pool_key)
    pool_context = _context(*pool)

    def choose(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        if name == POOL_SNI:
            sock.context = pool_context

    host.sni_callback = choose
    return _Made(default, pool, host)
