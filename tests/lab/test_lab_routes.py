"""Subnets behind a router, IPv6 hosts on the link, --list-targets: in the route lab (issue 24).

Every scan runs inside the lab's scanner namespace (``tests/netlab_routes.py``);
the topology is drawn there. Run alone with ``pytest tests/lab/test_lab_routes.py``
(as root).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

import netlab_routes
import pytest

pytestmark = [pytest.mark.netns]

T = netlab_routes.RouteTopology()
SCAN_TIMEOUT = 180.0
#: Run as root without CAP_NET_RAW: no raw socket, so ping_group_range alone decides.
NO_RAW = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw"]


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def xen(self) -> set[str]:
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        ports = [line for line in lines if line.get("record") == "port"]  # not run/end
        return {r["address"] for r in ports if r["verdict"] in ("confirmed", "likely")}


def run(lab: netlab_routes.RouteLab, *args: str, prefix: tuple[str, ...] = ()) -> Run:
    argv = [*prefix, lab.python, "-m", "xendiscover", "-p", str(T.port), "--no-resolve", *args]
    try:
        proc = lab.run(lab.scanner, argv, timeout=SCAN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"xendiscover {args} did not finish in {SCAN_TIMEOUT}s")
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _v4(addresses: set[str]) -> set[str]:
    return {a for a in addresses if ipaddress.ip_address(a).version == 4}


def test_routes_finds_the_xen_fakes_of_both_routed_subnets_and_nothing_ignored(
    route_lab: netlab_routes.RouteLab,
) -> None:
    route_lab.ping_groups(0, 2147483647)
    result = run(route_lab, "--routes", "-f", "jsonl")
    assert result.code == 0, result.stderr
    routed = {
        a for a in result.xen if ipaddress.ip_address(a) in ipaddress.ip_network("10.78.64.0/18")
    }
    assert routed == set(T.routed_xen)
    assert _v4(result.xen) == {*T.routed_xen, T.local_xen}
    assert not set(T.trap_xen) & result.xen  # behind the default route only


def test_routes_adds_exactly_the_two_routed_prefixes(route_lab: netlab_routes.RouteLab) -> None:
    # up0's /24 (253) + rt0's /30 (the router) + the /24 (254) + the /20 (4,094): the
    # default, split default, VPN, blackhole, host and policy-routed routes add nothing.
    result = run(route_lab, "--routes", "--no-ipv6", "-f", "jsonl", "-v")
    summary = json.loads(result.stderr.strip().splitlines()[-1])["summary"]
    assert summary["total"] == 253 + 1 + 254 + 4094


def test_without_routes_no_routed_subnet_is_swept(route_lab: netlab_routes.RouteLab) -> None:
    route_lab.ping_groups(0, 2147483647)
    result = run(route_lab, "-f", "jsonl")
    assert result.code == 0, result.stderr
    assert _v4(result.xen) == {T.local_xen}


def test_an_automatic_run_finds_the_ipv6_fakes_by_global_and_ula_address(
    route_lab: netlab_routes.RouteLab,
) -> None:
    route_lab.flush_neighbours()
    route_lab.ping_groups(0, 2147483647)  # ping sockets allowed for every group
    result = run(route_lab, "-f", "jsonl", "-v", prefix=tuple(NO_RAW))
    assert result.code == 0, result.stderr
    assert {T.v6_global, T.v6_ula} <= result.xen
    assert not any(a.startswith("fe80") for a in result.xen)
    assert "link-local only: not swept" in result.stderr  # the link-local-only host, named
    assert "ping sockets are not allowed" not in result.stderr


def test_refused_ping_sockets_say_so_once_and_use_the_neighbour_table(
    route_lab: netlab_routes.RouteLab,
) -> None:
    route_lab.flush_neighbours()
    route_lab.ping_groups(1, 0)  # Debian's default: nobody may open a ping socket
    try:
        empty = run(route_lab, "-f", "jsonl", prefix=tuple(NO_RAW))
        assert empty.stderr.count("ICMPv6 ping sockets are not allowed") == 1, empty.stderr
        assert not {T.v6_global, T.v6_ula} & empty.xen  # nothing in the table yet
        # The ULA host becomes a neighbour (one connect); the table alone then finds it.
        assert route_lab.probe(T.v6_ula, T.port, ns=route_lab.scanner).result == "open"
        known = run(route_lab, "-f", "jsonl", prefix=tuple(NO_RAW))
        assert T.v6_ula in known.xen
        assert T.v6_global not in known.xen
    finally:
        route_lab.ping_groups(0, 2147483647)


def test_as_root_a_raw_socket_stands_in_for_a_refused_ping_socket(
    route_lab: netlab_routes.RouteLab,
) -> None:
    route_lab.flush_neighbours()
    route_lab.ping_groups(1, 0)
    try:
        result = run(route_lab, "-f", "jsonl")
    finally:
        route_lab.ping_groups(0, 2147483647)
    assert "ping sockets are not allowed" not in result.stderr
    assert {T.v6_global, T.v6_ula} <= result.xen


_COUNT = """table inet xdlcount {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    meta l4proto tcp counter
    meta l4proto ipv6-icmp icmpv6 type echo-request counter
  }
}
"""


def _probes_seen(lab: netlab_routes.RouteLab) -> int:
    """TCP segments and ICMPv6 echo requests that reached the router or the global host.

    Counted by nft in their prerouting hook; ARP, neighbour discovery and MLD,
    which the kernel sends on its own, are not probes and are not counted.
    """
    total = 0
    for ns in (lab.ns["rtr"], lab.ns["hg"]):
        listed = lab.run(ns, ["nft", "-j", "list", "table", "inet", "xdlcount"])
        if listed.returncode != 0:
            lab._nft(ns, _COUNT)
            listed = lab.run(ns, ["nft", "-j", "list", "table", "inet", "xdlcount"])
        for item in json.loads(listed.stdout)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                total += expr.get("counter", {}).get("packets", 0)
    return total


def test_list_targets_shows_each_source_and_exclusion_and_sends_nothing(
    route_lab: netlab_routes.RouteLab,
) -> None:
    route_lab.flush_neighbours()
    start = _probes_seen(route_lab)
    assert route_lab.probe(T.local_xen, T.port, ns=route_lab.scanner).result == "open"
    assert route_lab.probe(T.v6_global, T.port, ns=route_lab.scanner).result == "open"
    before = _probes_seen(route_lab)
    assert before > start  # the counters see a probe
    result = run(route_lab, "--list-targets", "--routes")
    assert result.code == 0, result.stderr
    assert _probes_seen(route_lab) == before  # not one probe, not one echo
    rows = {
        tuple(line.split("\t")[:3]): line.split("\t")[3:] for line in result.stdout.splitlines()
    }
    assert rows[("sweep", "interface", T.local_net)] == ["up0", "253 addresses"]
    assert rows[("sweep", "route", T.routed24)] == ["rt0", "254 addresses", "via 10.78.2.2"]
    assert rows[("sweep", "route", T.routed20)] == ["rt0", "4,094 addresses", "via 10.78.2.2"]
    assert rows[("sweep", "ipv6-neighbour", T.v6_global)][0] == "up0"
    assert rows[("first", "neighbour", T.local_xen)] == ["-", "known alive: probed first"]
    assert rows[("skip", "route", "0.0.0.0/0")] == ["rt0", "default route"]
    assert rows[("skip", "route", "0.0.0.0/1")][1].startswith("split default")
    assert rows[("skip", "route", "128.0.0.0/1")][1].startswith("split default")
    assert rows[("skip", "route", T.blackhole_net)] == ["-", "blackhole route"]
    assert rows[("skip", "route", T.vpn_net)][1].startswith("over point-to-point device vpn0")
    assert rows[("skip", "route", T.policy_net)] == [
        "rt0",
        "the kernel has no route to 10.78.112.1 (policy routing)",
    ]
    assert rows[("skip", "interface", "lo")] == ["-", "loopback"]
    assert rows[("skip", "network", "fd78::/64")][1].startswith("IPv6 /64")
    assert rows[("skip", "network", "10.8.0.2/32")] == ["vpn0", "a single address (/32)"]
    assert ("note", "no ICMPv6 echo is sent with --list-targets: IPv6 hosts from neighbours") in {
        tuple(line.split("\t")) for line in result.stdout.splitlines()
    }
    assert result.stdout.splitlines()[-1].startswith("total\t")
