"""Issue 21: the command in an administrator's shell.

nmap's syntax, files that are not regular, pipes and terminals, conflicting
options, the live display's words, per-port records that carry their
machine, the hints. Every scan here runs on loopback, with ``-n``.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from pty_run import run_in_pty
from support import Listen, hosts_of
from test_cli import serve_in_a_thread  # noqa: F401 - a fixture, used by name

from xendiscover import Finding, group_findings
from xendiscover._console import EXIT_STATUSES, describe
from xendiscover._errors import TargetError
from xendiscover._output import (
    ansible_inventory,
    format_all,
    format_csv,
    port_records,
    write_atomically,
)
from xendiscover._sweep import ScanStats
from xendiscover._targets import TargetSpace, parse_ports
from xendiscover.testing import FakeHttpServer, FakeServer, FakeXapi, XapiIdentity

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "xendiscover"]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def ports_of(jsonl: str) -> list[dict[str, object]]:
    """The port records of a jsonl output (between its run and end records)."""
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert records[0]["record"] == "run"
    assert records[-1]["record"] == "end"
    return [r for r in records if r["record"] == "port"]


def no_dns(name: str) -> str:
    raise AssertionError(f"looked up {name!r}")


def size(*specs: str, exclude: tuple[str, ...] = ()) -> int:
    return TargetSpace.from_specs(specs, exclude=exclude, resolve=no_dns).size


# --------------------------------------------------------------- nmap's syntax


@pytest.mark.parametrize(
    ("spec", "count"),
    [
        # nmap's reference guide, "Target Specification".
        ("192.168.10.0/24", 256),
        ("192.168.0-255.1-254", 256 * 254),
        ("0-255.0-255.13.37", 65536),
        ("10.0.0,1,3-7.-", 7 * 256),  # a lone "-" is the whole octet
        ("10.0.0.*", 256),
        ("10.0.0-1.10", 2),
        ("10.0.0.1-40,50", 41),
        ("10.0.0.-20", 21),
        ("10.0.0.250-", 6),
    ],
)
def test_targets_in_nmap_syntax(spec: str, count: int) -> None:
    assert size(spec) == count


def test_octet_ranges_walk_the_right_addresses() -> None:
    space = TargetSpace.from_specs(["192.168.3-5,7.1"], resolve=no_dns)
    assert [a for _, a in space] == ["192.168.3.1", "192.168.4.1", "192.168.5.1", "192.168.7.1"]
    assert size("10.0.0.1-40,50", exclude=("10.0.0.2-39",)) == 3


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("10.0.0.300", "'300'"),
        ("10.0.0.5-2", "'5-2'"),
        ("10.0.0.1,,3", "an empty part"),
        ("*.*.*.1", "separate ranges"),  # 16,777,216 ranges: refused, not walked
    ],
)
def test_bad_octet_targets_quote_the_value(spec: str, quoted: str) -> None:
    with pytest.raises(TargetError) as caught:
        TargetSpace.from_specs([spec], resolve=no_dns)
    assert repr(spec) in str(caught.value)
    assert quoted in str(caught.value)


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        # nmap's reference guide, "Port Specification and Scan Order".
        ("22", (22,)),
        ("1-65535", tuple(range(1, 65536))),
        ("-", tuple(range(1, 65536))),  # -p-
        ("-1023", tuple(range(1, 1024))),
        ("60000-", tuple(range(60000, 65536))),
        ("80-85,443,8000-8005", (*range(80, 86), 443, *range(8000, 8006))),
        ("443,80,443", (443, 80)),  # order kept, each once
    ],
)
def test_ports_in_nmap_syntax(text: str, ports: tuple[int, ...]) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["U:53,111", "80x", "0", "65536", "90-80", "80,,443", ""])
def test_bad_ports_quote_the_value(text: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_ports(text)
    assert repr(text) in str(caught.value)


def test_port_lists_on_the_command_line_and_in_the_environment(
    loopback_net: str, listeners: Listen
) -> None:
    a, b = hosts_of(loopback_net, 3, 4)
    listeners([a], 8002)
    listeners([b], 8006)
    for args, env in (
        (["-p", "8002,8006"], {}),
        (["-p", "8001-8010"], {}),
        ([], {"XENDISCOVER_PORT": "8002,8006"}),
    ):
        proc = run(
            "-n", "--no-fingerprint", "-q", "-f", "jsonl", *args, f"{a}-{b.split('.')[-1]}", env=env
        )
        assert proc.returncode == 0, proc.stderr
        assert sorted((r["address"], r["port"]) for r in ports_of(proc.stdout)) == [
            (a, 8002),
            (b, 8006),
        ]
    proc = run("-n", "-p", "80,x", "127.0.0.1", env={"XENDISCOVER_PORT": ""})
    assert proc.returncode == 2
    assert (
        proc.stderr
        == "xendiscover: error: --port: invalid port list '80,x': 'x' is not a number or a range\n"
    )
    assert "env var" not in run("-n", "127.0.0.1", env={"XENDISCOVER_PORT": "http"}).stderr


def test_all_ports_are_bounded_by_a_probe_guard() -> None:
    proc = run("-n", "-p-", "127.0.0.0/24")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "16,776,960 probes" in proc.stderr
    assert "--max-probes" in proc.stderr
    proc = run("-n", "-p", "1-3", "--max-probes", "2", "127.0.0.1")
    assert proc.returncode == 2
    assert "limit 2" in proc.stderr


def test_exclude_takes_commas_and_n_is_no_resolve(loopback_net: str, listeners: Listen) -> None:
    found = hosts_of(loopback_net, 1, 2, 3, 4)
    listeners(found, 8002)
    base = found[0].rsplit(".", 1)[0]
    proc = run(
        "-n", "--no-fingerprint", "-q", "-p", "8002", "--exclude", f"{found[1]},{found[3]}",
        f"{base}.1-4,9",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [found[0], found[2]]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["deom"], "did you mean 'xendiscover demo'?"),
        (
            ["-n", "-oN", "out.txt", "127.0.0.1"],
            "-oN is nmap's normal output; here write -o out.txt",
        ),
        (["-n", "-oX", "scan.xml", "127.0.0.1"], "-oX is nmap's XML output"),
    ],
)
def test_typos_get_a_hint_not_a_lookup(args: list[str], hint: str, tmp_path: Path) -> None:
    # The test guard refuses the system's DNS in children: a lookup would fail differently.
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert hint in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no file N, X or out.txt


# ------------------------------------------------------------------ conflicts


def test_conflicting_options_are_usage_errors() -> None:
    for args, message in (
        (["--json", "-f", "csv"], "--json and --format csv contradict each other"),
        (["-q", "-v"], "--quiet and --verbose contradict each other"),
    ):
        proc = run("-n", *args, "127.0.0.1")
        assert proc.returncode == 2
        assert proc.stderr == f"xendiscover: error: {message}; give one\n"


def test_choices_take_any_case(loopback_net: str, listeners: Listen) -> None:
    (address,) = hosts_of(loopback_net, 7)
    listeners([address], 8002)
    proc = run("-n", "-q", "--no-fingerprint", "-p", "8002", "--format=JSON", address)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["machines"][0]["address"] == address
    # The environment loses to the command line, without a conflict.
    proc = run(
        "-n",
        "-q",
        "--no-fingerprint",
        "-p",
        "8002",
        "--json",
        address,
        env={"XENDISCOVER_FORMAT": "CSV"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["machines"][0]["address"] == address


# ---------------------------------------------------------------------- files


def _special_files(tmp: Path) -> dict[str, Path]:
    made = {"a directory": tmp / "dir", "a FIFO": tmp / "fifo", "a socket": tmp / "sock"}
    made["a directory"].mkdir()
    os.mkfifo(made["a FIFO"])
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(made["a socket"]))
    sock.close()
    if os.geteuid() == 0:  # a character device like /dev/null, made here, never under /dev
        device = tmp / "null"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["a character device"] = device
        link = tmp / "link-to-device"
        link.symlink_to(device)
        made["a character device "] = link  # the link is followed: what it names counts
    return made


def test_output_must_be_a_regular_file(
    tmp_path: Path, loopback_net: str, listeners: Listen
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    (address,) = hosts_of(loopback_net, 5)
    (listener,) = listeners([address], 0)  # a port no other test sweeps
    port = str(listener.getsockname()[1])
    for kind, path in _special_files(tmp_path).items():
        before = path.lstat()
        proc = run("-n", "-p", port, "-o", str(path), address)
        assert proc.returncode == 2, (kind, proc.stderr)
        assert proc.stderr == (
            f"xendiscover: error: cannot write {str(path)!r}: it is {kind.strip()}; "
            "-o writes regular files only (-o - for stdout)\n"
        )
        after = path.lstat()
        assert (after.st_mode, after.st_ino, after.st_rdev) == (
            before.st_mode,
            before.st_ino,
            before.st_rdev,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(_special_files_names(tmp_path))
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing was sent: no connection waits
        listener.accept()[0].close()


def _special_files_names(tmp: Path) -> list[str]:
    return ["dir", "fifo", "sock", "null", "link-to-device"]


def test_dash_is_stdout_and_a_regular_file_is_replaced(
    tmp_path: Path, loopback_net: str, listeners: Listen
) -> None:
    (address,) = hosts_of(loopback_net, 6)
    listeners([address], 8002)
    proc = run("-n", "-q", "--no-fingerprint", "-p", "8002", "-o", "-", address, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, f"{address}\n")
    assert list(tmp_path.iterdir()) == []
    target = tmp_path / "hosts.txt"
    target.write_text("old\n")
    proc = run("-n", "-q", "--no-fingerprint", "-p", "8002", "-o", str(target), address)
    assert (proc.returncode, proc.stdout, target.read_text()) == (0, "", f"{address}\n")


# -------------------------------------------------------------------- streams


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json", "text"])
def test_data_goes_to_stdout_when_stderr_is_a_terminal(
    fmt: str, loopback_net: str, listeners: Listen
) -> None:
    found = hosts_of(loopback_net, 2, 9, 17)
    listeners(found, 8002)
    done = run_in_pty(["-n", "--no-fingerprint", "-p", "8002", "-f", fmt, loopback_net])
    assert done.code == 0, done.terminal
    lines = done.stdout.splitlines()
    if fmt == "jsonl":
        assert len(ports_of(done.stdout)) == 3
    elif fmt == "json":
        assert len(json.loads(done.stdout)["machines"]) == 3
    else:
        assert len(lines) == {"csv": 4, "text": 3}[fmt], done.stdout
    assert all(address in done.stdout for address in found)
    assert "address" not in done.terminal  # no record on stderr (the summary line, yes)
    assert "4,096 probes" in done.terminal or '"total": 4096' in done.terminal  # the summary
    assert "\r" not in done.stdout  # csv too: \n line ends


def test_exit_statuses_are_all_documented() -> None:
    statuses = [code for code, _ in EXIT_STATUSES]
    assert statuses == [0, 1, 2, 3, 4, 130, 141, 143]
    page = (ROOT / "docs" / "cli.md").read_text()
    for code, what in EXIT_STATUSES:
        assert re.search(rf"^  {code} +{re.escape(what[:30])}", page, re.MULTILINE), code


# ----------------------------------------------------------- the live display


def _stats(
    total: int, done: int, **pending: dict[tuple[str, int], tuple[float, float]]
) -> ScanStats:
    stats = ScanStats(total=total, done=done, open=2)
    stats.pending_connects.update(pending.get("waiting", {}))
    stats.pending_fingerprints.update(pending.get("fingerprinting", {}))
    return stats


def test_the_display_says_what_it_waits_on() -> None:
    assert describe(_stats(100, 40), 10.0) == "sweeping, 2 open ports"
    fresh = {("10.0.0.1", 443): (9.5, 12.0)}
    assert describe(_stats(100, 99, waiting=fresh), 10.0) == "sweeping, 2 open ports"
    silent = {("10.0.0.1", 443): (5.0, 12.2), ("fd00::1", 80): (6.0, 11.0)}
    assert describe(_stats(100, 98, waiting=silent), 10.0) == (
        "waiting on 2 silent ports ([fd00::1]:80, 10.0.0.1:443), at most 3 s more"
    )
    assert describe(_stats(100, 97, waiting=silent), 10.0) == "sweeping, 2 open ports"
    busy = {("10.0.0.2", 8002): (9.8, 30.0), ("10.0.0.3", 80): (5.0, 20.0)}
    assert describe(_stats(100, 100, fingerprinting=busy), 10.0) == "fingerprinting 2 ports"
    many = {(f"10.0.0.{i}", 80): (1.0, 20.0 + i) for i in range(5)}
    assert describe(_stats(100, 100, fingerprinting=many), 10.0) == (
        "waiting on 5 silent ports (10.0.0.0:80, 10.0.0.1:80, 10.0.0.2:80, ...), at most 14 s more"
    )


def test_a_silent_port_is_named_and_ctrl_c_prints_one_line(
    loopback_net: str, listeners: Listen
) -> None:
    (address,) = hosts_of(loopback_net, 11)
    listeners([address], 8002)  # accepts (the kernel does), never says a word
    done = run_in_pty(
        ["-n", "-p", "8002", "--timeout", "5", "-f", "jsonl", loopback_net],
        interrupt_when="waiting on 1 silent port",
    )
    assert f"waiting on 1 silent port ({address}:8002), at most" in done.terminal
    assert done.code == 130
    assert done.terminal.count("interrupted (SIGINT)") == 1, done.terminal
    assert "interrupted (SIGINT): 0 Xen machines found so far" in done.terminal
    assert ports_of(done.stdout) == []  # the port was never fingerprinted: no record
    assert json.loads(done.stdout.splitlines()[-1])["stopped"] == "SIGINT"


# ------------------------------------------------------ what the output shows


UUID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def _xapi_host() -> list[Finding]:
    name = {"hostname": "polar.lab.test", "hostname_source": "ptr-unconfirmed"}
    return [
        Finding("10.0.0.12", 80, "xapi", "confirmed", "isAlive", 0.5, **name),  # type: ignore[arg-type]
        Finding(
            "10.0.0.12", 443, "xapi", "confirmed", "isAlive", 0.6, **name,  # type: ignore[arg-type]
            host_uuid=UUID, certificate_names=("polar.lab.test", "xapi.lab.test"),
        ),
    ]  # fmt: skip


def test_every_port_line_carries_its_machine() -> None:
    port80, port443 = port_records(_xapi_host())
    for record in (port80, port443):
        assert record["host_uuid"] == UUID
        assert record["certificate_names"] == ["polar.lab.test", "xapi.lab.test"]
        assert record["machine"] == "10.0.0.12"  # the PTR name is not confirmed
    # Streamed: a line written after its machine's other port still joins it.
    (late,) = port_records([_xapi_host()[0]], known=[_xapi_host()[1]])
    assert late["host_uuid"] == UUID
    text = format_csv(_xapi_host())
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["port"], r["host_uuid"], r["machine"]) for r in rows] == [
        ("80", UUID, "10.0.0.12"),
        ("443", UUID, "10.0.0.12"),
    ]
    assert rows[0]["certificate_names"] == "polar.lab.test xapi.lab.test"


def test_all_puts_the_key_first_and_other_names_later() -> None:
    line = format_all(group_findings(_xapi_host())).splitlines()[0].split("\t")
    key, addresses, verdict, other_name, uuid, product = line
    assert (key, addresses, verdict) == ("10.0.0.12", "10.0.0.12", "confirmed")
    assert (other_name, uuid) == ("ptr-unconfirmed: polar.lab.test", UUID)
    assert product == "-"  # the findings name no product
    confirmed = [
        Finding("10.0.0.7", 8002, "xend-relocation", "confirmed", "", 0, "xen7.lab.test", "ptr")
    ]
    assert format_all(group_findings(confirmed)).split("\t")[:4] == [
        "xen7.lab.test", "10.0.0.7", "confirmed", "ptr",
    ]  # fmt: skip


def test_ansible_port_is_xapi_443_when_served() -> None:
    inventory = ansible_inventory(group_findings(_xapi_host()))
    assert inventory["all"]["children"]["xapi"]["hosts"]["10.0.0.12"]["xen_port"] == 443


def test_no_xen_but_open_ports_gives_a_hint(
    loopback_net: str,
    serve_in_a_thread: Callable[[FakeServer], FakeServer],  # noqa: F811 - the fixture
) -> None:
    found = hosts_of(loopback_net, 3, 4)
    webs = [serve_in_a_thread(FakeHttpServer(address, 0)) for address in found]
    ports = ",".join(str(web.port) for web in webs)
    proc = run("-n", "-p", ports, loopback_net)
    assert (proc.returncode, proc.stdout) == (1, "")
    # (asyncio may add a note of its own about a TLS probe of the web server:
    # a known CPython quirk, not this test's business.)
    hint = "xendiscover: 2 machines with open ports, none Xen; --all lists them\n"
    assert proc.stderr.startswith(hint)
    assert "--all lists them" not in run("-n", "-q", "-p", ports, loopback_net).stderr
    shown = run("-n", "--all", "-p", ports, loopback_net)
    assert [line.split("\t")[0] for line in shown.stdout.splitlines() if line[:1] != " "] == found
    assert "--all lists them" not in shown.stderr


# ------------------------------------------------- docs, typer, the floors


def test_generated_docs_are_committed_and_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "hooks.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (ROOT / "docs" / "cli.md").read_text()
    assert "Usage: xendiscover [OPTIONS] [TARGET]..." in page  # readable as Markdown


def test_only_typers_public_api_is_imported() -> None:
    for path in (ROOT / "xendiscover").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\btyper\._", text), path
        assert not re.search(r"^\s*(from|import) click\b", text, re.MULTILINE), path


def _noxfile() -> tuple[list[str], Callable[[], list[str]]]:
    """The sessions CI runs and ``lowest_pins``, read from noxfile.py (nox need not be here)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "nox.options.sessions"
    )
    pins = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "lowest_pins"]
    namespace: dict[str, Any] = {"Path": Path, "ROOT": ROOT}
    exec(compile(ast.Module(body=list(pins), type_ignores=[]), "noxfile.py", "exec"), namespace)
    return sessions, namespace["lowest_pins"]


def test_the_lowest_session_pins_every_floor_and_ci_runs_it() -> None:
    sessions, lowest_pins = _noxfile()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = lowest_pins()
    assert len(pins) == len(pyproject["project"]["dependencies"])
    assert "typer==0.15.4" in pins
    command = " ".join(sessions)
    assert f'exec "$venv/bin/nox" -s {command}\n' in (ROOT / ".ci" / "run").read_text()
    assert f"nox -s {command}" in (ROOT / "README.md").read_text()
    assert "lowest" in sessions


def test_help_is_the_same_text_with_any_allowed_typer() -> None:
    # Typer 0.15-0.19 escape "[" as rich markup even with markup off; nox -s lowest runs this.
    proc = run("--help", env={"COLUMNS": "88"})
    assert proc.returncode == 0
    assert "[default: 65536; x>=1]" in proc.stdout
    assert "\\[" not in proc.stdout


def test_streamed_port_lines_carry_what_their_machine_showed(
    loopback_net: str,
    serve_in_a_thread: Callable[[FakeServer], FakeServer],  # noqa: F811 - the fixture
) -> None:
    (address,) = hosts_of(loopback_net, 12)
    identity = XapiIdentity("xen12.pool.test", (address,))
    plain = serve_in_a_thread(FakeXapi(address, 0))  # says nothing of who it is
    tls = serve_in_a_thread(FakeXapi(address, 0, tls=True, identity=identity))
    proc = run("-n", "-q", "-f", "jsonl", "-p", f"{plain.port},{tls.port}", address)
    assert proc.returncode == 0, proc.stderr
    lines = {r["port"]: r for r in ports_of(proc.stdout)}
    assert set(lines) == {plain.port, tls.port}
    for record in lines.values():  # the plain port's line too, streamed as it was
        assert record["host_uuid"] == identity.uuid
        assert record["machine"] == address
        assert "xen12.pool.test" in cast(list[str], record["certificate_names"])


def test_the_library_writer_never_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    for kind, path in _special_files(tmp_path).items():
        before = path.lstat()
        with pytest.raises(OSError, match="not a regular file"):
            write_atomically(path, "x\n")
        after = path.lstat()
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), kind
    assert not list(tmp_path.glob(".*.tmp"))
    write_atomically(tmp_path / "new.txt", "x\n")  # absent: created
    assert (tmp_path / "new.txt").read_text() == "x\n"
