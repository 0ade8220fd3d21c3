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
import re

from xendiscover._fingerprint._common import (
    HttpHead,
    decode_xmlrpc,
    evidence,
    http_body,
    http_post,
    xapi_page,
    xenapi_failure,
    xenapi_failure_fingerprint,
)
from xendiscover._fingerprint._xend import read_http_head
from xendiscover._model import Fingerprint

__all__ = [
    "XAPI_ERROR_CODES",
    "build_isalive_jsonrpc",
    "build_isalive_xmlrpc",
    "jsonrpc_error_verdict",
    "parse_isalive_jsonrpc",
    "parse_isalive_xmlrpc",
    "parse_page",
]

#: Error codes xapi answers a session-less call with (``api_errors.ml``):
#: the method or session is unknown, or the host cannot serve the API yet --
#: still booting, a pool member (``HOST_IS_SLAVE`` names the master), or in
#: emergency mode for one of the reasons xapi stashes in
#: ``Xapi_globs.emergency_mode_error``. Each names xapi and nothing else.
XAPI_ERROR_CODES = frozenset(
    {
        "MESSAGE_METHOD_UNKNOWN",
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "SESSION_INVALID",
        "SESSION_AUTHENTICATION_FAILED",
        "HOST_STILL_BOOTING",
        "HOST_IS_SLAVE",
        "HOST_ITS_OWN_SLAVE",
        "HOST_IN_EMERGENCY_MODE",
        "HOST_HAS_NO_MANAGEMENT_IP",
        "HOST_MASTER_CANNOT_TALK_BACK",
        "HOST_UNKNOWN_TO_MASTER",
        "HOST_BROKEN",
        "HOST_CANNOT_ATTACH_NETWORK",
        "NOT_SUPPORTED_DURING_UPGRADE",
    }
)

# A code in xapi's style: upper case words joined by underscores.
_XAPI_STYLE_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


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
    page = xapi_page(body)
    if page is not None:
        return page
    return Fingerprint(None, "not-xen", evidence(f"HTTP, not {what}", _http_summary(head)))


def parse_page(data: bytes, *, closed: bool, nonce: str = "") -> Fingerprint:
    """Read a reply to ``GET /`` over TLS (443): XCP-ng's XO Lite page, or xapi's 404 page.

    Either page is *likely* xapi (a page can be copied; an echoed nonce
    cannot). Any other HTTP reply is *not-xen*.
    """
    read = _read_http(data, closed)
    if isinstance(read, Fingerprint):
        return read
    head, body = read
    return _page_verdict(head, body, "a xapi page")


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


def jsonrpc_error_verdict(error: object) -> Fingerprint | None:
    """Tell whether a JSON-RPC ``error`` member is xapi's.

    xapi (through ocaml-rpc) writes the Xen-API failure itself:
    ``"error": ["HOST_STILL_BOOTING"]``, ``["HOST_IS_SLAVE", "<master>"]``.
    A known code (:data:`XAPI_ERROR_CODES`) confirms xapi; another code in
    xapi's style is *likely*; a JSON-RPC 2.0 error object
    (``{"code": -32601, ...}``) is another server's, unless its message is a
    known xapi code (*likely*).

    Returns:
        The verdict, or ``None`` if the error says nothing of xapi.
    """
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message in XAPI_ERROR_CODES:
            shown = message.encode("ascii", "backslashreplace")
            return Fingerprint("xapi", "likely", evidence("JSON-RPC error object", shown))
        return None
    if not isinstance(error, list) or not error or not isinstance(error[0], str):
        return None
    code = error[0]
    shown = code.encode("ascii", "backslashreplace")
    if code in XAPI_ERROR_CODES:
        return Fingerprint("xapi", "confirmed", evidence("Xen-API JSON-RPC error", shown))
    if _XAPI_STYLE_CODE.fullmatch(code) and all(isinstance(item, str) for item in error):
        return Fingerprint("xapi", "likely", evidence("Xen-API-style JSON-RPC error", shown))
    return None


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
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return _page_verdict(head, body, "JSON-RPC")
    if not isinstance(message, dict) or ("result" not in message and "error" not in message):
        return Fingerprint(None, "not-xen", evidence("JSON, not JSON-RPC", body))
    if nonce and message.get("result") == nonce:
        return Fingerprint("xapi", "confirmed", evidence("JSON isAlive echoed", nonce.encode()))
    found = jsonrpc_error_verdict(message.get("error"))
    if found is not None:
        return found
    return Fingerprint(None, "not-xen", evidence("JSON-RPC, not xapi", body))
