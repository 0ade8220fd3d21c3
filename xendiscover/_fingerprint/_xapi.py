"""XAPI (XenServer, Citrix Hypervisor, XCP-ng) fingerprints: XML-RPC and JSON-RPC.

The probe is ``system.isAlive:<uuid>`` with ``[<uuid>]``: no session, no side
effect, not an authentication event. xapi echoes the UUID; an older xapi
answers a ``MESSAGE_METHOD_UNKNOWN`` failure in ocaml-rpc's XML. Each
``parse_*`` function follows :class:`~xendiscover._fingerprint._common.ReplyParser`.
"""

from __future__ import annotations

import json

from xendiscover._fingerprint._common import (
    HttpHead,
    decode_xmlrpc,
    evidence,
    http_body,
    http_post,
    xenapi_failure,
    xenapi_failure_fingerprint,
)
from xendiscover._fingerprint._xend import read_http_head
from xendiscover._model import Fingerprint

__all__ = [
    "build_isalive_jsonrpc",
    "build_isalive_xmlrpc",
    "parse_isalive_jsonrpc",
    "parse_isalive_xmlrpc",
]

# Pages xapi itself serves: its 404 page, and XCP-ng's web UI over HTTPS.
_XAPI_PAGES = (b"<address>Xapi Server</address>", b"<title>XO Lite</title>")


def build_isalive_xmlrpc(*, host: str, nonce: str) -> bytes:
    """``system.isAlive:<nonce>`` with params ``[<nonce>]`` as XML-RPC, ``POST /``.

    Args:
        host: The address the request goes to (for the ``Host`` header).
        nonce: A fresh UUID (36 characters) for this probe alone.
    """
    body = (
        '<?xml version="1.0"?><methodCall>'
        f"<methodName>system.isAlive:{nonce}</methodName>"
        f"<params><param><value><string>{nonce}</string></value></param></params>"
        "</methodCall>"
    ).encode("ascii")
    return http_post("/", host, "text/xml", body, http10=False)


def build_isalive_jsonrpc(*, host: str, nonce: str) -> bytes:
    """``system.isAlive:<nonce>`` as JSON-RPC 2.0, ``POST /jsonrpc``."""
    call = {"jsonrpc": "2.0", "method": f"system.isAlive:{nonce}", "params": [nonce], "id": 1}
    body = json.dumps(call, separators=(",", ":")).encode("ascii")
    return http_post("/jsonrpc", host, "application/json", body, http10=False)


def _http_summary(head: HttpHead) -> bytes:
    server = head.get("server")
    text = head.status_line if server is None else f"{head.status_line} (Server: {server})"
    return text.encode("latin-1", "backslashreplace")


def _read_http(data: bytes, closed: bool) -> tuple[HttpHead, bytes] | Fingerprint:
    """Return the head and complete body of an HTTP reply, or a verdict if none."""
    head = read_http_head(data, closed=closed)
    if isinstance(head, Fingerprint):
        return head
    return head, http_body(data, head, closed=closed)


def _page_verdict(head: HttpHead, body: bytes, what: str) -> Fingerprint:
    for marker in _XAPI_PAGES:
        if marker in body:
            return Fingerprint("xapi", "likely", evidence("xapi page", marker))
    return Fingerprint(None, "not-xen", evidence(f"HTTP, not {what}", _http_summary(head)))


def parse_isalive_xmlrpc(data: bytes, *, closed: bool, nonce: str) -> Fingerprint:
    """Read a reply to the XML-RPC ``system.isAlive:<nonce>`` probe.

    The nonce echoed in a ``Success`` struct confirms xapi; a Xen-API
    ``Failure`` in ocaml-rpc's XML confirms an older xapi (in xmlrpclib's XML,
    xend's Xen-API server). Any other HTTP reply is *not-xen*.
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    reply = decode_xmlrpc(body)
    if reply is None:
        return _page_verdict(head, body, "XML-RPC")
    if reply.fault is not None:
        fault = reply.fault.encode("latin-1", "backslashreplace")
        return Fingerprint(None, "not-xen", evidence("XML-RPC fault", fault))
    value = reply.value
    if isinstance(value, dict) and value.get("Status") == "Success":
        echoed = value.get("Value")
        if nonce and echoed == nonce:
            return Fingerprint("xapi", "confirmed", evidence("isAlive echoed", nonce.encode()))
        shown = str(echoed).encode("latin-1", "backslashreplace")
        return Fingerprint("xapi", "likely", evidence("Xen-API Success, no echo", shown))
    failure = xenapi_failure(value)
    if failure is not None:
        return xenapi_failure_fingerprint(failure, reply.shape)
    return Fingerprint(None, "not-xen", evidence("XML-RPC, not Xen-API"))


def parse_isalive_jsonrpc(data: bytes, *, closed: bool, nonce: str) -> Fingerprint:
    """Read a reply to the JSON-RPC ``system.isAlive:<nonce>`` probe on ``/jsonrpc``.

    ``"result": <nonce>`` confirms xapi; an error naming a Xen-API error code
    does too. Any other HTTP reply is *not-xen*.
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return _page_verdict(head, body, "JSON-RPC")
    if not isinstance(message, dict) or ("result" not in message and "error" not in message):
        return Fingerprint(None, "not-xen", evidence("JSON, not JSON-RPC", body))
    if nonce and message.get("result") == nonce:
        return Fingerprint("xapi", "confirmed", evidence("JSON isAlive echoed", nonce.encode()))
    for code in (b"MESSAGE_METHOD_UNKNOWN", b"SESSION_INVALID"):
        if message.get("error") is not None and code in body:
            return Fingerprint("xapi", "confirmed", evidence("Xen-API JSON-RPC error", code))
    return Fingerprint(None, "not-xen", evidence("JSON-RPC, not xapi", body))
