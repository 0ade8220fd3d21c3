"""Hostile PTR names from real DNS servers, through every output format and a live terminal.

A reverse zone says whatever its owner wants: markup (``[link=…]``), formula
starts (``=``, ``-``), terminal escapes, bidi overrides, line breaks. Each
scan here runs the real command against xend responders on loopback, with
names from dnsmasq or from a raw responder that sends any bytes. Nothing may
crash, nothing raw may reach the output, and no such name may become a key.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import pty
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_responder import RawPtrServer
from support import Dnsmasq

RESPONDER = Path(__file__).with_name("xend_responder.py")

#: Raw label bytes a hostile zone might serve, and what must never come out.
HOSTILE: list[tuple[list[bytes], bytes]] = [
    ([b"x\x1b[2Jy", b"example"], b"\x1b[2J"),  # clear the screen
    ([b"\x1b]8;;http://evil\x1b\\click", b"example"], b"]8;;http"),  # OSC 8 hyperlink
    ([b"a[", b"x]", b"evil"], b"a[/x]"),  # rich markup (MarkupError before)
    ([b"=HYPERLINK(1)", b"example"], b"=HYPERLINK"),  # a formula
    ([b"\xe2\x80\xaeevil", b"example"], "\u202e".encode()),  # right-to-left override
    ([b"two\nlines", b"example"], b"two\nlines"),  # a line break
]


@pytest.fixture
def xend_hosts() -> Iterator[list[str]]:
    """Six loopback addresses answering as xend's relocation server on 8002."""
    base = f"127.{random.randrange(100, 250)}.{random.randrange(0, 250)}"
    addresses = [f"{base}.{i}" for i in range(10, 16)]
    proc = subprocess.Popen(
        [sys.executable, str(RESPONDER), *addresses], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield addresses
    finally:
        proc.terminate()
        proc.communicate(timeout=5)  # reaps it and closes its stdout


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "xendiscover", "-p", "8002", "--timeout", "1", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _raw_server(addresses: list[str]) -> RawPtrServer:
    records = {
        ipaddress.ip_address(a).reverse_pointer: labels
        for a, (labels, _) in zip(addresses, HOSTILE, strict=True)
    }
    return RawPtrServer("127.0.0.1", records)


def _clean(text: str) -> bool:
    return all(c.isprintable() or c in "\n\r\t" for c in text)


@pytest.mark.parametrize("fmt", ["text", "list", "json", "jsonl", "csv", "ansible"])
@pytest.mark.parametrize("view", ["xen", "all"])
def test_raw_hostile_names_never_reach_any_output_raw(
    xend_hosts: list[str], fmt: str, view: str
) -> None:
    with _raw_server(xend_hosts) as dns:
        extra = ["--all"] if view == "all" else []
        proc = _run("--nameserver", dns.nameserver, "-f", fmt, *extra, f"{xend_hosts[0]}-15")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _clean(proc.stdout), proc.stdout
    for _, raw in HOSTILE:
        assert raw.decode("utf-8", "replace") not in proc.stdout
    if fmt == "ansible":
        hosts = {h for g in json.loads(proc.stdout)["all"]["children"].values() for h in g["hosts"]}
        assert hosts == set(xend_hosts)  # unconfirmed names are never keys
    if fmt == "list":
        assert proc.stdout == repr(xend_hosts) + "\n"
    if fmt == "csv":
        for row in csv.DictReader(io.StringIO(proc.stdout, newline="")):
            assert not row["hostname"].startswith(("=", "+", "-", "@"))
            assert row["hostname_source"] == "ptr-unconfirmed"


def test_names_dnsmasq_serves_are_escaped_and_never_keys(
    xend_hosts: list[str], dnsmasq: Dnsmasq
) -> None:
    reverse = [ipaddress.ip_address(a).reverse_pointer for a in xend_hosts[:3]]
    server = dnsmasq(
        {},
        (
            f"--ptr-record={reverse[0]},=cmd|calc.a[x]y.example",
            f"--ptr-record={reverse[1]},[link=http://evil]x[/link].example",
            f"--ptr-record={reverse[2]},ok.example",  # a fine name, but no A record
        ),
    )
    proc = _run("--nameserver", server, "-f", "json", "--all", f"{xend_hosts[0]}-12")
    assert proc.returncode == 0, proc.stderr
    machines = json.loads(proc.stdout)["machines"]
    names = {m["address"]: (m["hostname"], m["hostname_source"]) for m in machines}
    assert names[xend_hosts[0]] == (
        "\\x3dcmd\\x7ccalc.a\\x5bx\\x5dy.example",
        "ptr-unconfirmed",
    )
    assert names[xend_hosts[1]][0].startswith("\\x5blink\\x3dhttp\\x3a\\x2f\\x2fevil\\x5d")
    assert names[xend_hosts[2]] == ("ok.example", "ptr-unconfirmed")
    text = _run("--nameserver", server, f"{xend_hosts[0]}-12")
    assert text.stdout.splitlines()[0] == (
        f"{xend_hosts[0]} (ptr-unconfirmed: \\x3dcmd\\x7ccalc.a\\x5bx\\x5dy.example)"
        "  xend >= 3.3 (Xen 3.3-4.4)"  # the product its relocation port's (help) shows
    )


def _under_a_pty(argv: list[str], timeout: float = 60) -> tuple[int, str, bytes]:
    """Run ``argv`` with stderr on a pseudo-terminal: the live display shows."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env, text=True
    )
    os.close(slave)
    screen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(5)
        os.close(master)
    return proc.returncode, out, bytes(screen)


@pytest.mark.parametrize("view", [[], ["--all"]])
def test_the_live_display_is_never_steered_by_a_name(
    xend_hosts: list[str], view: list[str]
) -> None:
    with _raw_server(xend_hosts) as dns:
        argv = [sys.executable, "-m", "xendiscover", "-p", "8002", "--nameserver", dns.nameserver]
        started = time.monotonic()
        code, out, screen = _under_a_pty([*argv, *view, f"{xend_hosts[0]}-15"])
    assert code == 0, screen
    assert time.monotonic() - started < 60
    assert b"found " in screen  # the live display ran, on the terminal
    assert b"Traceback" not in screen
    for _, raw in HOSTILE:
        assert raw not in screen
    assert b"xendiscover: " in screen  # the summary line, on the terminal too
    assert _clean(out)
