"""End to end on loopback: every fake and decoy, through the shared driver.

Every connection here goes to a 127.66.x.y address that a fake in this test
bound; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support import set_relocation_wait

from xendiscover._fingerprint import (
    FORBIDDEN,
    PROBES,
    READ_CAP,
    fingerprint_port,
    run_probe,
)
from xendiscover._fingerprint._driver import RESOURCE_ATTEMPTS, exchange
from xendiscover._fingerprint._xend import HOSTS_ALLOW_EVIDENCE
from xendiscover._model import Fingerprint, Service, Verdict
from xendiscover.testing import (
    FakeBackend,
    FakeHttpServer,
    FakeLibvirt,
    FakeResetter,
    FakeServer,
    FakeStreamer,
    FakeTarpit,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
)

DEADLINE = 0.5
_addresses = (f"127.66.{a}.{b}" for a, b in itertools.product(range(1, 250), range(1, 250)))


def address() -> str:
    """A loopback address no other test in this module uses."""
    return next(_addresses)


Make = Callable[[str], FakeServer]

XEN_CASES: list[tuple[str, Make, int, Service | None, Verdict]] = [
    ("relocation", lambda h: FakeXendRelocation(h), 8002, "xend-relocation", "confirmed"),
    (
        "relocation-hosts-allow",
        lambda h: FakeXendRelocation(h, hosts_allow=False),
        8002,
        "xend-relocation",
        "likely",
    ),
    ("xend-http", lambda h: FakeXendHttp(h), 8000, "xend-http", "confirmed"),
    ("xend-xmlrpc-8006", lambda h: FakeXendXmlRpc(h), 8006, "xend-xmlrpc", "confirmed"),
    ("xend-xmlrpc-9363", lambda h: FakeXendXmlRpc(h), 9363, "xend-xmlrpc", "confirmed"),
    ("xapi-80", lambda h: FakeXapi(h), 80, "xapi", "confirmed"),
    ("xapi-443-tls", lambda h: FakeXapi(h, tls=True), 443, "xapi", "confirmed"),
    ("xapi-legacy", lambda h: FakeXapi(h, legacy=True), 80, "xapi", "confirmed"),
    ("xapi-legacy-tls", lambda h: FakeXapi(h, tls=True, legacy=True), 443, "xapi", "confirmed"),
    ("libvirt", lambda h: FakeLibvirt(h), 16509, "libvirt", "unknown"),
    # the same services on a port that says nothing: the fallback order finds them
    ("relocation-9999", lambda h: FakeXendRelocation(h), 9999, "xend-relocation", "confirmed"),
    ("xend-http-9999", lambda h: FakeXendHttp(h), 9999, "xend-http", "confirmed"),
    ("xend-xmlrpc-9999", lambda h: FakeXendXmlRpc(h), 9999, "xend-xmlrpc", "confirmed"),
    ("xapi-9999", lambda h: FakeXapi(h), 9999, "xapi", "confirmed"),
    ("xapi-tls-9999", lambda h: FakeXapi(h, tls=True), 9999, "xapi", "confirmed"),
    ("libvirt-9999", lambda h: FakeLibvirt(h), 9999, "libvirt", "unknown"),
    # accept-and-close means xend only where xend listens
    ("hosts-allow-9999", lambda h: FakeXendRelocation(h, hosts_allow=False), 9999, None, "unknown"),
    # decoys
    ("web-8002", lambda h: FakeHttpServer(h), 8002, None, "not-xen"),
    ("web-80", lambda h: FakeHttpServer(h), 80, None, "not-xen"),
    ("web-tls-443", lambda h: FakeHttpServer(h, tls=True), 443, None, "not-xen"),
    ("web-9999", lambda h: FakeHttpServer(h), 9999, None, "not-xen"),
]


@pytest.mark.parametrize(
    ("make", "plan_port", "service", "verdict"),
    [case[1:] for case in XEN_CASES],
    ids=[case[0] for case in XEN_CASES],
)
async def test_each_fake_gets_its_verdict(
    make: Make, plan_port: int, service: Service | None, verdict: Verdict
) -> None:
    async with make(address()) as fake:
        found = await fingerprint_port(fake.host, fake.port, timeout=DEADLINE, plan_port=plan_port)
    assert (found.service, found.verdict) == (service, verdict), found
    assert found.evidence
    for sent in fake.received:
        for word in FORBIDDEN:
            assert word not in sent.lower()


@pytest.fixture
async def well_known_relocation() -> AsyncIterator[FakeServer]:
    """A hosts-allow relocation fake on the real port 8002 (skip if taken)."""
    fake = FakeXendRelocation(address(), 8002, hosts_allow=False)
    try:
        await fake.start()
    except OSError as error:  # pragma: no cover - the port is in use here
        pytest.skip(f"cannot bind 8002: {error}")
    yield fake
    await fake.close()


async def test_fingerprint_port_uses_the_real_port(well_known_relocation: FakeServer) -> None:
    found = await fingerprint_port(well_known_relocation.host, 8002, timeout=DEADLINE)
    assert found == Fingerprint("xend-relocation", "likely", HOSTS_ALLOW_EVIDENCE)
    # (help), then the TLS check of the silent close (it fails: xend is no TLS server)
    assert well_known_relocation.connections == 2


async def test_xend_relocation_never_hears_receive() -> None:
    async with FakeXendRelocation(address()) as fake:
        for port in (8002, 9999):
            await fingerprint_port(fake.host, fake.port, timeout=DEADLINE, plan_port=port)
    assert fake.ops  # it was asked something
    assert not any("receive" in op for op in fake.ops)


async def test_tarpit_costs_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    set_relocation_wait(monkeypatch, None)  # 8002's own long wait has its own test
    for plan_port in (8002, 443, 9999):
        async with FakeTarpit(address()) as tarpit:
            started = time.monotonic()
            found = await fingerprint_port(
                tarpit.host, tarpit.port, timeout=DEADLINE, plan_port=plan_port
            )
            elapsed = time.monotonic() - started
        assert (found.service, found.verdict) == (None, "unknown")
        assert "no reply" in found.evidence
        assert elapsed < 2 * DEADLINE
        assert tarpit.connections == 1


async def test_streamer_costs_one_capped_read() -> None:
    async with FakeStreamer(address()) as streamer:
        started = time.monotonic()
        found = await fingerprint_port(
            streamer.host, streamer.port, timeout=DEADLINE, plan_port=8000
        )
        elapsed = time.monotonic() - started
        probe = next(p for p in PROBES if p.name == "xend-http")
        result = await run_probe(probe, streamer.host, streamer.port, timeout=DEADLINE)
    assert (found.service, found.verdict) == (None, "unknown")
    assert elapsed < 2 * DEADLINE
    assert result.ending == "cap"
    assert result.received == READ_CAP
    assert streamer.sent <= streamer.limit * streamer.connections


async def test_reset_mid_reply_is_not_xen_or_unknown() -> None:
    async with FakeResetter(address()) as resetter:
        started = time.monotonic()
        found = await fingerprint_port(resetter.host, resetter.port, timeout=DEADLINE, plan_port=80)
        elapsed = time.monotonic() - started
    assert found.service is None
    assert found.verdict in ("not-xen", "unknown")
    assert elapsed < 3 * DEADLINE


async def test_a_reset_mid_reply_is_an_error_that_says_so() -> None:
    # The half reply is kept as evidence; the port is not given up (an
    # "error" ending lets the next probe try, unlike a deadline or the cap).
    probe = next(p for p in PROBES if p.name == "xend-http")
    async with FakeResetter(address()) as resetter:
        result = await run_probe(probe, resetter.host, resetter.port, timeout=DEADLINE)
    assert result.ending == "error"
    assert result.fingerprint.verdict == "unknown"
    assert result.fingerprint.evidence.startswith("connection reset")
    assert "HTTP/1.1 200 OK" in result.fingerprint.evidence


async def test_a_tls_probe_of_a_plain_server_is_an_error_that_says_so() -> None:
    probe = next(p for p in PROBES if p.name == "xapi-page-tls")
    async with FakeHttpServer(address()) as web:
        result = await run_probe(probe, web.host, web.port, timeout=DEADLINE)
    assert result.ending == "error"
    assert result.fingerprint.evidence.startswith("TLS failed")


async def test_refused_port_is_unknown_and_stops() -> None:
    with socket.socket() as sock:
        sock.bind((address(), 0))
        host, port = sock.getsockname()
    # nothing listens there now: the kernel refuses
    found = await fingerprint_port(host, port, timeout=DEADLINE)
    assert found == Fingerprint(None, "unknown", "connection refused")
    probe = next(p for p in PROBES if p.name == "xend-http")
    result = await run_probe(probe, host, port, timeout=DEADLINE)
    assert (result.ending, result.received) == ("refused", 0)  # no byte from nobody


async def test_partial_reply_then_silence_is_unknown_within_one_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_relocation_wait(monkeypatch, None)
    done = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        handlers.append(me)
        writer.write(b"(ok (he")
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 10 * DEADLINE)
        writer.close()

    server = await asyncio.start_server(half, address(), 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        started = time.monotonic()
        found = await fingerprint_port(host, port, timeout=DEADLINE, plan_port=8002)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        server.close()
        await server.wait_closed()  # on 3.11 it does not wait for the handlers
        await asyncio.gather(*handlers)
    assert found.verdict == "unknown"
    assert "no verdict within" in found.evidence
    assert elapsed < 2 * DEADLINE


async def test_cancelled_probe_closes_its_socket() -> None:
    async with FakeTarpit(address()) as tarpit:
        probe = next(p for p in PROBES if p.name == "xend-relocation")
        task = asyncio.create_task(run_probe(probe, tarpit.host, tarpit.port, timeout=30))
        for _ in range(100):
            if tarpit.open_connections:
                break
            await asyncio.sleep(0.01)
        assert tarpit.open_connections == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # the tarpit sees the close and ends its connection
            if not tarpit.open_connections:
                break
            await asyncio.sleep(0.01)
        assert tarpit.open_connections == 0


async def test_backend_errors_become_fingerprints() -> None:
    def parse(data: bytes, closed: bool) -> Fingerprint:
        return Fingerprint(None, "not-xen", "parsed")

    backend = FakeBackend({"10.9.0.1": "unreachable", "10.9.0.2": "emfile"})
    for target, text in (("10.9.0.1", "unreachable"), ("10.9.0.2", "resource")):
        result = await exchange(backend, target, 9, b"x", parse, tls=False, timeout=DEADLINE)
        assert result.fingerprint.verdict == "unknown"
        assert text in result.fingerprint.evidence
        assert result.ending == "error"
    # A local resource error is retried after growing waits, within the deadline.
    tries = backend.streams.count(("10.9.0.2", 9))
    assert 2 < tries <= RESOURCE_ATTEMPTS + 1
    assert len(backend.sleeps) == tries - 1
    assert backend.sleeps == sorted(backend.sleeps)
    assert 0 < backend.sleeps[0] < backend.sleeps[-1]
    assert backend.time() <= DEADLINE


async def test_each_probe_carries_a_fresh_uuid() -> None:
    async with FakeXapi(address()) as xapi:
        probe = next(p for p in PROBES if p.name == "xapi-xmlrpc")
        first = await run_probe(probe, xapi.host, xapi.port, timeout=DEADLINE)
        second = await run_probe(probe, xapi.host, xapi.port, timeout=DEADLINE)
    assert first.fingerprint.verdict == second.fingerprint.verdict == "confirmed"
    nonces = [call.removeprefix("system.isAlive:") for call in xapi.calls]
    assert len(nonces) == 2
    assert nonces[0] != nonces[1]
    assert all(len(nonce) == 36 for nonce in nonces)


async def test_a_scan_of_every_fake_at_once() -> None:
    fakes = [
        (make(address()), plan_port, service, verdict)
        for _, make, plan_port, service, verdict in XEN_CASES
    ]
    for fake, *_ in fakes:
        await fake.start()
    try:
        found = await asyncio.gather(
            *(
                fingerprint_port(f.host, f.port, timeout=DEADLINE, plan_port=p)
                for f, p, _, _ in fakes
            )
        )
    finally:
        for fake, *_ in fakes:
            await fake.close()
    got = {
        (f.host, p, fp.service, fp.verdict) for (f, p, _, _), fp in zip(fakes, found, strict=True)
    }
    assert got == {(f.host, p, s, v) for f, p, s, v in fakes}
