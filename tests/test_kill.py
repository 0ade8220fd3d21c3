"""Killed at any moment, by any signal, of any process: -o FILE is never left partial.

Each run sweeps a loopback /17 with two probe processes and ``-o FILE``, and
is killed at a random moment (0.3-1.2 s) by SIGINT, SIGTERM or SIGKILL of the scanning
process, or SIGTERM/SIGKILL of a probe process. Afterwards FILE holds either
its previous content or the whole new result, never part of one; stderr has
no traceback; and no probe process is left. 50 runs, each bounded in time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Listen, hosts_of

RUNS = 50
#: Connections per second: a /17 (32,768 probes) then takes about 1.3 s.
RATE = 25_000
PREVIOUS = "a previous, complete result\n"

#: What each kind of kill may end in: the kill's own status, or 0 (the run
#: had already finished), or 3 (a probe process died: the scan failed).
KILLS: dict[str, set[int]] = {
    "parent-SIGINT": {130, 0},
    "parent-SIGTERM": {143, 0},
    "parent-SIGKILL": {-9, 0},
    "probe-SIGTERM": {3, 0},
    "probe-SIGKILL": {3, 0},
}


def _probe_processes(parent: int) -> list[int]:
    """The probe processes of ``parent``: they carry its PID as their argument."""
    marker = f"xendiscover._sweep._worker\0{parent}\0".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(pid))
    return found


def _kill(proc: subprocess.Popen[str], how: str) -> None:
    target, name = how.split("-")
    signum = getattr(signal, name)
    if target == "parent":
        proc.send_signal(signum)
        return
    for pid in _probe_processes(proc.pid):
        os.kill(pid, signum)


def _result(text: str) -> object:
    """A complete result's machines, latencies left out (they differ from run to run); or the text.

    The run metadata (its times) differs from run to run too: only the machines are compared.
    """
    try:
        machines = json.loads(text)["machines"]
    except (json.JSONDecodeError, TypeError, KeyError):
        return text  # not a whole result document: compared as it is, and fails
    for machine in machines:
        for service in machine["services"]:
            service.pop("latency_ms")
    return machines


def _argv(net: str, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "xendiscover", "-p", "8002", "--no-resolve", "--no-fingerprint",
        # --rate stretches the sweep to about 1.3 s, so kills land mid-run.
        "--workers", "2", "--rate", str(RATE), "-f", "json", "-o", str(out), net,
    ]  # fmt: skip


def test_a_killed_run_never_leaves_a_partial_output_file(listeners: Listen, tmp_path: Path) -> None:
    base = f"127.{random.randrange(100, 250)}.{random.choice((0, 128))}"
    net = f"{base}.0/17"
    listeners(hosts_of(net, 3, 5000, 20000, 32000), 8002)
    out = tmp_path / "inventory.json"
    complete = subprocess.run(_argv(net, out), capture_output=True, text=True, timeout=60)
    assert complete.returncode == 0, complete.stderr
    expected = out.read_text()
    assert expected.count('"addresses"') == 4  # four machines
    rng = random.Random(os.environ.get("PYTEST_SEED", time.time_ns()))
    outcomes: dict[str, set[int]] = {how: set() for how in KILLS}
    for run in range(RUNS):
        out.write_text(PREVIOUS)
        how = list(KILLS)[run % len(KILLS)]
        proc = subprocess.Popen(_argv(net, out), stderr=subprocess.PIPE, text=True)
        # From 0.3 s: the interpreter's own start-up (longer on a loaded
        # machine), before the command's first line runs, is Python's to
        # handle; signals during the command's start-up have their own test.
        time.sleep(rng.uniform(0.3, 1.2))
        _kill(proc, how)
        _, err = proc.communicate(timeout=60)
        deadline = time.monotonic() + 5
        while _probe_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _probe_processes(proc.pid) == [], f"run {run} ({how}) left a probe process"
        now = out.read_text()
        assert now == PREVIOUS or _result(now) == _result(expected), f"run {run} ({how}): {now!r}"
        assert "Traceback" not in err, err
        if how.startswith("parent") and proc.returncode in (-signal.SIGTERM, -signal.SIGINT):
            # CPython puts signals back to their defaults as the interpreter
            # exits: a signal then kills a command that has done its work.
            assert _result(now) == _result(expected), (run, how, "killed before the end")
        else:
            assert proc.returncode in KILLS[how], (run, how, proc.returncode, err)
        outcomes[how].add(proc.returncode)
        for leftover in tmp_path.glob(".inventory.json.*.tmp"):  # only SIGKILL leaves one
            assert how == "parent-SIGKILL", leftover
            leftover.unlink()
    # The kills did land mid-run (not only after the end), for every kind.
    assert all(codes - {0} for codes in outcomes.values()), outcomes


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_ends_the_command_cleanly(signum: int, tmp_path: Path) -> None:
    # The command is still starting: it waits to read its targets from a FIFO
    # that nobody writes, before any event loop (and its handlers) exists.
    fifo = tmp_path / "targets"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xendiscover", "-p", "8002", "--no-resolve", "-iL", str(fifo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)
    assert proc.poll() is None, "the command did not wait for its targets"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    expected = 143 if signum == signal.SIGTERM else 130
    assert proc.returncode == expected, err
    assert err.strip().endswith(f"interrupted ({signal.Signals(signum).name})"), err
