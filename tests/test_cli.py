"""The command line: output, exit status, and one-line errors."""

import asyncio
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from support import Listen, hosts_of, run_xendiscover
from typer.testing import CliRunner

from xendiscover import __version__
from xendiscover._cli import app, main
from xendiscover.testing import FakeServer, FakeTarpit, FakeXendHttp

runner = CliRunner()


def test_lists_hosts_one_per_line_sorted(loopback_net: str, listeners: Listen) -> None:
    found = hosts_of(loopback_net, 9, 1000, 31)
    listeners(found, 8002)
    result = runner.invoke(
        app, ["--port", "8002", "--no-resolve", "--no-fingerprint", "-q", loopback_net]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == sorted(found, key=lambda a: tuple(map(int, a.split("."))))


def test_json_records(loopback_net: str, listeners: Listen) -> None:
    (address,) = hosts_of(loopback_net, 5)
    listeners([address], 8006)  # accepts, never answers: open, not Xen
    # -q: click before 8.2 (nox -s lowest) mixes stderr, the --all hint, into stdout.
    result = runner.invoke(app, ["-p", "8006", "--json", "-q", "--no-resolve", loopback_net])
    document = json.loads(result.stdout)
    assert document["machines"] == []  # no Xen machine
    run = document["run"]
    assert (run["tool"], run["version"], run["targets"], run["ports"]) == (
        "xendiscover",
        __version__,
        [loopback_net],
        [8006],
    )
    assert (run["shard"], run["listing"], run["completed"], run["stopped"]) == (
        "1/1",
        "xen",
        True,
        None,
    )
    assert run["started"] <= run["ended"]
    assert result.exit_code == 1
    result = runner.invoke(app, ["-p", "8006", "--json", "--all", "--no-resolve", loopback_net])
    (record,) = json.loads(result.stdout)["machines"]
    assert record["address"] == address
    assert record["addresses"] == [address]
    assert record["hostname"] is None
    assert [(s["port"], s["verdict"]) for s in record["services"]] == [(8006, "unknown")]
    assert result.exit_code == 1  # the same answer in every format: no Xen machine


def test_exit_1_when_nothing_is_found(loopback_net: str) -> None:
    result = runner.invoke(app, ["-p", "8002", "--no-resolve", "--no-fingerprint", loopback_net])
    assert result.exit_code == 1
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-p", "0", "127.0.0.1"], "--port"),
        (["-p", "65536", "127.0.0.1"], "--port"),
        (["-p", "xend", "127.0.0.1"], "--port"),
        (["--timeout", "-1", "127.0.0.1"], "--timeout"),
        (["--timeout", "0", "127.0.0.1"], "--timeout"),
        (["--retries", "-1", "127.0.0.1"], "--retries"),
        (["--concurrency", "0", "127.0.0.1"], "--concurrency"),
        (["--nameserver", "ns.example", "127.0.0.1"], "--nameserver"),
        (["127.0.0.9-127.0.0.1"], "ends before it starts"),
        (["127.0.0.0/33"], "invalid network"),
        (["127.0.0.300"], "invalid target"),
        (["10.0.0.0/15"], "refusing to sweep 131,072 addresses"),
        (["--max-hosts", "10", "127.0.0.0/24"], "refusing to sweep 256 addresses"),
        (["--nameserver", "127.0.0.1:9", "no-such-host.invalid"], "cannot resolve"),
        (["--no-such-option"], "no such option"),
    ],
)
def test_bad_input_one_line_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("xendiscover: error:")
    assert needle in err
    assert "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("xendiscover ")


def test_help_shows_the_options() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--timeout", "--retries", "--json", "--no-resolve", "--nameserver"):
        assert option in result.stdout


def test_python_m_runs_a_real_scan(loopback_net: str, listeners: Listen) -> None:
    found = hosts_of(loopback_net, 200)
    listeners(found, 8002)
    proc = run_xendiscover("-p", "8002", "--no-resolve", "--no-fingerprint", loopback_net)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == found
    assert proc.stderr == ""  # stderr is not a terminal: no progress


def test_python_m_bad_input_has_no_traceback() -> None:
    proc = run_xendiscover("--port", "99999", "127.0.0.1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_targets_file_comments_and_exclusions(
    loopback_net: str, listeners: Listen, tmp_path: Path
) -> None:
    a, b, c = hosts_of(loopback_net, 3, 4, 5)
    listeners([a, b, c], 8002)
    targets = tmp_path / "targets.txt"
    targets.write_text(f"# lab hosts\n{a}  # first\n\n{b}-{c.rsplit('.', 1)[1]}\n")
    skip = tmp_path / "skip.txt"
    skip.write_text(f"{b}\n")
    result = runner.invoke(
        app,
        [
            "-iL",
            str(targets),
            "--exclude-file",
            str(skip),
            "-p",
            "8002",
            "--no-resolve",
            "--no-fingerprint",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [a, c]


@pytest.mark.parametrize("content", ["", "# only a comment\n\n"])
def test_an_empty_targets_file_never_falls_back_to_local_networks(
    content: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["-iL", str(empty)])
    assert exit_info.value.code == 2
    assert "names no target" in capsys.readouterr().err


def test_unreadable_targets_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-iL", "/nonexistent/targets.txt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot read targets file" in err


@pytest.mark.parametrize("shard", ["0/4", "5/4", "x/2", "2"])
def test_bad_shards_exit_2(shard: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--shard", shard, "127.0.0.1"])
    assert exit_info.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_shards_split_the_hits_between_jobs(loopback_net: str, listeners: Listen) -> None:
    found = hosts_of(loopback_net, *range(1, 30, 3))
    listeners(found, 8002)
    seen: list[str] = []
    for index in (1, 2, 3):
        result = runner.invoke(
            app,
            [
                "--shard",
                f"{index}/3",
                "-p",
                "8002",
                "--no-resolve",
                "--no-fingerprint",
                loopback_net,
            ],
        )
        seen += result.stdout.split()
    assert sorted(seen) == sorted(found)
    assert len(seen) == len(set(seen))


def test_output_file_and_formats(loopback_net: str, listeners: Listen, tmp_path: Path) -> None:
    import csv

    (address,) = hosts_of(loopback_net, 12)
    listeners([address], 8002)
    out = tmp_path / "hosts.csv"
    result = runner.invoke(
        app,
        [
            "-p",
            "8002",
            "--no-resolve",
            "--no-fingerprint",
            "-f",
            "csv",
            "-o",
            str(out),
            loopback_net,
        ],
    )
    assert result.stdout == ""
    with out.open(newline="") as written:
        rows = list(csv.DictReader(written))
    assert [r["address"] for r in rows] == [address]


def test_jsonl_is_one_record_per_line(loopback_net: str, listeners: Listen) -> None:
    # CliRunner hands over stdout at the end: streaming is tested through a pipe below.
    found = hosts_of(loopback_net, 40, 41)
    listeners(found, 8002)
    result = runner.invoke(
        app, ["-p", "8002", "--no-resolve", "--no-fingerprint", "-f", "jsonl", loopback_net]
    )
    first, *records, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["address"] for r in records) == found
    assert {r["record"] for r in records} == {"port"}
    assert (first["record"], first["targets"], first["ports"]) == ("run", [loopback_net], [8002])
    assert (first["listing"], first["resolved"]) == ("open", [loopback_net])
    assert (last["record"], last["completed"], last["ports"]) == ("end", True, 2)


def test_jsonl_of_nothing_is_still_a_run_and_an_end(loopback_net: str) -> None:
    result = runner.invoke(app, ["-p", "8002", "--no-resolve", "-f", "jsonl", loopback_net])
    first, last = [json.loads(line) for line in result.stdout.splitlines()]
    assert (first["record"], last["record"], last["ports"]) == ("run", "end", 0)
    assert result.exit_code == 1


@pytest.fixture
def serve_in_a_thread() -> Iterator[Callable[[FakeServer], FakeServer]]:
    """Run fake servers on an event loop in a thread, so this thread may block on a pipe."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started: list[FakeServer] = []

    def serve(fake: FakeServer) -> FakeServer:
        asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
        started.append(fake)
        return fake

    try:
        yield serve
    finally:
        for fake in started:
            asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def read_line(stream: IO[bytes], deadline: float) -> bytes:
    """One line from a pipe, waiting at most until ``deadline`` (monotonic)."""
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(0.0, left))
        if not ready:
            raise AssertionError(f"no full line within the deadline; got {data!r}")
        chunk = os.read(stream.fileno(), 1)  # byte by byte: nothing read past the line
        if not chunk:
            raise AssertionError(f"the pipe closed after {data!r}")
        data += chunk
    return data


def test_jsonl_streams_through_a_pipe_before_the_scan_ends(
    loopback_net: str, serve_in_a_thread: Callable[[FakeServer], FakeServer]
) -> None:
    # xend's HTTP server answers at once; a tarpit on the same port holds its
    # fingerprint for seconds. The first line must come out while it does.
    xend_address, tarpit_address = hosts_of(loopback_net, 60, 61)
    xend = serve_in_a_thread(FakeXendHttp(xend_address, 0))
    serve_in_a_thread(FakeTarpit(tarpit_address, xend.port))
    argv = [sys.executable, "-m", "xendiscover", "-p", str(xend.port), "--no-resolve"]
    argv += ["-f", "jsonl", "--timeout", "1", xend_address, tarpit_address]
    # As a user runs it: stdout to a pipe is block-buffered unless the command flushes.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        run = read_line(proc.stdout, time.monotonic() + 20)
        first = read_line(proc.stdout, time.monotonic() + 20)
        # Still running half a second later: a line flushed only at exit
        # arrives a moment before the process ends, never that long before.
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        else:
            raise AssertionError("the first line came out only as the scan ended")
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert json.loads(run)["record"] == "run"
    assert json.loads(first)["address"] == xend_address
    assert json.loads(first)["verdict"] == "confirmed"
    last, end = [json.loads(line) for line in rest.decode().splitlines()]
    assert (last["address"], last["verdict"]) == (tarpit_address, "unknown")
    assert (end["record"], end["completed"], end["ports"]) == ("end", True, 2)
    assert proc.returncode == 0, err


def test_environment_defaults(loopback_net: str, listeners: Listen) -> None:
    (address,) = hosts_of(loopback_net, 77)
    listeners([address], 8006)
    result = runner.invoke(
        app,
        ["--no-resolve", "--no-fingerprint", loopback_net],
        env={"XENDISCOVER_PORT": "8006", "XENDISCOVER_FORMAT": "list"},
    )
    assert result.stdout.strip() == repr([address])


def test_demo_runs_on_loopback() -> None:
    proc = run_xendiscover("demo")
    assert proc.returncode == 0, proc.stderr
    report = proc.stdout.split("Scanning:", 1)[1].splitlines()
    lines = [line.split("\t") for line in report if line.startswith("  127.77.")]
    verdicts = {(cols[1], cols[2]) for cols in lines}
    assert len(lines) == 9  # every fake's port, under its machine
    assert ("xapi", "confirmed") in verdicts
    assert ("xend-relocation", "likely") in verdicts
    assert ("libvirt", "unknown") in verdicts
    assert ("-", "not-xen") in verdicts


def test_a_dead_nameserver_gives_one_warning_and_addresses(
    loopback_net: str, listeners: Listen
) -> None:
    from support import free_udp_port

    found = hosts_of(loopback_net, 6, 7, 8)
    listeners(found, 8002)
    silent = f"127.0.0.1:{free_udp_port('127.0.0.1')}"
    proc = run_xendiscover("-p", "8002", "--no-fingerprint", "--nameserver", silent, loopback_net)
    assert proc.returncode == 0
    assert proc.stdout.split() == found  # the scan is complete, shown by address
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 1, proc.stderr  # one warning, not one per host
    assert "DNS failed" in warnings[0]


def test_a_slash_16_under_a_256_file_limit_finds_the_same_hosts(listeners: Listen) -> None:
    base = f"127.{200 + int(time.time()) % 50}"
    found = [f"{base}.0.9", f"{base}.77.1", f"{base}.255.254"]
    listeners(found, 8002)
    proc = run_xendiscover(
        "-p", "8002", "--no-resolve", "--no-fingerprint", f"{base}.0.0/16", nofile=256, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == found


def test_verbose_json_summary_counts_the_sweep(loopback_net: str, listeners: Listen) -> None:
    found = hosts_of(loopback_net, 20, 21)
    listeners(found, 8002)
    proc = run_xendiscover(
        "-p", "8002", "--no-resolve", "--no-fingerprint", "--json", "-v", loopback_net
    )
    summary = json.loads(proc.stderr.splitlines()[-1])["summary"]
    assert summary["total"] == summary["done"] == 4096
    assert summary["open"] == 2
    assert summary["outcomes"] == {"closed": 4094, "open": 2}
    assert summary["backoffs"] == 0


def test_help_reads_like_a_unix_tool_at_80_columns() -> None:
    proc = run_xendiscover("--help")
    assert proc.returncode == 0
    text = proc.stdout
    lines = text.splitlines()
    assert lines[:2] == [
        "Usage: xendiscover [OPTIONS] [TARGET]...",
        "       xendiscover demo",
    ]
    assert max(map(len, lines)) <= 80
    for python_type in ("<bool>", "list[", "<int", "<float>", "<str>", "<path>"):
        assert python_type not in text
    for option in (
        "--port PORTS",
        "--timeout SECONDS",
        "--nameserver IP[:PORT]",
        "-o, --output FILE",
    ):
        assert option in text
    assert text.index("Examples:") > text.index("Options:")  # examples, then exit statuses
    assert text.index("Exit status:") > text.index("Examples:")
    assert lines[lines.index("Exit status:") - 3].strip() == "xendiscover demo"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--timout", "no such option: --timout; did you mean --timeout?"),
        ("--bogus", "no such option: --bogus; see --help"),  # no far-fetched guess
    ],
)
def test_an_unknown_option_suggests_only_a_close_match(option: str, message: str) -> None:
    proc = run_xendiscover(option, "1", "127.0.0.1")
    assert proc.returncode == 2
    assert proc.stderr == f"xendiscover: error: {message}\n"
