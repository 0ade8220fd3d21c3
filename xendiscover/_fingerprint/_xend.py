"""Legacy xend (Xen 3.x - 4.4): relocation, HTTP/SXP and XML-RPC fingerprints.

Requests are built here as bytes and replies read here from bytes; the shared
driver does the I/O. Each ``parse_*`` function follows
:class:`~xendiscover._fingerprint._common.ReplyParser`.

Upstream, xen-project/xen at RELEASE-4.4.0 (the last release with xend):

- relocation: ``tools/python/xen/xend/server/relocate.py``, the hosts-allow
  check in ``tools/python/xen/web/tcp.py`` and ``connection.py``;
- HTTP/SXP: ``tools/python/xen/web/http.py``, ``xend/server/SrvDir.py``;
- XML-RPC: ``xend/server/XMLRPCServer.py`` and
  ``tools/python/xen/util/xmlrpclib2.py`` (``XMLRPCRequestHandler``:
  ``protocol_version = "HTTP/1.1"``; ``_marshaled_dispatch`` wraps a non-dict
  result on the Xen-API server as ``INTERNAL_ERROR``), on Python 2's
  ``BaseHTTPServer`` / ``SimpleXMLRPCServer`` / ``xmlrpclib``.
"""

from __future__ import annotations

import dataclasses
import re

from xendiscover._fingerprint._common import (
    HttpHead,
    NeedMoreData,
    RpcShape,
    closed_silently,
    decode_xmlrpc,
    evidence,
    first_line,
    http_body,
    http_host,
    http_post,
    looks_like_http,
    parse_http_head,
    xenapi_failure,
    xenapi_failure_fingerprint,
)
from xendiscover._fingerprint._product import xend_help_product, xend_python_product
from xendiscover._fingerprint._shapes import http_verdict, xapi_xmlrpc
from xendiscover._model import Fingerprint

__all__ = [
    "HOSTS_ALLOW_EVIDENCE",
    "build_http_get",
    "build_isalive",
    "build_list_methods",
    "build_nothing",
    "build_relocation_help",
    "match_relocation_reply",
    "parse_http",
    "parse_isalive",
    "parse_relocation",
    "parse_tls_hello",
    "parse_xmlrpc",
    "read_http_head",
    "xmlrpclib_prefix",
]

#: The evidence of a relocation port that accepts and closes at once: what a
#: default xend does to a client outside ``xend-relocation-hosts-allow``.
HOSTS_ALLOW_EVIDENCE = "accepted and closed without a reply (xend hosts-allow)"

_OK_HELP = b"(ok (help"
_ERR_TYPE = b"(err (type"

# system.listMethods, written the way Python's xmlrpclib writes it: the one
# introspection call xend answers without a session, with no side effect.
_LIST_METHODS = (
    b"<?xml version='1.0'?>\n<methodCall>\n<methodName>system.listMethods</methodName>\n"
    b"<params>\n</params>\n</methodCall>\n"
)
# system.isAlive, which no xend registers: SimpleXMLRPCServer hands it to the
# registered XendAPIAsyncProxy instance, whose _dispatch answers the Xen-API
# struct {'Status': 'Failure', 'ErrorDescription': ['MESSAGE_METHOD_UNKNOWN',
# 'system.isAlive']}: a 402-byte body, ~540 bytes with the head, on 8006 and 9363.
_IS_ALIVE = (
    b"<?xml version='1.0'?>\n<methodCall>\n<methodName>system.isAlive</methodName>\n"
    b"<params>\n</params>\n</methodCall>\n"
)


def build_relocation_help(*, host: str, nonce: str) -> bytes:
    """Build the relocation probe: the SXP ``(help)`` op (lists ops, runs none)."""
    return b"(help)\n"


def build_http_get(*, host: str, nonce: str) -> bytes:
    """Build the HTTP/SXP probe: ``GET /`` with ``Host``, without ``User-Agent``.

    Without ``User-Agent`` xend answers SXP. ``Host`` matters: ``SrvDir.ls``
    builds its links from ``getRequestHostname``, which falls back to
    resolving dom0's own name when the request has no ``Host`` -- a ``500``
    when that name does not resolve, no answer in time when dom0's DNS is
    slow. It is also harmless to every other service: HTTP servers answer
    it, a relocation server rejects the ``GET`` op, libvirt drops the bad
    length.
    """
    return f"GET / HTTP/1.0\r\nHost: {http_host(host)}\r\n\r\n".encode("ascii")


def build_list_methods(*, host: str, nonce: str) -> bytes:
    """Build the XML-RPC probe: ``system.listMethods``, HTTP/1.0 ``POST /RPC2``."""
    return http_post("/RPC2", host, "text/xml", _LIST_METHODS, http10=True)


def build_isalive(*, host: str, nonce: str) -> bytes:
    """Build xend's XML-RPC probe: ``system.isAlive``, HTTP/1.0 ``POST /RPC2``.

    xend knows no such method and answers a short Xen-API failure (see
    :func:`parse_isalive`); it touches no domain and needs no session.
    """
    return http_post("/RPC2", host, "text/xml", _IS_ALIVE, http10=True)


def build_nothing(*, host: str, nonce: str) -> bytes:
    """Build an empty request: a TLS probe that only wants the handshake."""
    return b""


def match_relocation_reply(data: bytes, *, closed: bool) -> Fingerprint | None:
    """Recognise a relocation server's reply line to any op.

    ``(ok (help ...))`` answers ``(help)``; ``(err (type ... XendError ...))``
    answers every op it does not know (an HTTP ``GET`` or ``POST`` included).

    Returns:
        A confirmed ``xend-relocation`` fingerprint, or ``None`` if ``data`` is
        not such a line.

    Raises:
        NeedMoreData: ``data`` may still become such a line.
    """
    line = first_line(data)
    complete = closed or b"\n" in data
    if data.startswith(_OK_HELP):
        return Fingerprint(
            "xend-relocation",
            "confirmed",
            evidence("xend relocation", line),
            product=xend_help_product(line) if complete else None,
        )
    if data.startswith(_ERR_TYPE):
        if b"XendError" in line:
            return Fingerprint(
                "xend-relocation",
                "confirmed",
                evidence("xend relocation", line),
                product=xend_python_product(error_line=line),
            )
        if not complete:
            raise NeedMoreData("relocation error line incomplete")
        return None
    if not closed and data and (_OK_HELP.startswith(data) or _ERR_TYPE.startswith(data)):
        raise NeedMoreData("relocation reply incomplete")
    return None


def read_http_head(data: bytes, *, closed: bool) -> HttpHead | Fingerprint:
    """The head of an HTTP reply, or the verdict when there is none to read.

    The opening every HTTP-based probe shares: nothing yet (wait, or a close
    without a byte), a relocation server's error line (it took the request
    line for an op), SXP that is not xend's, or bytes that are not HTTP.

    Raises:
        NeedMoreData: Nothing has arrived yet, or the head is incomplete.
    """
    if not data:
        if closed:
            return closed_silently()
        raise NeedMoreData("no reply yet")
    found = match_relocation_reply(data, closed=closed)
    if found is not None:
        return found
    head = parse_http_head(data, closed=closed)
    return _not_http_not_sxp(data) if head is None else head


def _not_http_not_sxp(data: bytes) -> Fingerprint:
    if data.startswith(b"("):
        return Fingerprint(None, "unknown", evidence("SXP reply, not xend's", first_line(data)))
    return Fingerprint(None, "not-xen", evidence("other reply", data))


def parse_relocation(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``(help)`` on a relocation port (8002).

    Zero bytes then a clean close is *likely* xend (its hosts-allow reject);
    an HTTP reply is *not-xen*; other SXP is *unknown*.
    """
    if not data:
        if closed:
            return Fingerprint("xend-relocation", "likely", HOSTS_ALLOW_EVIDENCE)
        raise NeedMoreData("no reply yet")
    found = match_relocation_reply(data, closed=closed)
    if found is not None:
        return found
    http = looks_like_http(data)
    if http is None:
        if not closed:
            raise NeedMoreData("reply too short")
        http = False
    if http:
        return Fingerprint(None, "not-xen", evidence("HTTP reply, not xend", first_line(data)))
    return _not_http_not_sxp(data)


def parse_http(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``GET / HTTP/1.0`` (no ``User-Agent``), e.g. on port 8000.

    ``Content-Type: application/sxp`` with a body starting ``(ls `` confirms
    xend's HTTP/SXP server. A relocation server's error line (it took ``GET``
    for an op) confirms relocation. Any other HTTP reply is *not-xen*.
    """
    head = read_http_head(data, closed=closed)
    if isinstance(head, Fingerprint):
        return head
    content_type = (head.get("content-type") or "").lower()
    if "application/sxp" in content_type:
        body = data[head.body_start :]
        if body.startswith(b"(ls "):
            return Fingerprint("xend-http", "confirmed", evidence("application/sxp", body))
        length = head.content_length
        complete = closed or (length is not None and len(body) >= length)
        if not complete and b"(ls ".startswith(body):
            raise NeedMoreData("SXP body incomplete")
        return Fingerprint("xend-http", "likely", evidence("application/sxp", body))
    return http_verdict(head, http_body(data, head, closed=closed), "SXP")


_XENAPI_CLASSES = ("session.", "VM.", "host.", "SR.", "VDI.", "network.", "pool.")

_PY_DECLARATION = b"<?xml version='1.0'?>"
# One listed xend method, as xmlrpclib writes a list item.
_LISTED_XEND = re.compile(rb"<value><string>(xend\.[A-Za-z0-9_.]{1,64})</string></value>")
# The first ErrorDescription item of a Xen-API failure, as xmlrpclib writes it.
_FAILURE_CODE = re.compile(
    rb"<name>ErrorDescription</name>\s{0,4}<value><array><data>\s{0,4}"
    rb"<value><string>([A-Z][A-Z0-9_]{1,63})</string></value>"
)


def xmlrpclib_prefix(body: bytes) -> Fingerprint | None:
    """Decide from the first bytes of a Python-xmlrpclib reply too large to read whole.

    xend's ``system.listMethods`` reply is about 5.4 KB on 8006 (94
    ``xend.*`` names, 4.4.0) and about 9.6 KB on 9363, where
    ``xmlrpclib2._marshaled_dispatch`` wraps the list as ``['INTERNAL_ERROR',
    'Invalid result [...] handling system.listMethods']``: both are larger
    than the read cap. The prefix is enough: xmlrpclib's declaration, a
    ``<methodResponse>``, then a listed ``xend.`` name, or a Xen-API
    ``ErrorDescription`` code.

    Returns:
        A confirmed ``xend-xmlrpc`` fingerprint, or ``None`` if the prefix
        does not (yet) show one.
    """
    stripped = body.lstrip()
    if not stripped.startswith(_PY_DECLARATION) or b"<methodResponse>" not in stripped[:80]:
        return None
    listed = _LISTED_XEND.search(stripped)
    if listed is not None:
        return Fingerprint("xend-xmlrpc", "confirmed", evidence("lists", listed[1]))
    failure = _FAILURE_CODE.search(stripped)
    if failure is not None and b"<string>Failure</string>" in stripped:
        label = "Xen-API Failure (xmlrpclib)"
        return Fingerprint("xend-xmlrpc", "confirmed", evidence(label, failure[1]))
    if failure is not None and b"<name>Status</name>" not in stripped:
        # The Status member may come after a 9.6 KB ErrorDescription.
        label = "Xen-API ErrorDescription (xmlrpclib)"
        return Fingerprint("xend-xmlrpc", "confirmed", evidence(label, failure[1]))
    return None


def _xmlrpc_body(data: bytes, head: HttpHead, closed: bool) -> bytes | Fingerprint:
    """The complete body, or a verdict from the prefix of one too large to wait for.

    Raises:
        NeedMoreData: The body is incomplete and its prefix does not decide.
    """
    try:
        body = http_body(data, head, closed=closed)
    except NeedMoreData:
        found = xmlrpclib_prefix(data[head.body_start :])
        if found is not None:
            return found
        raise
    length = head.content_length
    if length is not None and len(body) < length:  # closed before the end
        found = xmlrpclib_prefix(body)
        if found is not None:
            return found
    return body


def _listing_verdict(names: list[str], shape: RpcShape) -> Fingerprint:
    xend = [name for name in names if name.startswith("xend.")]
    if xend:
        shown = ", ".join(xend[:3]).encode("ascii", "backslashreplace")
        return Fingerprint("xend-xmlrpc", "confirmed", evidence("lists", shown))
    xenapi = [name for name in names if name.startswith(_XENAPI_CLASSES)]
    if xenapi and shape == "python":
        shown = ", ".join(xenapi[:2]).encode("ascii", "backslashreplace")
        return Fingerprint("xend-xmlrpc", "likely", evidence("lists Xen-API", shown))
    return Fingerprint(None, "not-xen", evidence("XML-RPC without xend methods"))


def _xmlrpc_verdict(head: HttpHead, body: bytes) -> Fingerprint:
    """The verdict on a complete XML-RPC reply body (listMethods or isAlive)."""
    reply = decode_xmlrpc(body)
    if reply is None:
        return http_verdict(head, body, "XML-RPC")
    if reply.fault is not None:
        fault = reply.fault.encode("latin-1", "backslashreplace")
        return Fingerprint(None, "not-xen", evidence("XML-RPC fault", fault))
    if reply.shape == "ocaml":  # xapi's XML: its listing, a Failure, a Success
        found = xapi_xmlrpc(head, body, reply)
        if found is not None:
            return found
    value = reply.value
    if isinstance(value, list):
        names = [name for name in value if isinstance(name, str)]
        return _listing_verdict(names, reply.shape)
    failure = xenapi_failure(value)
    if failure is not None:
        return xenapi_failure_fingerprint(failure, reply.shape)
    return Fingerprint(None, "not-xen", evidence("XML-RPC, not xend"))


def parse_xmlrpc(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``system.listMethods`` (xend XML-RPC: 8006, 9363).

    A list with ``xend.*`` names confirms xend; a Python-xmlrpclib list of
    Xen-API names only is *likely* xend's Xen-API server; a Xen-API
    ``Failure`` struct is told apart by its XML surface (xapi or xend). A
    reply too large for the read cap is decided from its prefix (see
    :func:`xmlrpclib_prefix`).
    """
    head = read_http_head(data, closed=closed)
    if isinstance(head, Fingerprint):
        return head
    body = _xmlrpc_body(data, head, closed)
    if isinstance(body, Fingerprint):
        return _with_python(body, head)
    return _with_python(_xmlrpc_verdict(head, body), head)


def _with_python(found: Fingerprint, head: HttpHead) -> Fingerprint:
    """Give a xend XML-RPC fingerprint the dom0 Python its ``Server:`` header names."""
    if found.service != "xend-xmlrpc" or found.product is not None:
        return found
    product = xend_python_product(server=head.get("server"))
    return dataclasses.replace(found, product=product) if product is not None else found


def parse_isalive(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``system.isAlive`` on xend's XML-RPC ports (8006, 9363).

    xend answers ``{'Status': 'Failure', 'ErrorDescription':
    ['MESSAGE_METHOD_UNKNOWN', 'system.isAlive']}`` written by Python's
    xmlrpclib: confirmed ``xend-xmlrpc``. The same failure in ocaml-rpc's
    XML is xapi. Any other reply is read as :func:`parse_xmlrpc` reads one.
    """
    return parse_xmlrpc(data, closed=closed, nonce=nonce)


def parse_tls_hello(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read what follows a TLS ClientHello that sent no request (the 8002 check).

    The verdict that matters comes from the handshake itself (the probe's
    ``on_handshake``, see :mod:`xendiscover._fingerprint._tls`). Here: bytes
    over an established TLS session mean a TLS server spoke (``not-xen``);
    a close without a byte, during or after the handshake, decides nothing.
    """
    if data:
        return Fingerprint(None, "not-xen", evidence("TLS server answered", first_line(data)))
    if closed:
        return Fingerprint(None, "unknown", "closed without a TLS reply")
    raise NeedMoreData("no reply yet")
