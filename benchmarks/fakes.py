"""Serve xend relocation fakes on given addresses until stdin closes.

Run in its own process (and, for the namespace workloads, in the peer
namespace) so the fakes never share a CPU budget with the measured tool's
interpreter::

    python benchmarks/fakes.py --port 8002 127.9.0.10 127.9.13.7 ...

Prints ``ready N`` once every fake listens, then serves until its stdin
reaches end of file (the benchmark closes it) or it is killed. Uses
:class:`xendiscover.testing.FakeXendRelocation` when the package provides
it, else a plain asyncio server that answers every connection with xend's
error line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

#: What xend's relocation server says to anything it does not understand.
XEND_ERROR = (
    b"(err (type \"<class 'xen.xend.XendError.XendError'>\") (value 'Invalid operation: GET'))\n"
)


async def _plain_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(4096), 2.0)
        writer.write(XEND_ERROR)
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: addresses routed to lo
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(addresses: Sequence[str], port: int) -> None:
    """Listen on every address at ``port`` until stdin is closed."""
    servers: list[Any] = []
    fake: Any = None
    with contextlib.suppress(ImportError):
        from xendiscover.testing import FakeXendRelocation as fake
    for address in addresses:
        if fake is not None:
            servers.append(await fake(host=address, port=port).start())
        else:
            servers.append(await asyncio.start_server(_plain_reply, sock=_listener(address, port)))
    kind = "FakeXendRelocation" if fake is not None else "plain"
    sys.stdout.write(f"ready {len(servers)} {kind}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        for server in servers:
            await server.close() if fake is not None else server.close()


@contextlib.contextmanager
def fake_servers(
    addresses: Sequence[str], port: int, prefix: Sequence[str] = (), ready_timeout: float = 15.0
) -> Iterator[str]:
    """Run this script in a child process (under ``prefix``, e.g. ``ip netns exec NS``).

    Yields the kind of fake serving (``FakeXendRelocation`` or ``plain``) once
    all listen; closes the child's stdin on exit, and kills it if it lingers.
    """
    argv = [*prefix, sys.executable, str(Path(__file__).resolve()), "--port", str(port)]
    server = subprocess.Popen(
        [*argv, *addresses], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + ready_timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("ready"):
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                raise RuntimeError("the fake servers did not start")
        if not line.startswith("ready"):
            raise RuntimeError("the fake servers did not get ready in time")
        yield line.split()[-1]
    finally:
        with contextlib.suppress(OSError):
            if server.stdin is not None:
                server.stdin.close()
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=3)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("addresses", nargs="+")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.addresses, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
