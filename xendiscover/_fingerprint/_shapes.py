"""Every HTTP reply shape xapi writes, recognised on its own, and what is positively not Xen.

Whichever probe reaches a XAPI host first -- an RPC call, a ``GET``, an
unknown path -- the reply names xapi: its 403, its 301 to https, its 404
page, its OPTIONS reply, its 500 pages, its landing pages of every era.
:func:`http_verdict` is the one place the HTTP-based parsers send a reply
that is not their own protocol: xapi (with product clues), Xen Orchestra (an
appliance, never a host), ``not-xen`` only with positive evidence of
another server (a ``Server:`` banner, a page titled as something else),
and ``unknown`` for a reply that merely fails to match.

Source: xapi-project/xen-api (2026-08): ``ocaml/libs/http-lib/http_svr.ml``
(``response_forbidden``, ``response_missing``, ``response_redirect``,
``response_internal_error``, ``response_method_not_implemented``,
``respond_to_options``), ``http.ml`` (header layout); nmap-service-probes
(Debian ``nmap``) for the replies real XenServer / XCP hosts sent.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Final

from xendiscover._fingerprint._common import (
    HttpHead,
    XmlRpcReply,
    decode_xmlrpc,
    evidence,
    xenapi_failure,
    xenapi_failure_fingerprint,
)
from xendiscover._fingerprint._product import (
    XEN_ORCHESTRA,
    combine_xapi,
    page_title,
    xapi_floor,
    xapi_landing_page,
    xapi_layout,
)
from xendiscover._model import Confidence, Fingerprint, Product

__all__ = [
    "XAPI_BODIES",
    "XAPI_ERROR_CODES",
    "http_verdict",
    "jsonrpc_error_verdict",
    "with_xapi_product",
    "xapi_listing",
    "xapi_product",
    "xapi_reply",
    "xapi_rpc",
    "xapi_xmlrpc",
    "xen_orchestra",
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


#: Bodies only xapi writes, with what each is (``http_svr.ml``; the old
#: OPTIONS reply as nmap-service-probes recorded it from a real host).
XAPI_BODIES: Final[tuple[tuple[bytes, str], ...]] = (
    (b"<address>Xapi Server</address>", "xapi 404 page"),
    (b"<h1>HTTP 403 forbidden</h1>Access to the requested resource is forbidden.", "xapi 403"),
    (b"<h1>HTTP 400 bad request</h1>The HTTP request was malformed.", "xapi 400"),
    (b"<h1>HTTP 401 unauthorised</h1>Please check your credentials", "xapi 401"),
    (b"<h1>HTTP 500 internal server error</h1>An unexpected error occurred", "xapi 500"),
    (b"<h1>HTTP 501 Method Not Implemented</h1>", "xapi 501"),
    (b"No handler table for HTTP method", "xapi 500 (old, unknown method)"),
)

#: Landing-page words that name a Xen product, for the "another server's page" rule.
_XEN_WORDS = re.compile(r"XenServer|XCP|Citrix Hypervisor|XO Lite|Xen", re.IGNORECASE)

#: Headers xapi never writes (http.ml writes no Server or Date) but web servers do.
_FOREIGN_HEADERS = ("server", "x-powered-by")


def xapi_product(head: HttpHead, body: bytes, base: Product | None = None) -> Product | None:
    """The product clues one xapi reply carries: its header layout, a landing page."""
    return combine_xapi((base, xapi_layout(head.raw), xapi_landing_page(body)))


def _xapi_only_headers(head: HttpHead) -> bool:
    return all(head.get(name) is None for name in (*_FOREIGN_HEADERS, "date"))


def _redirect(head: HttpHead) -> bool:
    """Xapi's 301 (``response_redirect``): ``content-length: 0`` and ``location: https://...``."""
    names = [name for name, _ in head.headers]
    location = head.get("location") or ""
    return (
        head.status == 301
        and names == ["content-length", "location"]
        and location.startswith("https://")
    )


def _options(head: HttpHead) -> bool:
    """Xapi's OPTIONS reply (``respond_to_options``): CORS headers allowing ``PUT``."""
    allowed = head.get("access-control-allow-headers") or ""
    return (
        head.get("access-control-allow-methods") == "PUT"
        and allowed.endswith("X-Requested-With")
        and _xapi_only_headers(head)
    )


def xapi_reply(head: HttpHead, body: bytes) -> Fingerprint | None:
    """A *likely* xapi fingerprint if this reply has a shape only xapi writes, else ``None``.

    A reply can be copied, so none of these is proof (an echoed nonce is);
    each carries its product clues (the 404 page and the old OPTIONS 500
    name xapi for certain).
    """
    for marker, what in XAPI_BODIES:
        if marker in body:
            certain = Product("xapi", None, "certain", evidence=what)
            return Fingerprint(
                "xapi", "likely", evidence(what, marker), product=xapi_product(head, body, certain)
            )
    page = xapi_landing_page(body)
    if page is not None and _xapi_only_headers(head):
        return Fingerprint(
            "xapi", "likely", evidence("xapi landing page", page.evidence.encode()),
            product=xapi_product(head, body),
        )  # fmt: skip
    if _redirect(head):
        shown = evidence("xapi 301 to https", (head.get("location") or "").encode("latin-1"))
        return Fingerprint("xapi", "likely", shown, product=xapi_product(head, body))
    if _options(head):
        return Fingerprint(
            "xapi", "likely", "xapi OPTIONS reply (CORS, PUT)", product=xapi_product(head, body)
        )
    return None


def xen_orchestra(head: HttpHead) -> Fingerprint | None:
    """Xen Orchestra's ``GET /``: 302 to ``/signin`` and a ``connect.sid`` cookie."""
    cookie = head.get("set-cookie") or ""
    if head.status == 302 and head.get("location") == "/signin" and "connect.sid=" in cookie:
        label = "Xen Orchestra (management appliance, not a host)"
        return Fingerprint(None, "not-xen", evidence(label), product=XEN_ORCHESTRA)
    return None


def _summary(head: HttpHead) -> bytes:
    server = head.get("server")
    text = head.status_line if server is None else f"{head.status_line} (Server: {server})"
    return text.encode("latin-1", "backslashreplace")


def http_verdict(head: HttpHead, body: bytes, what: str) -> Fingerprint:
    """The verdict on an HTTP reply that is not the protocol a probe asked for.

    xapi's own shapes (:func:`xapi_reply`) and Xen Orchestra first. Then
    ``not-xen`` needs positive evidence of another server: a ``Server:`` or
    ``X-Powered-By:`` banner, or a page titled as something that is not Xen.
    Anything else stays ``unknown``: not recognised is not "not Xen".

    Args:
        head: The reply's head.
        body: Its body (complete, or as far as read).
        what: What the probe expected, for the evidence (``"XML-RPC"``).
    """
    found = xapi_reply(head, body) or xapi_rpc(head, body) or xen_orchestra(head)
    if found is not None:
        return found
    if any(head.get(name) is not None for name in _FOREIGN_HEADERS):
        return Fingerprint(None, "not-xen", evidence(f"HTTP, not {what}", _summary(head)))
    title = page_title(body)
    if title is not None and _XEN_WORDS.search(title) is None:
        label = f"HTTP, not {what}: {head.status} page"
        return Fingerprint(None, "not-xen", evidence(label, title.encode("ascii")))
    return Fingerprint(None, "unknown", evidence(f"HTTP reply, not {what}", _summary(head)))


def with_xapi_product(found: Fingerprint, head: HttpHead, body: bytes) -> Fingerprint:
    """Give a xapi fingerprint its product clues from the reply it was read from.

    A confirmed xapi (an echoed nonce, a ``MESSAGE_METHOD_UNKNOWN`` shape)
    is ``xapi`` for certain; the header layout and any landing page add
    their era and brand. Other fingerprints come back unchanged.
    """
    if found.service != "xapi" or found.product is not None:
        return found
    confidence: Confidence = "certain" if found.verdict == "confirmed" else "firm"
    base = Product("xapi", None, confidence, evidence=found.evidence)
    return dataclasses.replace(found, product=xapi_product(head, body, base))


#: Messages every xapi lists (``datamodel.ml``): a listing with them is xapi's API.
_XAPI_CORE = frozenset({"session.get_this_host", "VM.get_all", "host.get_all", "pool.get_all"})


def xapi_listing(names: list[str], head: HttpHead) -> Fingerprint | None:
    """A confirmed xapi, with its version floor, if ``names`` is xapi's message list.

    The names are weighed against ``XAPI_MESSAGE_FLOORS`` (from
    ``datamodel_lifecycle.ml``); the header layout adds its era.
    """
    if not set(names) >= _XAPI_CORE:
        return None
    certain = Product("xapi", None, "certain", evidence=f"listMethods: {len(names)} messages")
    product = combine_xapi((certain, xapi_layout(head.raw), xapi_floor(names)))
    shown = f"{len(names)} Xen-API messages".encode()
    return Fingerprint("xapi", "confirmed", evidence("xapi listMethods", shown), product=product)


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
            if error.get("code") == 1 and isinstance(error.get("data"), list):
                # xapi's JSON-RPC 2.0 failure: {"code":1,"message":CODE,"data":[...]}
                return Fingerprint(
                    "xapi", "confirmed", evidence("Xen-API JSON-RPC 2.0 error", shown)
                )
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


def xapi_xmlrpc(
    head: HttpHead, body: bytes, reply: XmlRpcReply, nonce: str = ""
) -> Fingerprint | None:
    """Recognise xapi in a decoded XML-RPC reply: an echo, a listing, a Xen-API struct.

    The echoed nonce confirms xapi; xapi's method list (a ``Success`` struct
    around it) confirms it and gives a version floor; a Xen-API ``Failure``
    is told apart from xend's by its XML surface; any other ``Success`` is
    *likely*. Each carries its product clues.
    """
    value = reply.value
    if isinstance(value, dict) and value.get("Status") == "Success":
        inner = value.get("Value")
        if nonce and inner == nonce:
            found = Fingerprint("xapi", "confirmed", evidence("isAlive echoed", nonce.encode()))
            return with_xapi_product(found, head, body)
        if isinstance(inner, list):
            listing = xapi_listing([name for name in inner if isinstance(name, str)], head)
            if listing is not None:
                return listing
        shown = str(inner).encode("latin-1", "backslashreplace")
        found = Fingerprint("xapi", "likely", evidence("Xen-API Success, no echo", shown))
        return with_xapi_product(found, head, body)
    failure = xenapi_failure(value)
    if failure is not None:
        return with_xapi_product(xenapi_failure_fingerprint(failure, reply.shape), head, body)
    if isinstance(value, list) and reply.shape == "ocaml":
        return xapi_listing([name for name in value if isinstance(name, str)], head)
    return None


def xapi_rpc(head: HttpHead, body: bytes, nonce: str = "") -> Fingerprint | None:
    """Recognise xapi in an RPC reply, XML-RPC or JSON-RPC, whatever was asked."""
    reply = decode_xmlrpc(body)
    if reply is not None and reply.fault is None:
        return xapi_xmlrpc(head, body, reply, nonce)
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    if nonce and message.get("result") == nonce:
        found = Fingerprint("xapi", "confirmed", evidence("JSON isAlive echoed", nonce.encode()))
        return with_xapi_product(found, head, body)
    error = jsonrpc_error_verdict(message.get("error"))
    return with_xapi_product(error, head, body) if error is not None else None
