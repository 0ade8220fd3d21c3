"""The scanner's default path against the namespace lab (issue #4).

Run on their own with ``pytest tests/lab/test_lab_scan.py`` (as root).  Every scan
runs as ``ip netns exec <admin> python -m xendiscover ...``: interface
auto-discovery only ever happens inside the lab's admin namespace.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import netlab
import pytest

pytestmark = [pytest.mark.netns, pytest.mark.dnsmasq]

TOPO = netlab.Topology()
XEN_VERDICTS = frozenset({"confirmed", "likely"})
RECORD_KEYS = {
    "address", "port", "hostname", "hostname_source", "host_uuid", "service", "verdict",
    "evidence", "latency_ms", "key_fingerprints", "product", "version", "confidence", "cpe",
    "product_info", "product_evidence", "machine", "certificate_names",
}  # fmt: skip
SCAN_TIMEOUT = 180.0


@dataclass(frozen=True)
class Scan:
    code: int
    records: list[dict[str, object]]
    wall: float
    stderr: str

    @property
    def xen(self) -> set[str]:
        return {str(r["address"]) for r in self.records if r["verdict"] in XEN_VERDICTS}

    @property
    def open(self) -> set[str]:
        return {str(r["address"]) for r in self.records}

    def by_address(self) -> dict[str, dict[str, object]]:
        return {str(r["address"]): r for r in self.records}


def scan(lab: netlab.Lab, *args: str, timeout: float = SCAN_TIMEOUT) -> Scan:
    """``python -m xendiscover --port <port> -f jsonl ARGS`` in the admin namespace.

    JSON Lines: one record per open port, Xen or not, as the lab checks both.
    """
    argv = [lab.python, "-m", "xendiscover", "--port", str(lab.topo.port), "-f", "jsonl", *args]
    start = time.monotonic()
    try:
        proc = lab.run(lab.admin, argv, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scan {args} did not finish in {timeout}s")
    wall = time.monotonic() - start
    try:
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
    except json.JSONDecodeError:
        pytest.fail(f"not JSON (exit {proc.returncode}): {proc.stdout!r}\n{proc.stderr}")
    assert isinstance(lines, list), lines
    if lines:  # the run's first and last lines: how it started and ended
        assert (lines[0]["record"], lines[-1]["record"]) == ("run", "end"), lines
    records = [line for line in lines if line.get("record") == "port"]
    for record in records:
        assert set(record) - {"record"} == RECORD_KEYS, record
        assert record["port"] == lab.topo.port, record
    return Scan(proc.returncode, records, wall, proc.stderr)


def _in(address: str, network: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network)


def test_default_scan_finds_exactly_the_xen_hosts_of_the_up_networks(lab: netlab.Lab) -> None:
    result = scan(lab)
    print(f"default scan inside the lab: {result.wall:.2f}s wall", file=sys.stderr)
    assert result.code == 0, result.stderr
    t = lab.topo
    assert result.xen == set(t.auto_xen), result.records
    assert result.open == set(t.auto_open), result.records
    for address, record in result.by_address().items():
        assert record["hostname"] == t.hostname(address), record
    for address in t.lan_decoy:
        assert result.by_address()[address]["verdict"] in {"not-xen", "unknown"}
    on_link_v6 = {t.lan_v6, *t.v6_trap_xen}  # what answers the echo; the /64 is not walked
    for address in result.open:
        assert ipaddress.ip_address(address).version == 4 or address in on_link_v6
        assert not _in(address, t.down_net), "the down interface was swept"
        assert not _in(address, t.routed_net), "a routed subnet was swept"


def test_gateway_subnet_found_when_given(lab: netlab.Lab) -> None:
    t = lab.topo
    result = scan(lab, t.routed_net)
    assert result.code == 0, result.stderr
    assert result.xen == set(t.routed_xen), result.records
    for address, record in result.by_address().items():
        assert record["hostname"] == t.hostname(address), record


def test_gateway_subnet_alongside_a_local_network(lab: netlab.Lab) -> None:
    t = lab.topo
    result = scan(lab, t.lan_net, t.routed_net)
    assert result.code == 0, result.stderr
    assert result.xen == set(t.lan_xen) | set(t.routed_xen), result.records
    assert result.open == set(t.lan_xen) | set(t.routed_xen) | set(t.lan_decoy)


def test_lossy_link_every_host_in_ten_scans(lab: netlab.Lab) -> None:
    if lab.loss_percent == 0:
        pytest.skip("the lab was built without loss")
    t = lab.topo
    walls = []
    for attempt in range(10):
        result = scan(lab, t.lossy_net)
        walls.append(result.wall)
        assert result.code == 0, (attempt, result.stderr)
        assert result.open == set(t.lossy_xen), f"scan {attempt}: open ports missed"
        assert result.xen == set(t.lossy_xen), (
            f"scan {attempt}: found open, but not fingerprinted as Xen",
            [r for r in result.records if r["verdict"] not in XEN_VERDICTS],
        )
    print(f"lossy /20 scans: {', '.join(f'{w:.1f}' for w in walls)}s", file=sys.stderr)


@pytest.mark.parametrize("address", [*TOPO.dark, *TOPO.firewalled])
def test_dark_and_firewalled_cost_bounded(lab: netlab.Lab, address: str) -> None:
    timeout, retries = 0.5, 1
    result = scan(lab, "--timeout", str(timeout), "--retries", str(retries), address)
    assert result.code == 1, result.stderr
    assert result.records == []
    assert result.wall < timeout * (retries + 1) + 3.0


def test_all_dark_and_firewalled_together_cost_bounded(lab: netlab.Lab) -> None:
    timeout, retries = 0.5, 1
    targets = [*lab.topo.dark, *lab.topo.firewalled]
    result = scan(lab, "--timeout", str(timeout), "--retries", str(retries), *targets)
    assert result.code == 1, result.stderr
    assert result.records == []
    assert result.wall < timeout * (retries + 1) + 3.0


def test_range_target(lab: netlab.Lab) -> None:
    t = lab.topo
    result = scan(lab, "10.77.1.130-10.77.1.141")
    assert result.code == 0, result.stderr
    assert result.xen == set(t.lan_xen)
    assert result.open == set(t.lan_xen) | set(t.lan_decoy)


def test_no_resolve_leaves_names_out(lab: netlab.Lab) -> None:
    result = scan(lab, "--no-resolve", *lab.topo.lan_xen)
    assert result.code == 0, result.stderr
    assert result.xen == set(lab.topo.lan_xen)
    assert all(r["hostname"] is None for r in result.records)


@pytest.mark.parametrize("suffix", ["", ":53"])
def test_explicit_nameserver(lab: netlab.Lab, suffix: str) -> None:
    t = lab.topo
    result = scan(lab, "--nameserver", t.dns_server + suffix, *t.lan_xen, *t.routed_xen)
    assert result.code == 0, result.stderr
    for address, record in result.by_address().items():
        assert record["hostname"] == t.hostname(address), record


def test_the_api_returns_one_host_per_xen_machine(lab: netlab.Lab) -> None:
    """``discover([lan], port=8002)`` in the lab: only the Xen machines, once each, named."""
    t = lab.topo
    code = (
        "import asyncio, json, xendiscover\n"
        f"hosts = asyncio.run(xendiscover.discover([{t.lan_net!r}], port={t.port}))\n"
        "print(json.dumps([h.as_dict() for h in hosts]))\n"
    )
    proc = lab.run(lab.admin, [lab.python, "-c", code], timeout=SCAN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    machines = json.loads(proc.stdout)
    assert [m["address"] for m in machines] == sorted(t.lan_xen, key=ipaddress.ip_address)
    for machine in machines:
        assert machine["verdict"] in XEN_VERDICTS
        assert machine["hostname"] == t.hostname(machine["address"])
        expected = "ptr" if machine["hostname"] else None
        assert machine["hostname_source"] == expected  # the lab's dnsmasq has A records too
    decoys = set(t.lan_decoy)
    assert not decoys & {m["address"] for m in machines}
