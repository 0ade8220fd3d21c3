import ipaddress

import pytest

from xendiscover import ScanLimitError, TargetError, TargetSpace
from xendiscover._networks import LocalNetwork
from xendiscover._targets import parse_port, parse_target


def addresses(space: TargetSpace) -> list[str]:
    return [address for _, address in space]


def no_dns(name: str) -> str:
    table = {"xen1.example.org": "10.9.9.9", "v6.example.org": "fd00::9"}
    if name not in table:
        raise TargetError(f"cannot resolve host name {name!r}")
    return table[name]


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("10.0.0.0/30", "10.0.0.0", "10.0.0.3"),
        ("10.0.0.5/30", "10.0.0.4", "10.0.0.7"),  # host bits set: the network, like nmap
        ("10.0.0.7", "10.0.0.7", "10.0.0.7"),
        ("10.0.0.10-10.0.0.40", "10.0.0.10", "10.0.0.40"),
        ("10.0.0.10-40", "10.0.0.10", "10.0.0.40"),
        ("fd00::1-fd00::ff", "fd00::1", "fd00::ff"),
        ("fd00::/126", "fd00::", "fd00::3"),
        ("[fd00::7]", "fd00::7", "fd00::7"),
        ("xen1.example.org", "10.9.9.9", "10.9.9.9"),
        ("v6.example.org", "fd00::9", "fd00::9"),
    ],
)
def test_parse_target_forms(spec: str, first: str, last: str) -> None:
    version, (start, end) = parse_target(spec, resolve=no_dns)
    assert ipaddress.ip_address(start) == ipaddress.ip_address(first)
    assert ipaddress.ip_address(end) == ipaddress.ip_address(last)
    assert version == ipaddress.ip_address(first).version


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty target"),
        ("10.0.0.40-10.0.0.10", "ends before it starts"),
        ("10.0.0.40-10", "ends before it starts"),
        ("10.0.0.1-300", "not an octet"),
        ("10.0.0.0/33", "invalid network"),
        ("300.1.1.1", "invalid target"),
        ("1.2.3", "invalid target"),
        ("10.0.0.1-fd00::1", "invalid range"),
        ("no..such", "invalid target"),
        ("unknown.example.org", "cannot resolve"),
    ],
)
def test_parse_target_rejects(spec: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        parse_target(spec, resolve=no_dns)


def test_overlapping_targets_are_probed_once_in_order() -> None:
    space = TargetSpace.from_specs(["10.0.0.4-10.0.0.6", "10.0.0.0/30", "10.0.0.5"])
    assert addresses(space) == [f"10.0.0.{i}" for i in range(7)]
    assert space.size == 7


def test_exclusions_cut_holes() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/28"], exclude=["10.0.0.0-3", "10.0.0.8", "9.0.0.0/8"])
    assert addresses(space) == [f"10.0.0.{i}" for i in (4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15)]


def test_ipv4_then_ipv6() -> None:
    space = TargetSpace.from_specs(["fd00::1", "10.0.0.1"])
    assert addresses(space) == ["10.0.0.1", "fd00::1"]


def test_length_does_not_enumerate() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/8", "fd00::/64"])
    assert space.size == 2**24 + 2**64


def test_size_guard() -> None:
    TargetSpace.from_specs(["10.0.0.0/16"]).check_size()  # exactly 65,536 is allowed
    with pytest.raises(ScanLimitError, match="refusing to sweep 65,537 addresses"):
        TargetSpace.from_specs(["10.0.0.0/16", "10.1.0.0"]).check_size()
    TargetSpace.from_specs(["10.0.0.0/15"]).check_size(max_hosts=2**17)


def test_local_networks_skip_network_broadcast_and_own_addresses() -> None:
    local = LocalNetwork(
        ipaddress.IPv4Network("192.0.2.0/29"),
        ("eth0",),
        frozenset({ipaddress.IPv4Address("192.0.2.3")}),
    )
    space = TargetSpace.from_networks([local], exclude=["192.0.2.5"])
    assert addresses(space) == ["192.0.2.1", "192.0.2.2", "192.0.2.4", "192.0.2.6"]


def test_a_slash_31_has_two_hosts() -> None:
    local = LocalNetwork(ipaddress.IPv4Network("192.0.2.0/31"), ("p2p0",), frozenset())
    assert addresses(TargetSpace.from_networks([local])) == ["192.0.2.0", "192.0.2.1"]


@pytest.mark.parametrize("text", ["0", "65536", "-1", "http", "8002.5", ""])
def test_bad_ports(text: str) -> None:
    with pytest.raises(TargetError, match="invalid port"):
        parse_port(text)


def test_good_ports() -> None:
    assert parse_port("1") == 1
    assert parse_port(65535) == 65535


@pytest.mark.parametrize("count", [1, 2, 3, 7, 300])
def test_shards_are_disjoint_and_cover_the_space(count: int) -> None:
    space = TargetSpace.from_specs(["10.0.0.0/26", "10.0.1.3-10.0.1.9", "fd00::1-fd00::4"])
    shards = [space.sharded(i, count) for i in range(1, count + 1)]
    walked = [addresses(s) for s in shards]
    together = [address for shard in walked for address in shard]
    assert sorted(together, key=lambda a: (":" in a, ipaddress.ip_address(a))) == addresses(space)
    assert len(set(together)) == space.size  # disjoint
    assert [s.size for s in shards] == [len(w) for w in walked]


def test_bad_shards() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/24"])
    for index, count in [(0, 4), (5, 4), (1, 0)]:
        with pytest.raises(TargetError, match="invalid shard"):
            space.sharded(index, count)
