"""Names from a real DNS server: Debian's dnsmasq on loopback."""

import ipaddress
import time

import pytest
from support import Dnsmasq, Listen, free_udp_port, hosts_of, run_xendiscover

import xendiscover
from xendiscover import DNSNameResolver, TargetError
from xendiscover._resolve import SILENT_LIMIT, parse_nameserver


async def test_names_come_from_ptr_records(
    loopback_net: str, listeners: Listen, dnsmasq: Dnsmasq
) -> None:
    named, unnamed = hosts_of(loopback_net, 7, 8)
    listeners([named, unnamed], 8002)
    server = dnsmasq({named: "carbono12.inf.example"})
    hosts = await xendiscover.discover(
        [loopback_net], port=8002, nameservers=[server], fingerprint=False, include="open"
    )
    assert [(h.address, h.hostname, h.hostname_source) for h in hosts] == [
        (named, "carbono12.inf.example", "ptr"),
        (unnamed, None, None),
    ]
    assert [h.key for h in hosts] == ["carbono12.inf.example", unnamed]


def _reverse(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


async def test_only_forward_confirmed_names_are_trusted(
    loopback_net: str, listeners: Listen, dnsmasq: Dnsmasq
) -> None:
    good, orphan, elsewhere = hosts_of(loopback_net, 11, 12, 13)
    listeners([good, orphan, elsewhere], 8002)
    server = dnsmasq(
        {good: "xen1.lab.example", "192.0.2.7": "trusted.lab.example"},
        (
            f"--ptr-record={_reverse(orphan)},orphan.lab.example",  # PTR, but no A record
            f"--ptr-record={_reverse(elsewhere)},trusted.lab.example",  # A record elsewhere
        ),
    )
    hosts = await xendiscover.discover(
        [loopback_net], port=8002, nameservers=[server], fingerprint=False, include="open"
    )
    assert [(h.address, h.hostname, h.hostname_source, h.key) for h in hosts] == [
        (good, "xen1.lab.example", "ptr", "xen1.lab.example"),
        (orphan, "orphan.lab.example", "ptr-unconfirmed", orphan),
        (elsewhere, "trusted.lab.example", "ptr-unconfirmed", elsewhere),  # spoof: no key
    ]


async def test_a_dead_nameserver_costs_a_few_waits_not_one_per_host() -> None:
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
    # SILENT_LIMIT bounded waits (a slow zone alone does not switch names off), not 28.
    assert time.monotonic() - started < SILENT_LIMIT * 1.0 + 1.0


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


def test_host_name_targets_resolve_through_the_scans_own_nameserver(
    loopback_net: str, listeners: Listen, dnsmasq: Dnsmasq
) -> None:
    (address,) = hosts_of(loopback_net, 21)
    listeners([address], 8002)
    server = dnsmasq({address: "target.lab.example"})
    proc = run_xendiscover(
        "-p", "8002", "--no-fingerprint", "--nameserver", server, "target.lab.example"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["target.lab.example"]


async def test_scan_resolves_host_names_without_blocking_the_loop() -> None:
    from xendiscover.testing import FakeBackend, FakeResolver

    backend = FakeBackend({"10.3.0.7": "open"})
    resolver = FakeResolver({"10.3.0.7": "xen7.example"})
    found = [
        f
        async for f in xendiscover.scan(
            ["xen7.example"], port=8002, backend=backend, resolver=resolver, fingerprint=False
        )
    ]
    assert [(f.address, f.hostname) for f in found] == [("10.3.0.7", "xen7.example")]
    assert resolver.forward_lookups[0] == "xen7.example"  # the target, through the resolver
    with pytest.raises(TargetError, match=r"cannot resolve host name 'nowhere\.example'"):
        await xendiscover.discover(["nowhere.example"], backend=backend, resolver=resolver)


async def test_one_silent_reverse_zone_does_not_switch_names_off() -> None:
    from dns_responder import RawPtrServer

    slow, named = "127.0.0.7", "127.0.0.8"
    records = {
        ipaddress.ip_address(slow).reverse_pointer: [],  # never answered
        ipaddress.ip_address(named).reverse_pointer: [b"xen8", b"example"],
    }
    with RawPtrServer("127.0.0.1", records) as dns:
        resolver = DNSNameResolver([dns.nameserver], timeout=0.4)
        try:
            assert await resolver.reverse(slow) is None
            assert await resolver.reverse(named) == "xen8.example"
        finally:
            await resolver.aclose()
