"""Shared fixtures: a loopback-only guard, loopback listeners, a real dnsmasq.

Traffic from these tests stays on loopback (127.0.0.0/8, ::1): the autouse
guard below fails any test whose process connects anywhere else or asks the
system resolver about a name, so no test can reach the machine's own
network or its DNS server by accident. Tests that need a network namespace
make their own, run the scanner inside it as a subprocess, and tear it down
(see ``test_netns.py`` and the ``lab`` package).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings
from support import free_udp_port

# Every test fails if it leaves an fd, a task, a child process or a thread behind;
# and (issue 13) the loopback guard runs in every child Python and for c-ares
# (tests/guard/).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard"))
pytest_plugins = ["hygiene", "guard_plugin"]


def _literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    return True


def _check_loopback(address: Any) -> None:
    if isinstance(address, tuple):
        host = str(address[0]).split("%", 1)[0]
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}: only loopback is allowed")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that connects beyond loopback or sends a name to the system's DNS."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is None or host == "localhost" or _literal(host):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"test guard: no DNS lookup of {host!r}")

    def connect(self: socket.socket, address: Any) -> None:
        _check_loopback(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_loopback(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture(autouse=True)
def _no_system_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """An automatic run in the test process reads test data, never this machine's OS.

    Its interfaces, routes and neighbours are empty unless a test sets
    ``xendiscover._plan.system_state`` itself (issue 24).
    """
    from xendiscover._sources import StaticSystem

    monkeypatch.setattr("xendiscover._plan.system_state", StaticSystem)


@pytest.fixture
def loopback_net() -> str:
    """A random 127.N.0.0/20 network, so parallel or repeated runs do not collide."""
    return f"127.{random.randrange(100, 250)}.{random.randrange(0, 256, 16)}.0/20"


@pytest.fixture
def listeners() -> Iterator[Callable[[list[str], int], list[socket.socket]]]:
    """Bind listening TCP sockets on loopback addresses; closed at teardown."""
    opened: list[socket.socket] = []

    def listen(addresses: list[str], port: int) -> list[socket.socket]:
        socks = []
        for address in addresses:
            sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
            socks.append(sock)
        opened.extend(socks)
        return socks

    yield listen
    for sock in opened:
        sock.close()


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


@pytest.fixture
def dnsmasq() -> Iterator[Callable[[dict[str, str]], str]]:
    """Start Debian's dnsmasq on loopback serving the given PTR records.

    Returns ``IP:PORT`` for ``--nameserver``. Skips where dnsmasq is missing.
    """
    if not os.path.exists(DNSMASQ):
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(records: dict[str, str], extra: tuple[str, ...] = ()) -> str:
        address = f"127.{random.randrange(100, 250)}.255.{random.randrange(2, 250)}"
        port = free_udp_port(address)
        argv = [
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            f"--listen-address={address}",
            f"--port={port}",
            "--pid-file",
            "--user=root",
            "--group=root",
            "--log-facility=-",
        ]
        argv += [f"--host-record={name},{addr}" for addr, name in records.items()]
        argv += extra
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # ready when it answers on UDP
            if proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {proc.returncode}")
            if _answers(address, port):
                return f"{address}:{port}"
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not start within 5 s")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)


def _answers(address: str, port: int) -> bool:
    # A minimal DNS query (id 1, one question: "." SOA); any reply will do.
    query = bytes.fromhex("000101000001000000000000") + b"\x00\x00\x06\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(query, (address, port))
        try:
            sock.recv(512)
        except OSError:
            return False
    return True


# Hypothesis profiles: "default" for every run, "fuzz" for ``nox -s fuzz``.
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("fuzz", max_examples=10_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
