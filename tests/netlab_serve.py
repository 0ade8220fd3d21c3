"""Listeners for the namespace lab: fake xend relocation servers and HTTP decoys.

Run inside a lab namespace (``ip netns exec NS python tests/netlab_serve.py ...``)::

    netlab_serve.py --xen 10.77.1.131:8002 --xen [fd77:1::10]:8002 --http 10.77.1.140:8002

Every address is bound with ``IP_FREEBIND``, so an address that the namespace owns
only through ``ip route add local PREFIX dev lo`` binds as well as one configured on
an interface.  Once every listener is bound, the script prints ``ready`` on its own
line; it stops on SIGTERM/SIGINT, and with ``--exit-on-stdin-eof`` also when its
standard input closes (so that a lab whose owner died does not keep serving).

With ``--impl auto`` (the default) the listeners are the package's public fakes
(``xendiscover.testing.FakeXendRelocation`` / ``FakeHttpServer``) when those exist
and accept ``host=``/``port=``; otherwise (or with ``--impl builtin``, or if a fake
fails to bind) the small servers below answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

READ_TIMEOUT = 5.0
DECOY_READ_TIMEOUT = 1.0

XEND_OK = b"(ok (help quit receive sslreceive))\n"
XEND_ERR = (
    b"(err (type \"<class 'xen.xend.XendError.XendError'>\") (value 'Invalid operation: GET'))\n"
)
HTTP_DECOY = b"HTTP/1.0 200 OK\r\n\r\nhello"

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
IPV6_FREEBIND = 78

Endpoint = tuple[str, int]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``ADDR:PORT`` or ``[V6ADDR]:PORT``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":")
    ipaddress.ip_address(host)
    return host, int(port)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket with IP_FREEBIND set."""
    v6 = ipaddress.ip_address(host).version == 6
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            if v6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await writer.wait_closed()


async def xend_relocation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request like xend's relocation server (port 8002), then close."""
    try:
        line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        if line:
            writer.write(XEND_OK if line.strip() == b"(help)" else XEND_ERR)
            await writer.drain()
    except (TimeoutError, OSError):
        pass
    finally:
        await _close(writer)


async def http_decoy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer like a plain web server, whatever was asked (or not), then close."""
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.readline(), DECOY_READ_TIMEOUT)
        writer.write(HTTP_DECOY)
        await writer.drain()
    except OSError:
        pass
    finally:
        await _close(writer)


def _package_fake(name: str) -> Callable[..., Any] | None:
    """The class ``xendiscover.testing.<name>`` if it takes ``host=`` and ``port=``."""
    try:
        module = importlib.import_module("xendiscover.testing")
    except Exception:
        return None
    fake = getattr(module, name, None)
    if fake is None or not callable(fake):
        return None
    try:
        params = inspect.signature(fake).parameters
    except (TypeError, ValueError):
        return None
    if "host" not in params or "port" not in params:
        return None
    if not hasattr(fake, "__aenter__"):
        return None
    return fake  # type: ignore[no-any-return]


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    loop.add_reader(stdin, on_stdin)


async def _listen(
    stack: contextlib.AsyncExitStack,
    fake: Any,
    fake_name: str,
    handler: Handler,
    host: str,
    port: int,
) -> None:
    """Serve one endpoint with the package's fake, or the built-in handler."""
    if fake is not None:
        try:
            await stack.enter_async_context(fake(host=host, port=port))
            return
        except Exception as exc:
            print(f"{fake_name}({host}, {port}): {exc!r}; builtin", file=sys.stderr)
    server = await asyncio.start_server(handler, sock=listening_socket(host, port))
    stack.push_async_callback(server.wait_closed)
    stack.callback(server.close)


async def serve(
    xen: Sequence[Endpoint],
    http: Sequence[Endpoint],
    *,
    impl: str = "auto",
    exit_on_stdin_eof: bool = False,
) -> None:
    """Bind every listener, print ``ready``, serve until told to stop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if exit_on_stdin_eof:
        _stop_on_stdin_eof(loop, stop)
    async with contextlib.AsyncExitStack() as stack:
        kinds: list[tuple[Sequence[Endpoint], str, Handler]] = [
            (xen, "FakeXendRelocation", xend_relocation),
            (http, "FakeHttpServer", http_decoy),
        ]
        for endpoints, fake_name, handler in kinds:
            fake = _package_fake(fake_name) if impl == "auto" else None
            for host, port in endpoints:
                await _listen(stack, fake, fake_name, handler, host, port)
        print("ready", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xen", action="append", default=[], type=parse_endpoint)
    parser.add_argument("--http", action="append", default=[], type=parse_endpoint)
    parser.add_argument("--impl", choices=["auto", "builtin"], default="auto")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(
        serve(args.xen, args.http, impl=args.impl, exit_on_stdin_eof=args.exit_on_stdin_eof)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
