"""Serve fake Xen services (and decoys) on given addresses until stdin closes.

Run in its own process (and, for the namespace workloads, in a lab
namespace) so the fakes never share a CPU budget with the measured tool's
interpreter::

    python benchmarks/fakes.py --port 8002 127.9.0.10 127.9.13.7 ...
    python benchmarks/fakes.py --serve xapi-tls@10.79.1.131:443 --serve tarpit@10.79.1.150:8002

Prints ``ready N KIND`` once every fake listens, then serves until its stdin
reaches end of file (the benchmark closes it) or it is killed. Uses the
fakes of :mod:`xendiscover.testing` when the package provides them (see
:data:`KINDS`), else a plain asyncio server that answers every connection
with xend's error line (a tarpit stays silent): a port is open either way,
which is all the sweep rows count.
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

#: Each kind of fake: the ``xendiscover.testing`` class and its keyword arguments.
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "xend-relocation": ("FakeXendRelocation", {}),
    # A client outside xend-relocation-hosts-allow: accepted, closed unread.
    "xend-relocation-denied": ("FakeXendRelocation", {"hosts_allow": False}),
    "xend-http": ("FakeXendHttp", {}),
    "xend-xmlrpc": ("FakeXendXmlRpc", {}),
    "xapi": ("FakeXapi", {}),
    "xapi-tls": ("FakeXapi", {"tls": True}),
    "libvirt": ("FakeLibvirt", {}),
    "http": ("FakeHttpServer", {}),
    "http-tls": ("FakeHttpServer", {"tls": True}),
    "tarpit": ("FakeTarpit", {}),
}

#: One fake: its kind (a key of :data:`KINDS`), address and port.
Spec = tuple[str, str, int]


def parse_spec(text: str) -> Spec:
    """Parse ``KIND@ADDRESS:PORT`` (IPv4)."""
    kind, _, endpoint = text.partition("@")
    host, _, port = endpoint.rpartition(":")
    if kind not in KINDS or not host:
        raise argparse.ArgumentTypeError(f"not KIND@ADDRESS:PORT with a known kind: {text!r}")
    return kind, host, int(port)


async def _plain_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(reader.read(4096), 2.0)
        writer.write(XEND_ERROR)
        await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _plain_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(4096):
            pass
    writer.close()


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND: addresses routed to lo
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _package_fakes() -> Any:
    """``xendiscover.testing``, or ``None`` where the package has no fakes."""
    try:
        import xendiscover.testing as testing
    except ImportError:
        return None
    return testing


async def serve(specs: Sequence[Spec]) -> None:
    """Listen on every spec until stdin is closed."""
    closers: list[Any] = []
    testing = _package_fakes()
    kinds: set[str] = set()
    for kind, host, port in specs:
        name, kwargs = KINDS[kind]
        fake = getattr(testing, name, None) if testing is not None else None
        if fake is not None:
            server = await fake(host=host, port=port, **kwargs).start()
            closers.append(server.close)
            kinds.add("xendiscover.testing")
        else:
            handler = _plain_silence if kind == "tarpit" else _plain_reply
            plain = await asyncio.start_server(handler, sock=_listener(host, port))
            closers.append(plain.close)
            kinds.add("plain")
    sys.stdout.write(f"ready {len(closers)} {'+'.join(sorted(kinds)) or 'none'}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        for close in closers:
            done = close()
            if asyncio.iscoroutine(done):
                await done


@contextlib.contextmanager
def fake_services(
    specs: Sequence[Spec], prefix: Sequence[str] = (), ready_timeout: float = 15.0
) -> Iterator[str]:
    """Run this script in a child process (under ``prefix``, e.g. ``ip netns exec NS``).

    Yields the kind of fake serving (``xendiscover.testing`` or ``plain``)
    once all listen; closes the child's stdin on exit, and kills it if it
    lingers.
    """
    argv = [*prefix, sys.executable, str(Path(__file__).resolve())]
    argv += [f"--serve={kind}@{host}:{port}" for kind, host, port in specs]
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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


@contextlib.contextmanager
def fake_servers(
    addresses: Sequence[str], port: int, prefix: Sequence[str] = (), ready_timeout: float = 15.0
) -> Iterator[str]:
    """Run xend relocation fakes on ``addresses`` at ``port`` (see :func:`fake_services`)."""
    specs = [("xend-relocation", address, port) for address in addresses]
    with fake_services(specs, prefix, ready_timeout) as kind:
        yield kind


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, help="the port of the ADDRESSES' relocation fakes")
    parser.add_argument("--serve", type=parse_spec, action="append", default=[])
    parser.add_argument("addresses", nargs="*")
    args = parser.parse_args(argv)
    if args.addresses and args.port is None:
        parser.error("ADDRESSES need --port")
    specs = [*args.serve, *(("xend-relocation", a, args.port) for a in args.addresses)]
    asyncio.run(serve(specs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
