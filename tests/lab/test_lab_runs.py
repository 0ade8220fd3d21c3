"""Across runs and shards, in namespaces (issue 25): ``diff`` and ``merge`` on real sweeps.

Every sweep runs as ``ip netns exec <scanner> python -m xendiscover`` with
explicit targets inside the lab's own networks, and ``--no-resolve`` or
``--nameserver`` at the lab's dnsmasq.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netlab
import netlab_runs
import pytest

pytestmark = [pytest.mark.netns]

HOSTS = "10.79.1.128/25"
UUID = "7c0e4c2a-5a43-4c59-9d2e-1b7f0f6c3a11"
PORTS = [arg for port in netlab_runs.PORTS for arg in ("-p", str(port))]


@pytest.fixture(scope="module")
def lab_of_runs(lab_available: None) -> Iterator[netlab_runs.RunsLab]:
    the_lab = netlab_runs.RunsLab()
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture
def runs_lab(lab_of_runs: netlab_runs.RunsLab) -> Iterator[netlab_runs.RunsLab]:
    """The lab, its scene stopped after each test."""
    try:
        yield lab_of_runs
    finally:
        lab_of_runs.stop_scene()


def _sweep(lab: netlab.Lab, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [lab.python, "-m", "xendiscover", "--no-resolve", "-q", *PORTS, "-o", str(out), *args]
    return lab.run(lab.admin, argv, timeout=180)


def _diff(lab: netlab.Lab, old: Path, new: Path) -> tuple[int, list[dict[str, Any]]]:
    argv = [lab.python, "-m", "xendiscover", "diff", "-f", "jsonl", str(old), str(new)]
    done = lab.run(lab.admin, argv, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_a_renumbered_added_stopped_and_changed_host_are_exactly_four_events(
    runs_lab: netlab_runs.RunsLab, tmp_path: Path
) -> None:
    runs_lab.scene(
        f"xapi:10.79.1.130:{UUID}:xen7.pool.example",
        "xend:10.79.1.131",
        "xend-http:10.79.1.131",
        "xend:10.79.1.132",
    )
    old, new = tmp_path / "old.jsonl", tmp_path / "new.json"
    done = _sweep(runs_lab, old, "-f", "jsonl", HOSTS)
    assert done.returncode == 0, done.stderr
    runs_lab.scene(
        f"xapi:10.79.1.170:{UUID}:xen7.pool.example",  # renumbered: .130 -> .170
        "xend:10.79.1.131",  # its xend-http stopped
        "xend-reject:10.79.1.132",  # now outside hosts-allow: likely, not confirmed
        "xend:10.79.1.140",  # new
    )
    done = _sweep(runs_lab, new, "--json", HOSTS)
    assert done.returncode == 0, done.stderr
    code, events = _diff(runs_lab, old, new)
    assert code == 1, events
    got = sorted((e["event"], e["addresses"], e["port"]) for e in events)
    assert got == [
        ("added", ["10.79.1.140"], None),
        ("moved", ["10.79.1.170"], None),
        ("service-removed", ["10.79.1.131"], 8000),
        ("verdict-changed", ["10.79.1.132"], 8002),
    ], events
    moved = next(e for e in events if e["event"] == "moved")
    assert (moved["matched_by"], moved["old"]) == ("host_uuid", ["10.79.1.130"])
    verdict = next(e for e in events if e["event"] == "verdict-changed")
    assert (verdict["old"], verdict["new"]) == ("confirmed", "likely")
    same_code, same = _diff(runs_lab, new, new)
    assert (same_code, same) == (0, [])


def test_a_sweep_cut_short_by_sigint_never_says_removed(
    runs_lab: netlab_runs.RunsLab, tmp_path: Path
) -> None:
    runs_lab.scene("xend:10.79.1.131", "xend:10.79.1.250")
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert _sweep(runs_lab, old, "--json", HOSTS).returncode == 0
    # A /16 at 200 connects a second: far from its end when SIGINT comes.
    argv = [runs_lab.python, "-m", "xendiscover", "--no-resolve", "-q", *PORTS, "--json"]
    argv += ["--rate", "200", "-o", str(new), "10.79.0.0/16"]
    proc = subprocess.Popen(
        runs_lab.exec_argv(runs_lab.admin, argv),
        env=runs_lab.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        proc.send_signal(signal.SIGINT)  # ip netns exec passes it on (it execs)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, err
    partial = Path(f"{new}.partial")
    run = json.loads(partial.read_text())["run"]
    assert (run["completed"], run["stopped"]) == (False, "SIGINT")
    code, events = _diff(runs_lab, old, partial)
    assert "removed" not in {e["event"] for e in events}
    assert {e["event"] for e in events} == {"not-checked"}
    assert code == 0  # nothing known to have changed


def _machines(path: Path) -> list[tuple[Any, ...]]:
    """What must survive sharding: each machine's addresses, names and services."""
    machines = json.loads(path.read_text())["machines"]
    return [
        (
            m["addresses"],
            m["hostname"],
            m["hostname_source"],
            m["verdict"],
            [(s["address"], s["port"], s["service"], s["verdict"]) for s in m["services"]],
        )
        for m in machines
    ]


def test_four_shards_of_a_24_in_parallel_merge_into_the_unsharded_run(
    lab: netlab.Lab, tmp_path: Path
) -> None:
    t = lab.topo
    options = ["--nameserver", t.dns_server, "--all", "-p", str(t.port)]
    base = [lab.python, "-m", "xendiscover", "-q", *options]
    shards = [str(tmp_path / f"shard-{i}.jsonl") for i in range(1, 5)]
    procs = [
        subprocess.Popen(
            lab.exec_argv(lab.admin, [*base, "--shard", f"{i}/4", "-f", "jsonl", "-o", out, net]),
            env=lab.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, out, net in zip(range(1, 5), shards, [t.lan_net] * 4, strict=True)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1), err
    whole = tmp_path / "whole.json"
    done = lab.run(lab.admin, [*base, "--json", "-o", str(whole), t.lan_net], timeout=180)
    assert done.returncode == 0, done.stderr
    merged = tmp_path / "merged.json"
    merge = [lab.python, "-m", "xendiscover", "merge", "--json", "-o", str(merged)]
    done = lab.run(lab.admin, [*merge, *shards], timeout=60)
    assert done.returncode == 0, done.stderr
    assert _machines(merged) == _machines(whole)
    assert {a for m in _machines(whole) for a in m[0]} >= set(t.lan_xen)
    assert any(m[1] is not None for m in _machines(merged))  # names came through
    missing = lab.run(lab.admin, [*merge, shards[0], shards[1], shards[3]], timeout=60)
    assert missing.returncode == 2
    assert missing.stderr == "xendiscover merge: error: missing shard 3/4\n"
