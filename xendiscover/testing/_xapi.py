"""A fake of xapi, the XenServer and XCP-ng toolstack (80 in the clear, 443 TLS).

It answers in the reply shapes of each release in :data:`XAPI_RELEASES`.

The fake speaks enough of the real protocol for the official ``XenAPI`` SDK.
Its docstring names the upstream files whose replies it reproduces.
"""

from __future__ import annotations

import functools
import json
import ssl
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from xml.sax.saxutils import escape

from xendiscover.testing._certs import XapiIdentity, fake_tls_context
from xendiscover.testing._server import (
    FakeServer,
    _BadRequest,
    _Conn,
    _read_request,
    _Request,
    _response,
    _safe_xmlrpc_loads,
)

__all__ = [
    "XAPI_RELEASES",
    "FakeXapi",
    "XapiRelease",
    "xapi_messages",
]


def _ocaml_value(value: object) -> str:
    """Write one XML-RPC value the way ocaml-rpc (xapi) does."""
    if isinstance(value, bool):
        return f"<value><boolean>{int(value)}</boolean></value>"
    if isinstance(value, int):
        return f"<value><int>{value}</int></value>"
    if isinstance(value, float):
        return f"<value><double>{value!r}</double></value>"
    if isinstance(value, list | tuple):
        items = "".join(_ocaml_value(item) for item in value)
        return f"<value><array><data>{items}</data></array></value>"
    if isinstance(value, dict):
        members = "".join(
            f"<member><name>{escape(str(key))}</name>{_ocaml_value(item)}</member>"
            for key, item in value.items()
        )
        return f"<value><struct>{members}</struct></value>"
    return f"<value>{escape(str(value))}</value>"


def _ocaml_response(value: object) -> bytes:
    """Write an XML-RPC ``methodResponse`` the way xapi does."""
    return (
        '<?xml version="1.0"?><methodResponse><params><param>'
        f"{_ocaml_value(value)}</param></params></methodResponse>"
    ).encode()


# The head of XCP-ng 8.3's XO Lite page, served on GET / over HTTPS (derived).
_XO_LITE_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8" />\n'
    b'<link rel="icon" href="/favicon.ico" />\n'
    b'<meta name="viewport" content="width=device-width, initial-scale=1.0" />\n'
    b'<title>XO Lite</title>\n</head>\n<body>\n<div id="root"></div>\n</body>\n</html>\n'
)


#: How a xapi release lays out its reply heads (xen-api ``ocaml/libs/http-lib/
#: http.ml`` ``Response.to_header_list``): ``capitalised`` (until mid-2011:
#: ``Connection: keep-alive``, ``Content-Length`` last), ``compact`` (late 2011
#: to xapi 23.30: ``connection:keep-alive``, a space only after
#: ``content-length``), ``spaced`` (xapi >= 23.31: ``connection: keep-alive``).
XapiLayout = Literal["capitalised", "compact", "spaced"]


@dataclass(frozen=True)
class XapiRelease:
    """One xapi release, as :class:`FakeXapi` reproduces what it sends with no session.

    Attributes:
        name: The product and version (``"XCP-ng 8.3"``).
        xapi_version: xapi's own version (``"1.249.0"``, ``"25.6.0"``): which
            messages of ``XAPI_MESSAGE_FLOORS`` its ``system.listMethods`` lists.
        layout: Its reply heads' layout (see :data:`XapiLayout`).
        page: Its landing page (``/opt/xensource/www/index.html``), served
            on ``GET /`` over HTTPS, and over HTTP when ``plain_get`` is
            ``"page"``.
        plain_get: What ``GET /`` in the clear gets: ``"403"`` (https-only,
            XenServer 8 / Citrix Hypervisor 8.2 CU1+), ``"301"`` to https
            (XCP-ng), or the ``"page"`` (old releases).
        isalive: Whether it echoes ``system.isAlive:<uuid>`` (xapi since
            2012) and speaks JSON-RPC; older ones answer
            ``MESSAGE_METHOD_UNKNOWN``.
    """

    name: str
    xapi_version: str
    layout: XapiLayout
    page: bytes
    plain_get: Literal["403", "301", "page"]
    isalive: bool = True


def _landing(title: str, heading: str = "") -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body>{heading}"
        "<p>Download the management tools.</p></body></html>"
    ).encode()


#: The releases the fakes reproduce, by key. The pages: XenServer 6.0.2 and
#: XCP 1.1 as nmap-service-probes recorded them from real hosts (their
#: ``<title>``); XenServer 7.1 (``Welcome to Citrix XenServer 7.1.2``) and
#: XCP-ng 8.2 (``<h2 class="title">Welcome to XCP-ng 8.2.1</h2>``) from the
#: xenserver/xcp-ng ``www`` sources; XCP-ng 8.3's XO Lite; XenServer 8's
#: template (``Welcome to XenServer 8``, not confirmed on a real host). The
#: modern xapi version is a 2025 update of each (xapi 25.x).
XAPI_RELEASES: Mapping[str, XapiRelease] = {
    "xenserver-6.0": XapiRelease(
        "XenServer 6.0.2", "1.3.2", "capitalised", _landing("XenServer 6.0.2"), "page", False
    ),
    "xcp-1.1": XapiRelease("XCP 1.1", "1.4.1", "capitalised", _landing("XCP 1.1"), "page", False),
    "xenserver-7.1": XapiRelease(
        "XenServer 7.1.2",
        "1.60.0",
        "compact",
        _landing("XenServer", "<h1>Welcome to Citrix XenServer 7.1.2</h1>"),
        "page",
    ),
    "xcp-ng-8.2": XapiRelease(
        "XCP-ng 8.2.1",
        "1.249.0",
        "compact",
        _landing("XCP-ng", '<h2 class="title">Welcome to XCP-ng 8.2.1</h2>'),
        "301",
    ),
    "xcp-ng-8.3": XapiRelease("XCP-ng 8.3", "25.6.0", "spaced", _XO_LITE_PAGE, "301"),
    "xenserver-8": XapiRelease(
        "XenServer 8",
        "25.6.0",
        "spaced",
        _landing("XenServer", "<h1>Welcome to XenServer 8</h1>"),
        "403",
    ),
}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


# A xapi's message list: classes and messages of its data model (datamodel.ml),
# about 2,300 names (the real 8.x lists are 2,000-3,000, 100-250 KB).
_XAPI_CLASSES = (
    "session", "auth", "subject", "role", "task", "event", "pool", "pool_patch", "pool_update",
    "VM", "VM_metrics", "VM_guest_metrics", "VMPP", "VMSS", "VM_appliance", "DR_task", "host",
    "host_crashdump", "host_patch", "host_metrics", "host_cpu", "network", "VIF", "VIF_metrics",
    "PIF", "PIF_metrics", "Bond", "VLAN", "SM", "SR", "LVHD", "VDI", "VBD", "VBD_metrics", "PBD",
    "crashdump", "VTPM", "console", "user", "data_source", "blob", "message", "secret", "tunnel",
    "PCI", "PGPU", "GPU_group", "VGPU", "VGPU_type", "PVS_site", "Feature", "SDN_controller",
    "Certificate", "Cluster", "Cluster_host", "Repository",
)  # fmt: skip
_XAPI_MESSAGES = (
    "get_all", "get_all_records", "get_record", "get_by_uuid", "get_uuid", "get_by_name_label",
    "get_name_label", "set_name_label", "get_name_description", "set_name_description",
    "get_other_config", "set_other_config", "add_to_other_config", "remove_from_other_config",
    "get_tags", "set_tags", "add_tags", "remove_tags", "create", "destroy",
    "get_allowed_operations", "get_current_operations", "get_blobs", "create_new_blob",
    "get_data_sources",
    "record_data_source", "query_data_source", "forget_data_source_archives", "get_all_where",
    "get_status", "get_type", "get_host", "get_VM", "get_network", "get_SR", "get_VDI",
    "get_metrics", "set_metrics",
)  # fmt: skip


@functools.cache
def xapi_messages(xapi_version: str) -> tuple[str, ...]:
    """What ``system.listMethods`` lists on this xapi version (the fakes' data model).

    Every class's common messages, ``session.get_this_host``, and each
    message of ``XAPI_MESSAGE_FLOORS`` (``datamodel_lifecycle.ml``) whose
    first version is at most ``xapi_version``.
    """
    from xendiscover._fingerprint._product import XAPI_MESSAGE_FLOORS

    newer = {message for message, _, _ in XAPI_MESSAGE_FLOORS}
    names = [f"{cls}.{msg}" for cls in _XAPI_CLASSES for msg in _XAPI_MESSAGES]
    names = [name for name in names if name not in newer]
    names += ["session.get_this_host", "system.listMethods", "system.isAlive"]
    mine = _version_key(xapi_version)
    names += [m for m, first, _ in XAPI_MESSAGE_FLOORS if _version_key(first) <= mine]
    return tuple(dict.fromkeys(names))


class FakeXapi(FakeServer):
    """xapi, the XenServer / XCP-ng management API (80 in the clear, 443 TLS).

    Follows xapi-project/xen-api (master, 2024-2025): replies shaped as
    ``ocaml/libs/http-lib/http.ml`` ``Response.to_wire_string`` writes them
    (status line with the request's HTTP version, then ``content-length``,
    then the handler's headers: ``connection``, ``cache-control: no-cache,
    no-store``, ``content-type``, ``Access-Control-Allow-Origin``; no
    ``Server`` or ``Date``), XML-RPC written like mirage/ocaml-rpc
    ``xmlrpc.ml`` (``<?xml version="1.0"?>``, bare ``<value>text</value>``)
    on ``POST /`` and ``/RPC2``, and JSON-RPC on ``POST /jsonrpc`` written
    like ocaml-rpc ``jsonrpc.ml`` (compact; a failure's ``error`` is the
    Xen-API error array itself, ``["SESSION_INVALID", "OpaqueRef:NULL"]``).
    Answers:

    - ``system.isAlive:<uuid>`` echoes its parameter (an older xapi, with
      ``legacy=True``, answers ``MESSAGE_METHOD_UNKNOWN`` and has no
      JSON-RPC);
    - ``session.login_with_password`` checks :attr:`users` and otherwise
      fails ``SESSION_AUTHENTICATION_FAILED``; ``session.logout`` works;
    - any other call without a valid session fails ``SESSION_INVALID``,
      with one ``MESSAGE_METHOD_UNKNOWN``;
    - with ``error`` set, every call fails with that Xen-API error, as xapi
      in emergency mode does (``("HOST_STILL_BOOTING",)``, the default
      ``Xapi_globs.emergency_mode_error``) or a pool member
      (``("HOST_IS_SLAVE", "<master address>")``).

    - ``system.listMethods`` lists :func:`xapi_messages` of its release
      (no session needed, as on xapi);
    - ``OPTIONS`` gets ``http_svr.ml``'s ``respond_to_options`` (CORS
      headers allowing ``PUT``).

    ``GET`` is ``http_svr.ml``'s ``response_forbidden`` (403, HTML) -- except
    with ``xo_lite=True`` (XCP-ng 8.3), where ``GET /`` is the XO Lite page
    and other paths xapi's 404 page (``<address>Xapi Server</address>``).
    With a ``release`` (:data:`XAPI_RELEASES`), the fake answers as that
    release: its header layout, its landing page over TLS, its answer to
    ``GET /`` in the clear (403, a 301 to https, or the page), its method
    list, and the 404 page on other paths.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS with the packaged self-signed certificate.
        legacy: Answer like a xapi from before ``system.isAlive``.
        users: The user names and passwords that may log in (none by default).
        ssl_context: A TLS context to use instead of the packaged one.
        error: Fail every call with this Xen-API error description.
        xo_lite: Serve XCP-ng's web pages on ``GET``.
        identity: With ``tls``, serve certificates made as xapi makes its
            own: the host's (CN and SAN: its name and addresses) and, for SNI
            ``pool``, the pool certificate (CN: its UUID). Two fakes
            with one identity are one multi-homed host.
        release: Answer as this release (a key of :data:`XAPI_RELEASES`, or
            a :class:`XapiRelease`); ``None``: a current xapi (layout
            ``spaced``, 403 on ``GET``).

    Attributes:
        calls: Every method name called (XML-RPC and JSON-RPC), in order.
        sessions: The session references currently logged in.
    """

    description = "xapi"
    _scheme = "http"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        legacy: bool = False,
        users: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        error: Sequence[str] | None = None,
        xo_lite: bool = False,
        identity: XapiIdentity | None = None,
        release: XapiRelease | str | None = None,
    ) -> None:
        if ssl_context is None and tls:
            ssl_context = identity.tls_context() if identity is not None else fake_tls_context()
        context = ssl_context
        super().__init__(host, port, ssl_context=context)
        self.release = XAPI_RELEASES[release] if isinstance(release, str) else release
        self.legacy = legacy or (self.release is not None and not self.release.isalive)
        self.users = dict(users or {})
        self.error = tuple(error) if error is not None else None
        self.xo_lite = xo_lite
        self.calls: list[str] = []
        self.sessions: set[str] = set()
        name = self.release.name if self.release else ("older xapi" if legacy else "xapi")
        self.description = name + (" over TLS" if self.tls else "")

    def call(self, method: str, params: list[Any]) -> tuple[bool, Any]:
        """Answer one Xen-API call: ``(True, value)`` or ``(False, error_description)``.

        Args:
            method: The method name, e.g. ``"session.login_with_password"``.
            params: The call's parameters.
        """
        self.calls.append(method)
        if self.error is not None:
            return False, list(self.error)
        if method.startswith("system.isAlive:") and not self.legacy:
            return True, params[0] if params else ""
        if method == "system.listMethods":
            return True, list(
                xapi_messages(self.release.xapi_version if self.release else "25.6.0")
            )
        if method == "session.login_with_password":
            return self._login(params)
        if method.startswith(("system.", "session.login")) or "." not in method:
            return False, ["MESSAGE_METHOD_UNKNOWN", method]
        ref = str(params[0]) if params else ""
        if ref not in self.sessions:
            return False, ["SESSION_INVALID", ref]
        if method == "session.logout":
            self.sessions.discard(ref)
            return True, ""
        return False, ["MESSAGE_METHOD_UNKNOWN", method]

    def _login(self, params: list[Any]) -> tuple[bool, Any]:
        user = str(params[0]) if params else ""
        password = str(params[1]) if len(params) > 1 else ""
        if user in self.users and self.users[user] == password:
            ref = f"OpaqueRef:{uuid.uuid4()}"
            self.sessions.add(ref)
            return True, ref
        return False, ["SESSION_AUTHENTICATION_FAILED", user, "Authentication failure"]

    def _wire(
        self, request: _Request, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        """``Http.Response.to_wire_string``: status, ``content-length``, then the headers.

        Laid out as the release does (see :data:`XapiLayout`).
        """
        version = "HTTP/1.0" if request.version == "HTTP/1.0" else "HTTP/1.1"
        layout = self.release.layout if self.release else "spaced"
        return _xapi_wire(layout, version, status, headers, body)

    def _api(self, request: _Request, content_type: str, body: bytes) -> bytes:
        connection = "keep-alive" if request.keep_alive else "close"
        headers = [
            ("connection", connection),
            ("cache-control", "no-cache, no-store"),
            ("content-type", content_type),
            ("Access-Control-Allow-Origin", "*"),
        ]
        return self._wire(request, "200 OK", headers, body)

    def _page(self, request: _Request) -> bytes:
        if request.method == "OPTIONS":
            return self._wire(request, "200 OK", _XAPI_OPTIONS_HEADERS, b"")
        root = request.path == "/"
        if self.release is not None and root and (self.tls or self.release.plain_get == "page"):
            return self._wire(request, "200 OK", _XAPI_PAGE_HEADERS, self.release.page)
        if self.release is not None and root and self.release.plain_get == "301":
            host = request.headers.get("host", "localhost")
            return self._wire(
                request, "301 Moved Permanently", [("location", f"https://{host}/")], b""
            )
        if self.xo_lite and root:
            return self._wire(request, "200 OK", [("content-type", "text/html")], _XO_LITE_PAGE)
        if (self.xo_lite or self.release is not None) and not root:
            page = _XAPI_404.format(path=escape(request.path)).encode()
            return self._wire(request, "404 Not Found", _XAPI_ERROR_HEADERS[1:], page)
        return self._wire(request, "403 Forbidden", _XAPI_ERROR_HEADERS, _XAPI_403)

    def _reply(self, request: _Request) -> bytes:
        if request.method != "POST":
            return self._page(request)
        if request.path == "/jsonrpc" and not self.legacy:
            return self._jsonrpc(request)
        if request.path not in ("/", "/RPC2"):
            return self._page(request)
        call = _safe_xmlrpc_loads(request.body)
        if call is None or call[1] is None:
            return self._wire(request, "500 Internal Error", _XAPI_ERROR_HEADERS, b"")
        ok, value = self.call(call[1], list(call[0]))
        result = (
            {"Status": "Success", "Value": value}
            if ok
            else {"Status": "Failure", "ErrorDescription": value}
        )
        return self._api(request, "text/xml", _ocaml_response(result))

    def _jsonrpc(self, request: _Request) -> bytes:
        try:
            message = json.loads(request.body)
            method = str(message["method"])
            params = list(message.get("params") or [])
            ident = message.get("id")
        except (ValueError, KeyError, TypeError, AttributeError):
            return self._wire(request, "500 Internal Error", _XAPI_ERROR_HEADERS, b"")
        ok, value = self.call(method, params)
        key = "result" if ok else "error"
        reply = {"jsonrpc": "2.0", key: value, "id": ident}
        body = json.dumps(reply, separators=(",", ":")).encode()
        return self._api(request, "application/json", body)

    async def _serve(self, conn: _Conn) -> None:
        while True:
            try:
                request = await _read_request(conn)
            except _BadRequest:
                await conn.send(_XAPI_400)
                return
            if request is None:
                return
            await conn.send(self._reply(request))
            if not request.keep_alive:
                return


def _xapi_wire(
    layout: XapiLayout, version: str, status: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    """An HTTP reply laid out as one xapi era writes it (see :data:`XapiLayout`)."""
    length = len(body)
    if layout == "capitalised":
        named = [("-".join(p.capitalize() for p in n.split("-")), v) for n, v in headers]
        lines = [f"{n}: {v}" for n, v in named] + [f"Content-Length: {length}"]
    elif layout == "compact":
        lines = [f"content-length: {length}"] + [
            f"{n}:{v}" if n.islower() else f"{n}: {v}" for n, v in headers
        ]
    else:
        lines = [f"content-length: {length}"] + [f"{n}: {v}" for n, v in headers]
    head = "\r\n".join([f"{version} {status}", *lines]) + "\r\n\r\n"
    return head.encode("latin-1") + body


# respond_to_options (http_svr.ml): a 200 with CORS headers allowing PUT.
_XAPI_OPTIONS_HEADERS = [
    ("connection", "close"),
    ("cache-control", "no-cache, no-store"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "X-Requested-With"),
    ("Access-Control-Allow-Methods", "PUT"),
]
# fileserver.ml sends a page with keep-alive and its MIME type.
_XAPI_PAGE_HEADERS = [("connection", "keep-alive"), ("content-type", "text/html")]

# http_svr.ml's error replies: content-type, connection: close, cache-control.
_XAPI_ERROR_HEADERS = [
    ("content-type", "text/html"),
    ("connection", "close"),
    ("cache-control", "no-cache, no-store"),
]
_XAPI_403 = (
    b"<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource "
    b"is forbidden.</body></html>"
)
_XAPI_400 = _response(
    "400 Bad Request",
    _XAPI_ERROR_HEADERS,
    b"<html><body><h1>HTTP 400 bad request</h1>The HTTP request was malformed. "
    b"Please correct and retry.</body></html>",
    length_header="content-length",
)
# xapi's file server 404 page (derived from its signature line).
_XAPI_404 = (
    "<html><body><h1>HTTP 404 Not Found</h1>The requested URL {path} was not found "
    "on this server.<hr><address>Xapi Server</address></body></html>"
)
