"""Names from a real DNS server: Debian's dnsmasq on loopback."""

import time

import pytest
from support import Dnsmasq, Listen, free_udp_port, hosts_of

import xendiscover
from xendiscover import DNSNameResolver, TargetError
from xendiscover._resolve import parse_nameserver


async def test_names_come_from_ptr_records(
    loopback_net: str, listeners: Listen, dnsmasq: Dnsmasq
) -> None:
    named, unnamed = hosts_of(loopback_net, 7, 8)
    listeners([named, unnamed], 8002)
    server = dnsmasq({named: "carbono12.inf.example"})
    hosts = await xendiscover.discover(
        [loopback_net], port=8002, nameservers=[server], fingerprint=False
    )
    assert [(h.address, h.hostname) for h in hosts] == [
        (named, "carbono12.inf.example"),
        (unnamed, None),
    ]
    assert [h.display_name for h in hosts] == ["carbono12.inf.example", unnamed]


async def test_a_dead_nameserver_costs_one_wait_not_one_per_host() -> None:
    silent = f"127.0.0.1:{free_udp_port('127.0.0.1')}"  # nothing listens there
    resolver = DNSNameResolver([silent], timeout=0.5)
    started = time.monotonic()
    try:
        first = await resolver.reverse("127.0.0.2")
        rest = [await resolver.reverse(f"127.0.0.{i}") for i in range(3, 30)]
    finally:
        await resolver.aclose()
    assert first is None
    assert rest == [None] * 27
    assert time.monotonic() - started < 3.0  # one bounded wait, not 28 of them


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.53", "10.0.0.53"),
        ("10.0.0.53:5353", "10.0.0.53:5353"),
        ("fd00::53", "fd00::53"),
        ("[fd00::53]:5353", "[fd00::53]:5353"),
    ],
)
def test_nameserver_forms(text: str, expected: str) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "10.0.0.1:0", "10.0.0.1:99999", "[fd00::1]x", ""])
def test_bad_nameservers(text: str) -> None:
    with pytest.raises(TargetError, match="invalid nameserver"):
        parse_nameserver(text)


async def test_a_missing_name_does_not_silence_the_resolver(dnsmasq: Dnsmasq) -> None:
    server = dnsmasq({"127.3.0.7": "xen7.lab.test"})
    resolver = DNSNameResolver([server], timeout=1.0)
    try:
        assert await resolver.reverse("127.3.0.8") is None  # dnsmasq: REFUSED / NXDOMAIN
        assert await resolver.reverse("127.3.0.7") == "xen7.lab.test"
    finally:
        await resolver.aclose()
