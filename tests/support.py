"""Small helpers shared by the tests."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from xendiscover._fingerprint import _probes

#: The ``listeners`` fixture: bind listening sockets on addresses and a port.
Listen = Callable[[list[str], int], list[socket.socket]]
#: The ``dnsmasq`` fixture: serve PTR records, return ``IP:PORT``.
Dnsmasq = Callable[[dict[str, str]], str]


def hosts_of(net: str, *offsets: int) -> list[str]:
    network = ipaddress.ip_network(net)
    return [str(network.network_address + o) for o in offsets]


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def run_xendiscover(
    *args: str, nofile: int | None = None, netns: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter, as a user would.

    Args:
        args: The command's arguments.
        nofile: If given, the process's RLIMIT_NOFILE (soft and hard).
        netns: If given, run inside this network namespace (``ip netns exec``).
        timeout: Seconds before the run is killed and the test fails.
    """
    if nofile is None:
        argv = [sys.executable, "-m", "xendiscover", *args]
    else:
        code = (
            "import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}));"
            "from xendiscover._cli import main; main(sys.argv[1:])"
        )
        argv = [sys.executable, "-c", code, *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def set_relocation_wait(monkeypatch: pytest.MonkeyPatch, seconds: float | None) -> None:
    """Give the 8002 relocation probe another own deadline (``None``: the caller's).

    The real one (``RELOCATION_WAIT``, 10 s) waits out xend's late
    hosts-allow close; tests of other silent peers on 8002 shrink it.
    """
    probe = _probes._BY_NAME["xend-relocation"]
    monkeypatch.setitem(
        _probes._BY_NAME, "xend-relocation", dataclasses.replace(probe, timeout=seconds)
    )
