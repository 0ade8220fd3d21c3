"""Decoys: servers that are not Xen, some of them hostile.

An ordinary web server, Xen Orchestra (an appliance, not a host), a tarpit,
an endless streamer and a resetter. A scan must never call any of them Xen,
and none of them may cost it more than its deadline.
"""

from __future__ import annotations

import asyncio

from xendiscover.testing._certs import fake_tls_context
from xendiscover.testing._server import (
    _REQUEST_LINE,
    FakeServer,
    _abort_with_reset,
    _BadRequest,
    _Conn,
    _read_request,
    _Request,
    _response,
)

__all__ = [
    "FakeHttpServer",
    "FakeResetter",
    "FakeStreamer",
    "FakeTarpit",
    "FakeXenOrchestra",
]


class FakeHttpServer(FakeServer):
    """Decoy: an ordinary web server (nginx-like) that is not Xen.

    Every request gets a 404 HTML page (405 for ``POST``), anything that is
    not HTTP a 400, with a ``Server`` header.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS with the packaged self-signed certificate.
        server: The ``Server`` header value.
        head_timeout: How long to wait for the end of a request head before
            answering the request line alone (seconds).

    Attributes:
        paths: Every request path, in order.
    """

    description = "web server (not Xen)"
    _scheme = "http"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = False,
        server: str = "nginx/1.24.0",
        head_timeout: float = 0.5,
    ) -> None:
        super().__init__(host, port, ssl_context=fake_tls_context() if tls else None)
        self.server = server
        self.head_timeout = head_timeout
        self.paths: list[str] = []

    def _page(self, status: str) -> bytes:
        body = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
        headers = [("Server", self.server), ("Content-Type", "text/html"), ("Connection", "close")]
        return _response(status, headers, body.encode())

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await asyncio.wait_for(_read_request(conn), self.head_timeout)
        except _BadRequest:
            await conn.send(self._page("400 Bad Request"))
            return
        except TimeoutError:
            # A request line and no end of head: answer it anyway, as a lenient
            # server answers a line-at-a-time client; anything else is a 400.
            line = bytes(conn.buffer).split(b"\n", 1)
            match = _REQUEST_LINE.fullmatch(line[0]) if len(line) == 2 else None
            if match is None:
                await conn.send(self._page("400 Bad Request"))
                return
            request = _Request(match[1].decode(), match[2].decode(), match[3].decode())
        if request is None:
            return
        self.paths.append(request.path)
        status = "405 Not Allowed" if request.method == "POST" else "404 Not Found"
        await conn.send(self._page(status))


class FakeXenOrchestra(FakeServer):
    """Decoy: Xen Orchestra, a Xen management appliance (not a Xen host).

    ``GET /`` is Express's 302 to ``/signin`` with a ``connect.sid`` session
    cookie, as nmap-service-probes recorded it from a real one ("Xen
    Orchestra"); anything else a 404 with Express's ``X-Powered-By``.

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        tls: Serve over TLS (it usually sits on 443).
    """

    description = "Xen Orchestra (appliance)"
    _scheme = "http"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False) -> None:
        super().__init__(host, port, ssl_context=fake_tls_context() if tls else None)

    async def _serve(self, conn: _Conn) -> None:
        try:
            request = await _read_request(conn)
        except _BadRequest:
            return
        if request is None:
            return
        if request.method == "GET" and request.path == "/":
            await conn.send(_XO_SIGNIN)
        else:
            await conn.send(_XO_404)


# Express (helmet) 302 to /signin, as nmap-service-probes' "Xen Orchestra" line has it.
_XO_SIGNIN = (
    b"HTTP/1.1 302 Found\r\nX-DNS-Prefetch-Control: off\r\nX-Frame-Options: SAMEORIGIN\r\n"
    b"Strict-Transport-Security: max-age=15552000; includeSubDomains\r\n"
    b"X-Download-Options: noopen\r\nX-Content-Type-Options: nosniff\r\n"
    b"X-XSS-Protection: 1; mode=block\r\nLocation: /signin\r\nVary: Accept\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n"
    b"set-cookie: connect.sid=s%3Afake.session; Path=/; HttpOnly\r\n"
    b"Connection: close\r\n\r\nFound. Redirecting to /signin"
)
_XO_404 = (
    b"HTTP/1.1 404 Not Found\r\nX-Powered-By: Express\r\nContent-Type: text/html\r\n"
    b"Content-Length: 9\r\nConnection: close\r\n\r\nNot Found"
)


class FakeTarpit(FakeServer):
    """Decoy: accepts, reads whatever comes, and never says a word.

    A connection ends only when the client closes it or the fake stops.
    """

    description = "tarpit (silent)"

    async def _serve(self, conn: _Conn) -> None:
        while await conn.more():
            conn.buffer.clear()


class FakeStreamer(FakeServer):
    """Decoy: streams the head of an HTTP response that never ends.

    Sends a status line, then header lines for as long as the client reads,
    up to ``limit`` bytes per connection (so even a fake stays bounded).

    Args:
        host: The address to bind.
        port: The port to bind (0: any free port).
        limit: The most bytes sent on one connection.

    Attributes:
        sent: The bytes sent, over all connections.
    """

    description = "endless streamer"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, limit: int = 8 * 1024 * 1024
    ) -> None:
        super().__init__(host, port)
        self.limit = limit
        self.sent = 0

    async def _serve(self, conn: _Conn) -> None:
        line = b"X-Filler: " + b"x" * 54 + b"\r\n"
        chunk = b"HTTP/1.1 200 OK\r\n" + line * 64
        sent = 0
        while sent < self.limit:
            piece = chunk[: self.limit - sent]
            await conn.send(piece)
            sent += len(piece)
            self.sent += len(piece)
            chunk = line * 64


class FakeResetter(FakeServer):
    """Decoy: starts an HTTP reply, then resets the connection (TCP RST).

    Waits for the client's first bytes, sends half a status line and header,
    and aborts with ``SO_LINGER`` 0 so the client sees a reset mid-reply.
    """

    description = "resets mid-reply"

    async def _serve(self, conn: _Conn) -> None:
        if not await conn.more():
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Len")
        await asyncio.sleep(0.01)  # let the half reply reach the client first
        _abort_with_reset(conn.writer)
