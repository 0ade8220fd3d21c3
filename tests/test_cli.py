"""The command line: output, exit status, and one-line errors."""

import json
import subprocess
import sys

import pytest
from support import hosts_of
from typer.testing import CliRunner

from xendiscover._cli import app, main

runner = CliRunner()


def test_lists_hosts_one_per_line_sorted(loopback_net: str, listeners) -> None:  # type: ignore[no-untyped-def]
    found = hosts_of(loopback_net, 9, 1000, 31)
    listeners(found, 8002)
    result = runner.invoke(
        app, ["--port", "8002", "--no-resolve", "--no-fingerprint", "-q", loopback_net]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == sorted(found, key=lambda a: tuple(map(int, a.split("."))))


def test_json_records(loopback_net: str, listeners) -> None:  # type: ignore[no-untyped-def]
    (address,) = hosts_of(loopback_net, 5)
    listeners([address], 8002)
    result = runner.invoke(app, ["-p", "8002", "--json", "--no-resolve", loopback_net])
    records = json.loads(result.stdout)
    assert [r["address"] for r in records] == [address]
    assert set(records[0]) >= {"address", "port", "hostname", "service", "verdict", "latency_ms"}
    assert records[0]["port"] == 8002
    assert records[0]["hostname"] is None


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
        (["no-such-host.invalid"], "cannot resolve"),
        (["--no-such-option"], "No such option"),
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


def test_python_m_runs_a_real_scan(loopback_net: str, listeners) -> None:  # type: ignore[no-untyped-def]
    found = hosts_of(loopback_net, 200)
    listeners(found, 8002)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xendiscover",
            "-p",
            "8002",
            "--no-resolve",
            "--no-fingerprint",
            loopback_net,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == found
    assert proc.stderr == ""  # stderr is not a terminal: no progress


def test_python_m_bad_input_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xendiscover", "--port", "99999", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
