"""Verdict decisions and grouping that the mutation run found untested.

A parser that cannot read a reply, or breaks its contract by asking for more
after the peer closed, must give a safe ``unknown`` that says why, with the
bytes it saw, never a verdict and never an exception.
"""

from __future__ import annotations

from xendiscover._fingerprint import (
    MAX_DEADLINES_PER_PORT,
    PROBES,
    fingerprint_port,
    probe_plan,
    run_probe,
)
from xendiscover._fingerprint._common import Continue, NeedMoreData, ReplyError
from xendiscover._fingerprint._driver import exchange
from xendiscover._model import Finding, Fingerprint, Product, group_findings
from xendiscover.testing import XAPI_RELEASES, FakeBackend, FakeService

PEER = "10.7.0.1"


def backend_with(reply: bytes) -> FakeBackend:
    return FakeBackend({PEER: "open"}, services={(PEER, 9): FakeService(reply)})


async def test_an_unreadable_reply_is_unknown_with_the_reason_and_the_bytes() -> None:
    def parse(data: bytes, closed: bool) -> Fingerprint:
        raise ReplyError("no status line")

    result = await exchange(
        backend_with(b"\x00garbage"), PEER, 9, b"x", parse, tls=False, timeout=2.0
    )
    assert result.fingerprint.service is None
    assert result.fingerprint.verdict == "unknown"
    assert result.fingerprint.evidence.startswith("unreadable reply (no status line)")
    assert "\\x00garbage" in result.fingerprint.evidence


async def test_a_parser_asking_for_more_after_the_close_gets_unknown() -> None:
    def parse(data: bytes, closed: bool) -> Continue:
        return Continue(1, b"more")

    result = await exchange(backend_with(b"hello"), PEER, 9, b"x", parse, tls=False, timeout=2.0)
    assert result.fingerprint.service is None
    assert result.fingerprint.verdict == "unknown"
    assert result.fingerprint.evidence.startswith("asked for more after the close")
    assert "hello" in result.fingerprint.evidence


async def test_a_parser_still_waiting_after_the_close_gets_unknown() -> None:
    # NeedMoreData once the peer has closed breaks the contract too: nothing
    # more can come, so the exchange ends as unknown, saying so, with the bytes.
    def parse(data: bytes, closed: bool) -> Fingerprint:
        raise NeedMoreData

    result = await exchange(backend_with(b"partial"), PEER, 9, b"x", parse, tls=False, timeout=2.0)
    assert (result.fingerprint.service, result.fingerprint.verdict) == (None, "unknown")
    assert result.fingerprint.evidence.startswith("closed")
    assert "partial" in result.fingerprint.evidence
    assert result.ending == "closed"


async def test_a_deadline_mid_conversation_gets_the_parsers_final_word() -> None:
    # The parser read a first reply and asked for a next step; the peer then
    # fell silent without closing. At the deadline, what did come decides.
    def parse(data: bytes, closed: bool) -> Fingerprint | Continue:
        if closed:
            return Fingerprint("xapi", "likely", f"final word on {len(data)} bytes")
        return Continue(1, b"step two")

    def reply(received: bytes) -> bytes:
        return b"first reply" + (b", second" if b"step two" in received else b"")

    service = FakeService(reply, close=False)
    backend = FakeBackend({PEER: "open"}, services={(PEER, 9): service})
    result = await exchange(backend, PEER, 9, b"x", parse, tls=False, timeout=2.0)
    assert result.ending == "deadline"
    assert result.fingerprint == Fingerprint("xapi", "likely", "final word on 19 bytes")
    # The parser asked for step 1 after each reply; it was sent once.
    assert service.received == [b"xstep two"]


async def test_a_deadline_mid_reply_is_unknown_saying_why_with_the_bytes() -> None:
    # A parser still waiting for the rest of one reply has no verdict.
    def parse(data: bytes, closed: bool) -> Fingerprint:
        assert data == b"HTTP/1.1 200"  # every byte so far, and only those
        raise NeedMoreData

    backend = FakeBackend(
        {PEER: "open"}, services={(PEER, 9): FakeService(b"HTTP/1.1 200", close=False)}
    )
    result = await exchange(backend, PEER, 9, b"x", parse, tls=False, timeout=2.0)
    assert result.ending == "deadline"
    assert (result.fingerprint.service, result.fingerprint.verdict) == (None, "unknown")
    assert "HTTP/1.1 200" in result.fingerprint.evidence


async def test_the_read_cap_ends_a_reply_that_never_decides() -> None:
    # A banner, then (asked for more) a stream without end: the exchange
    # stops at the cap, reads no byte past it, and says so.
    def parse(data: bytes, closed: bool) -> Continue:
        if closed:
            raise NeedMoreData
        return Continue(1, b"go on")

    streamer = FakeService(b"A" * 5000, greeting=b"B" * 600, close=False)
    backend = FakeBackend({PEER: "open"}, services={(PEER, 9): streamer})
    result = await exchange(backend, PEER, 9, b"", parse, tls=False, timeout=2.0, cap=1000)
    assert streamer.received == [b"go on"]
    assert (result.ending, result.received) == ("cap", 1000)
    assert result.fingerprint.verdict == "unknown"
    assert "1000 bytes" in result.fingerprint.evidence


XEN_ORCHESTRA_LOGIN = (
    b"HTTP/1.1 302 Found\r\nLocation: /signin\r\n"
    b"Set-Cookie: connect.sid=s%3Aabc; Path=/\r\nContent-Length: 0\r\n\r\n"
)


async def test_of_the_unrecognised_answers_an_answer_beats_silence() -> None:
    # The first probe meets a close without a reply; the second an SSH banner.
    def reply(received: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH_9.2\r\n" if received.startswith(b"(help)") else b""

    backend = FakeBackend({PEER: "open"}, services={(PEER, 9): FakeService(reply)})
    found = await fingerprint_port(PEER, 9, backend=backend, timeout=2.0)
    assert (found.service, found.verdict) == (None, "not-xen")
    assert "SSH-2.0" in found.evidence


async def test_of_the_unrecognised_answers_a_named_product_beats_a_bare_answer() -> None:
    # GET / meets an SSH banner (not Xen); a later probe meets Xen Orchestra.
    def reply(received: bytes) -> bytes:
        if received.startswith(b"GET /"):
            return b"SSH-2.0-OpenSSH_9.2\r\n"
        return b"" if received.startswith(b"(help)") else XEN_ORCHESTRA_LOGIN

    backend = FakeBackend({PEER: "open"}, services={(PEER, 9): FakeService(reply)})
    found = await fingerprint_port(PEER, 9, backend=backend, timeout=2.0)
    assert found.verdict == "not-xen"
    assert found.product is not None
    assert found.product.name == "Xen Orchestra"


# Grouping ------------------------------------------------------------------------


def test_one_machine_claiming_two_uuids_is_a_conflict_and_lists_addresses_as_numbers() -> None:
    key = "ab" * 32
    findings = [
        Finding("10.0.0.10", 443, "xapi", "confirmed", host_uuid="uuid-a", key_fingerprints=(key,)),
        Finding("10.0.0.9", 443, "xapi", "confirmed", host_uuid="uuid-b", key_fingerprints=(key,)),
    ]
    (machine,) = group_findings(findings)
    assert machine.uuid_conflict
    assert machine.addresses == ("10.0.0.9", "10.0.0.10")  # 9 before 10, not as text
    assert machine.address == "10.0.0.9"


def test_one_machine_with_one_uuid_is_no_conflict() -> None:
    key = "cd" * 32
    findings = [
        Finding("10.0.0.1", 443, "xapi", "confirmed", host_uuid="uuid-a", key_fingerprints=(key,)),
        Finding("10.0.0.2", 443, "xapi", "confirmed", host_uuid="UUID-A", key_fingerprints=(key,)),
    ]
    (machine,) = group_findings(findings)
    assert not machine.uuid_conflict
    assert machine.host_uuid == "uuid-a"


# A silent close -----------------------------------------------------------------

#: A DER blob standing in for a certificate (the fake only hands it back).
SOME_CERTIFICATE = b"0\x03\x02\x01\x00"


async def silent_close(port: int, certificate: bytes | None) -> Fingerprint:
    service = FakeService(b"", certificate=certificate)  # accepts, reads, closes
    backend = FakeBackend({PEER: "open"}, services={(PEER, port): service})
    return await fingerprint_port(PEER, port, backend=backend, timeout=2.0)


async def test_a_silent_close_off_the_relocation_ports_is_unknown() -> None:
    found = await silent_close(9, None)
    assert (found.service, found.verdict) == (None, "unknown")
    assert "closed without a reply" in found.evidence


async def test_a_silent_close_on_8002_is_likely_xend_unless_tls_answers() -> None:
    plain = await silent_close(8002, None)  # xend's hosts-allow reject
    assert (plain.service, plain.verdict) == ("xend-relocation", "likely")
    tls = await silent_close(8002, SOME_CERTIFICATE)  # a TLS server dropped "(help)"
    assert (tls.service, tls.verdict) == (None, "not-xen")
    assert "TLS handshake completed" in tls.evidence


async def test_a_port_that_answers_every_probe_slowly_costs_a_bounded_time() -> None:
    # Every probe gets an unrecognised answer after 1.5 s of its 2 s deadline,
    # so no probe ends the port: only the port's budget does.
    service = FakeService(b"SSH-2.0-x\r\n", delay=1.5)
    backend = FakeBackend({PEER: "open"}, services={(PEER, 9): service})
    started = backend.time()
    found = await fingerprint_port(PEER, 9, backend=backend, timeout=2.0)
    assert found.verdict == "not-xen"
    assert backend.time() - started <= MAX_DEADLINES_PER_PORT * 2.0
    assert len(backend.streams) < len(probe_plan(9))  # the budget ended it, not the plan


# Records ------------------------------------------------------------------------

XCP = Product("XCP-ng", "8.3", "firm", "cpe:/o:vates:xcp-ng:8.3", "xapi >= 24.17.0", "a page")


def test_a_port_record_carries_its_product_and_a_service_record_too() -> None:
    finding = Finding("10.0.0.1", 443, "xapi", "confirmed", latency_ms=1.23456, product=XCP)
    (machine,) = group_findings([finding])
    for record in (finding.as_dict(), machine.services[0].as_dict()):
        assert record["product"] == "XCP-ng"
        assert record["version"] == "8.3"
        assert record["cpe"] == "cpe:/o:vates:xcp-ng:8.3"
        assert record["product_info"] == "xapi >= 24.17.0"
        assert record["latency_ms"] == 1.235  # milliseconds to the microsecond
    bare = Finding("10.0.0.2", 22).as_dict()
    assert bare["product"] is None
    assert bare["version"] is None


def test_a_product_is_described_with_its_version_only_when_known() -> None:
    assert XCP.describe() == "XCP-ng 8.3 (xapi >= 24.17.0)"
    assert Product("xend").describe() == "xend"


# A likely xapi, and a refused port --------------------------------------------------

XAPI_404 = b"<address>Xapi Server</address>"


async def test_a_likely_xapi_gets_only_xapis_own_probes_and_stays_likely() -> None:
    # Every request meets xapi's 404 page: a shape anyone can copy. Only
    # xapi's own probes may still confirm it (none does here), and the
    # answer stays "likely", with its product clue.
    page = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(XAPI_404), XAPI_404)
    service = FakeService(page)
    backend = FakeBackend({PEER: "open"}, services={(PEER, 80): service})
    found = await fingerprint_port(PEER, 80, backend=backend, timeout=2.0)
    assert (found.service, found.verdict) == ("xapi", "likely")
    assert found.product is not None
    assert found.product.name == "xapi"
    xapi_requests = {
        tuple(p.build(host=PEER, nonce="n").split(b" ", 2)[:2])
        for p in PROBES
        if p.service == "xapi"
    }
    # (TLS probes send nothing this plain fake can read: their handshake fails.)
    later = [tuple(r.split(b" ", 2)[:2]) for r in service.received[1:] if r]
    assert later  # xapi's probes were asked to confirm it
    assert all(r in xapi_requests for r in later), later


async def test_a_likely_xapi_still_gets_its_product_from_its_landing_page() -> None:
    # XML-RPC meets xapi's 404 page (likely); the landing page, asked for
    # after, names the release: the follow-up goes to the same address and
    # port, and what it shows becomes the product.
    landing = XAPI_RELEASES["xenserver-7.1"].page
    page = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(landing), landing)
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (
        len(XAPI_404),
        XAPI_404,
    )

    def reply(received: bytes) -> bytes:
        return page if received.startswith(b"GET / ") else not_found

    backend = FakeBackend({PEER: "open"}, services={(PEER, 80): FakeService(reply)})
    found = await fingerprint_port(PEER, 80, backend=backend, timeout=2.0)
    assert (found.service, found.verdict) == ("xapi", "likely")
    assert found.product is not None
    assert (found.product.name, found.product.version) == ("XenServer", "7.1.2")


async def test_a_port_that_refuses_ends_its_fingerprint_at_once() -> None:
    backend = FakeBackend({PEER: "closed"})
    found = await fingerprint_port(PEER, 80, backend=backend, timeout=2.0)
    assert (found.service, found.verdict) == (None, "unknown")
    assert "refused" in found.evidence
    assert backend.streams == [(PEER, 80)]  # one connect, not one per probe


async def test_a_port_given_no_time_is_unknown_and_never_connected() -> None:
    # The pipeline never asks this (a plan refuses --timeout 0), but the
    # driver must not connect, or say anything but "not probed", without time.
    backend = FakeBackend({PEER: "open"}, services={(PEER, 8002): FakeService(b"(ok)")})
    found = await fingerprint_port(PEER, 8002, backend=backend, timeout=0.0)
    assert found == Fingerprint(None, "unknown", "not probed")
    assert backend.streams == []


async def test_every_http_probe_names_the_address_it_asks_in_its_host_header() -> None:
    # xend builds its links from Host and, without one, resolves dom0's own
    # name (a 500, or no answer in time): every HTTP probe sends the address.
    checked = []
    for address, host in (("10.7.0.9", b"10.7.0.9"), ("2001:db8::9", b"[2001:db8::9]")):
        for probe in (p for p in PROBES if not p.tls):
            service = FakeService(b"")
            backend = FakeBackend({address: "open"}, services={(address, 80): service})
            await run_probe(probe, address, 80, timeout=1.0, backend=backend)
            request = service.received[0]
            if request.startswith((b"GET ", b"POST ", b"OPTIONS ")):
                assert b"\r\nHost: " + host + b"\r\n" in request, (probe.name, request)
                checked.append(probe.name)
    assert {"xend-http", "xapi-xmlrpc", "xapi-jsonrpc"} <= set(checked)
