"""Legacy xend (Xen 3.x - 4.4): relocation, HTTP/SXP and XML-RPC fingerprints.

Requests are built here as bytes and replies read here from bytes; the shared
driver does the I/O. Each ``parse_*`` function follows
:class:`~xendiscover._fingerprint._common.ReplyParser`.
"""

from __future__ import annotations

from xendiscover._fingerprint._common import (
    HttpHead,
    NeedMoreData,
    closed_silently,
    decode_xmlrpc,
    evidence,
    first_line,
    http_body,
    http_post,
    looks_like_http,
    parse_http_head,
    xenapi_failure,
    xenapi_failure_fingerprint,
)
from xendiscover._model import Fingerprint

__all__ = [
    "HOSTS_ALLOW_EVIDENCE",
    "build_http_get",
    "build_list_methods",
    "build_relocation_help",
    "match_relocation_reply",
    "parse_http",
    "parse_relocation",
    "parse_xmlrpc",
    "read_http_head",
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


def build_relocation_help(*, host: str, nonce: str) -> bytes:
    """Build the relocation probe: the SXP ``(help)`` op (lists ops, runs none)."""
    return b"(help)\n"


def build_http_get(*, host: str, nonce: str) -> bytes:
    """Build the HTTP/SXP probe: ``GET /`` without ``User-Agent`` (xend answers SXP).

    It is also harmless to every other service: HTTP servers answer it, a
    relocation server rejects the ``GET`` op, libvirt drops the bad length.
    """
    return b"GET / HTTP/1.0\r\n\r\n"


def build_list_methods(*, host: str, nonce: str) -> bytes:
    """Build the XML-RPC probe: ``system.listMethods``, HTTP/1.0 ``POST /RPC2``."""
    return http_post("/RPC2", host, "text/xml", _LIST_METHODS, http10=True)


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
        return Fingerprint("xend-relocation", "confirmed", evidence("xend relocation", line))
    if data.startswith(_ERR_TYPE):
        if b"XendError" in line:
            return Fingerprint("xend-relocation", "confirmed", evidence("xend relocation", line))
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


def _http_summary(head_line: str, server: str | None) -> bytes:
    text = head_line if server is None else f"{head_line} (Server: {server})"
    return text.encode("latin-1", "backslashreplace")


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
        if not closed and b"(ls ".startswith(body):
            raise NeedMoreData("SXP body incomplete")
        return Fingerprint("xend-http", "likely", evidence("application/sxp", body))
    summary = _http_summary(head.status_line, head.get("server"))
    return Fingerprint(None, "not-xen", evidence("HTTP, not SXP", summary))


_XENAPI_CLASSES = ("session.", "VM.", "host.", "SR.", "VDI.", "network.", "pool.")


def parse_xmlrpc(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``system.listMethods`` (xend XML-RPC: 8006, 9363).

    A list with ``xend.*`` names confirms xend; a Python-xmlrpclib list of
    Xen-API names only is *likely* xend's Xen-API server; a Xen-API
    ``Failure`` struct is told apart by its XML surface (xapi or xend).
    """
    head = read_http_head(data, closed=closed)
    if isinstance(head, Fingerprint):
        return head
    body = http_body(data, head, closed=closed)
    reply = decode_xmlrpc(body)
    if reply is None:
        summary = _http_summary(head.status_line, head.get("server"))
        return Fingerprint(None, "not-xen", evidence("HTTP, not XML-RPC", summary))
    if reply.fault is not None:
        fault = reply.fault.encode("latin-1", "backslashreplace")
        return Fingerprint(None, "not-xen", evidence("XML-RPC fault", fault))
    value = reply.value
    if isinstance(value, list):
        names = [name for name in value if isinstance(name, str)]
        xend = [name for name in names if name.startswith("xend.")]
        if xend:
            shown = ", ".join(xend[:3]).encode("ascii", "backslashreplace")
            return Fingerprint("xend-xmlrpc", "confirmed", evidence("lists", shown))
        xenapi = [name for name in names if name.startswith(_XENAPI_CLASSES)]
        if xenapi and reply.shape == "python":
            shown = ", ".join(xenapi[:2]).encode("ascii", "backslashreplace")
            return Fingerprint("xend-xmlrpc", "likely", evidence("lists Xen-API", shown))
        return Fingerprint(None, "not-xen", evidence("XML-RPC without xend methods"))
    failure = xenapi_failure(value)
    if failure is not None:
        return xenapi_failure_fingerprint(failure, reply.shape)
    return Fingerprint(None, "not-xen", evidence("XML-RPC, not xend"))
