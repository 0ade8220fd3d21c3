"""What one port teaches an address's other ports, counted on the wire (issue 15).

nftables counters in the lab's ``lan`` namespace count the SYNs that reach
two addresses: one whose every port is dropped (dark to a scanner) and one
that refuses on 8002 but drops its other ports (a firewall that lets one
port through). The scanner runs in the admin namespace, as always.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import netlab
import pytest

from .test_lab_scan import Scan, scan

pytestmark = [pytest.mark.netns]

SEVEN = ("443", "80", "8002", "8000", "8006", "9363", "16509")
TOPO = netlab.Topology()
DROPPED = TOPO.lan_firewalled[0]  # every TCP SYN to it is dropped
ONE_PORT = TOPO.lan_closed[0]  # refuses on 8002; the counter rule drops the rest
TIMEOUT = "0.5"  # below Linux's first SYN retransmission (1 s): one SYN per attempt


@pytest.fixture
def counters(lab: netlab.Lab) -> Iterator[netlab.Lab]:
    lan = lab.namespaces[1]
    ruleset = f"""
table inet xdbudget {{
    chain input {{
        type filter hook input priority filter - 10; policy accept;
        ip daddr {DROPPED} tcp flags syn counter
        ip daddr {ONE_PORT} tcp dport != 8002 tcp flags syn counter drop
    }}
}}
"""
    nft = netlab.which("nft") or "nft"
    subprocess.run(
        lab.exec_argv(lan, [nft, "-f", "-"]), input=ruleset, text=True, check=True, timeout=10
    )
    try:
        yield lab
    finally:
        lab.run(lan, [nft, "delete", "table", "inet", "xdbudget"], timeout=10)


def syns(lab: netlab.Lab) -> tuple[int, int]:
    """SYNs counted so far: (to the dropped address, to the one-port address)."""
    nft = netlab.which("nft") or "nft"
    proc = lab.run(lab.namespaces[1], [nft, "-j", "list", "table", "inet", "xdbudget"])
    assert proc.returncode == 0, proc.stderr
    packets = [
        expr["counter"]["packets"]
        for item in json.loads(proc.stdout)["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    ]
    assert len(packets) == 2, packets
    return packets[0], packets[1]


def sweep(lab: netlab.Lab, *args: str) -> Scan:
    """A scan of the seven default ports (``scan`` adds 8002 itself)."""
    others = [arg for port in SEVEN if port != "8002" for arg in ("--port", port)]
    return scan(lab, "--no-resolve", "--no-fingerprint", *others, *args)


def test_a_silent_address_costs_two_syns_per_port_and_an_answering_one_full_retries(
    counters: netlab.Lab,
) -> None:
    result = sweep(counters, "--timeout", TIMEOUT, "--retries", "3", DROPPED, ONE_PORT)
    assert result.code == 1, result.stderr  # nothing open
    dropped, one_port = syns(counters)
    # Silent on all seven ports: ceil(4 / 7) rounds, never fewer than 2.
    assert dropped == 7 * 2
    # It refused on 8002, so it is alive: each dropped port gets 1 + 3 tries.
    assert one_port == 6 * 4


def test_one_port_gets_the_full_budget_even_when_silent(counters: netlab.Lab) -> None:
    result = scan(
        counters, "--no-resolve", "--no-fingerprint", "--timeout", TIMEOUT, "--retries", "3",
        DROPPED,
    )  # fmt: skip
    assert result.code == 1, result.stderr
    assert syns(counters) == (4, 0)


def test_lossy_hosts_found_on_every_port_scan_with_seven_ports(lab: netlab.Lab) -> None:
    # 5% loss each way: an attempt is lost with q = 1 - 0.95**2 = 0.0975. The
    # hosts refuse on their closed ports, so they are found alive at once
    # (all seven first SYNs lost: q**7 = 8e-8) and their open port keeps its
    # four attempts (q**4 = 9e-5). Twenty scans of three hosts.
    if lab.loss_percent == 0:
        pytest.skip("the lab was built without loss")
    hosts = set(lab.topo.lossy_xen)
    for attempt in range(20):
        result = sweep(lab, *sorted(hosts))
        assert result.code == 0, (attempt, result.stderr)
        assert result.open == hosts, f"scan {attempt}: an open port was missed"


FAILED_NEIGHBOUR = """
import asyncio, json, socket, sys
from xendiscover._backend import SocketBackend

async def main():
    backend = SocketBackend()
    started = [backend.connect(socket.AF_INET, sys.argv[1], 8002, 8.0),
               backend.connect(socket.AF_INET6, sys.argv[2], 8002, 8.0)]
    results = await asyncio.gather(*started)
    backend.close()
    print(json.dumps([[r.outcome.value, r.icmp] for r in results]))

asyncio.run(main())
"""


def test_a_failed_arp_or_neighbour_discovery_is_told_apart(lab: netlab.Lab) -> None:
    # Nobody owns these on-link addresses: the kernel's ARP (IPv4) and
    # neighbour discovery (IPv6) give up after about 3 s and send the
    # scanner's own socket ICMP "host unreachable" / "address unreachable",
    # from one of its own addresses. That is what ends all of an address's
    # probes at once; a reject sent by the address itself would not.
    t = lab.topo
    dark_v6 = t.v6_net.replace("::/64", "::99")
    proc = lab.python_run(lab.admin, FAILED_NEIGHBOUR, t.lan_dark[0], dark_v6, timeout=30)
    assert proc.returncode == 0, proc.stderr
    (v4_outcome, v4_icmp), (v6_outcome, v6_icmp) = json.loads(proc.stdout)
    assert v4_outcome == v6_outcome == "unreachable"
    assert v4_icmp == [3, 1, t.admin_lan]
    assert v6_icmp == [1, 3, t.admin_v6]
