"""Fake servers that answer like Xen management services, and decoys that do not.

Each fake is an asyncio TCP server bound to any address and port (port 0 picks
a free one), used as an async context manager::

    async with FakeXapi(host="127.0.0.5", port=0) as server:
        print(server.host, server.port, server.url)

The Xen fakes speak enough of the real protocol for real clients: the XAPI
fake answers the official ``XenAPI`` SDK, the xend XML-RPC fake answers
:mod:`xmlrpc.client`. None of them ever does anything: a fake records what it
was sent (:attr:`FakeServer.received`) and answers, nothing more.

=========================  =============================================
Fake                       Answers like
=========================  =============================================
:class:`FakeXendRelocation`  xend's relocation server (8002), or its
                           hosts-allow reject (accept, close at once)
:class:`FakeXendHttp`      xend's HTTP/SXP server (8000)
:class:`FakeXendXmlRpc`    xend's XML-RPC server (8006, 9363)
:class:`FakeXapi`          xapi, in the clear (80) or over TLS (443)
:class:`FakeLibvirt`       libvirtd's TCP listener (16509)
:class:`FakeHttpServer`    decoy: a web server that is not Xen
:class:`FakeTarpit`        decoy: accepts, reads, never answers
:class:`FakeStreamer`      decoy: streams an HTTP head that never ends
:class:`FakeResetter`      decoy: starts a reply, then resets the connection
=========================  =============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import re
import socket
import ssl
import struct
import uuid
import xmlrpc.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self
from xml.sax.saxutils import escape

__all__ = [
    "DEFAULT_XEND_METHODS",
    "FakeHttpServer",
    "FakeLibvirt",
    "FakeResetter",
    "FakeServer",
    "FakeStreamer",
    "FakeTarpit",
    "FakeXapi",
    "FakeXendHttp",
    "FakeXendRelocation",
    "FakeXendXmlRpc",
    "fake_tls_context",
]

#: The most bytes a fake keeps of what one connection sent it.
_RECORD_CAP = 64 * 1024
#: The longest request head or body a fake accepts.
_HTTP_CAP = 1024 * 1024

#: What the xend XML-RPC fake lists for ``system.listMethods``.
DEFAULT_XEND_METHODS: tuple[str, ...] = (
    "system.listMethods",
    "system.methodHelp",
    "system.methodSignature",
    "xend.domain",
    "xend.domains",
    "xend.domains_with_state",
    "xend.node.info",
    "xend.node.log",
)


def fake_tls_context() -> ssl.SSLContext:
    """Return a server TLS context with the self-signed test certificate.

    The certificate and key ship inside :mod:`xendiscover.testing` (CN
    ``xendiscover-fake-xapi``); they protect nothing and must never be
    trusted by anything.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    package = importlib.resources.files("xendiscover.testing")
    with (
        importlib.resources.as_file(package / "fake-xapi-cert.pem") as cert,
        importlib.resources.as_file(package / "fake-xapi-key.pem") as key,
    ):
        context.load_cert_chain(cert, key)
    return context


class _Conn:
    """One accepted connection: a buffered reader that records, and the writer."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self._log = log

    async def more(self) -> bool:
        """Read one more chunk into the buffer; return ``False`` at end of stream."""
        chunk = await self.reader.read(65536)
        if not chunk:
            return False
        room = _RECORD_CAP - len(self._log)
        if room > 0:
            self._log += chunk[:room]
        self.buffer += chunk
        return True

    def take(self, size: int) -> bytes:
        """Remove and return the first ``size`` buffered bytes."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until it is handed to the kernel."""
        self.writer.write(data)
        await self.writer.drain()


class FakeServer:
    """The base of every fake: an asyncio server on one address and port.

    Args:
        host: The address to bind (e.g. ``"127.0.0.5"``; any 127/8 address
            works on Linux without configuration).
        port: The port to bind; 0 picks a free one (see :attr:`port`).
        ssl_context: Serve over TLS with this context (``None``: in the clear).

    Attributes:
        description: What the fake pretends to be, in a few words.
        connections: How many connections it has accepted.
    """

    description: str = "a fake server"
    _scheme: ClassVar[str] = "tcp"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._logs: list[bytearray] = []
        self.connections = 0

    @property
    def host(self) -> str:
        """The address the fake is bound to."""
        return self._host

    @property
    def port(self) -> int:
        """The port the fake listens on (the real one, also when bound to 0)."""
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return self._port

    @property
    def tls(self) -> bool:
        """Whether the fake serves over TLS."""
        return self._ssl is not None

    @property
    def url(self) -> str:
        """A URL for the fake, e.g. ``https://127.0.0.5:44321/``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = self._scheme + ("s" if self.tls and self._scheme == "http" else "")
        return f"{scheme}://{host}:{self.port}/"

    @property
    def open_connections(self) -> int:
        """How many accepted connections are still being served."""
        return len(self._tasks)

    @property
    def received(self) -> list[bytes]:
        """What each connection sent, in order (the first 64 KiB of each)."""
        return [bytes(log) for log in self._logs]

    async def start(self) -> Self:
        """Bind and start serving; return the fake itself.

        Raises:
            OSError: The address or port cannot be bound.
        """
        if self._server is not None:
            return self
        self._server = await asyncio.start_server(
            self._accept, self._host, self._requested_port, ssl=self._ssl
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop serving and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        log = bytearray()
        self._logs.append(log)
        try:
            await self._serve(_Conn(reader, writer, log))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, or reset: nothing to answer
        except asyncio.CancelledError:
            # close() cancels this connection's own task; end it quietly (on
            # 3.11 a cancelled client_connected_cb task is logged as an error).
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, conn: _Conn) -> None:
        """Answer one connection (subclasses override this)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- HTTP


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) ([\x21-\x7e]+) (HTTP/1\.[01])\r?")
_REQUEST_PREFIX = re.compile(rb"[A-Z]{0,16}(?: [\x21-\x7e]*(?: [\x21-\x7e]*\r?)?)?")


class _BadRequest(Exception):
    """The client sent something that is not an HTTP/1.x request."""


async def _read_request(conn: _Conn) -> _Request | None:
    """Read one HTTP request; ``None`` at a clean end of stream.

    Raises:
        _BadRequest: As soon as the bytes cannot be an HTTP request.
    """
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end != -1:
            break
        line_end = conn.buffer.find(b"\n")
        line = bytes(conn.buffer if line_end == -1 else conn.buffer[:line_end])
        pattern = _REQUEST_PREFIX if line_end == -1 else _REQUEST_LINE
        if pattern.fullmatch(line) is None or len(conn.buffer) > _HTTP_CAP:
            raise _BadRequest
        if not await conn.more():
            if conn.buffer:
                raise _BadRequest
            return None
    lines = conn.take(end + 4)[:-4].decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0].encode("latin-1"))
    if match is None:
        raise _BadRequest
    request = _Request(match[1].decode(), match[2].decode(), match[3].decode())
    for header in lines[1:]:
        name, colon, value = header.partition(":")
        if not colon:
            raise _BadRequest
        request.headers[name.strip().lower()] = value.strip()
    length_text = request.headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > _HTTP_CAP:
        raise _BadRequest
    length = int(length_text)
    while len(conn.buffer) < length:
        if not await conn.more():
            return None
    request.body = conn.take(length)
    return request


def _response(
    status: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    version: str = "HTTP/1.1",
    length_header: str = "Content-Length",
) -> bytes:
    """Render an HTTP response, headers exactly as given (case included)."""
    lines = [f"{version} {status}", f"{length_header}: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _safe_xmlrpc_loads(body: bytes) -> tuple[tuple[Any, ...], str | None] | None:
    """Decode an XML-RPC call, refusing DTDs; ``None`` if it is not one."""
    if b"<!" in body:
        return None
    try:
        return xmlrpc.client.loads(body)
    except Exception:  # expat and xmlrpc.client raise a zoo of types on garbage
        return None


# --------------------------------------------------------------------------- xend


class FakeXendRelocation(FakeServer):
    """xend's relocation server (``xend-relocation-port``, 8002).

    Reads SXP. ``(help)`` is answered ``(ok (help quit receive sslreceive))``
    and the connection stays open; ``(quit)`` closes; every other op (an
    HTTP ``GET`` included) gets xend's ``XendError`` line, then a close.
    ``receive`` and ``sslreceive`` are refused the same way: the fake never
    restores anything, and :attr:`ops` shows that someone asked.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        hosts_allow: If false, behave like a default xend to a client outside
            ``xend-relocation-hosts-allow``: accept, then close at once
            without reading or answering.

    Attributes:
        ops: Every op received, in order.
    """

    description = "xend relocation server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, hosts_allow: bool = True) -> None:
        super().__init__(host, port)
        self.hosts_allow = hosts_allow
        self.ops: list[str] = []
        if not hosts_allow:
            self.description = "xend relocation server, client not in hosts-allow"

    @staticmethod
    def _next_op(buffer: bytearray) -> tuple[str, int] | None:
        """Find the first SXP value's op and its length, or ``None`` for more."""
        text = bytes(buffer)
        start = len(text) - len(text.lstrip())
        if start == len(text):
            return None
        if text[start : start + 1] == b"(":
            depth = 0
            for index in range(start, len(text)):
                depth += {40: 1, 41: -1}.get(text[index], 0)
                if depth == 0:
                    inner = text[start + 1 : index].split()
                    op = inner[0].decode("latin-1") if inner else ""
                    return op, index + 1
            return None
        match = re.match(rb"[^\s()]+(?=[\s()])", text[start:])
        if match is None:
            return None
        return match[0].decode("latin-1"), start + match.end()

    async def _serve(self, conn: _Conn) -> None:
        if not self.hosts_allow:
            return  # accepted, closed at once: xend's "Rejected connection"
        while True:
            found = self._next_op(conn.buffer)
            if found is None:
                if len(conn.buffer) > _RECORD_CAP or not await conn.more():
                    return
                continue
            op, consumed = found
            conn.take(consumed)
            self.ops.append(op)
            if op == "help":
                await conn.send(b"(ok (help quit receive sslreceive))\n")
            elif op == "quit":
                return
            else:
                error = (
                    "(err (type \"<class 'xen.xend.XendError.XendError'>\") "
                    f"(value 'Invalid operation: {op}'))\n"
                )
                await conn.send(error.encode("latin-1", "replace"))
                return


class FakeXendHttp(FakeServer):
    """xend's HTTP/SXP server (``xend-port``, 8000).

    ``GET /`` from a client without ``User-Agent`` (a program) gets
    ``application/sxp`` and ``(ls )``; a browser gets an HTML page. Nothing
    under ``/xend`` is served. Replies use xend's header shape: no
    ``Server`` or ``Date``, names ``capitalize()``-d.

    Attributes:
        paths: Every request path, in order.
    """

    description = "xend HTTP/SXP server"
    _scheme = "http"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.paths: list[str] = []

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await _read_request(conn)
        except _BadRequest:
            await conn.send(_response("400 Bad Request", [], b"", length_header="Content-length"))
            return
        if request is None:
            return
        self.paths.append(request.path)
        headers = [("Expires", "-1"), ("Pragma", "no-cache"), ("Cache-control", "no-cache")]
        if request.method != "GET" or request.path not in ("/", ""):
            reply = _response("404 Not Found", headers, b"", length_header="Content-length")
        elif "user-agent" in request.headers:
            body = b"<html><body><a href='xend'>xend</a></body></html>"
            headers.insert(1, ("Content-type", "text/html"))
            reply = _response("200 OK", headers, body, length_header="Content-length")
        else:
            headers.insert(1, ("Content-type", "application/sxp"))
            reply = _response("200 OK", headers, b"(ls )", length_header="Content-length")
        await conn.send(reply)


class FakeXendXmlRpc(FakeServer):
    """xend's XML-RPC server (``xend-tcp-xmlrpc-server-port`` 8006, or 9363).

    A Python 2 ``SimpleXMLRPCServer`` as xend ran it: HTTP/1.0, one call per
    connection, replies written by xmlrpclib (``<?xml version='1.0'?>``,
    ``<value><string>``). ``system.listMethods`` lists :attr:`methods`;
    every other call, ``xend.*`` included, gets the Xen-API failure
    ``MESSAGE_METHOD_UNKNOWN``: the fake never acts.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        methods: The names ``system.listMethods`` returns.

    Attributes:
        calls: Every method name called, in order.
    """

    description = "xend XML-RPC server"
    _scheme = "http"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        methods: Iterable[str] = DEFAULT_XEND_METHODS,
    ) -> None:
        super().__init__(host, port)
        self.methods = tuple(methods)
        self.calls: list[str] = []

    async def _serve(self, conn: _Conn) -> None:
        server = [("Server", "BaseHTTP/0.3 Python/2.7.18"), ("Content-type", "text/xml")]
        try:
            request = await _read_request(conn)
        except _BadRequest:
            body = b"Bad request syntax"
            await conn.send(
                _response(
                    "400 Bad Request",
                    server,
                    body,
                    version="HTTP/1.0",
                    length_header="Content-length",
                )
            )
            return
        if request is None:
            return
        call = _safe_xmlrpc_loads(request.body) if request.method == "POST" else None
        method = call[1] if call is not None else None
        if method is None:
            await conn.send(_response("501 Unsupported method", server, b"", version="HTTP/1.0"))
            return
        self.calls.append(method)
        result: Any
        if method == "system.listMethods":
            result = list(self.methods)
        else:
            result = {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", method]}
        body = xmlrpc.client.dumps((result,), methodresponse=True).encode("utf-8")
        await conn.send(
            _response("200 OK", server, body, version="HTTP/1.0", length_header="Content-length")
        )


# --------------------------------------------------------------------------- xapi


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


class FakeXapi(FakeServer):
    """xapi, the XenServer / XCP-ng management API (80 in the clear, 443 TLS).

    Serves XML-RPC on ``POST /`` and ``/RPC2`` (written like ocaml-rpc:
    ``<?xml version="1.0"?>``, bare ``<value>text</value>``) and JSON-RPC
    on ``POST /jsonrpc``, with xapi's header shape (lower-case, no
    ``Server``). Answers:

    - ``system.isAlive:<uuid>`` echoes its parameter (an older xapi, with
      ``legacy=True``, answers ``MESSAGE_METHOD_UNKNOWN`` and has no
      JSON-RPC);
    - ``session.login_with_password`` checks :attr:`users` and otherwise
      fails ``SESSION_AUTHENTICATION_FAILED``; ``session.logout`` works;
    - any other call without a valid session fails ``SESSION_INVALID``,
      with one ``MESSAGE_METHOD_UNKNOWN``.

    ``GET /`` is 403, other paths 404 (``<address>Xapi Server</address>``).

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS with the packaged self-signed certificate.
        legacy: Answer like a xapi from before ``system.isAlive``.
        users: The user names and passwords that may log in (none by default).
        ssl_context: A TLS context to use instead of the packaged one.

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
    ) -> None:
        context = ssl_context if ssl_context is not None else (fake_tls_context() if tls else None)
        super().__init__(host, port, ssl_context=context)
        self.legacy = legacy
        self.users = dict(users or {})
        self.calls: list[str] = []
        self.sessions: set[str] = set()
        self.description = ("older xapi" if legacy else "xapi") + (" over TLS" if self.tls else "")

    def call(self, method: str, params: list[Any]) -> tuple[bool, Any]:
        """Answer one Xen-API call: ``(True, value)`` or ``(False, error_description)``.

        Args:
            method: The method name, e.g. ``"session.login_with_password"``.
            params: The call's parameters.
        """
        self.calls.append(method)
        if method.startswith("system.isAlive:") and not self.legacy:
            return True, params[0] if params else ""
        if method == "session.login_with_password":
            user = str(params[0]) if params else ""
            password = str(params[1]) if len(params) > 1 else ""
            if user in self.users and self.users[user] == password:
                ref = f"OpaqueRef:{uuid.uuid4()}"
                self.sessions.add(ref)
                return True, ref
            return False, ["SESSION_AUTHENTICATION_FAILED", user, "Authentication failure"]
        if method.startswith(("system.", "session.login")) or "." not in method:
            return False, ["MESSAGE_METHOD_UNKNOWN", method]
        ref = str(params[0]) if params else ""
        if ref not in self.sessions:
            return False, ["SESSION_INVALID", ref]
        if method == "session.logout":
            self.sessions.discard(ref)
            return True, ""
        return False, ["MESSAGE_METHOD_UNKNOWN", method]

    def _headers(self, content_type: str) -> list[tuple[str, str]]:
        return [
            ("content-type", content_type),
            ("cache-control", "no-cache, no-store"),
            ("Access-Control-Allow-Origin", "*"),
        ]

    def _reply(self, request: _Request) -> bytes:
        length = "content-length"
        if request.method != "POST":
            if request.path == "/":
                return _response("403 Forbidden", [], b"", length_header=length)
            page = b"<html><body><h1>404</h1><address>Xapi Server</address></body></html>"
            return _response(
                "404 Not Found", [("content-type", "text/html")], page, length_header=length
            )
        if request.path == "/jsonrpc" and not self.legacy:
            return self._jsonrpc(request.body)
        if request.path not in ("/", "/RPC2"):
            return _response("404 Not Found", [], b"", length_header=length)
        call = _safe_xmlrpc_loads(request.body)
        if call is None or call[1] is None:
            return _response("500 Internal Error", [], b"", length_header=length)
        ok, value = self.call(call[1], list(call[0]))
        result = (
            {"Status": "Success", "Value": value}
            if ok
            else {
                "Status": "Failure",
                "ErrorDescription": value,
            }
        )
        return _response(
            "200 OK", self._headers("text/xml"), _ocaml_response(result), length_header=length
        )

    def _jsonrpc(self, body: bytes) -> bytes:
        try:
            message = json.loads(body)
            method = str(message["method"])
            params = list(message.get("params") or [])
            ident = message.get("id")
        except (ValueError, KeyError, TypeError, AttributeError):
            error: dict[str, object] = {
                "jsonrpc": "2.0",
                "error": {"code": -32700, "message": "Parse error"},
                "id": None,
            }
            return self._json_reply(error)
        ok, value = self.call(method, params)
        if ok:
            return self._json_reply({"jsonrpc": "2.0", "result": value, "id": ident})
        error_object: dict[str, object] = {"code": 1, "message": value[0], "data": value[1:]}
        return self._json_reply({"jsonrpc": "2.0", "error": error_object, "id": ident})

    def _json_reply(self, message: object) -> bytes:
        body = json.dumps(message).encode()
        return _response(
            "200 OK", self._headers("application/json"), body, length_header="content-length"
        )

    async def _serve(self, conn: _Conn) -> None:
        while True:
            try:
                request = await _read_request(conn)
            except _BadRequest:
                await conn.send(
                    _response("400 Bad Request", [], b"", length_header="content-length")
                )
                return
            if request is None:
                return
            await conn.send(self._reply(request))
            if not request.keep_alive:
                return


# --------------------------------------------------------------------------- libvirt

_LIBVIRT_HEADER = struct.Struct(">IIIIIII")
_REMOTE_PROGRAM = 0x20008086
_REMOTE_PROC_AUTH_LIST = 66


class FakeLibvirt(FakeServer):
    """libvirtd's TCP listener (16509): answers ``AUTH_LIST``, nothing else.

    Reads length-prefixed RPC packets; an ``AUTH_LIST`` call gets a reply
    listing :attr:`auth_types` and the connection stays open, as libvirtd
    keeps it. Any other packet, or a length that cannot be libvirt's (an
    HTTP request's, say), closes the connection.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        auth_types: The auth types to list (0 none, 1 SASL, 2 polkit).

    Attributes:
        procs: Every procedure number called, in order.
    """

    description = "libvirtd (TCP)"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, auth_types: Iterable[int] = (1,)
    ) -> None:
        super().__init__(host, port)
        self.auth_types = tuple(auth_types)
        self.procs: list[int] = []

    async def _serve(self, conn: _Conn) -> None:
        while True:
            while len(conn.buffer) < 4:
                if not await conn.more():
                    return
            (length,) = struct.unpack_from(">I", conn.buffer)
            if not _LIBVIRT_HEADER.size <= length <= 256 * 1024:
                return  # libvirtd drops a packet length it cannot accept
            while len(conn.buffer) < length:
                if not await conn.more():
                    return
            packet = conn.take(length)
            _, prog, vers, proc, kind, serial, _ = _LIBVIRT_HEADER.unpack_from(packet)
            self.procs.append(proc)
            if (prog, vers, proc, kind) != (_REMOTE_PROGRAM, 1, _REMOTE_PROC_AUTH_LIST, 0):
                return
            payload = struct.pack(
                f">I{len(self.auth_types)}i", len(self.auth_types), *self.auth_types
            )
            header = _LIBVIRT_HEADER.pack(
                _LIBVIRT_HEADER.size + len(payload), prog, vers, proc, 1, serial, 0
            )
            await conn.send(header + payload)


# --------------------------------------------------------------------------- decoys


class FakeHttpServer(FakeServer):
    """Decoy: an ordinary web server (nginx-like) that is not Xen.

    Every request gets a 404 HTML page (405 for ``POST``), anything that is
    not HTTP a 400, with a ``Server`` header.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS with the packaged self-signed certificate.
        server: The ``Server`` header value.
        head_timeout: How long to wait for the end of a request head before
            answering the request line alone (seconds).

    Attributes:
        paths: Every request path, in order.
    """

    description = "web server (not Xen)"
    _scheme = "http"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        server: str = "nginx/1.24.0",
        head_timeout: float = 0.5,
    ) -> None:
        super().__init__(host, port, ssl_context=fake_tls_context() if tls else None)
        self.server = server
        self.head_timeout = head_timeout
        self.paths: list[str] = []

    def _page(self, status: str) -> bytes:
        body = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        headers = [("Server", self.server), ("Content-Type", "text/html"), ("Connection", "close")]
        return _response(status, headers, body.encode())

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await asyncio.wait_for(_read_request(conn), self.head_timeout)
        except _BadRequest:
            await conn.send(self._page("400 Bad Request"))
            return
        except TimeoutError:
            # A request line and no end of head: answer it anyway, as a lenient
            # server answers a line-at-a-time client; anything else is a 400.
            line = bytes(conn.buffer).split(b"\n", 1)
            match = _REQUEST_LINE.fullmatch(line[0]) if len(line) == 2 else None
            if match is None:
                await conn.send(self._page("400 Bad Request"))
                return
            request = _Request(match[1].decode(), match[2].decode(), match[3].decode())
        if request is None:
            return
        self.paths.append(request.path)
        status = "405 Not Allowed" if request.method == "POST" else "404 Not Found"
        await conn.send(self._page(status))


class FakeTarpit(FakeServer):
    """Decoy: accepts, reads whatever comes, and never says a word.

    A connection ends only when the client closes it or the fake stops.
    """

    description = "tarpit (silent)"

    async def _serve(self, conn: _Conn) -> None:
        while await conn.more():
            conn.buffer.clear()


class FakeStreamer(FakeServer):
    """Decoy: streams the head of an HTTP response that never ends.

    Sends a status line, then header lines for as long as the client reads,
    up to ``limit`` bytes per connection (so even a fake stays bounded).

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        limit: The most bytes sent on one connection.

    Attributes:
        sent: The bytes sent, over all connections.
    """

    description = "endless streamer"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, limit: int = 8 * 1024 * 1024
    ) -> None:
        super().__init__(host, port)
        self.limit = limit
        self.sent = 0

    async def _serve(self, conn: _Conn) -> None:
        line = b"X-Filler: " + b"x" * 54 + b"\r\n"
        chunk = b"HTTP/1.1 200 OK\r\n" + line * 64
        sent = 0
        while sent < self.limit:
            piece = chunk[: self.limit - sent]
            await conn.send(piece)
            sent += len(piece)
            self.sent += len(piece)
            chunk = line * 64


class FakeResetter(FakeServer):
    """Decoy: starts an HTTP reply, then resets the connection (TCP RST).

    Waits for the client's first bytes, sends half a status line and header,
    and aborts with ``SO_LINGER`` 0 so the client sees a reset mid-reply.
    """

    description = "resets mid-reply"

    async def _serve(self, conn: _Conn) -> None:
        if not await conn.more():
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Len")
        await asyncio.sleep(0.01)  # let the half reply reach the client first
        sock = conn.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.writer.transport.abort()
