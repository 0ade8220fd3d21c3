"""What an automatic run sweeps, from the namespace recorded in ``netlink_replies`` (issue 24).

The system under test is :class:`StaticSystem` filled with the routes and
neighbours ``tests/netlink_capture.py`` recorded inside its own namespace,
and the interfaces that namespace had: nothing of this machine is read.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import ifaddr
import pytest
from netlink_replies import REPLIES
from typer.testing import CliRunner

import xendiscover
from xendiscover import _netlink as nl
from xendiscover._cli import app, main
from xendiscover._sources import (
    EchoAnswer,
    Parts,
    StaticSystem,
    discover_sources,
    interface_skips,
)
from xendiscover._targets import TargetSpace
from xendiscover.testing import FakeBackend

runner = CliRunner()

UP, LOOPBACK, P2P = 0x1, 0x8, 0x10


def recorded_system() -> StaticSystem:
    """The capture namespace: lo, gw0 (10.77.2.1/30, fd77:2::1/64), vpn0 (10.8.0.2 peer)."""
    adapters = [
        ifaddr.Adapter(
            "lo", "lo", [ifaddr.IP("127.0.0.1", 8, "lo"), ifaddr.IP(("::1", 0, 0), 128, "lo")]
        ),
        ifaddr.Adapter(
            "gw0",
            "gw0",
            [ifaddr.IP("10.77.2.1", 30, "gw0"), ifaddr.IP(("fd77:2::1", 0, 0), 64, "gw0")],
        ),
        ifaddr.Adapter("vpn0", "vpn0", [ifaddr.IP("10.8.0.2", 32, "vpn0")]),
    ]
    lookups = {}
    for address in ("10.77.64.1", "10.77.80.1", "10.77.96.1", "10.77.72.1"):
        route = nl.parse_lookup(REPLIES[f"get {address}"])
        if route is not None:
            lookups[address] = route
    return StaticSystem(
        adapter_list=adapters,
        flag_table={"lo": UP | LOOPBACK, "gw0": UP, "gw0p": UP, "vpn0": UP | P2P},
        index_names={1: "lo", 2: "gw0p", 3: "gw0", 4: "vpn0"},
        route_table={
            socket.AF_INET: nl.parse_routes(REPLIES["routes4"]),
            socket.AF_INET6: nl.parse_routes(REPLIES["routes6"]),
        },
        neighbour_table={
            socket.AF_INET: nl.parse_neighbours(REPLIES["neigh4"]),
            socket.AF_INET6: nl.parse_neighbours(REPLIES["neigh6"]),
        },
        lookups=lookups,
    )


def _reasons(found: xendiscover._sources.Discovery) -> dict[str, str]:
    return {s.target: s.reason for s in found.skipped}


def test_routes_kept_and_left_out_each_with_its_reason() -> None:
    found = discover_sources(recorded_system(), Parts(routes=True), max_hosts=65536)
    kept = {s.target: s for s in found.sources if s.kind == "route"}
    assert set(kept) == {"10.77.64.0/24"}
    assert kept["10.77.64.0/24"].detail == "via 10.77.2.2"
    assert kept["10.77.64.0/24"].addresses == 254
    assert kept["10.77.64.0/24"].interface == "gw0"
    why = _reasons(found)
    assert why["0.0.0.0/0"] == "default route"
    assert why["0.0.0.0/1"].startswith("split default")
    assert why["128.0.0.0/1"].startswith("split default")
    assert why["10.77.99.9/32"] == "host route"
    assert why["10.8.0.1/32"] == "host route"
    assert why["10.77.96.0/24"] == "blackhole route"
    assert why["10.77.97.0/24"] == "unreachable route"
    assert why["10.77.98.0/24"] == "prohibit route"
    assert why["10.77.80.0/20"] == "the kernel has no route to 10.77.80.1 (policy routing)"
    assert why["10.77.72.0/24"].startswith("over point-to-point device vpn0")
    assert why["fd77:99::/48"] == "IPv6 routed prefix: listed, never swept"
    assert "10.77.2.0/30" not in why  # the interface's own network is no route to list


def test_a_vpn_route_is_swept_when_its_interface_is_named() -> None:
    found = discover_sources(
        recorded_system(), Parts(routes=True), interfaces=["vpn0"], max_hosts=65536
    )
    assert [s.target for s in found.sources if s.kind == "route"] == ["10.77.72.0/24"]
    assert _reasons(found)["10.77.64.0/24"] == "over gw0, which is not named with --interface"


def test_max_hosts_refuses_a_routed_prefix_with_its_size() -> None:
    found = discover_sources(recorded_system(), Parts(routes=True), max_hosts=254)
    assert "10.77.64.0/24" in {s.target for s in found.sources}
    small = discover_sources(recorded_system(), Parts(routes=True), max_hosts=100)
    assert _reasons(small)["10.77.64.0/24"] == "254 addresses, more than --max-hosts 100"


def test_policy_routing_elsewhere_is_named() -> None:
    system = recorded_system()
    system.lookups["10.77.64.1"] = nl.Route(
        ipaddress.ip_network("10.77.64.1/32"), "unicast", 100, ipaddress.ip_address("10.77.2.3"), 3
    )
    found = discover_sources(system, Parts(routes=True), max_hosts=65536)
    assert (
        _reasons(found)["10.77.64.0/24"]
        == "policy routing sends 10.77.64.1 via 10.77.2.3 (table 100)"
    )


def test_a_route_into_a_down_interfaces_network_is_left_out() -> None:
    system = recorded_system()
    system.adapter_list.append(
        ifaddr.Adapter("down0", "down0", [ifaddr.IP("10.77.64.9", 24, "down0")])
    )
    found = discover_sources(system, Parts(routes=True), max_hosts=65536)
    assert _reasons(found)["10.77.64.0/24"] == "the network of down0, which is down"
    assert ("interface", "down0", "down") in {(s.kind, s.target, s.reason) for s in found.skipped}


def test_interface_skips_name_each_reason() -> None:
    skips = interface_skips(recorded_system().adapter_list, flags=recorded_system().flags)
    seen = {(s.kind, s.target, s.interface, s.reason.split(":")[0]) for s in skips}
    assert ("interface", "lo", None, "loopback") in seen
    assert ("network", "10.8.0.2/32", "vpn0", "a single address (/32)") in seen
    assert ("network", "fd77:2::/64", "gw0", "IPv6 /64") in seen
    link = [
        ifaddr.Adapter(
            "e", "e", [ifaddr.IP("169.254.1.1", 16, "e"), ifaddr.IP(("fe80::1", 0, 2), 64, "e")]
        )
    ]
    reasons = {s.reason for s in interface_skips(link, flags=lambda _: UP)}
    assert reasons == {"link-local"}


def test_known_alive_neighbours_go_first() -> None:
    found = discover_sources(recorded_system(), Parts(), max_hosts=65536)
    assert found.first == ("10.77.2.2", "10.77.2.3")  # reachable, stale; not failed .4
    space = TargetSpace.from_networks(found.networks, first=found.first)
    # .3 is the /30's broadcast address: not in the space, so not first either.
    assert [a for _, a in space] == ["10.77.2.2"]


def test_first_changes_order_not_membership_across_shards() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/28"])
    with_first = TargetSpace.from_networks(
        [], extra=["10.0.0.0/28"], first=["10.0.0.9", "10.0.0.4", "10.9.9.9"]
    )
    assert with_first.first == (
        (4, int(ipaddress.ip_address("10.0.0.9"))),
        (4, int(ipaddress.ip_address("10.0.0.4"))),
    )
    plain = [a for _, a in TargetSpace.from_networks([], extra=["10.0.0.0/28"])]
    ordered = [a for _, a in with_first]
    assert ordered[:2] == ["10.0.0.9", "10.0.0.4"]
    assert sorted(ordered) == sorted(plain)
    assert len(ordered) == len(set(ordered)) == 14
    for count in (2, 3):
        for index in range(1, count + 1):
            a = [x for _, x in with_first.sharded(index, count)]
            b = [
                x
                for _, x in TargetSpace.from_networks([], extra=["10.0.0.0/28"]).sharded(
                    index, count
                )
            ]
            assert sorted(a) == sorted(b)
    assert space.size == 16


def test_ipv6_hosts_from_echo_and_neighbours() -> None:
    system = recorded_system()
    system.answers = [
        EchoAnswer(ipaddress.IPv6Address("2001:db8:77::10"), "gw0"),
        EchoAnswer(ipaddress.IPv6Address("fe80::99"), "gw0"),
        EchoAnswer(ipaddress.IPv6Address("fd77:2::1"), "gw0"),  # our own echo, looped back
    ]
    found = discover_sources(system, Parts(interfaces=False, ipv6=True), max_hosts=65536)
    assert system.echoed == [("gw0", "fd77:2::1")]  # from each global/ULA address, not lo
    swept = {s.target: s.kind for s in found.sources}
    assert swept == {"2001:db8:77::10": "ipv6-echo", "fd77:2::2": "ipv6-neighbour"}
    why = _reasons(found)
    assert why["fe80::2"] == (
        "link-local address of fd77:2::2 (same link-layer address 02:00:00:00:02:02)"
    )
    assert why["fe80::99"].startswith("link-local only")
    assert "ff02::16" not in why


def test_no_echo_under_list_targets_and_a_refused_ping_socket_is_a_note() -> None:
    system = recorded_system()
    found = discover_sources(
        system, Parts(interfaces=False, ipv6=True), max_hosts=65536, send=False
    )
    assert system.echoed == []
    assert any("no ICMPv6 echo" in n for n in found.notes)
    system.echo_note = "ICMPv6 ping sockets are not allowed"
    found = discover_sources(system, Parts(interfaces=False, ipv6=True), max_hosts=65536)
    assert found.notes == ("ICMPv6 ping sockets are not allowed",)
    assert [s.target for s in found.sources] == ["fd77:2::2"]


def test_sentinels_combine_and_the_api_sweeps_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    system = recorded_system()
    monkeypatch.setattr("xendiscover._plan.system_state", lambda: system)
    both = xendiscover.LOCAL_NETWORKS | xendiscover.ROUTED_NETWORKS
    assert repr(both) == "LOCAL_NETWORKS | ROUTED_NETWORKS"
    checked = xendiscover.plan(both, port=8002)
    assert checked.space.size == 1 + 254  # 10.77.2.2 and the routed /24
    assert next(iter(checked.space))[1] == "10.77.2.2"  # the neighbour first
    routed = xendiscover.plan(xendiscover.ROUTED_NETWORKS, port=8002)
    assert routed.space.size == 254
    v6 = xendiscover.plan(xendiscover.IPV6_NEIGHBOURS, port=8002)
    assert [a for _, a in v6.space] == ["fd77:2::2"]


async def test_discover_local_and_routed_through_a_fake_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = recorded_system()
    monkeypatch.setattr("xendiscover._plan.system_state", lambda: system)
    backend = FakeBackend({"10.77.64.7": "open", "10.77.2.2": "open"})
    found = [
        f.address
        async for f in xendiscover.scan(
            xendiscover.LOCAL_NETWORKS | xendiscover.ROUTED_NETWORKS,
            port=8002,
            backend=backend,
            resolve=False,
            fingerprint=False,
        )
    ]
    assert sorted(found) == ["10.77.2.2", "10.77.64.7"]
    assert backend.attempts[0][0] == "10.77.2.2"


def test_nothing_to_sweep_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("xendiscover._plan.system_state", StaticSystem)
    with pytest.raises(xendiscover.TargetError, match="ROUTED_NETWORKS found nothing"):
        xendiscover.plan(xendiscover.ROUTED_NETWORKS)


def test_list_targets_prints_sources_and_exclusions_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = recorded_system()
    monkeypatch.setattr("xendiscover._plan.system_state", lambda: system)
    result = runner.invoke(app, ["--list-targets", "--routes", "--no-resolve"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert ["sweep", "interface", "10.77.2.0/30", "gw0", "1 address"] in lines
    assert ["sweep", "route", "10.77.64.0/24", "gw0", "254 addresses", "via 10.77.2.2"] in lines
    assert ["sweep", "ipv6-neighbour", "fd77:2::2", "gw0", "1 address"] in lines
    assert ["first", "neighbour", "10.77.2.2", "-", "known alive: probed first"] in lines
    assert ["skip", "route", "0.0.0.0/0", "gw0", "default route"] in lines
    assert ["skip", "interface", "lo", "-", "loopback"] in lines
    assert lines[-1] == ["total", "256 addresses"]  # .2, the /24, fd77:2::2
    assert system.echoed == []
    as_json = runner.invoke(app, ["-sL", "--routes", "--json"])
    document = json.loads(as_json.stdout)
    assert document["total"] == 256
    assert {
        "kind": "route",
        "target": "10.77.96.0/24",
        "interface": None,
        "reason": "blackhole route",
    } in document["skip"]


def test_list_targets_of_named_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["-sL", "10.0.0.0/30", "10.0.1.5", "--exclude", "10.0.0.1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "sweep\ttarget\t10.0.0.0/30\t-\t4 addresses" in lines
    assert "skip\texclude\t10.0.0.1\t-\t--exclude" in lines
    assert lines[-1] == "total\t4 addresses"


@pytest.mark.parametrize("flag", ["--routes", "--no-ipv6"])
def test_discovery_flags_with_named_targets_are_a_usage_error(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([flag, "10.0.0.1"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"xendiscover: error: {flag} chooses what to discover: give it without targets\n"
    )


def test_no_ipv6_leaves_the_ipv6_hosts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    system = recorded_system()
    monkeypatch.setattr("xendiscover._plan.system_state", lambda: system)
    result = runner.invoke(app, ["-sL", "--no-ipv6"])
    assert result.exit_code == 0, result.output
    assert "fd77:2::2" not in result.stdout
    assert result.stdout.splitlines()[-1] == "total\t1 address"


class _Unreadable(StaticSystem):
    """A system whose netlink is refused (a sandbox without AF_NETLINK)."""

    def neighbours(self, family: int) -> list[nl.Neighbour]:
        raise nl.NetlinkError("netlink: Operation not permitted", 1)

    def routes(self, family: int) -> list[nl.Route]:
        raise nl.NetlinkError("netlink: Operation not permitted", 1)


def test_an_unreadable_neighbour_table_is_a_note_and_routes_an_error() -> None:
    base = recorded_system()
    system = _Unreadable(base.adapter_list, base.flag_table, base.index_names)
    found = discover_sources(system, Parts(ipv6=True), max_hosts=65536, send=False)
    assert [s.target for s in found.sources] == ["10.77.2.0/30"]
    assert found.first == ()
    assert sum("cannot read the neighbour table" in n for n in found.notes) == 2
    with pytest.raises(xendiscover.TargetError, match="cannot read the routing table"):
        discover_sources(system, Parts(routes=True), max_hosts=65536)


def test_the_guard_refuses_an_echo_from_the_test_process(
    guard_violations: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In this machine's namespace the echo to ff02::1 never leaves: the guard
    # refuses its sendto (a new way out, covered by the loopback rule). A UDP
    # socket stands in for the ping socket, which this user may not open.
    from xendiscover._sources import system_echo

    udp = lambda: (socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), True)  # noqa: E731
    monkeypatch.setattr("xendiscover._sources._echo_socket", udp)

    with pytest.raises(Exception, match="only loopback"):
        system_echo([("lo", "::1")])
    assert any("ff02::1" in message for message in guard_violations)


def test_an_echo_that_fails_on_one_interface_is_a_note() -> None:
    from xendiscover._sources import system_echo

    answers, note = system_echo([("xdl-nosuch0", "fd00::1")])  # no such interface: nothing sent
    assert answers == []
    assert note is not None
    assert note.startswith("the ICMPv6 echo from fd00::1 on xdl-nosuch0 failed")


def test_list_targets_writes_o_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "plan.txt"
    result = runner.invoke(app, ["-sL", "10.0.0.0/30", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert target.read_text().splitlines()[-1] == "total\t4 addresses"
    bad = runner.invoke(app, ["-sL", "10.0.0.0/8", "--max-hosts", "10", "-o", str(tmp_path / "x")])
    assert bad.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.txt"]  # no temporary left
