"""Interface auto-discovery, run only inside network namespaces made here.

The machine's own namespace is never swept: the scanner runs under
``ip netns exec`` in an "admin" namespace joined by a veth pair to a "hosts"
namespace, which holds three xend responders and a dnsmasq with PTR records
for two of them. The admin namespace's resolv.conf points at that dnsmasq,
so the default (system resolver) path is what gets tested.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import run_xendiscover

HERE = Path(__file__).parent
NET = "10.213.7"
XEN = {f"{NET}.10": "polar.lab.test", f"{NET}.11": "carbono12.lab.test", f"{NET}.12": None}
DNS = f"{NET}.2"

pytestmark = pytest.mark.netns


def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip netns)"
    if not os.path.exists("/usr/sbin/dnsmasq") and shutil.which("dnsmasq") is None:
        return "needs dnsmasq (Debian package dnsmasq-base)"
    return None


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[str, str]]:
    if (reason := _can_make_namespaces()) is not None:
        pytest.skip(reason)
    tag = f"{os.getpid() % 100000}{random.randrange(100, 999)}"
    admin, hosts = f"xdta{tag}", f"xdth{tag}"
    procs: list[subprocess.Popen[Any]] = []
    etc = Path("/etc/netns") / admin
    try:
        sh("ip", "netns", "add", admin)
        sh("ip", "netns", "add", hosts)
        sh(
            "ip",
            "link",
            "add",
            f"va{tag}",
            "netns",
            admin,
            "type",
            "veth",
            "peer",
            "name",
            f"vh{tag}",
            "netns",
            hosts,
        )
        for ns in (admin, hosts):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", admin, "addr", "add", f"{NET}.1/24", "dev", f"va{tag}")
        sh("ip", "-n", admin, "link", "set", f"va{tag}", "up")
        for address in [DNS, *XEN]:
            sh("ip", "-n", hosts, "addr", "add", f"{address}/24", "dev", f"vh{tag}")
        sh("ip", "-n", hosts, "link", "set", f"vh{tag}", "up")
        responder = subprocess.Popen(
            ["ip", "netns", "exec", hosts, sys.executable, str(HERE / "xend_responder.py"), *XEN],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(responder)
        assert responder.stdout is not None
        assert responder.stdout.readline().strip() == "ready"
        records = [f"--host-record={name},{addr}" for addr, name in XEN.items() if name]
        procs.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    hosts,
                    shutil.which("dnsmasq") or "/usr/sbin/dnsmasq",
                    "--keep-in-foreground",
                    "--conf-file=/dev/null",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    f"--listen-address={DNS}",
                    "--user=root",
                    "--group=root",
                    "--pid-file",
                    *records,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {DNS}\noptions timeout:1 attempts:2\n")
        yield admin, hosts
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=5)  # reaps it and closes our end of its stdout
        for ns in (admin, hosts):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(etc, ignore_errors=True)


def scan_in(admin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_xendiscover(*args, netns=admin)


def test_no_targets_sweeps_the_up_network_and_names_hosts(namespaces: tuple[str, str]) -> None:
    admin, _ = namespaces
    proc = scan_in(admin, "--port", "8002")
    assert proc.returncode == 0, proc.stderr
    keys = [line.split("  ")[0] for line in proc.stdout.splitlines()]  # key, then product
    assert keys == [name or addr for addr, name in XEN.items()]


def test_no_targets_json_records(namespaces: tuple[str, str]) -> None:
    admin, _ = namespaces
    proc = scan_in(admin, "--port", "8002", "--json", "--timeout", "0.5")
    document = json.loads(proc.stdout)
    assert document["run"]["local_networks"] is True  # no targets: the local networks
    assert document["run"]["targets"] == []
    records = document["machines"]
    assert [(r["address"], r["hostname"]) for r in records] == list(XEN.items())
    services = [s for r in records for s in r["services"]]
    assert {s["service"] for s in services} == {"xend-relocation"}
    assert {s["verdict"] for s in services} == {"confirmed"}
    assert all(s["port"] == 8002 and s["latency_ms"] > 0 for s in services)
