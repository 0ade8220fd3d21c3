"""The one socket driver every probe shares: connect, send, read capped, parse.

The driver owns all the I/O and all the foreign exceptions; parsers only see
bytes. Whatever the peer does, one exchange costs at most one deadline and
reads at most :data:`READ_CAP` bytes, and the socket is closed on the way out
(cancellation included). Connection failures come back as a ``Fingerprint``
with verdict ``unknown``, never as an exception.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from xendiscover._fingerprint._common import NeedMoreData, ReplyError, evidence
from xendiscover._model import Fingerprint

__all__ = [
    "READ_CAP",
    "Connector",
    "Ending",
    "Exchange",
    "client_tls_context",
    "exchange",
]

#: The most bytes one probe reads from a peer.
READ_CAP = 4096

#: How an exchange ended: the parser ``decided`` early, the peer ``closed``,
#: the ``deadline`` passed, the read ``cap`` was reached, or an ``error``
#: (refused, reset, TLS failure) ended it.
Ending = Literal["decided", "closed", "deadline", "cap", "refused", "error"]

#: Opens a TCP (or TLS) connection: :func:`asyncio.open_connection` or a fake.
Connector = Callable[..., Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

#: A parser with its nonce already bound: ``(data, closed) -> Fingerprint``.
BoundParser = Callable[[bytes, bool], Fingerprint]


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one probe exchange came to.

    Attributes:
        fingerprint: The verdict on the peer.
        ending: How the exchange ended (see :data:`Ending`).
        received: How many bytes the peer sent (at most :data:`READ_CAP`).
    """

    fingerprint: Fingerprint
    ending: Ending
    received: int


@functools.cache
def client_tls_context() -> ssl.SSLContext:
    """Return a TLS client context that does not verify (Xen certs are self-signed).

    No credentials ever travel over it, so an unverified peer costs nothing;
    old protocol versions stay allowed so old XenServer hosts still answer.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):  # pragma: no cover - depends on the OpenSSL build
        pass
    return context


def _decide(parse: BoundParser, data: bytes, closed: bool) -> Fingerprint | None:
    """Return the parser's verdict, or ``None`` while it needs more bytes."""
    try:
        return parse(data, closed)
    except NeedMoreData:
        return None
    except ReplyError as error:
        return Fingerprint(None, "unknown", evidence(f"unreadable reply ({error})", data))


def _undecided(parse: BoundParser, data: bytes, why: str) -> Fingerprint:
    """Return the verdict when the exchange stopped before the peer closed."""
    found = _decide(parse, data, False) if data else None
    if found is not None:
        return found
    return Fingerprint(None, "unknown", evidence(why, data))


#: Connect attempts per exchange, each a share of its one deadline: a lost
#: SYN (or SYN-ACK) must not turn a Xen host into "unknown" on a lossy link.
#: Only the connect is retried, so a peer that accepts and then stays silent
#: still costs exactly one deadline.
CONNECT_ATTEMPTS = 3
#: Local resource errors (too many open files, no buffer space, no free
#: port) are retried after a back-off, this many times at most.
RESOURCE_ATTEMPTS = 8
_RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)


async def _connect(
    connect: Connector, address: str, port: int, *, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the TCP connection, retrying a connect that timed out or met a local limit.

    Each attempt may take a third of ``timeout``; the caller's deadline
    bounds them all.

    Raises:
        TimeoutError: Every attempt timed out.
        OSError: The peer refused or the network failed (not retried).
    """
    timeouts = resource_errors = 0
    while True:
        try:
            async with asyncio.timeout(timeout / CONNECT_ATTEMPTS):
                return await connect(address, port)
        except TimeoutError:
            timeouts += 1
            if timeouts >= CONNECT_ATTEMPTS:
                raise
        except OSError as error:
            if error.errno not in _RESOURCE_ERRNOS or resource_errors >= RESOURCE_ATTEMPTS:
                raise
            resource_errors += 1
            await asyncio.sleep(min(1.0, 0.01 * 2**resource_errors))


async def exchange(
    address: str,
    port: int,
    request: bytes,
    parse: BoundParser,
    *,
    tls: bool,
    timeout: float,
    cap: int = READ_CAP,
    connect: Connector = asyncio.open_connection,
) -> Exchange:
    """Send one request and read the reply, bounded in time and bytes.

    Args:
        address: The IP address to connect to.
        port: The TCP port.
        request: The exact bytes to send.
        parse: Decides from ``(data, closed)``; raises ``NeedMoreData`` to wait.
        tls: Wrap the connection in TLS (unverified, no SNI).
        timeout: The one deadline for connect, handshake, send and reads.
        cap: The most bytes to read.
        connect: Opens the connection (:func:`asyncio.open_connection`).

    Returns:
        The verdict and how the exchange ended. Never raises for anything the
        network or the peer does.
    """
    data = bytearray()
    writer: asyncio.StreamWriter | None = None
    connected = False
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(connect, address, port, timeout=timeout)
            connected = True
            if tls:
                await writer.start_tls(client_tls_context())
            writer.write(request)
            await writer.drain()
            while len(data) < cap:
                chunk = await reader.read(cap - len(data))
                if not chunk:
                    closed = _decide(parse, bytes(data), True)
                    if closed is None:  # a parser broke its contract; stay safe
                        closed = Fingerprint(None, "unknown", evidence("closed", bytes(data)))
                    return Exchange(closed, "closed", len(data))
                data += chunk
                found = _decide(parse, bytes(data), False)
                if found is not None:
                    return Exchange(found, "decided", len(data))
            why = f"no verdict within {cap} bytes"
            return Exchange(_undecided(parse, bytes(data), why), "cap", len(data))
    except TimeoutError:
        if not connected:
            why = f"connect timed out {CONNECT_ATTEMPTS} times"
        elif not data:
            why = f"no reply within {timeout:g} s"
        else:
            why = f"no verdict within {timeout:g} s"
        return Exchange(_undecided(parse, bytes(data), why), "deadline", len(data))
    except ConnectionRefusedError:
        return Exchange(Fingerprint(None, "unknown", "connection refused"), "refused", 0)
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as error:
        if connected and not data:
            # The peer accepted and hung up before a byte: to the parsers, a
            # close (a socket closed with our request unread sends RST, not FIN).
            ended = _decide(parse, b"", True) or Fingerprint(None, "unknown", "reset")
            return Exchange(ended, "closed", 0)
        why = "connection reset" if connected else f"connect failed ({error.strerror})"
        return Exchange(_undecided(parse, bytes(data), why), "error", len(data))
    except ssl.SSLError as error:
        why = f"TLS failed ({error.reason or 'handshake'})"
        return Exchange(_undecided(parse, bytes(data), why), "error", len(data))
    except OSError as error:
        why = f"connection failed ({error.strerror or type(error).__name__})"
        return Exchange(_undecided(parse, bytes(data), why), "error", len(data))
    finally:
        if writer is not None:
            writer.transport.abort()
