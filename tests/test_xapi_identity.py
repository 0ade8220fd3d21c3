"""XAPI identity without credentials: names from its certificate, the UUID from the pool one."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

import xendiscover
from xendiscover._fingerprint import probe_port
from xendiscover._fingerprint._tls import host_names, pool_uuid
from xendiscover.testing import FakeResolver, FakeXapi, XapiIdentity

_addresses = (f"127.69.{a}.{b}" for a, b in itertools.product(range(1, 250), range(2, 250)))


def address() -> str:
    return next(_addresses)


async def test_a_xapi_fingerprint_reads_both_certificates() -> None:
    identity = XapiIdentity("xen7.pool.example", ("192.0.2.7",))
    async with FakeXapi(address(), tls=True, identity=identity) as xapi:
        found = await probe_port(xapi.host, xapi.port, timeout=2.0, plan_port=443)
    assert (found.service, found.verdict) == ("xapi", "confirmed")
    assert found.names == ("xen7.pool.example",)
    assert found.host_uuid == identity.uuid


async def test_a_multi_homed_xapi_host_is_one_machine_named_by_its_certificate() -> None:
    identity = XapiIdentity("xen8.pool.example")
    first, second = address(), address()
    async with (
        FakeXapi(first, 0, tls=True, identity=identity) as a,
        FakeXapi(second, a.port, tls=True, identity=identity),
    ):
        hosts = await xendiscover.discover(
            [first, second], port=a.port, resolver=FakeResolver(), timeout=2.0
        )
    (host,) = hosts
    # Sorted as addresses (.9 before .10), not as strings.
    assert host.addresses == tuple(sorted((first, second), key=ipaddress.ip_address))
    assert host.host_uuid == identity.uuid
    assert (host.hostname, host.hostname_source) == ("xen8.pool.example", "certificate")
    assert host.key == host.address  # a certificate name is never a key
    assert len(host.services) == 2


async def test_two_xapi_hosts_with_different_uuids_stay_apart() -> None:
    one, two = XapiIdentity("a.example"), XapiIdentity("a.example")  # same name, other hosts
    first, second = address(), address()
    async with (
        FakeXapi(first, 0, tls=True, identity=one) as a,
        FakeXapi(second, a.port, tls=True, identity=two),
    ):
        hosts = await xendiscover.discover([first, second], port=a.port, resolve=False)
    assert sorted(h.host_uuid or "" for h in hosts) == sorted([one.uuid, two.uuid])


async def test_a_confirmed_ptr_name_beats_the_certificate() -> None:
    identity = XapiIdentity("cert-name.example")
    async with FakeXapi(address(), tls=True, identity=identity) as xapi:
        hosts = await xendiscover.discover(
            [xapi.host], port=xapi.port, resolver=FakeResolver({xapi.host: "dns-name.example"})
        )
    (host,) = hosts
    assert (host.hostname, host.hostname_source, host.key) == (
        "dns-name.example",
        "ptr",
        "dns-name.example",
    )


@pytest.mark.parametrize("der", [None, b"", b"\x30\x03\x02\x01\x01", b"\xff" * 40_000])
def test_unreadable_certificates_name_nothing(der: bytes | None) -> None:
    assert host_names(der) == ()
    assert pool_uuid(der) is None
