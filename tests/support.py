"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

import xendiscover
from xendiscover import Finding
from xendiscover._fingerprint import _probes
from xendiscover._fingerprint._common import Continue, NeedMoreData, ParseResult
from xendiscover._model import Fingerprint

#: The ``listeners`` fixture: bind listening sockets on addresses and a port.
Listen = Callable[[list[str], int], list[socket.socket]]
#: The ``dnsmasq`` fixture: serve PTR and A records (``{address: name}``, plus
#: extra dnsmasq arguments), return ``IP:PORT``.
Dnsmasq = Callable[..., str]


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

    The real one (``RELOCATION_WAIT``, 12 s) waits out xend's late
    hosts-allow close; tests of other silent peers on 8002 shrink it.
    """
    probe = _probes._BY_NAME["xend-relocation"]
    monkeypatch.setitem(
        _probes._BY_NAME, "xend-relocation", dataclasses.replace(probe, timeout=seconds)
    )


async def converse(
    host: str,
    port: int,
    request: bytes,
    parse: Callable[..., ParseResult],
    *,
    timeout: float = 5.0,
    cap: int = 4096,
) -> tuple[Fingerprint, bytes]:
    """A multi-step exchange as the driver will run it: each ``Continue`` sent once.

    Stands in for the driver's ``Continue`` support in tests of the parsers
    against live peers; bounded by ``timeout`` seconds and ``cap`` bytes.
    """
    reader, writer = await asyncio.open_connection(host, port)
    data, sent = b"", 0
    writer.write(request)
    try:
        async with asyncio.timeout(timeout):
            while len(data) < cap:
                chunk = await reader.read(cap - len(data))
                data += chunk
                try:
                    found = parse(data, closed=not chunk, nonce="")
                except NeedMoreData:
                    continue
                if not isinstance(found, Continue):
                    return found, data
                if found.step > sent:
                    writer.write(found.request)
                    sent = found.step
        raise AssertionError(f"no verdict within {cap} bytes: {data!r}")
    finally:
        writer.close()


async def open_ports(targets: Any, **options: Any) -> list[Finding]:
    """Every open port a scan finds (``scan()`` run to the end), by address then port."""
    found = xendiscover.scan(targets, **options)
    async with contextlib.aclosing(found):
        return sorted([f async for f in found], key=lambda f: f.sort_key)


async def talk(
    host: str, port: int, request: bytes, *, limit: int = 65536, timeout: float = 5.0
) -> bytes:
    """Send ``request``, read until the peer closes (bounded in bytes and time)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        data = b""
        async with asyncio.timeout(timeout):
            while len(data) < limit:
                chunk = await reader.read(limit - len(data))
                if not chunk:
                    break
                data += chunk
        return data
    finally:
        writer.close()


def schema_validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A format-checking validator of a shipped schema, its ``$ref``s to the others resolved."""
    from referencing import Registry, Resource

    from xendiscover import _output

    shipped = [
        _output.host_schema(),
        _output.finding_schema(),
        _output.run_schema(),
        _output.document_schema(),
        _output.diff_schema(),
    ]
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in shipped
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
