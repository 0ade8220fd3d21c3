"""Issue 12 on loopback: the byte-faithful fakes, through fingerprint_port and the shared driver.

Each test names the item of issue 12 it covers. Every connection goes to a
127.68.x.y address a fake in this module bound.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import xmlrpc.client
from typing import Any

import pytest
import support

from xendiscover._fingerprint import PROBES, READ_CAP, fingerprint_port, run_probe
from xendiscover._fingerprint._libvirt import AUTH_LIST_REQUEST, parse_libvirt
from xendiscover._fingerprint._probes import RELOCATION_WAIT
from xendiscover._fingerprint._xend import HOSTS_ALLOW_EVIDENCE
from xendiscover._model import Fingerprint
from xendiscover.testing import (
    DEFAULT_XEND_METHODS,
    FakeLibvirt,
    FakeTarpit,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
    fake_tls_context,
)

DEADLINE = 1.0
_addresses = (f"127.68.{a}.{b}" for a, b in itertools.product(range(1, 250), range(1, 250)))


def address() -> str:
    return next(_addresses)


def probe(name: str) -> Any:
    return next(p for p in PROBES if p.name == name)


# --- 1. xend XML-RPC: replies larger than the read cap -------------------------------


@pytest.mark.parametrize(("plan_port", "xenapi"), [(8006, False), (9363, True), (9363, False)])
async def test_1_xend_xmlrpc_is_confirmed(plan_port: int, xenapi: bool) -> None:
    async with FakeXendXmlRpc(address(), xenapi=xenapi) as xend:
        found = await fingerprint_port(xend.host, xend.port, timeout=DEADLINE, plan_port=plan_port)
    assert (found.service, found.verdict) == ("xend-xmlrpc", "confirmed"), found
    assert xend.calls == ["system.isAlive"]  # the short question first, and enough


@pytest.mark.parametrize("xenapi", [False, True])
async def test_1_list_methods_alone_decides_within_the_cap(xenapi: bool) -> None:
    async with FakeXendXmlRpc(address(), xenapi=xenapi) as xend:
        result = await run_probe(probe("xend-xmlrpc"), xend.host, xend.port, timeout=DEADLINE)
    assert result.ending == "decided"
    assert result.received <= READ_CAP
    assert result.fingerprint.verdict == "confirmed"


# --- 2. TLS servers on 8002 are not xend ---------------------------------------------


async def test_2_hosts_allow_close_stays_likely_after_the_tls_check() -> None:
    async with FakeXendRelocation(address(), hosts_allow=False) as xend:
        found = await fingerprint_port(xend.host, xend.port, timeout=DEADLINE, plan_port=8002)
    assert found == Fingerprint("xend-relocation", "likely", HOSTS_ALLOW_EVIDENCE)
    assert xend.connections == 2  # (help), then a ClientHello it could not answer


async def test_2_tls_server_silent_after_the_handshake_is_not_xen() -> None:
    # Like Apache mod_ssl: drops the plain (help), completes a handshake, then
    # waits for a request that never comes.
    async with FakeTarpit(address(), ssl_context=fake_tls_context()) as web:
        found = await fingerprint_port(web.host, web.port, timeout=DEADLINE, plan_port=8002)
    assert found.verdict == "not-xen", found
    assert "CN=xendiscover-fake-xapi" in found.evidence


# --- 3. xend's late hosts-allow close ------------------------------------------------


async def test_3_hosts_allow_close_after_6_s_is_still_likely() -> None:
    async with FakeXendRelocation(address(), hosts_allow=False, reject_delay=6.0) as xend:
        started = time.monotonic()
        found = await fingerprint_port(xend.host, xend.port, timeout=DEADLINE, plan_port=8002)
        elapsed = time.monotonic() - started
    assert found == Fingerprint("xend-relocation", "likely", HOSTS_ALLOW_EVIDENCE)
    assert 6.0 <= elapsed < RELOCATION_WAIT + 2 * DEADLINE


async def test_3_the_long_wait_holds_only_on_8002() -> None:
    async with FakeXendRelocation(address(), hosts_allow=False, reject_delay=3.0) as xend:
        started = time.monotonic()
        found = await fingerprint_port(xend.host, xend.port, timeout=DEADLINE, plan_port=9999)
        elapsed = time.monotonic() - started
    assert found.verdict == "unknown"
    assert elapsed < 2 * DEADLINE


# --- 4. GET / with Host --------------------------------------------------------------


async def test_4_xend_http_confirmed_where_dom0_cannot_resolve_its_own_name() -> None:
    async with FakeXendHttp(address(), own_name_resolves=False) as xend:
        found = await fingerprint_port(xend.host, xend.port, timeout=DEADLINE, plan_port=8000)
        without_host = await support.talk(xend.host, xend.port, b"GET / HTTP/1.0\r\n\r\n")
    assert (found.service, found.verdict) == ("xend-http", "confirmed"), found
    assert without_host.startswith(b"HTTP/1.1 500 Internal server error\r\n")


# --- 5. xapi: emergency mode over JSON-RPC, XO Lite ---------------------------------


async def test_5_xapi_in_emergency_mode_is_confirmed_over_jsonrpc() -> None:
    async with FakeXapi(address(), error=("HOST_STILL_BOOTING",)) as xapi:
        result = await run_probe(probe("xapi-jsonrpc"), xapi.host, xapi.port, timeout=DEADLINE)
        found = await fingerprint_port(xapi.host, xapi.port, timeout=DEADLINE, plan_port=80)
    assert result.fingerprint.service == "xapi"
    assert result.fingerprint.verdict == "confirmed"
    assert "HOST_STILL_BOOTING" in result.fingerprint.evidence
    assert (found.service, found.verdict) == ("xapi", "confirmed")


async def test_5_xo_lite_page_is_likely_xapi() -> None:
    async with FakeXapi(address(), tls=True, xo_lite=True) as xapi:
        result = await run_probe(probe("xapi-page-tls"), xapi.host, xapi.port, timeout=DEADLINE)
    found = result.fingerprint
    assert (found.service, found.verdict) == ("xapi", "likely")
    assert found.product is not None
    assert (found.product.name, found.product.version) == ("XCP-ng", "8.3")


# --- 6. the fakes are byte-faithful --------------------------------------------------


async def test_6_xend_xmlrpc_fake_speaks_basehttp_and_xmlrpclib() -> None:
    call = xmlrpc.client.dumps((), "system.listMethods").encode()
    post = (
        b"POST /RPC2 HTTP/1.0\r\nHost: x\r\nContent-Type: text/xml\r\n"
        b"Content-Length: " + str(len(call)).encode() + b"\r\n\r\n" + call
    )
    async with FakeXendXmlRpc(address()) as xend, FakeXendXmlRpc(address(), xenapi=True) as api:
        listing = await support.talk(xend.host, xend.port, post)
        wrapped = await support.talk(api.host, api.port, post)
    for reply in (listing, wrapped):
        head, body = reply.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        assert lines[1] == b"Server: BaseHTTP/0.3 Python/2.7.3"
        assert lines[2].startswith(b"Date: ")
        assert lines[2].endswith(b" GMT")
        assert lines[3:] == [b"Content-Type: text/xml", b"Content-Length: %d" % len(body)]
        assert body.startswith(b"<?xml version='1.0'?>\n<methodResponse>\n")
        assert len(reply) > READ_CAP
    names: Any = xmlrpc.client.loads(listing.split(b"\r\n\r\n", 1)[1])[0][0]
    assert names == list(DEFAULT_XEND_METHODS)
    assert sum(name.startswith("xend.") for name in names) == 94
    failure: Any = xmlrpc.client.loads(wrapped.split(b"\r\n\r\n", 1)[1])[0][0]
    assert failure["Status"] == "Failure"
    code, text = failure["ErrorDescription"]
    assert code == "INTERNAL_ERROR"
    assert text.startswith("Invalid result [")
    assert text.endswith("] handling system.listMethods")
    assert text.count("', '") == 288  # 289 names


async def test_6_xend_http_fake_root_reply_is_the_recorded_one() -> None:
    async with FakeXendHttp(address()) as xend:
        reply = await support.talk(
            xend.host, xend.port, b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
    assert reply == (
        b"HTTP/1.1 200 OK\r\nContent-length: 7\r\nExpires: -1\r\n"
        b"Content-type: application/sxp\r\nPragma: no-cache\r\nCache-control: no-cache\r\n"
        b"\r\n(ls )''"
    )


async def test_6_hosts_allow_fake_closes_after_its_delay_and_resets_unread_bytes() -> None:
    async with FakeXendRelocation(address(), hosts_allow=False, reject_delay=0.5) as xend:
        reader, writer = await asyncio.open_connection(xend.host, xend.port)
        started = time.monotonic()
        async with asyncio.timeout(5):
            assert await reader.read(100) == b""  # a quiet client: a plain close
        quiet = time.monotonic() - started
        writer.close()
        reader, writer = await asyncio.open_connection(xend.host, xend.port)
        writer.write(b"(help)\n")
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(5):
                await reader.read(100)
        writer.close()
    assert 0.5 <= quiet < 2
    assert xend.ops == []  # never read, never answered


async def test_6_xapi_fake_writes_ocaml_rpc_jsonrpc_and_http_svr_heads() -> None:
    body = b'{"jsonrpc":"2.0","method":"VM.get_all","params":["OpaqueRef:NULL"],"id":7}'
    post = b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    post += b"Content-Length: %d\r\n\r\n" % len(body) + body
    async with FakeXapi(address()) as xapi:
        reply = await support.talk(xapi.host, xapi.port, post)
    expected = b'{"jsonrpc":"2.0","error":["SESSION_INVALID","OpaqueRef:NULL"],"id":7}'
    assert reply == (
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n" % len(expected)
        + b"cache-control: no-cache, no-store\r\ncontent-type: application/json\r\n"
        + b"Access-Control-Allow-Origin: *\r\n\r\n"
        + expected
    )


async def test_6_libvirt_fake_matches_the_recorded_libvirtd_conversation() -> None:
    # tests/test_fingerprint_upstream.py LIBVIRTD_NONE: real libvirtd 9.0.0's replies
    from test_fingerprint_upstream import LIBVIRTD_NONE, LIBVIRTD_SASL

    async with (
        FakeLibvirt(
            address(), auth_types=(0,), hv_type="TEST", hostname="vm", hv_version=2
        ) as none,
        FakeLibvirt(address(), auth_types=(1,)) as sasl,
    ):
        found, data = await support.converse(none.host, none.port, AUTH_LIST_REQUEST, parse_libvirt)
        refused, first = await support.converse(
            sasl.host, sasl.port, AUTH_LIST_REQUEST, parse_libvirt
        )
    assert data == LIBVIRTD_NONE
    assert (found.service, found.verdict, found.evidence) == (
        "libvirt",
        "not-xen",
        "libvirt type TEST on vm",
    )
    assert none.procs == [66, 1, 3, 4, 59, 2]
    assert none.opened == [("", 1)]  # the default URI, read-only
    assert first == LIBVIRTD_SASL
    assert refused.verdict == "unknown"
    assert sasl.procs == [66]


# --- 7. libvirt by its type, through fingerprint_port ---------------------------------------


@pytest.mark.parametrize(("hv_type", "verdict"), [("Xen", "confirmed"), ("QEMU", "not-xen")])
async def test_7_libvirt_auth_none_by_converse(hv_type: str, verdict: str) -> None:
    async with FakeLibvirt(address(), auth_types=(0,), hv_type=hv_type) as libvirt:
        found, _ = await support.converse(
            libvirt.host, libvirt.port, AUTH_LIST_REQUEST, parse_libvirt
        )
    assert (found.service, found.verdict) == ("libvirt", verdict)


@pytest.mark.parametrize(("hv_type", "verdict"), [("Xen", "confirmed"), ("QEMU", "not-xen")])
async def test_7_libvirt_auth_none_through_fingerprint_port(hv_type: str, verdict: str) -> None:
    async with FakeLibvirt(address(), auth_types=(0,), hv_type=hv_type) as libvirt:
        found = await fingerprint_port(
            libvirt.host, libvirt.port, timeout=DEADLINE, plan_port=16509
        )
    assert (found.service, found.verdict) == ("libvirt", verdict), found
    assert libvirt.procs == [66, 1, 3, 4, 59, 2]  # ends with a clean CONNECT_CLOSE


async def test_7_libvirt_sasl_never_goes_past_auth_list() -> None:
    async with FakeLibvirt(address(), auth_types=(1,), hv_type="Xen") as libvirt:
        found = await fingerprint_port(
            libvirt.host, libvirt.port, timeout=DEADLINE, plan_port=16509
        )
    assert (found.service, found.verdict) == ("libvirt", "unknown")
    assert libvirt.procs == [66]
