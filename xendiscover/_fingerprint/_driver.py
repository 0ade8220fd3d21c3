"""The one conversation driver every probe shares: connect, send, read capped, parse.

The driver owns the conversation; the :class:`~xendiscover._backend.Backend`
owns the sockets and translates their exceptions; parsers only see bytes.
Whatever the peer does, one exchange costs at most one deadline (on the
backend's clock) and reads at most :data:`READ_CAP` bytes, and the stream is
closed on the way out (cancellation included). Connection failures come back
as a ``Fingerprint`` with verdict ``unknown``, never as an exception.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from xendiscover._backend import (
    Backend,
    ConnectFailed,
    ConnectionLost,
    Outcome,
    Stream,
    TLSFailed,
)
from xendiscover._fingerprint._common import NeedMoreData, ReplyError, evidence
from xendiscover._model import Fingerprint

__all__ = [
    "CONNECT_ATTEMPTS",
    "READ_CAP",
    "RESOURCE_ATTEMPTS",
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

#: A parser with its nonce already bound: ``(data, closed) -> Fingerprint``.
BoundParser = Callable[[bytes, bool], Fingerprint]

#: Connect attempts per exchange, each a share of its one deadline: a lost
#: SYN (or SYN-ACK) must not turn a Xen host into "unknown" on a lossy link.
#: Only the connect is retried, so a peer that accepts and then stays silent
#: still costs exactly one deadline.
CONNECT_ATTEMPTS = 3
#: Local resource errors (too many open files, no buffer space, no free
#: port) are retried after a back-off, this many times at most.
RESOURCE_ATTEMPTS = 8


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


class _Deadline:
    """One deadline on the backend's clock, shared by every step of an exchange."""

    def __init__(self, backend: Backend, seconds: float) -> None:
        self._backend = backend
        self.seconds = seconds
        self._end = backend.time() + seconds

    def left(self) -> float:
        return max(0.0, self._end - self._backend.time())


async def _connect(backend: Backend, address: str, port: int, deadline: _Deadline) -> Stream:
    """Open the connection, retrying a connect that timed out or met a local limit.

    Raises:
        TimeoutError: Every attempt timed out (or the deadline passed).
        ConnectFailed: The peer refused or the network failed (not retried).
    """
    timeouts = resource_errors = 0
    share = deadline.seconds / CONNECT_ATTEMPTS
    while True:
        try:
            return await backend.open_stream(address, port, timeout=min(share, deadline.left()))
        except TimeoutError:
            timeouts += 1
            if timeouts >= CONNECT_ATTEMPTS or deadline.left() <= 0:
                raise
        except ConnectFailed as error:
            exhausted = resource_errors >= RESOURCE_ATTEMPTS or deadline.left() <= 0
            if error.outcome is not Outcome.RESOURCE or exhausted:
                raise
            resource_errors += 1
            await backend.sleep(min(1.0, 0.01 * 2**resource_errors, deadline.left()))


def _unconnected(ending: Ending, why: str) -> Exchange:
    """The verdict of an exchange that never had a connection."""
    return Exchange(Fingerprint(None, "unknown", why), ending, 0)


class _Conversation:
    """The part of an exchange after the connect: handshake, request, capped reads."""

    def __init__(self, stream: Stream, parse: BoundParser, deadline: _Deadline, cap: int) -> None:
        self._stream = stream
        self._parse = parse
        self._deadline = deadline
        self._cap = cap
        self.data = bytearray()

    def ended(self, ending: Ending, why: str) -> Exchange:
        """The verdict of an exchange that stopped before the peer closed."""
        data = bytes(self.data)
        found = _decide(self._parse, data, False) if data else None
        if found is None:
            found = Fingerprint(None, "unknown", evidence(why, data))
        return Exchange(found, ending, len(data))

    def closed(self) -> Exchange:
        """The verdict once the peer closed (a parser must decide then)."""
        data = bytes(self.data)
        found = _decide(self._parse, data, True)
        if found is None:  # a parser broke its contract; stay safe
            found = Fingerprint(None, "unknown", evidence("closed", data))
        return Exchange(found, "closed", len(data))

    async def run(self, request: bytes, tls: bool) -> Exchange:
        stream, deadline = self._stream, self._deadline
        if tls:
            await stream.start_tls(
                client_tls_context(), server_hostname=None, timeout=deadline.left()
            )
        if request:
            await stream.write(request, timeout=deadline.left())
        while len(self.data) < self._cap:
            chunk = await stream.read(self._cap - len(self.data), timeout=deadline.left())
            if not chunk:
                return self.closed()
            self.data += chunk
            found = _decide(self._parse, bytes(self.data), False)
            if found is not None:
                return Exchange(found, "decided", len(self.data))
        return self.ended("cap", f"no verdict within {self._cap} bytes")


async def _converse(talk: _Conversation, request: bytes, tls: bool, timeout: float) -> Exchange:
    """Run the conversation, turning what the network does into an ending."""
    try:
        return await talk.run(request, tls)
    except TimeoutError:
        return talk.ended(
            "deadline", f"no {'verdict' if talk.data else 'reply'} within {timeout:g} s"
        )
    except ConnectionLost:
        if not talk.data:
            # The peer accepted and hung up before a byte: to the parsers, a
            # close (a socket closed with our request unread sends RST, not FIN).
            return talk.closed()
        return talk.ended("error", "connection reset")
    except TLSFailed as error:
        return talk.ended("error", f"TLS failed ({error})")


async def exchange(
    backend: Backend,
    address: str,
    port: int,
    request: bytes,
    parse: BoundParser,
    *,
    tls: bool,
    timeout: float,
    cap: int = READ_CAP,
) -> Exchange:
    """Send one request and read the reply, bounded in time and bytes.

    Args:
        backend: Where the connection is opened (and whose clock is used).
        address: The IP address to connect to.
        port: The TCP port.
        request: The exact bytes to send.
        parse: Decides from ``(data, closed)``; raises ``NeedMoreData`` to wait.
        tls: Wrap the connection in TLS (unverified, no SNI).
        timeout: The one deadline for connect, handshake, send and reads.
        cap: The most bytes to read.

    Returns:
        The verdict and how the exchange ended. Never raises for anything the
        network or the peer does.
    """
    deadline = _Deadline(backend, timeout)
    try:
        stream = await _connect(backend, address, port, deadline)
    except TimeoutError:
        return _unconnected("deadline", f"connect timed out {CONNECT_ATTEMPTS} times")
    except ConnectFailed as error:
        if error.outcome is Outcome.CLOSED:
            return _unconnected("refused", "connection refused")
        return _unconnected("error", f"connect failed ({error})")
    try:
        return await _converse(_Conversation(stream, parse, deadline, cap), request, tls, timeout)
    finally:
        stream.close()
