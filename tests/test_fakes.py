"""The public fake servers speak the real protocols: real clients, on loopback only."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import socket
import struct
import xmlrpc.client
from typing import Any

import pytest
import support
import XenAPI

from xendiscover._fingerprint._libvirt import AUTH_LIST_REQUEST, parse_auth_list
from xendiscover.testing import (
    FakeHttpServer,
    FakeLibvirt,
    FakeResetter,
    FakeStreamer,
    FakeTarpit,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
)

TIMEOUT = 10.0
_addresses = (f"127.67.{a}.{b}" for a, b in itertools.product(range(1, 250), range(1, 250)))


def address() -> str:
    return next(_addresses)


async def test_xenapi_sdk_wrong_password_gets_authentication_failed() -> None:
    async with FakeXapi(address(), users={"root": "secret"}) as xapi:

        def login() -> list[str]:
            session = XenAPI.Session(xapi.url)
            try:
                session.xenapi.login_with_password("root", "wrong", "1.0", "xendiscover-test")
            except XenAPI.Failure as failure:
                return list(failure.details)
            finally:
                session("close")()
            return []

        details = await asyncio.wait_for(asyncio.to_thread(login), TIMEOUT)
    assert details[0] == "SESSION_AUTHENTICATION_FAILED"
    assert xapi.calls == ["session.login_with_password"]


async def test_xenapi_sdk_logs_in_and_out_over_tls() -> None:
    async with FakeXapi(address(), tls=True, users={"root": "secret"}) as xapi:
        assert xapi.url.startswith("https://")

        def session_roundtrip() -> tuple[str, list[str]]:
            session = XenAPI.Session(xapi.url, ignore_ssl=True)
            session.xenapi.login_with_password("root", "secret", "1.0", "xendiscover-test")
            ref = str(session._session)
            try:
                session.xenapi.VM.get_all()
            except XenAPI.Failure as failure:
                details = list(failure.details)
            session.xenapi.session.logout()
            session("close")()
            return ref, details

        ref, details = await asyncio.wait_for(asyncio.to_thread(session_roundtrip), TIMEOUT)
    assert ref.startswith("OpaqueRef:")
    assert details == ["MESSAGE_METHOD_UNKNOWN", "VM.get_all"]
    assert not xapi.sessions


async def test_xapi_fake_wants_a_session() -> None:
    async with FakeXapi(address()) as xapi:

        def call() -> Any:
            with xmlrpc.client.ServerProxy(xapi.url) as proxy:
                return proxy.VM.get_all("OpaqueRef:NULL")

        reply = await asyncio.wait_for(asyncio.to_thread(call), TIMEOUT)
        raw = await quick_talk(xapi.host, xapi.port, b"GET / HTTP/1.0\r\n\r\n")
    assert reply == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", "OpaqueRef:NULL"]}
    # http_svr.ml answers in the request's HTTP version, content-length first
    assert raw.startswith(b"HTTP/1.0 403 Forbidden\r\ncontent-length: ")


async def test_xmlrpc_client_lists_xend_methods_and_the_fake_never_acts() -> None:
    async with FakeXendXmlRpc(address()) as xend:

        def calls() -> tuple[Any, Any]:
            with xmlrpc.client.ServerProxy(xend.url) as proxy:
                return proxy.system.listMethods(), proxy.xend.domains(0)

        methods, domains = await asyncio.wait_for(asyncio.to_thread(calls), TIMEOUT)
        raw = await quick_talk(xend.host, xend.port, b"\x00\x00\x00\x1c")
    assert "xend.domains" in methods
    assert domains["ErrorDescription"][0] == "MESSAGE_METHOD_UNKNOWN"
    assert xend.calls == ["system.listMethods", "xend.domains"]
    # BaseHTTP (Python 2) before a request line: the error page alone, as HTTP/0.9
    assert raw.startswith(b"<head>\n<title>Error response</title>")
    assert b"<value><string>" in xmlrpc.client.dumps((methods,), methodresponse=True).encode()


async def test_relocation_fake_answers_help_and_refuses_every_other_op() -> None:
    async with FakeXendRelocation(address()) as relocation:
        reader, writer = await asyncio.open_connection(relocation.host, relocation.port)
        writer.write(b"(help)\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 2)
        writer.write(b"(receive)\n")  # loopback, to our own fake: it refuses
        await writer.drain()
        error = await asyncio.wait_for(reader.read(1000), 2)
        writer.close()
        http = await quick_talk(relocation.host, relocation.port, b"GET / HTTP/1.0\r\n\r\n")
    assert line == b"(ok (help quit receive sslreceive))\n"
    assert b"XendError" in error
    assert b"receive" in error
    assert http.startswith(b"(err (type")
    assert b"Invalid operation: GET" in http
    assert relocation.ops == ["help", "receive", "GET"]


async def test_relocation_hosts_allow_variant_closes_without_a_byte() -> None:
    async with FakeXendRelocation(address(), hosts_allow=False) as relocation:
        reader, writer = await asyncio.open_connection(relocation.host, relocation.port)
        try:
            data = await asyncio.wait_for(reader.read(100), 2)
        except ConnectionResetError:
            data = b""
        writer.close()
    assert data == b""
    assert relocation.ops == []


async def test_xend_http_fake_answers_sxp_to_programs_and_html_to_browsers() -> None:
    async with FakeXendHttp(address()) as xend:
        sxp = await quick_talk(xend.host, xend.port, b"GET / HTTP/1.0\r\n\r\n")
        html = await quick_talk(
            xend.host, xend.port, b"GET / HTTP/1.0\r\nUser-Agent: Mozilla\r\n\r\n"
        )
    assert b"Content-type: application/sxp" in sxp
    assert sxp.endswith(b"(ls )''")
    assert b"Server:" not in sxp
    assert b"Date:" not in sxp
    assert b"text/html" in html


async def test_libvirt_fake_answers_auth_list_and_keeps_the_connection() -> None:
    async with FakeLibvirt(address(), auth_types=(0, 1)) as libvirt:
        reader, writer = await asyncio.open_connection(libvirt.host, libvirt.port)
        writer.write(AUTH_LIST_REQUEST)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readexactly(40), 2)
        assert libvirt.open_connections == 1
        writer.close()
        http = await quick_talk(libvirt.host, libvirt.port, b"GET / HTTP/1.0\r\n\r\n")
    assert struct.unpack(">III", reply[-12:]) == (2, 0, 1)
    found = parse_auth_list(reply, closed=False)
    assert (found.service, found.verdict) == ("libvirt", "unknown")
    assert "none,sasl" in found.evidence
    assert http == b""  # an HTTP request's "length" is absurd: libvirtd drops it
    assert libvirt.procs == [66]


async def test_decoys() -> None:
    async with (
        FakeHttpServer(address(), head_timeout=0.1) as web,
        FakeStreamer(address(), limit=10_000) as streamer,
        FakeResetter(address()) as resetter,
        FakeTarpit(address()) as tarpit,
    ):
        page = await quick_talk(web.host, web.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        bad = await quick_talk(web.host, web.port, b"(help)\n")
        line = await quick_talk(web.host, web.port, b"GET /line HTTP/1.0\n")  # answered after 0.1 s
        streamed = await quick_talk(streamer.host, streamer.port, b"", limit=1 << 20)
        with pytest.raises(ConnectionResetError):
            await quick_talk(resetter.host, resetter.port, b"GET / HTTP/1.0\r\n\r\n")
        with pytest.raises(TimeoutError):
            await quick_talk(tarpit.host, tarpit.port, b"GET / HTTP/1.0\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 404")
    assert b"Server: nginx" in page
    assert bad.startswith(b"HTTP/1.1 400")
    assert len(streamed) == 10_000
    assert streamed.startswith(b"HTTP/1.1 200 OK\r\nX-Filler")
    assert streamer.sent == 10_000
    assert line.startswith(b"HTTP/1.1 404")
    assert web.paths == ["/x", "/line"]
    assert tarpit.received == [b"GET / HTTP/1.0\r\n\r\n"]


async def test_fakes_bind_any_loopback_address_and_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.67.250.1", 0))
        fixed = sock.getsockname()[1]
    fake = FakeTarpit("127.67.250.1", fixed)
    with pytest.raises(RuntimeError):
        _ = fake.port
    async with fake:
        assert (fake.host, fake.port) == ("127.67.250.1", fixed)
        assert fake.url == f"tcp://127.67.250.1:{fixed}/"
    async with FakeXapi("127.67.250.2", 0, tls=True) as xapi:
        assert xapi.port != 0
        assert xapi.url == f"https://127.67.250.2:{xapi.port}/"
    async with FakeXapi("::1", 0) as v6:
        assert v6.url == f"http://[::1]:{v6.port}/"


async def test_close_drops_open_connections() -> None:
    tarpit = await FakeTarpit(address()).start()
    reader, writer = await asyncio.open_connection(tarpit.host, tarpit.port)
    for _ in range(100):
        if tarpit.open_connections:
            break
        await asyncio.sleep(0.01)
    await asyncio.wait_for(tarpit.close(), 2)
    assert tarpit.open_connections == 0
    assert await asyncio.wait_for(reader.read(10), 2) == b""
    writer.close()


def test_public_names_are_documented_and_exported() -> None:
    import xendiscover.testing as testing
    from xendiscover.testing import _decoys, _libvirt, _server, _xapi, _xend

    modules = (_decoys, _libvirt, _server, _xapi, _xend)
    for module in modules:
        assert inspect.getdoc(module), module.__name__
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value):
                assert inspect.getdoc(value), name
            assert getattr(testing, name) is value
            assert name in testing.__all__
    servers = {
        name
        for name in testing.__all__
        if isinstance(getattr(testing, name), type)
        and issubclass(getattr(testing, name), testing.FakeServer)
    }
    homes = {name: [m.__name__ for m in modules if name in m.__all__] for name in servers}
    assert all(len(found) == 1 for found in homes.values()), homes
    for cls in (FakeXapi, FakeXendRelocation, FakeLibvirt):
        for attr in ("start", "close", "port", "host", "url", "received", "open_connections"):
            assert inspect.getdoc(getattr(cls, attr)), attr


async def quick_talk(host: str, port: int, request: bytes, *, limit: int = 65536) -> bytes:
    """``support.talk`` with this module's 2 s read deadline."""
    return await support.talk(host, port, request, limit=limit, timeout=2.0)
