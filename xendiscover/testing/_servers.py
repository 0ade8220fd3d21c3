"""Fake servers that answer like Xen management services, and decoys that do not.

Each fake is an asyncio TCP server bound to any address and port (port 0 picks
a free one), used as an async context manager::

    async with FakeXapi(host="127.0.0.5", port=0) as server:
        print(server.host, server.port, server.url)

The Xen fakes speak enough of the real protocol for real clients: the XAPI
fake answers the official ``XenAPI`` SDK, the xend XML-RPC fake answers
:mod:`xmlrpc.client`. None of them ever does anything: a fake records what it
was sent (:attr:`FakeServer.received`) and answers, nothing more.

Each Xen fake's docstring names the upstream files and version whose replies
it reproduces: status lines, header names, order and case, bodies and their
sizes, and the timing of xend's hosts-allow close.

=========================  =============================================
Fake                       Answers like
=========================  =============================================
:class:`FakeXendRelocation`  xend's relocation server (8002), or its
                           hosts-allow reject (accept, close after a delay)
:class:`FakeXendHttp`      xend's HTTP/SXP server (8000)
:class:`FakeXendXmlRpc`    xend's XML-RPC servers (8006, 9363)
:class:`FakeXapi`          xapi, in the clear (80) or over TLS (443)
:class:`FakeLibvirt`       libvirtd's TCP listener (16509), auth sasl or none
:class:`FakeHttpServer`    decoy: a web server that is not Xen
:class:`FakeXenOrchestra`  decoy: Xen Orchestra, an appliance, not a host
:class:`FakeTarpit`        decoy: accepts, reads, never answers
:class:`FakeStreamer`      decoy: streams an HTTP head that never ends
:class:`FakeResetter`      decoy: starts a reply, then resets the connection
=========================  =============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import re
import socket
import ssl
import struct
import uuid
import xmlrpc.client
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from xml.sax.saxutils import escape

from xendiscover.testing._certs import XapiIdentity, fake_tls_context

__all__ = [
    "DEFAULT_XEND_METHODS",
    "XAPI_RELEASES",
    "XEND_PYTHON",
    "FakeHttpServer",
    "FakeLibvirt",
    "FakeResetter",
    "FakeServer",
    "FakeStreamer",
    "FakeTarpit",
    "FakeXapi",
    "FakeXenOrchestra",
    "FakeXendHttp",
    "FakeXendRelocation",
    "FakeXendXmlRpc",
    "XapiRelease",
    "fake_tls_context",
    "xapi_messages",
]

#: The most bytes a fake keeps of what one connection sent it.
_RECORD_CAP = 64 * 1024
#: The longest request head or body a fake accepts.
_HTTP_CAP = 1024 * 1024


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
        # A connection whose TLS handshake finished as we closed has its
        # handler task made, but not yet started (and registered): give it a
        # turn, then end it with the others.
        for _ in range(3):
            await asyncio.sleep(0)
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
            writer.close()
            # Collect the close's outcome (a reset, often), so nothing is
            # left for "exception was never retrieved" at exit; close() still
            # sees this task until then.
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

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


async def _read_head(conn: _Conn) -> bytes | None:
    """Read up to the end of a request head; ``None`` at a clean end of stream.

    Raises:
        _BadRequest: As soon as the bytes cannot be an HTTP request.
    """
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end != -1:
            return conn.take(end + 4)[:-4]
        line_end = conn.buffer.find(b"\n")
        line = bytes(conn.buffer if line_end == -1 else conn.buffer[:line_end])
        pattern = _REQUEST_PREFIX if line_end == -1 else _REQUEST_LINE
        if pattern.fullmatch(line) is None or len(conn.buffer) > _HTTP_CAP:
            raise _BadRequest(line)
        if not await conn.more():
            if conn.buffer:
                raise _BadRequest(bytes(conn.buffer))
            return None


def _parse_head(head: bytes) -> _Request:
    """Parse a request head (without its blank line).

    Raises:
        _BadRequest: It is not an HTTP/1.x request head.
    """
    lines = head.decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0].encode("latin-1"))
    if match is None:
        raise _BadRequest(lines[0].encode("latin-1"))
    request = _Request(match[1].decode(), match[2].decode(), match[3].decode())
    for header in lines[1:]:
        name, colon, value = header.partition(":")
        if not colon:
            raise _BadRequest(lines[0].encode("latin-1"))
        request.headers[name.strip().lower()] = value.strip()
    length_text = request.headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > _HTTP_CAP:
        raise _BadRequest(lines[0].encode("latin-1"))
    return request


async def _read_request(conn: _Conn) -> _Request | None:
    """Read one HTTP request; ``None`` at a clean end of stream.

    Raises:
        _BadRequest: As soon as the bytes cannot be an HTTP request (its
            argument is the offending line).
    """
    head = await _read_head(conn)
    if head is None:
        return None
    request = _parse_head(head)
    length = int(request.headers.get("content-length", "0"))
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

#: ``sys_version`` of the Python 2 that ran xend in the fakes' replies
#: (``Server: BaseHTTP/0.3 Python/2.7.3``: Debian 7 / Ubuntu 12.04, Xen 4.1-4.4).
XEND_PYTHON = "2.7.3"

# BaseHTTPServer.BaseHTTPRequestHandler.DEFAULT_ERROR_MESSAGE, Python 2.7.
_PY2_ERROR_PAGE = (
    "<head>\n<title>Error response</title>\n</head>\n<body>\n<h1>Error response</h1>\n"
    "<p>Error code {code}.\n<p>Message: {message}.\n"
    "<p>Error code explanation: {code} = {explain}.\n</body>\n"
)


def _http_date() -> str:
    """``BaseHTTPRequestHandler.date_time_string()``: RFC 1123, GMT."""
    return email.utils.formatdate(usegmt=True)


def _py2_error(code: int, message: str, explain: str, *, headers: bool, python: str) -> bytes:
    """``BaseHTTPRequestHandler.send_error`` (Python 2.7) as bytes.

    Before a request line has been understood, ``request_version`` is still
    ``HTTP/0.9`` and BaseHTTP writes neither a status line nor headers: only
    the page.
    """
    page = _PY2_ERROR_PAGE.format(code=code, message=message, explain=explain).encode("latin-1")
    if not headers:
        return page
    head = (
        f"HTTP/1.1 {code} {message}\r\nServer: BaseHTTP/0.3 Python/{python}\r\n"
        f"Date: {_http_date()}\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + page


class FakeXendRelocation(FakeServer):
    """xend's relocation server (``xend-relocation-port``, 8002).

    Follows xen-project/xen RELEASE-4.4.0 ``tools/python/xen/xend/server/
    relocate.py`` (``RelocationProtocol``) and ``tools/python/xen/web/tcp.py``
    / ``connection.py`` (the hosts-allow check). Reads SXP. ``(help)`` is
    answered ``(ok (help quit receive sslreceive))`` and the connection stays
    open; ``(quit)`` closes; every other op (an HTTP ``GET`` included) gets
    xend's ``XendError`` line (Python >= 2.5 spelling), then a close.
    ``receive`` and ``sslreceive`` are refused the same way: the fake never
    restores anything, and :attr:`ops` shows that someone asked.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        hosts_allow: If false, behave like a default xend to a client outside
            ``xend-relocation-hosts-allow``: accept, read nothing, and close
            after ``reject_delay``.
        reject_delay: Seconds before the hosts-allow close: real xend first
            runs ``socket.getfqdn(peer)`` in its one accept thread, so the
            close comes after dom0's reverse lookup of the client (5 s and
            more when the client has no PTR and dom0's resolver is slow). If
            the client sent bytes meanwhile, the close is a reset (they were
            never read), as from real xend.

    Attributes:
        ops: Every op received, in order.
    """

    description = "xend relocation server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        hosts_allow: bool = True,
        reject_delay: float = 0.0,
    ) -> None:
        super().__init__(host, port)
        self.hosts_allow = hosts_allow
        self.reject_delay = reject_delay
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

    async def _reject(self, conn: _Conn) -> None:
        """Close like ``hostAllowed`` failing: after the delay, a reset if bytes came."""
        await asyncio.sleep(self.reject_delay)
        unread = await _pending(conn)
        if unread:
            _abort_with_reset(conn.writer)

    async def _serve(self, conn: _Conn) -> None:
        if not self.hosts_allow:
            await self._reject(conn)  # xend logs "Rejected connection"
            return
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


async def _pending(conn: _Conn) -> bool:
    """Whether the client has sent anything (without waiting for it)."""
    if conn.buffer:
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.01):
            return await conn.more()
    return False


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (``SO_LINGER`` 0), as a close with unread bytes does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


#: The headers of xend's SXP replies, in the order the real 4.4.0 server sends
#: them (after ``Content-length``); names ``capitalize()``-d, no ``Server``/``Date``.
_SXP_HEADERS = (
    ("Expires", "-1"),
    ("Content-type", "application/sxp"),
    ("Pragma", "no-cache"),
    ("Cache-control", "no-cache"),
)


class FakeXendHttp(FakeServer):
    """xend's HTTP/SXP server (``xend-port``, 8000).

    Follows xen-project/xen RELEASE-4.4.0 ``tools/python/xen/web/http.py``
    and ``xend/server/SrvDir.py``, byte for byte as the real 4.4.0 server
    answers ``GET / HTTP/1.0`` with a ``Host`` header and no ``User-Agent``::

        HTTP/1.1 200 OK
        Content-length: 7
        Expires: -1
        Content-type: application/sxp
        Pragma: no-cache
        Cache-control: no-cache

        (ls )''

    (the root lists nothing; ``sxp.show('')`` adds ``''``). A browser (with
    ``User-Agent``) gets an HTML page. Nothing under ``/xend`` is served.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        own_name_resolves: If false, dom0's own host name does not resolve:
            a request without ``Host`` then makes ``getRequestHostname``
            fail, and the reply is ``500 Internal server error`` with an
            empty SXP body (a request with ``Host`` is unaffected).

    Attributes:
        paths: Every request path, in order.
    """

    description = "xend HTTP/SXP server"
    _scheme = "http"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, own_name_resolves: bool = True
    ) -> None:
        super().__init__(host, port)
        self.own_name_resolves = own_name_resolves
        self.paths: list[str] = []

    def _reply(self, request: _Request) -> bytes:
        length = "Content-length"
        if request.method != "GET" or request.path not in ("/", ""):
            return _response("404 Not Found", _SXP_HEADERS, b"", length_header=length)
        if "host" not in request.headers and not self.own_name_resolves:
            return _response("500 Internal server error", _SXP_HEADERS, b"", length_header=length)
        if "user-agent" in request.headers:
            body = b"<html><body><a href='xend'>xend</a></body></html>"
            headers = [("Expires", "-1"), ("Content-type", "text/html"), *_SXP_HEADERS[2:]]
            return _response("200 OK", headers, body, length_header=length)
        return _response("200 OK", _SXP_HEADERS, b"(ls )''", length_header=length)

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await _read_request(conn)
        except _BadRequest:
            await conn.send(_response("400 Bad Request", [], b"", length_header="Content-length"))
            return
        if request is None:
            return
        self.paths.append(request.path)
        await conn.send(self._reply(request))


def _xenapi_names() -> tuple[str, ...]:
    """The Xen-API method names a 4.4 Xen-API server (9363) registers, 192 of them."""
    classes = (
        "VM", "VBD", "VIF", "VDI", "SR", "PBD", "PIF", "host", "network", "console",
        "task", "user", "crashdump", "VM_metrics", "VBD_metrics", "VIF_metrics",
        "PIF_metrics", "host_metrics", "host_cpu", "VM_guest_metrics", "PPCI", "DPCI",
        "PSCSI", "DSCSI", "VTPM", "cpu_pool", "debug", "XSPolicy", "ACMPolicy",
    )  # fmt: skip
    verbs = (
        "get_all_records", "get_by_name_label", "get_other_config",
        "add_to_other_config", "remove_from_other_config", "get_record",
    )  # fmt: skip
    names = [f"{cls}.{verb}" for cls in classes for verb in verbs]
    names += [
        "session.login_with_password", "session.logout", "session.get_record",
        "session.get_this_host", "session.get_this_user", "session.get_uuid",
        "event.register", "event.unregister", "event.next", "event.from",
        "host.get_API_version_major", "host.get_API_version_minor", "host.get_software_version",
        "host.get_capabilities", "host.get_name_label", "host.get_hostname",
        "host.get_cpu_configuration", "host.get_sched_policy", "VM.get_power_state",
        "VM.start", "VM.pause", "VM.unpause", "VM.clean_shutdown", "VM.hard_shutdown",
        "VM.clean_reboot", "VM.hard_reboot", "VM.suspend", "VM.resume", "VM.send_sysrq",
        "VM.send_trigger", "VM.migrate", "VM.create", "VM.get_name_label",
        "VM.get_is_control_domain", "VM.get_domid",
        "pool.get_all", "pool.get_record", "pool.get_master",
    ]  # fmt: skip
    return tuple(sorted(set(names))[:192])


#: What the xend XML-RPC fake lists for ``system.listMethods``: the three
#: introspection functions and 94 ``xend.*`` names, sorted, as
#: ``SimpleXMLRPCDispatcher.system_listMethods`` returns them. The count
#: matches 4.4.0 (the reply, 5.9 KB with its head, is more than a 4 KiB
#: read, as the real one is); the names follow 4.4.0's
#: ``XMLRPCServer.run`` registration (its ``methods`` list as
#: ``xend.domain.<name>``, every ``XendDomain.domain_*`` method but create and
#: restore as ``xend.domain.<suffix>``, the node and dmesg functions, the
#: special cases), reconstructed rather than captured name by name.
DEFAULT_XEND_METHODS: tuple[str, ...] = tuple(
    sorted(
        ["system.listMethods", "system.methodHelp", "system.methodSignature"]
        + [
            f"xend.domain.{name}"
            for name in [
                "device_create",
                "device_configure",
                "destroyDevice",
                "getDeviceSxprs",
                "setMemoryTarget",
                "setName",
                "setVCpuCount",
                "shutdown",
                "send_sysrq",
                "getVCPUInfo",
                "waitForDevices",
                "getRestartCount",
                "getBlockDeviceClass",
                "change_vcpu_affinity",
                "cpu_sedf_get",
                "cpu_sedf_set",
                "create_from_dict",
                "delete",
                "delete_by_dominfo",
                "destroy",
                "dump",
                "getinfo",
                "ioport_range_disable",
                "ioport_range_enable",
                "irq_permission",
                "lookup",
                "lookup_by_name_or_uuid",
                "lookup_by_name_or_uuid_nr",
                "lookup_nr",
                "maxmem_set",
                "migrate",
                "new",
                "pause",
                "pincpu",
                "reset",
                "restore_fd",
                "resume",
                "save",
                "sched_credit_get",
                "sched_credit_set",
                "sched_credit2_get",
                "sched_credit2_set",
                "send_trigger",
                "set_cpus",
                "set_memory_dynamic_max",
                "set_memory_dynamic_min",
                "set_memory_static_max",
                "set_memory_static_min",
                "set_vcpus_at_startup",
                "set_vcpus_number_live",
                "shadow_control",
                "soft_reset",
                "start",
                "suspend",
                "unpause",
                "usb_add",
                "usb_del",
                "vcpu_set",
                "cpuid_set",
                "cpuid_check_set",
                "set_shadow_memory",
                "get_shadow_memory",
                "set_actions_after_shutdown",
                "set_actions_after_reboot",
                "set_actions_after_crash",
                "set_name_label",
                "set_name_description",
                "set_HVM_boot_policy",
                "set_PV_bootloader",
                "set_PV_kernel",
                "set_PV_ramdisk",
                "set_platform",
                "set_other_config",
                "create_managed",
                "configure",
                "vtpm_create",
                "pci_device_create",
                "pci_device_configure",
                "scsi_device_create",
                "scsi_device_configure",
                "vscsi_device_create",
                "pci_device_destroy",
                "device_destroy",
                "getDeviceInfo",
                "create",
                "restore",
            ]
        ]
        + ["xend.domain", "xend.domains", "xend.domains_with_state", "xend.node.log"]
        + ["xend.node.info", "xend.node.send_debug_keys"]
        + ["xend.node.dmesg.info", "xend.node.dmesg.clear"]
    )
)


class FakeXendXmlRpc(FakeServer):
    """xend's XML-RPC servers: legacy TCP (``xend-tcp-xmlrpc-server-port``, 8006) or Xen-API (9363).

    Follows xen-project/xen RELEASE-4.4.0 ``xend/server/XMLRPCServer.py`` and
    ``tools/python/xen/util/xmlrpclib2.py`` on Python 2.7's ``BaseHTTPServer``,
    ``SimpleXMLRPCServer`` and ``xmlrpclib``:

    - ``HTTP/1.1 200 OK`` (``protocol_version = "HTTP/1.1"``), then
      ``Server: BaseHTTP/0.3 Python/2.7.3``, ``Date:``, ``Content-Type:
      text/xml``, ``Content-Length:``; the connection closes after the reply
      to an HTTP/1.0 request or ``Connection: close``, as BaseHTTP does;
    - ``system.listMethods`` lists :attr:`methods` (97 names, a 5.9 KB
      reply with its head); on the Xen-API server (``xenapi=True``) the list, which is not
      a dict, is wrapped by ``_marshaled_dispatch`` as ``{'Status':
      'Failure', 'ErrorDescription': ['INTERNAL_ERROR', 'Invalid result
      [...] handling system.listMethods']}`` with 192 Xen-API names added
      (289 names: an 8.5 KB reply here, 9.6 KB from a real 4.4.0 host,
      whose Xen-API names are longer);
    - any other method (``system.isAlive`` included) gets
      ``XendAPIAsyncProxy._dispatch``'s ``{'Status': 'Failure',
      'ErrorDescription': ['MESSAGE_METHOD_UNKNOWN', method]}``, a 402-byte
      body for ``system.isAlive``, 538 bytes with the head. So do
      ``xend.*`` calls, where real xend would act: the fake never acts;
    - a request that is not XML-RPC is closed without a reply (xend lets the
      parse error escape ``do_POST``); any method but ``POST`` gets BaseHTTP's
      ``501 Unsupported method``; a line that is not HTTP gets BaseHTTP's
      error page alone, without status line or headers (``HTTP/0.9``).

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        methods: The names ``system.listMethods`` returns.
        xenapi: Answer as the Xen-API server (9363) rather than 8006's.
        python: The Python version in the ``Server`` header.

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
        xenapi: bool = False,
        python: str = XEND_PYTHON,
    ) -> None:
        super().__init__(host, port)
        self.methods = tuple(methods)
        self.xenapi = xenapi
        self.python = python
        self.calls: list[str] = []
        if xenapi:
            self.description = "xend Xen-API server"

    def dispatch(self, method: str) -> Any:
        """The value xend's ``_marshaled_dispatch`` would marshal for ``method``."""
        self.calls.append(method)
        if method != "system.listMethods":
            return {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", method]}
        if not self.xenapi:
            return list(self.methods)
        listed = sorted({*self.methods, *_xenapi_names()})
        text = f"Invalid result {listed!r} handling {method}"
        return {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", text]}

    def _ok(self, body: bytes) -> bytes:
        head = (
            f"HTTP/1.1 200 OK\r\nServer: BaseHTTP/0.3 Python/{self.python}\r\n"
            f"Date: {_http_date()}\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def _answer(self, request: _Request) -> bytes | None:
        if request.method != "POST":
            message = f"Unsupported method ({request.method!r})"
            explain = "Server does not support this operation"
            return _py2_error(501, message, explain, headers=True, python=self.python)
        call = _safe_xmlrpc_loads(request.body)
        if call is None or call[1] is None:
            return None
        result = self.dispatch(call[1])
        return self._ok(xmlrpc.client.dumps((result,), methodresponse=True).encode("utf-8"))

    async def _serve(self, conn: _Conn) -> None:
        while True:
            try:
                request = await _read_request(conn)
            except _BadRequest as bad:
                line = bytes(bad.args[0]) if bad.args else b""
                message = f"Bad request syntax ({line.decode('latin-1')!r})"
                explain = "Bad request syntax or unsupported method"
                await conn.send(_py2_error(400, message, explain, headers=False, python=""))
                return
            if request is None:
                return
            reply = await self._answer(request)
            if reply is None:
                return
            await conn.send(reply)
            if not request.keep_alive:
                return


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
# --------------------------------------------------------------------------- libvirt

_LIBVIRT_HEADER = struct.Struct(">IIIIIII")
_REMOTE_PROGRAM = 0x20008086
_PROC_OPEN, _PROC_CLOSE, _PROC_TYPE, _PROC_VERSION = 1, 2, 3, 4
_PROC_HOSTNAME, _PROC_AUTH_LIST = 59, 66
# virNetServerProgram refuses a packet longer than this (virnetprotocol.x).
_LIBVIRT_MAX_PACKET = 32 * 1024 * 1024
# virErrorNumber VIR_ERR_OPERATION_INVALID / VIR_ERR_AUTH_FAILED, VIR_FROM_RPC.
_VIR_ERR_OPERATION_INVALID, _VIR_ERR_AUTH_FAILED, _VIR_FROM_RPC = 55, 45, 7


def _xdr_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">I", len(data)) + data + b"\x00" * (-len(data) % 4)


def _remote_error(code: int, message: str) -> bytes:
    """A ``remote_error`` (virnetprotocol.x): code, domain, message, level, then nulls."""
    return (
        struct.pack(">ii", code, _VIR_FROM_RPC)
        + struct.pack(">I", 1)
        + _xdr_string(message)
        + struct.pack(">i", 2)  # VIR_ERR_ERROR
        + b"\x00" * 16  # dom, str1, str2, str3: NULL
        + struct.pack(">ii", 0, 0)
        + b"\x00" * 4  # net: NULL
    )


class FakeLibvirt(FakeServer):
    """libvirtd's TCP listener (16509), with ``auth_tcp`` ``"sasl"`` or ``"none"``.

    Follows libvirt 9.0.0 ``src/rpc/virnetprotocol.x`` (packets, errors) and
    ``src/remote/remote_protocol.x`` (``REMOTE_PROGRAM`` calls), as
    ``src/remote/remote_daemon_dispatch.c`` answers them. Reads
    length-prefixed RPC packets; the connection stays open between calls, as
    libvirtd keeps it. Answers:

    - ``AUTH_LIST`` (66) with :attr:`auth_types` (0 none, 1 SASL, 2 polkit);
    - with auth ``none`` only (``auth_types=(0,)``): ``CONNECT_OPEN`` (1),
      ``CONNECT_GET_TYPE`` (3: :attr:`hv_type`, ``"Xen"`` for the libxl
      driver, ``"QEMU"``, ``"TEST"``), ``CONNECT_GET_HOSTNAME`` (59) and
      ``CONNECT_CLOSE`` (2); type and host name only once opened;
    - every other call, and every call before authentication when auth is
      required, gets an error reply (the fake never acts, nor authenticates).

    A packet length libvirtd cannot accept (an HTTP request's, say) closes
    the connection.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        auth_types: The auth types to list.
        hv_type: What ``CONNECT_GET_TYPE`` answers.
        hostname: What ``CONNECT_GET_HOSTNAME`` answers.
        hv_version: What ``CONNECT_GET_VERSION`` (4) answers: ``major *
            1,000,000 + minor * 1,000 + release`` (4017000: Xen 4.17.0).

    Attributes:
        procs: Every procedure number called, in order.
        opened: Every ``CONNECT_OPEN`` as ``(name, flags)`` (``name`` is
            ``None`` for a NULL ``remote_string``).
    """

    description = "libvirtd (TCP)"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth_types: Iterable[int] = (1,),
        hv_type: str = "QEMU",
        hostname: str = "fake-libvirt-host",
        hv_version: int = 8002002,
    ) -> None:
        super().__init__(host, port)
        self.auth_types = tuple(auth_types)
        self.hv_type = hv_type
        self.hostname = hostname
        self.hv_version = hv_version
        self.procs: list[int] = []
        self.opened: list[tuple[str | None, int]] = []
        if self.auth_types == (0,):
            self.description = f"libvirtd (TCP, auth none, {hv_type})"

    def _open_args(self, payload: bytes) -> tuple[str | None, int]:
        present = struct.unpack_from(">I", payload)[0] if len(payload) >= 4 else 0
        if not present:
            return None, struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
        size = struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
        name = payload[8 : 8 + size].decode("utf-8", "replace")
        offset = 8 + size + (-size % 4)
        flags = struct.unpack_from(">I", payload, offset)[0] if len(payload) >= offset + 4 else 0
        return name, flags

    def answer(self, proc: int, payload: bytes, opened: bool) -> tuple[int, bytes]:
        """Answer one call of ``REMOTE_PROGRAM``: ``(status, payload)``.

        Args:
            proc: The procedure number.
            payload: The call's XDR arguments.
            opened: Whether this connection has opened a hypervisor connection.
        """
        self.procs.append(proc)
        if proc == _PROC_AUTH_LIST:
            types = self.auth_types
            return 0, struct.pack(f">I{len(types)}i", len(types), *types)
        if self.auth_types != (0,):
            return 1, _remote_error(_VIR_ERR_AUTH_FAILED, "authentication required")
        if proc == _PROC_OPEN:
            self.opened.append(self._open_args(payload))
            return 0, b""
        if opened and proc == _PROC_TYPE:
            return 0, _xdr_string(self.hv_type)
        if opened and proc == _PROC_VERSION:
            return 0, struct.pack(">Q", self.hv_version)
        if opened and proc == _PROC_HOSTNAME:
            return 0, _xdr_string(self.hostname)
        if opened and proc == _PROC_CLOSE:
            return 0, b""
        return 1, _remote_error(_VIR_ERR_OPERATION_INVALID, "operation invalid: not supported")

    async def _packet(self, conn: _Conn) -> bytes | None:
        """Read one packet; ``None`` at the end of the stream or an impossible length."""
        while len(conn.buffer) < 4:
            if not await conn.more():
                return None
        (length,) = struct.unpack_from(">I", conn.buffer)
        if not _LIBVIRT_HEADER.size <= length <= _LIBVIRT_MAX_PACKET:
            return None  # libvirtd drops a packet length it cannot accept
        while len(conn.buffer) < length:
            if not await conn.more():
                return None
        return conn.take(length)

    async def _serve(self, conn: _Conn) -> None:
        opened = False
        while (packet := await self._packet(conn)) is not None:
            _, prog, vers, proc, kind, serial, _ = _LIBVIRT_HEADER.unpack_from(packet)
            if (prog, vers, kind) != (_REMOTE_PROGRAM, 1, 0):
                return
            status, payload = self.answer(proc, packet[_LIBVIRT_HEADER.size :], opened)
            if status == 0 and proc in (_PROC_OPEN, _PROC_CLOSE):
                opened = proc == _PROC_OPEN
            header = _LIBVIRT_HEADER.pack(
                _LIBVIRT_HEADER.size + len(payload), prog, vers, proc, 1, serial, status
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


class FakeXenOrchestra(FakeServer):
    """Decoy: Xen Orchestra, a Xen management appliance (not a Xen host).

    ``GET /`` is Express's 302 to ``/signin`` with a ``connect.sid`` session
    cookie, as nmap-service-probes recorded it from a real one ("Xen
    Orchestra"); anything else a 404 with Express's ``X-Powered-By``.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS (it usually sits on 443).
    """

    description = "Xen Orchestra (appliance)"
    _scheme = "http"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> None:
        super().__init__(host, port, ssl_context=fake_tls_context() if tls else None)

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await _read_request(conn)
        except _BadRequest:
            return
        if request is None:
            return
        if request.method == "GET" and request.path == "/":
            await conn.send(_XO_SIGNIN)
        else:
            await conn.send(_XO_404)


# Express (helmet) 302 to /signin, as nmap-service-probes' "Xen Orchestra" line has it.
_XO_SIGNIN = (
    b"HTTP/1.1 302 Found\r\nX-DNS-Prefetch-Control: off\r\nX-Frame-Options: SAMEORIGIN\r\n"
    b"Strict-Transport-Security: max-age=15552000; includeSubDomains\r\n"
    b"X-Download-Options: noopen\r\nX-Content-Type-Options: nosniff\r\n"
    b"X-XSS-Protection: 1; mode=block\r\nLocation: /signin\r\nVary: Accept\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n"
    b"set-cookie: connect.sid=s%3Afake.session; Path=/; HttpOnly\r\n"
    b"Connection: close\r\n\r\nFound. Redirecting to /signin"
)
_XO_404 = (
    b"HTTP/1.1 404 Not Found\r\nX-Powered-By: Express\r\nContent-Type: text/html\r\n"
    b"Content-Length: 9\r\nConnection: close\r\n\r\nNot Found"
)


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
