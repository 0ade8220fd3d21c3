"""What the probes send: never a forbidden word, a sane order, a fresh nonce."""

from __future__ import annotations

import ipaddress
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xendiscover._fingerprint import FORBIDDEN, PROBES, WELL_KNOWN_PORTS, probe_plan
from xendiscover._fingerprint._libvirt import AUTH_LIST_REQUEST
from xendiscover._fingerprint._probes import (
    FALLBACK_ORDER,
    PORT_PROBES,
    Probe,
    UnsafeRequestError,
    check_request,
)

HOSTS = ["127.0.0.1", "10.0.0.7", "::1", "fd00::7", "receive.example", "", "xend.node"]


@given(
    probe=st.sampled_from(PROBES),
    host=st.sampled_from(HOSTS) | st.ip_addresses().map(str) | st.text(max_size=40),
    nonce=st.uuids().map(str),
)
def test_no_request_holds_a_forbidden_word(probe: Probe, host: str, nonce: str) -> None:
    """One property over every probe, address and nonce (was a 210-case grid)."""
    request_bytes = probe.build(host=host, nonce=nonce)
    lowered = request_bytes.lower()
    for word in [*FORBIDDEN, b"sslreceive", b"/xend/", b"opaqueref", b"password"]:
        assert word.lower() not in lowered, (probe, word)
    assert check_request(request_bytes) == request_bytes


@given(host=st.text(max_size=40))
def test_no_caller_text_reaches_a_request(host: str) -> None:
    # Only an IP literal is echoed (in Host:); any other text becomes "localhost".
    nonce = str(uuid.uuid4())
    for probe in PROBES:
        request = check_request(probe.build(host=host, nonce=nonce))
        for line in request.split(b"\r\n"):
            if line.startswith(b"Host: "):
                value = line[len(b"Host: ") :].decode("ascii")
                if value != "localhost":
                    ipaddress.ip_address(value.strip("[]"))


@pytest.mark.parametrize("word", list(FORBIDDEN))
def test_check_request_refuses_forbidden_words(word: bytes) -> None:
    with pytest.raises(UnsafeRequestError):
        check_request(b"(" + word.upper() + b")\n")


def test_requests_are_the_documented_ones() -> None:
    by_name = {probe.name: probe for probe in PROBES}
    nonce = "0f6a3c2e-54b1-4f7d-9c1e-8a2b3c4d5e6f"
    assert by_name["xend-relocation"].build(host="h", nonce=nonce) == b"(help)\n"
    get = by_name["xend-http"].build(host="10.0.0.7", nonce=nonce)
    # Host (SrvDir.ls needs it), no User-Agent (xend answers SXP)
    assert get == b"GET / HTTP/1.0\r\nHost: 10.0.0.7\r\n\r\n"
    isalive = by_name["xend-isalive"].build(host="h", nonce=nonce)
    assert b"<methodName>system.isAlive</methodName>" in isalive
    assert isalive.startswith(b"POST /RPC2 HTTP/1.0\r\n")
    assert by_name["libvirt"].build(host="h", nonce=nonce) == AUTH_LIST_REQUEST
    assert AUTH_LIST_REQUEST.hex() == "0000001c200080860000000100000042000000000000000100000000"
    xapi = by_name["xapi-xmlrpc"].build(host="10.0.0.7", nonce=nonce)
    assert xapi.startswith(b"POST / HTTP/1.1\r\nHost: 10.0.0.7\r\n")
    assert f"<methodName>system.isAlive:{nonce}</methodName>".encode() in xapi
    assert f"<string>{nonce}</string>".encode() in xapi
    jsonrpc = by_name["xapi-jsonrpc"].build(host="::1", nonce=nonce)
    assert jsonrpc.startswith(b"POST /jsonrpc HTTP/1.1\r\nHost: [::1]\r\n")
    listing = by_name["xend-xmlrpc"].build(host="h", nonce=nonce)
    assert b"<methodName>system.listMethods</methodName>" in listing
    assert b"Host: localhost\r\n" in listing
    for request in (xapi, jsonrpc, listing, isalive):
        head, body = request.split(b"\r\n\r\n", 1)
        assert f"Content-Length: {len(body)}".encode() in head


def test_well_known_ports_choose_their_own_probe_first() -> None:
    assert {443, 80, 8002, 8000, 8006, 9363, 16509} <= set(WELL_KNOWN_PORTS)
    assert set(WELL_KNOWN_PORTS) == set(PORT_PROBES)
    expected_first = {
        443: "xapi-xmlrpc-tls",
        80: "xapi-xmlrpc",
        8002: "xend-relocation",
        8000: "xend-http",
        8006: "xend-isalive",  # a short reply; listMethods' is larger than the read cap
        9363: "xend-isalive",
        16509: "libvirt",
    }
    for port, first in expected_first.items():
        plan = probe_plan(port)
        assert plan[0].name == first
        assert sorted(probe.name for probe in plan) == sorted(p.name for p in PROBES)


def test_unknown_ports_start_with_the_request_harmless_to_all() -> None:
    plan = probe_plan(9999)
    assert tuple(probe.name for probe in plan) == FALLBACK_ORDER
    assert plan[0].name == "xend-http"
    assert [probe.tls for probe in plan][-3:] == [True, True, True]  # TLS last
    assert not any(probe.tls for probe in plan[:-3])
