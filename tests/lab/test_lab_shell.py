"""Issue 21 in the namespace lab: the real command, a terminal on stderr, a pipe on stdout.

Every run here is ``python -m xendiscover`` inside the lab's admin
namespace (its DNS is the lab's dnsmasq), with stderr a pseudo-terminal
where the live display matters and stdout a pipe: what reached each, and
the exit status.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import netlab
from pty_run import run_in_pty

from xendiscover._model import XEN_VERDICTS


def _prefix(lab: netlab.Lab) -> list[str]:
    return lab.exec_argv(lab.admin, [])


def _cli(lab: netlab.Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(lab.admin, [lab.python, "-m", "xendiscover", *args], timeout=120)


def test_jsonl_typed_in_a_terminal_reaches_the_pipe(lab: netlab.Lab) -> None:
    t = lab.topo
    done = run_in_pty(["-p", str(t.port), "-f", "jsonl", t.lan_net], prefix=_prefix(lab))
    assert done.code == 0, done.terminal
    records = [r for r in map(json.loads, done.stdout.splitlines()) if r["record"] == "port"]
    assert sorted(r["address"] for r in records) == sorted([*t.lan_xen, *t.lan_decoy])
    for record in records:
        name = t.hostname(str(record["address"]))
        assert record["machine"] == (name or record["address"])  # the lab's PTRs are confirmed
    assert '"address"' not in done.terminal  # the display never carries a record
    assert "sweeping" in done.terminal


def test_nmap_octet_lists_and_comma_exclusions(lab: netlab.Lab) -> None:
    t = lab.topo
    base = t.lan_xen[0].rsplit(".", 1)[0]
    last = [a.rsplit(".", 1)[1] for a in (*t.lan_xen, *t.lan_decoy)]
    spec = f"{base}.{last[0]}-{last[2]},{last[3]}"  # 10.77.1.131-133,140
    exclude = f"{t.lan_xen[1]},{t.lan_decoy[0]}"
    proc = _cli(lab, "-p", str(t.port), "-f", "jsonl", "-q", "--exclude", exclude, spec)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    found = sorted(r["address"] for r in records if r["record"] == "port")
    assert found == [t.lan_xen[0], t.lan_xen[2]]


def test_a_name_that_does_not_resolve_in_a_targets_file_is_a_warning(
    lab: netlab.Lab, tmp_path: Path
) -> None:
    t = lab.topo
    name = t.hostname(t.lan_xen[0])
    assert name is not None
    targets = tmp_path / "hosts.txt"
    targets.write_text(f"{name}\nnosuch.lab.test  # gone\n{t.lan_xen[2]}\n")
    proc = _cli(lab, "-p", str(t.port), "-q", "-iL", str(targets))
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [name, t.lan_xen[2]]
    assert proc.stderr == (
        "xendiscover: warning: cannot resolve host name 'nosuch.lab.test' (from -iL); skipped\n"
    )
    targets.write_text("nosuch.lab.test\n")
    proc = _cli(lab, "-p", str(t.port), "-q", "-iL", str(targets))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1].startswith("xendiscover: error: no target left")


def test_only_a_decoy_found_gives_the_all_hint(lab: netlab.Lab) -> None:
    t = lab.topo
    proc = _cli(lab, "-p", str(t.port), *t.lan_decoy)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "xendiscover: 1 machine with open ports, none Xen; --all lists them\n"


def test_all_first_column_is_one_key_per_machine(lab: netlab.Lab) -> None:
    t = lab.topo
    proc = _cli(lab, "-p", str(t.port), "-q", "--all", t.lan_net)
    assert proc.returncode == 0, proc.stderr
    machines = [line.split("\t") for line in proc.stdout.splitlines() if not line.startswith(" ")]
    keys = [cells[0] for cells in machines]
    expected = [t.hostname(a) or a for a in sorted([*t.lan_xen, *t.lan_decoy])]
    assert keys == expected
    assert len(set(keys)) == len(keys)
    xen = [cells[0] for cells in machines if cells[2] in XEN_VERDICTS]
    assert xen == [t.hostname(a) or a for a in t.lan_xen]
