"""XAPI identity without credentials: names from its certificate, proof from its keys.

The pool certificate (SNI ``pool``) carries the host UUID -- a claim; the keys
of the self-signed certificates xapi generated are what groups addresses.
"""

from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

import pytest

import xendiscover
from xendiscover._fingerprint import fingerprint_port
from xendiscover._fingerprint._tls import certificate_key, host_names, pool_uuid, xapi_identity
from xendiscover._model import Finding, group_findings
from xendiscover._output import ansible_inventory, format_text
from xendiscover.testing import XAPI_RELEASES, FakeResolver, FakeXapi, XapiIdentity, XapiRelease

_addresses = (f"127.69.{a}.{b}" for a, b in itertools.product(range(1, 250), range(2, 250)))


def address() -> str:
    return next(_addresses)


async def test_a_xapi_fingerprint_reads_both_certificates() -> None:
    identity = XapiIdentity("xen7.pool.example", ("192.0.2.7",))
    async with FakeXapi(address(), tls=True, identity=identity) as xapi:
        found = await fingerprint_port(xapi.host, xapi.port, timeout=2.0, plan_port=443)
    assert (found.service, found.verdict) == ("xapi", "confirmed")
    assert found.names == ("xen7.pool.example",)
    assert found.host_uuid == identity.uuid
    default, pool = identity.certificates()
    assert pool is not None
    keys = {certificate_key(der).sha256 for der in (default, pool)}  # type: ignore[union-attr]
    assert set(found.key_fingerprints) == keys
    assert all(len(key) == 64 and key == key.lower() for key in keys)


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


async def test_the_pool_certificate_is_asked_for_with_sni_pool_only() -> None:
    identity = XapiIdentity("sni.example")
    default, pool = identity.certificates()
    assert pool is not None
    facts_wrong_sni = xapi_identity(default, default)  # what any other SNI gets
    assert facts_wrong_sni.host_uuid is None
    assert not facts_wrong_sni.pool_certificate
    facts = xapi_identity(default, pool)
    assert (facts.host_uuid, facts.pool_certificate) == (identity.uuid, True)


def test_the_pool_subject_is_one_multi_valued_rdn() -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    identity = XapiIdentity("rdn.example")
    _, pool = identity.certificates()
    assert pool is not None
    cert = x509.load_der_x509_certificate(pool)
    (rdn,) = cert.subject.rdns
    assert {a.oid for a in rdn} == {NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER}
    assert cert.issuer == cert.subject
    assert len(cert.extensions) == 0
    assert pool_uuid(pool) == identity.uuid


def test_a_uuid_cn_outside_the_pool_layout_is_no_pool_certificate() -> None:
    # A certificate with just CN=<uuid> (what the old fakes made) is not the pool layout.
    identity = XapiIdentity("3f2b8a5e-0c1d-4e2f-9a8b-7c6d5e4f3a2b", pool_certificate=False)
    default, _ = identity.certificates()
    assert pool_uuid(default) is None


def test_a_ca_signed_certificate_proves_no_key_for_grouping() -> None:
    identity = XapiIdentity("*.wild.example", ca_signed=True, pool_certificate=False)
    default, _ = identity.certificates()
    found = certificate_key(default)
    assert found is not None
    assert not found.self_signed
    assert xapi_identity(default, default).key_fingerprints == ()


async def test_a_multi_homed_8_2_era_host_without_a_pool_certificate_is_one_machine() -> None:
    identity = XapiIdentity("xen82.pool.example", pool_certificate=False)
    first, second = address(), address()
    async with (
        FakeXapi(first, 0, tls=True, identity=identity) as a,
        FakeXapi(second, a.port, tls=True, identity=identity),
    ):
        hosts = await xendiscover.discover([first, second], port=a.port, resolve=False)
    (host,) = hosts
    assert set(host.addresses) == {first, second}
    assert host.host_uuid is None  # no pool certificate before xapi 1.291
    assert len(host.key_fingerprints) == 1
    assert not host.uuid_conflict


async def test_two_hosts_sharing_one_ca_signed_wildcard_certificate_stay_two() -> None:
    wildcard = XapiIdentity("*.farm.example", ca_signed=True, pool_certificate=False)
    first, second = address(), address()
    async with (
        FakeXapi(first, 0, tls=True, identity=wildcard) as a,
        FakeXapi(second, a.port, tls=True, identity=wildcard),
    ):
        hosts = await xendiscover.discover([first, second], port=a.port, resolve=False)
    assert sorted(h.addresses for h in hosts) == sorted([(first,), (second,)])
    assert all(h.key_fingerprints == () for h in hosts)


async def test_an_impostor_with_a_copied_uuid_is_another_machine_and_flagged() -> None:
    real = XapiIdentity("real.pool.example")
    impostor = XapiIdentity("real.pool.example", uuid=real.uuid)  # copied UUID, own keys
    real_a, real_b, fake = address(), address(), address()
    names = {real_a: "real.example", real_b: "real.example", fake: "evil.example"}
    async with (
        FakeXapi(real_a, 0, tls=True, identity=real) as a,
        FakeXapi(real_b, a.port, tls=True, identity=real),
        FakeXapi(fake, a.port, tls=True, identity=impostor),
    ):
        hosts = await xendiscover.discover(
            [real_a, real_b, fake], port=a.port, resolver=FakeResolver(names), timeout=2.0
        )
    assert len(hosts) == 2
    genuine = next(h for h in hosts if h.key == "real.example")
    other = next(h for h in hosts if h is not genuine)
    assert set(genuine.addresses) == {real_a, real_b}
    assert fake not in genuine.addresses
    assert genuine.address in (real_a, real_b)
    assert genuine.host_uuid == other.host_uuid == real.uuid
    assert genuine.uuid_conflict
    assert other.uuid_conflict
    assert not set(genuine.key_fingerprints) & set(other.key_fingerprints)
    inventory = ansible_inventory(hosts)["all"]["children"]["xapi"]["hosts"]
    assert inventory["real.example"]["ansible_host"] in (real_a, real_b)
    assert "evil.example" in inventory


def test_grouping_never_joins_on_a_uuid_string_alone() -> None:
    one = Finding("192.0.2.1", 443, "xapi", "confirmed", host_uuid="u", key_fingerprints=("a",))
    two = Finding("192.0.2.2", 443, "xapi", "confirmed", host_uuid="u", key_fingerprints=("b",))
    three = Finding("192.0.2.3", 443, "xapi", "confirmed", host_uuid="u")
    hosts = group_findings([one, two, three])
    assert len(hosts) == 3
    assert all(h.uuid_conflict for h in hosts)


def test_grouping_is_by_key_and_deterministic() -> None:
    items = [
        Finding("192.0.2.9", 443, "xapi", "confirmed", key_fingerprints=("k",)),
        Finding("192.0.2.3", 443, "xapi", "confirmed", key_fingerprints=("k",)),
        Finding("192.0.2.5", 80, "xapi", "confirmed"),
        Finding("192.0.2.5", 443, "xapi", "confirmed", key_fingerprints=("k",)),
    ]
    forward = group_findings(items)
    backward = group_findings(list(reversed(items)))
    assert forward == backward
    (host,) = forward
    assert host.address == "192.0.2.3"  # no confirmed name: the lowest address
    assert host.key_fingerprints == ("k",)


def test_the_representative_address_is_the_one_the_confirmed_name_resolves_to() -> None:
    items = [
        Finding("192.0.2.3", 443, "xapi", "confirmed", key_fingerprints=("k",)),
        Finding(
            "192.0.2.9",
            443,
            "xapi",
            "confirmed",
            hostname="xen.example",
            hostname_source="ptr",
            key_fingerprints=("k",),
        ),
        Finding(
            "192.0.2.4",
            443,
            "xapi",
            "confirmed",
            hostname="spoof.example",
            hostname_source="ptr-unconfirmed",
            key_fingerprints=("k",),
        ),
    ]
    (host,) = group_findings(items)
    assert (host.key, host.address) == ("xen.example", "192.0.2.9")
    inventory = ansible_inventory([host])["all"]["children"]["xapi"]["hosts"]
    assert inventory == {"xen.example": inventory["xen.example"]}
    assert inventory["xen.example"]["ansible_host"] == "192.0.2.9"


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


def test_text_output_warns_about_a_uuid_claimed_twice() -> None:
    items = [
        Finding("192.0.2.1", 443, "xapi", "confirmed", host_uuid="u-1", key_fingerprints=("a",)),
        Finding("192.0.2.2", 443, "xapi", "confirmed", host_uuid="u-1", key_fingerprints=("b",)),
        Finding("192.0.2.3", 443, "xapi", "confirmed", host_uuid="u-2", key_fingerprints=("c",)),
    ]
    lines = format_text(group_findings(items)).splitlines()
    assert [("WARNING" in line, "u-1" in line) for line in lines] == [
        (True, True),
        (True, True),
        (False, False),
    ]


def test_no_private_key_ships_in_the_package() -> None:
    package = Path(xendiscover.__file__).parent
    shipped = [p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert shipped
    for path in shipped:
        assert path.suffix not in {".pem", ".key", ".p12", ".crt"}, path
        assert b"PRIVATE KEY-----" not in path.read_bytes(), path


async def test_the_pool_certificate_raises_the_products_version_floor() -> None:
    # A xapi whose listMethods shows no message newer than 1.249 but which
    # serves a pool certificate (xapi >= 1.291): the product keeps both clues.
    release = XapiRelease(
        "XCP-ng 8.2.1", "1.249.0", "compact", XAPI_RELEASES["xcp-ng-8.2"].page, "301"
    )
    identity = XapiIdentity("xen9.pool.example")
    async with FakeXapi(address(), tls=True, identity=identity, release=release) as xapi:
        found = await fingerprint_port(xapi.host, xapi.port, timeout=2.0)
    assert (found.service, found.verdict) == ("xapi", "confirmed")
    assert found.product is not None
    assert found.product.info is not None
    assert ">= 1.291" in found.product.info
    assert "pool certificate" in found.product.evidence
