"""The probes as data: what each sends, over what, and who reads the reply.

Order matters twice. :data:`PORT_PROBES` names the probes a well-known port
gets first; :data:`FALLBACK_ORDER` is the order every other probe follows, the
most harmless request first. Every request here is checked against
:data:`FORBIDDEN`, the words that must never reach a Xen host (a relocation
server dispatches *every* SXP word it reads, so a forbidden word anywhere in a
request, even a header, could start an operation).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from xendiscover._fingerprint import _libvirt, _tls, _xapi, _xend
from xendiscover._fingerprint._common import ReplyParser
from xendiscover._fingerprint._product import LIST_METHODS_CAP
from xendiscover._model import Fingerprint, Service

__all__ = [
    "FALLBACK_ORDER",
    "FORBIDDEN",
    "PORT_PROBES",
    "PROBES",
    "RELOCATION_PORTS",
    "RELOCATION_WAIT",
    "TLS_HELLO",
    "XAPI_LIST_METHODS",
    "XAPI_PAGE",
    "XAPI_POOL_CERT",
    "HandshakeHook",
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


#: Called with the peer's DER certificate (``None`` if it sent none) right
#: after a TLS handshake completes; a returned Fingerprint decides the
#: exchange there and then (nothing is sent), ``None`` lets it go on.
HandshakeHook = Callable[[bytes | None], Fingerprint | None]


@dataclass(frozen=True, slots=True)
class Probe:
    """One way of asking a port what it is.

    Attributes:
        name: A short, unique name (``"xapi-xmlrpc-tls"``).
        service: The service this probe is built to recognise.
        tls: Whether the request goes over TLS.
        build: Builds the request bytes (a TLS probe may build ``b""``: it
            then sends nothing after the handshake).
        parse: Reads the reply bytes (see ``ReplyParser``).
        timeout: This probe's own deadline in seconds, replacing the
            caller's, where the port is the probe's own (see
            :func:`probe_plan`); ``None``: the caller's.
        server_hostname: The TLS SNI name to send (``None``: no SNI).
        on_handshake: See :data:`HandshakeHook` (TLS probes only).
        cap: The most bytes this probe reads (``None``: the driver's
            ``READ_CAP``); only xapi's method list has its own.
    """

    name: str
    service: Service
    tls: bool
    build: RequestBuilder
    parse: ReplyParser
    timeout: float | None = None
    server_hostname: str | None = None
    on_handshake: HandshakeHook | None = None
    cap: int | None = None


#: How long the relocation probe on 8002 waits for xend's answer, in seconds.
#: A default xend (hosts-allow ``^localhost$ ...``, every xend-config.sxp
#: from 3.0.3 to 4.4) accepts a scanner, then closes without a byte -- but
#: only after ``web/tcp.py`` ``hostAllowed`` has run ``socket.getfqdn`` on
#: the scanner's address, in its one accept thread, before it accepts the
#: next connection. With no PTR for the scanner and a dom0 resolver that
#: does not answer, that takes glibc's default resolver stall: ``timeout:5``
#: times ``attempts:2`` with one nameserver, 10 s. 12 s covers it with a
#: margin for a loaded dom0. It is counted from the probe's start, which is
#: never before the connect it runs on (the sweep's own connection, see the
#: pipeline's hand-off, so the accept thread stalls once, not twice); the
#: wait costs only this port's slot, never the sweep.
RELOCATION_WAIT = 12.0


PROBES: tuple[Probe, ...] = (
    # GET / HTTP/1.0 without User-Agent: what any HTTP client sends, so it is
    # harmless everywhere; xend's HTTP server answers SXP to it, a relocation
    # server answers "Invalid operation: GET", libvirt drops the bad length.
    Probe("xend-http", "xend-http", False, _xend.build_http_get, _xend.parse_http),
    # (help): the relocation server's own no-op; it lists ops and runs none.
    # On 8002 it waits for xend's late hosts-allow close (RELOCATION_WAIT).
    Probe(
        "xend-relocation",
        "xend-relocation",
        False,
        _xend.build_relocation_help,
        _xend.parse_relocation,
        timeout=RELOCATION_WAIT,
    ),
    # system.isAlive over xmlrpclib's HTTP/1.0: xend's XML-RPC servers answer
    # any unknown method with a short MESSAGE_METHOD_UNKNOWN struct (~540 B),
    # well inside the read cap, where listMethods is 5.4-9.6 KB.
    Probe("xend-isalive", "xend-xmlrpc", False, _xend.build_isalive, _xend.parse_isalive),
    # system.isAlive:<uuid>: needs no session, changes nothing, is not an
    # authentication event, and xapi echoes the uuid (proof, not a guess).
    Probe("xapi-xmlrpc", "xapi", False, _xapi.build_isalive_xmlrpc, _xapi.parse_isalive_xmlrpc),
    # system.listMethods: introspection only; xend answers it without a session.
    Probe("xend-xmlrpc", "xend-xmlrpc", False, _xend.build_list_methods, _xend.parse_xmlrpc),
    # The same isAlive over JSON-RPC: the second path into xapi.
    Probe("xapi-jsonrpc", "xapi", False, _xapi.build_isalive_jsonrpc, _xapi.parse_isalive_jsonrpc),
    # AUTH_LIST: the one libvirt call allowed before authentication; with auth
    # "none" only, a read-only open, GET_TYPE, GET_HOSTNAME and a clean close.
    Probe("libvirt", "libvirt", False, _libvirt.build_auth_list, _libvirt.parse_libvirt),
    # xapi behind stunnel (443): same isAlive, TLS unverified, no SNI.
    Probe("xapi-xmlrpc-tls", "xapi", True, _xapi.build_isalive_xmlrpc, _xapi.parse_isalive_xmlrpc),
    Probe(
        "xapi-jsonrpc-tls", "xapi", True, _xapi.build_isalive_jsonrpc, _xapi.parse_isalive_jsonrpc
    ),
    # GET / over TLS: XCP-ng 8.3 serves its XO Lite page there (a plain web
    # page fetch, what any browser does).
    Probe("xapi-page-tls", "xapi", True, _xend.build_http_get, _xapi.parse_page),
)

#: The TLS check behind a silent close on 8002: a ClientHello, nothing sent
#: after the handshake. A TLS web server completes it (``not-xen``, from the
#: certificate); xend's plain relocation port resets or closes. Not in the
#: fallback order: it only ever follows a silent ``(help)`` on 8002.
TLS_HELLO = Probe(
    "tls-hello",
    "xend-relocation",
    True,
    _xend.build_nothing,
    _xend.parse_tls_hello,
    on_handshake=_tls.tls_server_fingerprint,
)

#: XAPI's pool certificate: a ClientHello with SNI ``pool`` (what xapi's own
#: client sends, ``ocaml/libs/stunnel/stunnel.ml``), nothing sent after the
#: handshake; the certificate is weighed by ``_tls.xapi_identity``. Only ever
#: run after a TLS probe confirmed xapi on the port.
XAPI_POOL_CERT = Probe(
    "xapi-pool-certificate",
    "xapi",
    True,
    _xend.build_nothing,
    _xend.parse_tls_hello,
    server_hostname=_tls.POOL_SNI,
    on_handshake=_tls.xapi_pool_handshake,
)

#: xapi's method list, for a version floor: ``system.listMethods`` (no session,
#: no side effect) read up to ``LIST_METHODS_CAP`` -- the one probe allowed
#: more than the 4 KiB read cap, since the list is 100-250 KB. Only ever run
#: after another probe confirmed xapi on the port, over the same transport.
XAPI_LIST_METHODS: dict[bool, Probe] = {
    tls: Probe(
        "xapi-listmethods" + ("-tls" if tls else ""),
        "xapi",
        tls,
        _xapi.build_list_methods,
        _xapi.parse_list_methods,
        cap=LIST_METHODS_CAP,
    )
    for tls in (False, True)
}

#: xapi's landing page in the clear (``GET /`` on 80): the page on old
#: releases, a 403 or a 301 to https on current ones. A follow-up only, like
#: :data:`XAPI_LIST_METHODS`; over TLS the ``xapi-page-tls`` probe does it.
XAPI_PAGE = Probe("xapi-page", "xapi", False, _xend.build_http_get, _xapi.parse_page)

_BY_NAME = {probe.name: probe for probe in PROBES}

#: The probes a well-known port gets first, by port.
PORT_PROBES: dict[int, tuple[str, ...]] = {
    443: ("xapi-xmlrpc-tls", "xapi-jsonrpc-tls", "xapi-page-tls"),  # xapi through stunnel
    80: ("xapi-xmlrpc", "xapi-jsonrpc"),  # xapi in the clear
    8002: ("xend-relocation",),  # xend-relocation-port
    8000: ("xend-http",),  # xend-port (HTTP/SXP)
    8006: ("xend-isalive", "xend-xmlrpc"),  # xend-tcp-xmlrpc-server-port
    9363: ("xend-isalive", "xend-xmlrpc"),  # xend's Xen-API server
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
    """List the probes to try on ``port``, in order: its own first, then the rest.

    A probe's own :attr:`Probe.timeout` holds only on the port it is made
    for: in the fallback order every probe gets the caller's deadline, so a
    silent peer on an unknown port never costs a long wait.
    """
    own = PORT_PROBES.get(port, ())
    rest = tuple(name for name in FALLBACK_ORDER if name not in own)
    fallback = tuple(dataclasses.replace(_BY_NAME[name], timeout=None) for name in rest)
    return tuple(_BY_NAME[name] for name in own) + fallback
