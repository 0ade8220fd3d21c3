"""Fakes of xend, Xen's management daemon before Xen 4.5.

Its relocation (8002), HTTP/SXP (8000) and XML-RPC (8006, 9363) servers.

Each fake's docstring names the upstream files and version whose replies it
reproduces: status lines, header names, order and case, bodies and their
sizes, and the timing of the hosts-allow close.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import xmlrpc.client
from collections.abc import Iterable
from typing import Any

from xendiscover.testing._server import (
    _RECORD_CAP,
    FakeServer,
    _abort_with_reset,
    _BadRequest,
    _Conn,
    _read_request,
    _Request,
    _response,
    _safe_xmlrpc_loads,
)

__all__ = [
    "DEFAULT_XEND_METHODS",
    "XEND_PYTHON",
    "FakeXendHttp",
    "FakeXendRelocation",
    "FakeXendXmlRpc",
]

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


async def _pending(conn: _Conn) -> bool:
    """Whether the client has sent anything (without waiting for it)."""
    if conn.buffer:
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.01):
            return await conn.more()
    return False


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
