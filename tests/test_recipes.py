"""The recipes of docs/runs.md, run (or validated) from the very files the page includes.

Each recipe sweeps shards of a loopback network (bare listeners, ``--no-resolve``,
``--no-fingerprint``) with the real scheduler where one is installed (GNU
parallel, xargs, ansible-playbook over local connections, systemd-analyze),
and its merged result must equal one unsharded run. The Kubernetes manifest
is validated against a vendored subset of the Kubernetes JSON schema, and
its shell arithmetic run with every ``JOB_COMPLETION_INDEX``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import Listen, hosts_of, run_xendiscover

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "docs" / "recipes"
PORT = 8002
OPTIONS = ["--no-resolve", "--no-fingerprint", "-p", str(PORT)]


def test_every_recipe_is_included_in_the_page_as_it_is() -> None:
    page = (ROOT / "docs" / "runs.md").read_text(encoding="utf-8")
    for recipe in sorted(RECIPES.iterdir()):
        assert f'--8<-- "docs/recipes/{recipe.name}"' in page, recipe.name


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``xendiscover`` on PATH is this checkout, in this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    command = bin_dir / "xendiscover"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m xendiscover "$@"\n')
    command.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": _pythonpath()}


def _pythonpath() -> str:
    parts = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(":"))]
    return ":".join(parts)


@pytest.fixture
def network(loopback_net: str, listeners: Listen) -> str:
    """A loopback /20 with open ports on addresses spread across it (and across shards)."""
    listeners(hosts_of(loopback_net, 1, 2, 3, 7, 100, 1000, 2049, 4094), PORT)
    return loopback_net


def _machines(path: Path) -> list[dict[str, Any]]:
    machines: list[dict[str, Any]] = json.loads(path.read_text())["machines"]
    for machine in machines:
        for service in machine["services"]:
            service.pop("latency_ms")
    return machines


def _unsharded(network: str, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "unsharded.json"
    done = run_xendiscover(*OPTIONS, "-f", "json", "-o", str(out), network)
    assert done.returncode == 0, done.stderr
    machines = _machines(out)
    assert len(machines) == 8
    return machines


def _run(argv: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


@pytest.mark.parametrize("recipe", ["shards-parallel.sh", "shards-xargs.sh"])
def test_parallel_shards_merge_into_the_unsharded_result(
    recipe: str, network: str, tmp_path: Path, shim: dict[str, str]
) -> None:
    if recipe == "shards-parallel.sh" and shutil.which("parallel") is None:
        pytest.skip("GNU parallel is not installed (.ci/debian-packages has it)")
    out = tmp_path / "out"
    out.mkdir()
    env = {**shim, "N": "4", "OUT": str(out)}
    done = _run(["sh", str(RECIPES / recipe), *OPTIONS, network], env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("shard-*.jsonl")) == [
        f"shard-{i}.jsonl" for i in range(1, 5)
    ]
    merged = json.loads((out / "all.json").read_text())["run"]
    assert (merged["merged"], merged["completed"]) == (["1/4", "2/4", "3/4", "4/4"], True)
    assert _machines(out / "all.json") == _unsharded(network, tmp_path)


def test_a_shard_that_failed_is_named_by_the_merge(
    network: str, tmp_path: Path, shim: dict[str, str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # A shard that cannot write its file (a directory is in the way) fails alone.
    (out / "shard-3.jsonl").mkdir()
    env = {**shim, "N": "4", "OUT": str(out)}
    done = _run(["sh", str(RECIPES / "shards-xargs.sh"), *OPTIONS, network], env)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("xendiscover merge: error: ")
    assert "shard-3.jsonl" in done.stderr.splitlines()[-1]
    assert not (out / "all.json").exists()


def test_the_slurm_array_script_sweeps_shard_i_of_n(
    network: str, tmp_path: Path, shim: dict[str, str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # As Slurm runs "--array=5-8": task IDs 5..8, four tasks.
    for task in range(5, 9):
        env = {
            **shim,
            "RESULTS": str(out),
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": "5",
            "SLURM_ARRAY_TASK_COUNT": "4",
        }
        done = _run(["bash", str(RECIPES / "slurm-array.sh"), *OPTIONS, network], env)
        assert done.returncode == 0, done.stderr
    shards = [out / f"shard-{i}.jsonl" for i in range(1, 5)]
    runs = [json.loads(path.read_text().splitlines()[0]) for path in shards]
    assert [r["shard"] for r in runs] == ["1/4", "2/4", "3/4", "4/4"]
    merged = tmp_path / "all.json"
    done = run_xendiscover("merge", "-f", "json", "-o", str(merged), *map(str, shards))
    assert done.returncode == 0, done.stderr
    assert _machines(merged) == _unsharded(network, tmp_path)


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="needs ansible-core")
def test_the_ansible_playbook_runs_a_shard_per_host_and_merges(
    network: str, tmp_path: Path, shim: dict[str, str]
) -> None:
    inventory = tmp_path / "inventory.ini"
    scanners = "".join(f"scan{i} ansible_connection=local\n" for i in range(1, 4))
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    inventory.write_text(
        f"[scanners]\n{scanners}\n[all:vars]\nansible_python_interpreter={python}\n"
    )
    (tmp_path / "work").mkdir()
    (tmp_path / "results").mkdir()
    extra = {
        "xen_targets": [network],
        "xendiscover_options": OPTIONS,
        "work_dir": str(tmp_path / "work"),
        "results_dir": str(tmp_path / "results"),
    }
    env = {
        **shim,
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    argv = ["ansible-playbook", "-i", str(inventory), str(RECIPES / "shards-playbook.yml")]
    done = _run([*argv, "-e", json.dumps(extra)], env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed=0" in done.stdout
    result = tmp_path / "results" / "xen-hosts.json"
    assert json.loads(result.read_text())["run"]["merged"] == ["1/3", "2/3", "3/3"]
    assert _machines(result) == _unsharded(network, tmp_path)


def _kubernetes_schema() -> dict[str, Any]:
    path = ROOT / "tests" / "data" / "kubernetes" / "job-batch-v1.31.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def test_the_kubernetes_job_validates_against_the_vendored_schema() -> None:
    manifest = yaml.safe_load((RECIPES / "indexed-job.yaml").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(_kubernetes_schema())
    validator.validate(manifest)
    assert manifest["spec"]["completionMode"] == "Indexed"
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["completions"] = "4"  # not an integer
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    assert len(list(validator.iter_errors(broken))) == 2


def test_the_kubernetes_job_gives_each_pod_its_own_shard(tmp_path: Path) -> None:
    manifest = yaml.safe_load((RECIPES / "indexed-job.yaml").read_text(encoding="utf-8"))
    spec = manifest["spec"]
    container = spec["template"]["spec"]["containers"][0]
    # A stand-in xendiscover that records its arguments: the pod's real command line.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xendiscover").write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    (bin_dir / "xendiscover").chmod(0o755)
    calls = tmp_path / "calls"
    for index in range(spec["completions"]):  # JOB_COMPLETION_INDEX: 0 .. completions-1
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}
        env["JOB_COMPLETION_INDEX"] = str(index)
        done = _run([*container["command"], *container["args"]], env)
        assert done.returncode == 0, done.stderr
    lines = [line.split() for line in calls.read_text().splitlines()]
    count = spec["completions"]
    shards = range(1, count + 1)
    assert [line[:2] for line in lines] == [["--shard", f"{i}/{count}"] for i in shards]
    mount = container["volumeMounts"][0]["mountPath"]
    assert [line[5] for line in lines] == [f"{mount}/shard-{i}.jsonl" for i in shards]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    root = tmp_path / "root"
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for name in ("xendiscover-watch.service", "xendiscover-watch.timer"):
        shutil.copy(RECIPES / name, units / name)
    libexec = root / "usr" / "local" / "libexec"
    libexec.mkdir(parents=True)
    shutil.copy(RECIPES / "xendiscover-watch", libexec / "xendiscover-watch")
    argv = ["systemd-analyze", "verify", f"--root={root}"]
    argv += [str(units / "xendiscover-watch.service"), str(units / "xendiscover-watch.timer")]
    done = _run(argv, dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert "xendiscover-watch" not in done.stderr, done.stderr
    (libexec / "xendiscover-watch").unlink()  # what it checks: the script must be there
    assert _run(argv, dict(os.environ)).returncode != 0


def test_the_watch_script_reports_changes_and_keeps_the_last_good_result(
    loopback_net: str, listeners: Listen, tmp_path: Path, shim: dict[str, str]
) -> None:
    first, second, third = hosts_of(loopback_net, 5, 6, 7)
    state = tmp_path / "state"
    state.mkdir()
    script = [str(RECIPES / "xendiscover-watch"), str(state)]
    env = {**shim, "XENDISCOVER_TARGETS": loopback_net, "XENDISCOVER_OPTIONS": " ".join(OPTIONS)}
    held = listeners([first, second], PORT)
    done = _run(script, env)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr  # the first: nothing to compare
    last = state / "last.json"
    assert [m["address"] for m in _machines(last)] == [first, second]
    held[1].close()  # the second machine goes away, a third comes
    listeners([third], PORT)
    done = _run(script, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"- {second} [{second}] removed: unknown",
        f"+ {third} [{third}] added: unknown",
    ]
    assert [m["address"] for m in _machines(last)] == [first, third]
    kept = last.read_text()
    broken = {**env, "XENDISCOVER_OPTIONS": " ".join([*OPTIONS, "--timeout", "-1"])}
    done = _run(script, broken)  # a sweep that does not complete
    assert done.returncode == 2
    assert "kept the last result" in done.stderr
    assert last.read_text() == kept
