"""The probes as data: what each sends, over what, and who reads the reply.

Order matters twice. :data:`PORT_PROBES` names the probes a well-known port
gets first; :data:`FALLBACK_ORDER` is the order every other probe follows, the
most harmless request first. Every request here is checked against
:data:`FORBIDDEN`, the words that must never reach a Xen host (a relocation
server dispatches *every* SXP word it reads, so a forbidden word anywhere in a
request, even a header, could start an operation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from xendiscover._fingerprint import _libvirt, _xapi, _xend
from xendiscover._fingerprint._common import ReplyParser
from xendiscover._model import Service

__all__ = [
    "FALLBACK_ORDER",
    "FORBIDDEN",
    "PORT_PROBES",
    "PROBES",
    "RELOCATION_PORTS",
    "Probe",
    "RequestBuilder",
    "UnsafeRequestError",
    "check_request",
    "probe_plan",
]


class RequestBuilder(Protocol):
    """Builds a probe's request bytes for one target and one fresh nonce."""

    def __call__(self, *, host: str, nonce: str) -> bytes:
        """Return the exact bytes to send."""
        ...


@dataclass(frozen=True, slots=True)
class Probe:
    """One way of asking a port what it is.

    Attributes:
        name: A short, unique name (``"xapi-xmlrpc-tls"``).
        service: The service this probe is built to recognise.
        tls: Whether the request goes over TLS.
        build: Builds the request bytes.
        parse: Reads the reply bytes (see ``ReplyParser``).
    """

    name: str
    service: Service
    tls: bool
    build: RequestBuilder
    parse: ReplyParser


PROBES: tuple[Probe, ...] = (
    # GET / HTTP/1.0 without User-Agent: what any HTTP client sends, so it is
    # harmless everywhere; xend's HTTP server answers SXP to it, a relocation
    # server answers "Invalid operation: GET", libvirt drops the bad length.
    Probe("xend-http", "xend-http", False, _xend.build_http_get, _xend.parse_http),
    # (help): the relocation server's own no-op; it lists ops and runs none.
    Probe(
        "xend-relocation",
        "xend-relocation",
        False,
        _xend.build_relocation_help,
        _xend.parse_relocation,
    ),
    # system.isAlive:<uuid>: needs no session, changes nothing, is not an
    # authentication event, and xapi echoes the uuid (proof, not a guess).
    Probe("xapi-xmlrpc", "xapi", False, _xapi.build_isalive_xmlrpc, _xapi.parse_isalive_xmlrpc),
    # system.listMethods: introspection only; xend answers it without a session.
    Probe("xend-xmlrpc", "xend-xmlrpc", False, _xend.build_list_methods, _xend.parse_xmlrpc),
    # The same isAlive over JSON-RPC: the second path into xapi.
    Probe("xapi-jsonrpc", "xapi", False, _xapi.build_isalive_jsonrpc, _xapi.parse_isalive_jsonrpc),
    # AUTH_LIST: the one libvirt call allowed before authentication.
    Probe("libvirt", "libvirt", False, _libvirt.build_auth_list, _libvirt.parse_auth_list),
    # xapi behind stunnel (443): same isAlive, TLS unverified, no SNI.
    Probe("xapi-xmlrpc-tls", "xapi", True, _xapi.build_isalive_xmlrpc, _xapi.parse_isalive_xmlrpc),
    Probe(
        "xapi-jsonrpc-tls", "xapi", True, _xapi.build_isalive_jsonrpc, _xapi.parse_isalive_jsonrpc
    ),
)

_BY_NAME = {probe.name: probe for probe in PROBES}

#: The probes a well-known port gets first, by port.
PORT_PROBES: dict[int, tuple[str, ...]] = {
    443: ("xapi-xmlrpc-tls", "xapi-jsonrpc-tls"),  # xapi through stunnel
    80: ("xapi-xmlrpc", "xapi-jsonrpc"),  # xapi in the clear
    8002: ("xend-relocation",),  # xend-relocation-port
    8000: ("xend-http",),  # xend-port (HTTP/SXP)
    8006: ("xend-xmlrpc",),  # xend-tcp-xmlrpc-server-port
    9363: ("xend-xmlrpc", "xapi-xmlrpc"),  # xend's Xen-API server
    16509: ("libvirt",),  # libvirtd's TCP listener
}

#: The order of the probes on any port, after its own: the request that is
#: harmless to every service first, TLS last (a plain service just drops it).
FALLBACK_ORDER: tuple[str, ...] = tuple(probe.name for probe in PROBES)

#: The ports where "accepted and closed without a reply" suggests xend.
RELOCATION_PORTS = frozenset({8002})

#: Words no request may contain, with the reason for each.
FORBIDDEN: dict[bytes, str] = {
    b"receive": "relocation op: restores a domain from the socket (sslreceive too)",
    b"login_with_password": "an authentication attempt, logged, may lock accounts",
    b"xend.": "xend methods act on domains and the node",
    b"/xend/domain": "xend's domain resource",
    b"/xend/node": "xend's node resource",
}


class UnsafeRequestError(AssertionError):
    """A probe built a request with a forbidden word in it (a bug, never sent)."""


def check_request(request: bytes) -> bytes:
    """Return ``request`` unchanged if it holds no forbidden word.

    Raises:
        UnsafeRequestError: It does; the request must not be sent.
    """
    lowered = request.lower()
    for word, why in FORBIDDEN.items():
        if word.lower() in lowered:
            raise UnsafeRequestError(f"request contains {word!r}: {why}")
    return request


def probe_plan(port: int) -> tuple[Probe, ...]:
    """List the probes to try on ``port``, in order: its own first, then the rest."""
    names = PORT_PROBES.get(port, ())
    names += tuple(name for name in FALLBACK_ORDER if name not in names)
    return tuple(_BY_NAME[name] for name in names)
