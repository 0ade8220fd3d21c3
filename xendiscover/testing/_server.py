"""The base of every fake server, and the HTTP plumbing the HTTP fakes share.

Each fake is an asyncio TCP server bound to any address and port (port 0 picks
a free one), used as an async context manager::

    async with FakeXapi(host="127.0.0.5", port=0) as server:
        print(server.host, server.port, server.url)

A fake records what it was sent (:attr:`FakeServer.received`) and answers,
nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import struct
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "FakeServer",
]

#: The most bytes a fake keeps of what one connection sent it.
_RECORD_CAP = 64 * 1024
#: The longest request head or body a fake accepts.
_HTTP_CAP = 1024 * 1024


class _Conn:
    """One accepted connection: a buffered reader that records, and the writer."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: bytearray
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self._log = log

    async def more(self) -> bool:
        """Read one more chunk into the buffer; return ``False`` at end of stream."""
        chunk = await self.reader.read(65536)
        if not chunk:
            return False
        room = _RECORD_CAP - len(self._log)
        if room > 0:
            self._log += chunk[:room]
        self.buffer += chunk
        return True

    def take(self, size: int) -> bytes:
        """Remove and return the first ``size`` buffered bytes."""
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def send(self, data: bytes) -> None:
        """Write ``data`` and wait until it is handed to the kernel."""
        self.writer.write(data)
        await self.writer.drain()


class FakeServer:
    """The base of every fake: an asyncio server on one address and port.

    Args:
        host: The address to bind (e.g. ``"127.0.0.5"``; any 127/8 address
            works on Linux without configuration).
        port: The port to bind; 0 picks a free one (see :attr:`port`).
        ssl_context: Serve over TLS with this context (``None``: in the clear).

    Attributes:
        description: What the fake pretends to be, in a few words.
        connections: How many connections it has accepted.
    """

    description: str = "a fake server"
    _scheme: ClassVar[str] = "tcp"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._logs: list[bytearray] = []
        self.connections = 0

    @property
    def host(self) -> str:
        """The address the fake is bound to."""
        return self._host

    @property
    def port(self) -> int:
        """The port the fake listens on (the real one, also when bound to 0)."""
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return self._port

    @property
    def tls(self) -> bool:
        """Whether the fake serves over TLS."""
        return self._ssl is not None

    @property
    def url(self) -> str:
        """A URL for the fake, e.g. ``https://127.0.0.5:44321/``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = self._scheme + ("s" if self.tls and self._scheme == "http" else "")
        return f"{scheme}://{host}:{self.port}/"

    @property
    def open_connections(self) -> int:
        """How many accepted connections are still being served."""
        return len(self._tasks)

    @property
    def received(self) -> list[bytes]:
        """What each connection sent, in order (the first 64 KiB of each)."""
        return [bytes(log) for log in self._logs]

    async def start(self) -> Self:
        """Bind and start serving; return the fake itself.

        Raises:
            OSError: The address or port cannot be bound.
        """
        if self._server is not None:
            return self
        self._server = await asyncio.start_server(
            self._accept, self._host, self._requested_port, ssl=self._ssl
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        """Stop serving and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # A connection whose TLS handshake finished as we closed has its
        # handler task made, but not yet started (and registered): give it a
        # turn, then end it with the others.
        for _ in range(3):
            await asyncio.sleep(0)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        log = bytearray()
        self._logs.append(log)
        try:
            await self._serve(_Conn(reader, writer, log))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away, or reset: nothing to answer
        except asyncio.CancelledError:
            # close() cancels this connection's own task; end it quietly (on
            # 3.11 a cancelled client_connected_cb task is logged as an error).
            pass
        finally:
            writer.close()
            # Collect the close's outcome (a reset, often), so nothing is
            # left for "exception was never retrieved" at exit; close() still
            # sees this task until then.
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, conn: _Conn) -> None:
        """Answer one connection (subclasses override this)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- HTTP


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) ([\x21-\x7e]+) (HTTP/1\.[01])\r?")
_REQUEST_PREFIX = re.compile(rb"[A-Z]{0,16}(?: [\x21-\x7e]*(?: [\x21-\x7e]*\r?)?)?")


class _BadRequest(Exception):
    """The client sent something that is not an HTTP/1.x request."""


async def _read_head(conn: _Conn) -> bytes | None:
    """Read up to the end of a request head; ``None`` at a clean end of stream.

    Raises:
        _BadRequest: As soon as the bytes cannot be an HTTP request.
    """
    while True:
        end = conn.buffer.find(b"\r\n\r\n")
        if end != -1:
            return conn.take(end + 4)[:-4]
        line_end = conn.buffer.find(b"\n")
        line = bytes(conn.buffer if line_end == -1 else conn.buffer[:line_end])
        pattern = _REQUEST_PREFIX if line_end == -1 else _REQUEST_LINE
        if pattern.fullmatch(line) is None or len(conn.buffer) > _HTTP_CAP:
            raise _BadRequest(line)
        if not await conn.more():
            if conn.buffer:
                raise _BadRequest(bytes(conn.buffer))
            return None


def _parse_head(head: bytes) -> _Request:
    """Parse a request head (without its blank line).

    Raises:
        _BadRequest: It is not an HTTP/1.x request head.
    """
    lines = head.decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0].encode("latin-1"))
    if match is None:
        raise _BadRequest(lines[0].encode("latin-1"))
    request = _Request(match[1].decode(), match[2].decode(), match[3].decode())
    for header in lines[1:]:
        name, colon, value = header.partition(":")
        if not colon:
            raise _BadRequest(lines[0].encode("latin-1"))
        request.headers[name.strip().lower()] = value.strip()
    length_text = request.headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > _HTTP_CAP:
        raise _BadRequest(lines[0].encode("latin-1"))
    return request


async def _read_request(conn: _Conn) -> _Request | None:
    """Read one HTTP request; ``None`` at a clean end of stream.

    Raises:
        _BadRequest: As soon as the bytes cannot be an HTTP request (its
            argument is the offending line).
    """
    head = await _read_head(conn)
    if head is None:
        return None
    request = _parse_head(head)
    length = int(request.headers.get("content-length", "0"))
    while len(conn.buffer) < length:
        if not await conn.more():
            return None
    request.body = conn.take(length)
    return request


def _response(
    status: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    version: str = "HTTP/1.1",
    length_header: str = "Content-Length",
) -> bytes:
    """Render an HTTP response, headers exactly as given (case included)."""
    lines = [f"{version} {status}", f"{length_header}: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _safe_xmlrpc_loads(body: bytes) -> tuple[tuple[Any, ...], str | None] | None:
    """Decode an XML-RPC call, refusing DTDs; ``None`` if it is not one."""
    if b"<!" in body:
        return None
    try:
        return xmlrpc.client.loads(body)
    except Exception:  # expat and xmlrpc.client raise a zoo of types on garbage
        return None


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (``SO_LINGER`` 0), as a close with unread bytes does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


#: The headers of xend's SXP replies, in the order the real 4.4.0 server sends
#: them (after ``Content-length``); names ``capitalize()``-d, no ``Server``/``Date``.
