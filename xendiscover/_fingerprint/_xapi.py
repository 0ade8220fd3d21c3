"""XAPI (XenServer, Citrix Hypervisor, XCP-ng) fingerprints: XML-RPC and JSON-RPC.

The probe is ``system.isAlive:<uuid>`` with ``[<uuid>]``: no session, no side
effect, not an authentication event. xapi echoes the UUID; an older xapi
answers a ``MESSAGE_METHOD_UNKNOWN`` failure in ocaml-rpc's XML. Each
``parse_*`` function follows :class:`~xendiscover._fingerprint._common.ReplyParser`.

Upstream: xapi-project/xen-api (master, 2024-2025) -- error codes from
``ocaml/xapi-consts/api_errors.ml``, the emergency-mode answer from
``ocaml/xapi/xapi_globs.ml`` (``emergency_mode_error``, default
``HOST_STILL_BOOTING``), HTTP replies from ``ocaml/libs/http-lib/http_svr.ml``;
the JSON-RPC envelope from mirage/ocaml-rpc ``src/lib/jsonrpc.ml``
(``json_of_response``: version 2 errors are the failure's contents, for
xapi the array ``[code, params...]``, not a ``{code, message}`` object).
"""

from __future__ import annotations

import json

from xendiscover._fingerprint._common import (
    HttpHead,
    decode_xmlrpc,
    evidence,
    http_body,
    http_post,
)
from xendiscover._fingerprint._shapes import (
    XAPI_ERROR_CODES,
    http_verdict,
    jsonrpc_error_verdict,
    with_xapi_product,
    xapi_xmlrpc,
)
from xendiscover._fingerprint._xend import read_http_head
from xendiscover._model import Fingerprint

__all__ = [
    "XAPI_ERROR_CODES",
    "build_isalive_jsonrpc",
    "build_isalive_xmlrpc",
    "build_list_methods",
    "jsonrpc_error_verdict",
    "parse_isalive_jsonrpc",
    "parse_isalive_xmlrpc",
    "parse_list_methods",
    "parse_page",
]


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


def _read_http(data: bytes, closed: bool) -> tuple[HttpHead, bytes] | Fingerprint:
    """Return the head and complete body of an HTTP reply, or a verdict if none."""
    head = read_http_head(data, closed=closed)
    if isinstance(head, Fingerprint):
        return head
    return head, http_body(data, head, closed=closed)


def parse_page(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``GET /`` (443 over TLS, or 80): any xapi page or reply shape.

    A landing page of any era, the 404 page, a 403 or a 301 to https are
    *likely* xapi with their product clues (a page can be copied; an echoed
    nonce cannot); Xen Orchestra is an appliance; see
    :func:`~xendiscover._fingerprint._shapes.http_verdict` for the rest.
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    return http_verdict(head, body, "a xapi page")


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
    return with_xapi_product(_isalive_xmlrpc_verdict(head, body, nonce), head, body)


def _isalive_xmlrpc_verdict(head: HttpHead, body: bytes, nonce: str) -> Fingerprint:
    reply = decode_xmlrpc(body)
    if reply is None:
        return http_verdict(head, body, "XML-RPC")
    if reply.fault is not None:
        fault = reply.fault.encode("latin-1", "backslashreplace")
        return Fingerprint(None, "not-xen", evidence("XML-RPC fault", fault))
    found = xapi_xmlrpc(head, body, reply, nonce)
    if found is not None:
        return found
    return Fingerprint(None, "not-xen", evidence("XML-RPC, not Xen-API"))


def parse_isalive_jsonrpc(data: bytes, *, closed: bool, nonce: str) -> Fingerprint:
    """Read a reply to the JSON-RPC ``system.isAlive:<nonce>`` probe on ``/jsonrpc``.

    ``"result": <nonce>`` confirms xapi; an ``error`` array with a Xen-API
    code does too (see :func:`jsonrpc_error_verdict`: emergency mode, a pool
    member, a xapi without ``isAlive``). Any other HTTP reply is *not-xen*.
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    return with_xapi_product(_isalive_jsonrpc_verdict(head, body, nonce), head, body)


def _isalive_jsonrpc_verdict(head: HttpHead, body: bytes, nonce: str) -> Fingerprint:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return http_verdict(head, body, "JSON-RPC")
    if not isinstance(message, dict) or ("result" not in message and "error" not in message):
        return Fingerprint(None, "not-xen", evidence("JSON, not JSON-RPC", body))
    if nonce and message.get("result") == nonce:
        return Fingerprint("xapi", "confirmed", evidence("JSON isAlive echoed", nonce.encode()))
    found = jsonrpc_error_verdict(message.get("error"))
    if found is not None:
        return found
    return Fingerprint(None, "not-xen", evidence("JSON-RPC, not xapi", body))


# system.listMethods, as XML-RPC on POST / (HTTP/1.1, Connection: close).
_LIST_METHODS = (
    b'<?xml version="1.0"?><methodCall><methodName>system.listMethods</methodName>'
    b"<params></params></methodCall>"
)


def build_list_methods(*, host: str, nonce: str) -> bytes:
    """``system.listMethods`` as XML-RPC, ``POST /``: no session, lists every message.

    Read with its own cap (``LIST_METHODS_CAP``): the reply is 100-250 KB.
    """
    return http_post("/", host, "text/xml", _LIST_METHODS, http10=False)


def parse_list_methods(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read xapi's ``system.listMethods`` reply: xapi, and a version floor from its messages.

    The message names are weighed against ``XAPI_MESSAGE_FLOORS`` (from
    ``datamodel_lifecycle.ml``); any other reply is read as any HTTP reply
    (:func:`~xendiscover._fingerprint._shapes.http_verdict`).
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    return http_verdict(head, body, "XML-RPC")
