"""Shared fixtures: loopback listeners and a real DNS server (dnsmasq).

Traffic from these tests stays on loopback (127.0.0.0/8). Tests that need a
network namespace make their own and tear it down (see ``test_netns.py`` and
the ``lab`` package).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import settings
from support import free_udp_port


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

    def start(records: dict[str, str]) -> str:
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
