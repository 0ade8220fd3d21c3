"""Tests of the namespace lab itself: no scanner needed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import netlab
import pytest

pytestmark = [pytest.mark.netns, pytest.mark.dnsmasq]

TOPO = netlab.Topology()
XEND_OK = "(ok (help quit receive sslreceive))\n"
XEND_ERR = (
    "(err (type \"<class 'xen.xend.XendError.XendError'>\") (value 'Invalid operation: GET'))\n"
)


def _probe_until(
    lab: netlab.Lab, address: str, want: str, *, attempts: int = 8, **kwargs: object
) -> netlab.ProbeResult:
    """Probe until the result is ``want`` (the lossy link drops some tries)."""
    result = lab.probe(address, **kwargs)  # type: ignore[arg-type]
    for _ in range(attempts - 1):
        if result.result == want:
            break
        result = lab.probe(address, **kwargs)  # type: ignore[arg-type]
    return result


def _parallel(
    fn: Callable[[str], netlab.ProbeResult], items: list[str]
) -> list[netlab.ProbeResult]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(fn, items))


def _ip_json(lab: netlab.Lab, ns: str, *args: str) -> list[dict[str, object]]:
    proc = lab.run(ns, ["ip", "-j", *args], timeout=10)
    assert proc.returncode == 0, proc.stderr
    data: list[dict[str, object]] = json.loads(proc.stdout or "[]")
    return data


# ------------------------------------------------------------------ names


def test_names_are_unique_and_ours(lab: netlab.Lab) -> None:
    existing = set(netlab.list_namespaces())
    assert set(lab.namespaces) <= existing
    assert all(netlab.NAME_RE.match(ns) for ns in lab.namespaces)
    assert len({netlab.Lab().tag for _ in range(20)} | {lab.tag}) == 21
    for ns in lab.namespaces:
        for link in _ip_json(lab, ns, "link"):
            assert len(str(link["ifname"])) <= 15


def test_root_namespace_untouched(lab: netlab.Lab) -> None:
    out = subprocess.run(
        ["ip", "-j", "addr"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert "10.77." not in out
    assert "fd77:" not in out
    assert TOPO.dns_server not in Path("/etc/resolv.conf").read_text()


# ------------------------------------------------------------------ hosts


@pytest.mark.parametrize(
    "group", ["lan_xen", "lossy_xen", "routed_xen", "down_trap_xen", "v6_trap_xen"]
)
def test_xen_fakes_answer_like_xend(lab: netlab.Lab, group: str) -> None:
    for address in getattr(lab.topo, group):
        help_reply = _probe_until(lab, address, "open", send="(help)")
        assert help_reply.result == "open", address
        assert help_reply.reply == XEND_OK, address
        other = _probe_until(lab, address, "open", send="GET / HTTP/1.0\r\n\r\n")
        assert other.reply == XEND_ERR, address


def test_decoy_answers_http(lab: netlab.Lab) -> None:
    for address in lab.topo.lan_decoy:
        res = lab.probe(address, send="GET / HTTP/1.0\r\n\r\n")
        assert res.result == "open"
        assert res.reply is not None
        assert res.reply.startswith("HTTP/1.")  # the package's fake or the builtin one


def test_closed_addresses_refuse_quickly(lab: netlab.Lab) -> None:
    for address in lab.topo.lan_closed:
        res = lab.probe(address, timeout=1.0)
        assert res.result == "refused", address
        assert res.seconds < 0.5
    for address in lab.topo.lossy_closed:
        res = _probe_until(lab, address, "refused", timeout=1.0)
        assert res.result == "refused", address


def test_dark_and_firewalled_addresses_time_out(lab: netlab.Lab) -> None:
    addresses = [*lab.topo.dark, *lab.topo.firewalled]
    results = _parallel(lambda a: lab.probe(a, timeout=1.0), addresses)
    for address, res in zip(addresses, results, strict=True):
        assert res.result == "timeout", (address, res)
        assert 0.9 <= res.seconds < 1.5, (address, res)


def test_dark_has_no_arp_but_firewalled_has(lab: netlab.Lab) -> None:
    # Both were just probed (or are probed now); the neighbour table tells them apart.
    _parallel(lambda a: lab.probe(a, timeout=0.3), [*lab.topo.lan_dark, *lab.topo.lan_firewalled])
    for address in lab.topo.lan_firewalled:
        (entry,) = _ip_json(lab, lab.admin, "neigh", "show", address, "dev", "lan0")
        assert "lladdr" in entry, entry
    for address in lab.topo.lan_dark:
        for entry in _ip_json(lab, lab.admin, "neigh", "show", address, "dev", "lan0"):
            assert "lladdr" not in entry, entry


def test_lossy_link_loses_some_packets(lab: netlab.Lab) -> None:
    if lab.loss_percent == 0:
        pytest.skip("the lab was built without loss")
    code = (
        "import socket, sys\n"
        "lost = 0\n"
        "for _ in range(100):\n"
        "    s = socket.socket(); s.settimeout(0.3)\n"
        "    try:\n"
        "        s.connect((sys.argv[1], 8002))\n"
        "    except ConnectionRefusedError:\n"
        "        pass\n"
        "    except TimeoutError:\n"
        "        lost += 1\n"
        "    finally:\n"
        "        s.close()\n"
        "print(lost)\n"
    )
    lossy = lab.python_run(lab.admin, code, lab.topo.lossy_closed[0], timeout=60)
    assert lossy.returncode == 0, lossy.stderr
    assert 1 <= int(lossy.stdout) <= 50
    clean = lab.python_run(lab.admin, code, lab.topo.lan_closed[0], timeout=60)
    assert clean.returncode == 0, clean.stderr
    assert int(clean.stdout) == 0


# ------------------------------------------------------------------ interfaces and routes


def test_gateway_subnet_reachable_only_via_gateway(lab: netlab.Lab) -> None:
    target = lab.topo.routed_xen[0]
    (route,) = _ip_json(lab, lab.admin, "route", "get", target)
    assert route["gateway"] == lab.topo.gateway
    assert route["dev"] == "gw0"
    for link in _ip_json(lab, lab.admin, "addr"):
        for info in link.get("addr_info", []):  # type: ignore[attr-defined]
            assert not str(info["local"]).startswith("10.77.64."), info
    assert lab.probe(target).result == "open"
    # A host on the admin's /24 has no route there: reachable only through the gateway.
    assert lab.probe(target, ns=lab.lan).result == "unreachable"


def test_down_interface_is_down_but_addressed(lab: netlab.Lab) -> None:
    (link,) = _ip_json(lab, lab.admin, "addr", "show", "dev", lab.topo.down_iface)
    assert "UP" not in link["flags"]  # type: ignore[operator]
    assert link["operstate"] == "DOWN"
    addrs = {info["local"] for info in link["addr_info"]}  # type: ignore[attr-defined]
    assert lab.topo.admin_down in addrs
    # The trap: a sweep of the down interface's /24 would find a listener.
    assert lab.probe(lab.topo.down_trap_xen[0]).result == "open"


def test_up_interfaces(lab: netlab.Lab) -> None:
    links = {str(link["ifname"]): link for link in _ip_json(lab, lab.admin, "addr")}
    for dev in ("lan0", "lossy0", "gw0"):
        assert "UP" in links[dev]["flags"]  # type: ignore[operator]
    lan_addrs = {
        (info["local"], info["prefixlen"])
        for info in links["lan0"]["addr_info"]  # type: ignore[attr-defined]
    }
    assert (lab.topo.admin_lan, 24) in lan_addrs
    assert (lab.topo.admin_v6, 64) in lan_addrs
    lossy_addrs = {
        (info["local"], info["prefixlen"])
        for info in links["lossy0"]["addr_info"]  # type: ignore[attr-defined]
    }
    assert (lab.topo.admin_lossy, 20) in lossy_addrs


# ------------------------------------------------------------------ DNS


def test_resolv_conf_points_at_dnsmasq(lab: netlab.Lab) -> None:
    proc = lab.run(lab.admin, ["cat", "/etc/resolv.conf"], timeout=10)
    assert f"nameserver {lab.topo.dns_server}" in proc.stdout


def test_ptr_through_system_resolver(lab: netlab.Lab) -> None:
    code = (
        "import json, socket, sys, time\n"
        "out = {}\n"
        "for a in sys.argv[1:]:\n"
        "    t = time.monotonic()\n"
        "    try:\n"
        "        name = socket.gethostbyaddr(a)[0]\n"
        "    except (socket.herror, socket.gaierror):\n"
        "        name = None\n"
        "    out[a] = [name, time.monotonic() - t]\n"
        "print(json.dumps(out))\n"
    )
    addresses = sorted(lab.topo.all_xen | set(lab.topo.lan_decoy))
    proc = lab.python_run(lab.admin, code, *addresses, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for address in addresses:
        name, seconds = got[address]
        assert name == lab.topo.hostname(address), address
        assert seconds < 2.0, address
    assert sum(name is not None for name, _ in got.values()) >= 3
    assert sum(name is None for name, _ in got.values()) >= 3


# ------------------------------------------------------------------ lifecycle


def test_teardown_leaves_nothing(lab_available: None) -> None:
    start = time.monotonic()
    other = netlab.Lab(loss_percent=0)
    with other:
        bring_up = time.monotonic() - start
        assert other.is_up
        assert other.admin in netlab.list_namespaces()
        ns_pids = [pid for ns in other.namespaces for pid in netlab.namespace_pids(ns)]
        assert len(ns_pids) >= 4  # dnsmasq + three listener processes
        assert (netlab.NETNS_ETC / other.admin / "resolv.conf").exists()
        workdir = other.workdir
    assert other.leftovers() == []
    assert workdir is not None
    assert not workdir.exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in ns_pids)
    assert bring_up < 10, f"bring-up took {bring_up:.1f}s"


def test_teardown_runs_when_the_body_fails(lab_available: None) -> None:
    other = netlab.Lab(loss_percent=0)
    with pytest.raises(RuntimeError, match="boom"), other:
        raise RuntimeError("boom")
    assert other.leftovers() == []


def test_failed_bring_up_cleans_up(lab_available: None) -> None:
    broken = netlab.Lab(loss_percent=0, python="/nonexistent/python3")
    with pytest.raises(netlab.LabError):
        broken.up()
    assert broken.leftovers() == []


def test_cleanup_stale_removes_labs_of_dead_processes(lab_available: None) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{netlab.NAME_PREFIX}-{dead.pid}-0000-adm"
    made_etc = not netlab.NETNS_ETC.exists()
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
    try:
        (netlab.NETNS_ETC / stale).mkdir(parents=True)
        (netlab.NETNS_ETC / stale / "resolv.conf").write_text("nameserver 10.77.1.2\n")
        assert stale in netlab.cleanup_stale()
        assert stale not in netlab.list_namespaces()
        assert not (netlab.NETNS_ETC / stale).exists()
    finally:
        netlab.delete_namespace(stale)
        if made_etc:
            with contextlib.suppress(OSError):
                netlab.NETNS_ETC.rmdir()
