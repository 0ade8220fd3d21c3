import ipaddress

import ifaddr
import pytest

from xendiscover import interface_is_up, local_networks
from xendiscover._networks import why_no_networks


def adapter(name: str, *ips: tuple[str | tuple[str, int, int], int]) -> ifaddr.Adapter:
    return ifaddr.Adapter(name, name, [ifaddr.IP(ip, prefix, name) for ip, prefix in ips])


UP = {"eth0", "eth1", "br0", "wg0", "p2p0", "eth0:1"}


def is_up(name: str) -> bool:
    return name in UP


def nets(adapters: list[ifaddr.Adapter], **kwargs: object) -> list[str]:
    return [str(n.network) for n in local_networks(adapters, is_up=is_up, **kwargs)]  # type: ignore[arg-type]


def test_keeps_real_prefix_lengths() -> None:
    found = nets([adapter("eth0", ("10.20.30.40", 20)), adapter("eth1", ("172.16.5.9", 26))])
    assert found == ["10.20.16.0/20", "172.16.5.0/26"]


def test_skips_down_interfaces() -> None:
    assert nets([adapter("eth9", ("10.0.0.1", 24))]) == []


def test_skips_loopback_link_local_and_single_addresses() -> None:
    found = nets(
        [
            adapter("lo", ("127.0.0.1", 8)),
            adapter("eth0", ("169.254.10.1", 16), ("10.0.0.1", 24)),
            adapter("wg0", ("10.99.0.1", 32)),
        ]
    )
    assert found == ["10.0.0.0/24"]


def test_keeps_a_slash_31() -> None:
    assert nets([adapter("p2p0", ("192.0.2.0", 31))]) == ["192.0.2.0/31"]


def test_never_sweeps_ipv6() -> None:
    assert nets([adapter("eth0", (("fd00::1", 0, 0), 64), (("fe80::1", 0, 2), 64))]) == []


def test_merges_a_network_seen_on_several_interfaces() -> None:
    found = local_networks(
        [
            adapter("eth0", ("10.0.0.1", 24)),
            adapter("br0", ("10.0.0.2", 24)),
            adapter("eth0:1", ("10.0.0.3", 24)),
        ],
        is_up=is_up,
    )
    assert len(found) == 1
    assert found[0].interfaces == ("eth0", "br0", "eth0:1")
    assert found[0].own_addresses == {ipaddress.IPv4Address(f"10.0.0.{i}") for i in (1, 2, 3)}


def test_limits_to_named_interfaces() -> None:
    adapters = [adapter("eth0", ("10.0.0.1", 24)), adapter("eth1", ("10.1.0.1", 24))]
    assert nets(adapters, interfaces=["eth1"]) == ["10.1.0.0/24"]


def test_interface_is_up_asks_the_kernel() -> None:
    # Reads flags only; sends nothing.
    assert interface_is_up("lo") is True
    assert interface_is_up("no-such-if0") is False


@pytest.mark.parametrize(
    ("interfaces", "message"),
    [
        (["nosuch0"], "interface 'nosuch0' does not exist"),
        (["eth1"], "interface 'eth1' is down"),
        (["lo"], "interface 'lo' has no IPv4 network to sweep (loopback"),
        (["lo", "ll0"], "interfaces 'lo', 'll0' have no IPv4 network"),
        (None, "no up interface ('eth1' down) has"),
    ],
)
def test_an_empty_sweep_says_which_interface_and_why(
    interfaces: list[str] | None, message: str
) -> None:
    adapters = [
        adapter("lo", ("127.0.0.1", 8)),
        adapter("eth1", ("10.5.0.2", 24)),  # down
        adapter("ll0", ("169.254.7.7", 16)),
    ]
    assert local_networks(adapters, is_up=lambda name: name != "eth1", interfaces=interfaces) == []
    why = why_no_networks(adapters, is_up=lambda name: name != "eth1", interfaces=interfaces)
    assert message in why
    assert "\n" not in why
