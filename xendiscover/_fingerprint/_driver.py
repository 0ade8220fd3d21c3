"""The one conversation driver every probe shares: connect, send, read capped, parse.

The driver owns the conversation; the :class:`~xendiscover._backend.Backend`
owns the sockets and translates their exceptions; parsers only see bytes.
Whatever the peer does, one exchange costs at most one deadline (on the
backend's clock) and reads at most :data:`READ_CAP` bytes, and the stream is
closed on the way out (cancellation included). Connection failures come back
as a ``Fingerprint`` with verdict ``unknown``, never as an exception.
"""

from __future__ import annotations

import dataclasses
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from xendiscover._backend import (
    Backend,
    ConnectFailed,
    Connection,
    ConnectionLost,
    Outcome,
    Stream,
    TLSFailed,
    backoff,
)
from xendiscover._fingerprint._common import (
    Continue,
    NeedMoreData,
    ParseResult,
    ReplyError,
    evidence,
)
from xendiscover._model import Fingerprint

__all__ = [
    "CONNECT_ATTEMPTS",
    "CONNECT_FLOOR",
    "EXCHANGE_ROUND_TRIPS",
    "READ_CAP",
    "RESOURCE_ATTEMPTS",
    "SILENT_REPLY",
    "Ending",
    "Exchange",
    "Handshake",
    "HandshakeHook",
    "client_tls_context",
    "connect_share",
    "exchange",
    "stretched",
]

#: The most bytes one probe reads from a peer.
READ_CAP = 4096

#: How the evidence of an exchange that got no byte before its deadline begins.
SILENT_REPLY = "no reply within"

#: How an exchange ended: the parser ``decided`` early, the peer ``closed``,
#: the ``deadline`` passed, the read ``cap`` was reached, or an ``error``
#: (refused, reset, TLS failure) ended it.
Ending = Literal["decided", "closed", "deadline", "cap", "refused", "error"]

#: A parser with its nonce already bound: ``(data, closed) -> Fingerprint | Continue``.
#: ``data`` is every byte received on the connection so far.
BoundParser = Callable[[bytes, bool], ParseResult]

#: Called with the peer's DER certificate right after a TLS handshake; a
#: Fingerprint it returns decides the exchange.
HandshakeHook = Callable[[bytes | None], Fingerprint | None]

#: Connect attempts per exchange, each a share of its one deadline: a lost
#: SYN (or SYN-ACK) must not turn a Xen host into "unknown" on a lossy link.
#: Only the connect is retried, so a peer that accepts and then stays silent
#: still costs exactly one deadline.
CONNECT_ATTEMPTS = 3
#: Local resource errors (too many open files, no buffer space, no free
#: port) are retried after a back-off, this many times at most.
RESOURCE_ATTEMPTS = 8
#: The shortest wait of one connect attempt, in seconds: a WAN round trip
#: (a VPN, a satellite link) can take most of a second, and a kernel
#: retransmits a lost SYN after one second, so a shorter attempt would give
#: up on a far host before its answer could come.
CONNECT_FLOOR = 1.0
#: Round trips one connect attempt waits before the next is started.
CONNECT_ROUND_TRIPS = 3
#: Round trips a probe's exchange is given at least: the connect (1), a
#: TLS handshake (2), the request and its reply (1), and room for a lost
#: segment's retransmission (a second or more, about four round trips on a
#: far link) and for a second connect attempt.
EXCHANGE_ROUND_TRIPS = 10


def connect_share(deadline: float, rtt: float) -> float:
    """How long one connect attempt waits, of a probe whose connects share ``deadline``.

    A third of ``deadline`` (:data:`CONNECT_ATTEMPTS` attempts), never less
    than :data:`CONNECT_ROUND_TRIPS` round trips of the address (``rtt``,
    as the sweep measured it) nor less than :data:`CONNECT_FLOOR`.
    """
    return max(CONNECT_FLOOR, CONNECT_ROUND_TRIPS * rtt, deadline / CONNECT_ATTEMPTS)


def stretched(deadline: float, rtt: float) -> float:
    """A probe's ``deadline``, stretched to cover its exchange at ``rtt`` seconds a round trip.

    ``deadline`` is the floor (a service that answers its handshake in time
    may still take a moment to reply); a far address gets
    :data:`EXCHANGE_ROUND_TRIPS` of its round trips if that is longer.
    """
    return max(deadline, EXCHANGE_ROUND_TRIPS * rtt)


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one probe exchange came to.

    Attributes:
        fingerprint: The verdict on the peer.
        ending: How the exchange ended (see :data:`Ending`).
        received: How many bytes the peer sent (at most :data:`READ_CAP`).
        certificate: The peer's DER certificate, after a TLS handshake.
    """

    fingerprint: Fingerprint
    ending: Ending
    received: int
    certificate: bytes | None = None


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


def _decide(parse: BoundParser, data: bytes, closed: bool) -> ParseResult | None:
    """Return the parser's word (a verdict, or the next request), or ``None`` to wait."""
    try:
        found = parse(data, closed)
    except NeedMoreData:
        return None
    except ReplyError as error:
        return Fingerprint(None, "unknown", evidence(f"unreadable reply ({error})", data))
    if closed and isinstance(found, Continue):  # a parser broke its contract: stay safe
        return Fingerprint(None, "unknown", evidence("asked for more after the close", data))
    return found


def _final(parse: BoundParser, data: bytes) -> Fingerprint | None:
    """The parser's verdict on the bytes so far, as if the peer had closed."""
    found = _decide(parse, data, True)
    return found if isinstance(found, Fingerprint) else None


class _Deadline:
    """One deadline on the backend's clock, shared by every step of an exchange."""

    def __init__(self, backend: Backend, seconds: float) -> None:
        self._backend = backend
        self.seconds = seconds
        self._end = backend.time() + seconds

    def left(self) -> float:
        return max(0.0, self._end - self._backend.time())


async def _connect(
    backend: Backend,
    address: str,
    port: int,
    deadline: _Deadline,
    share: float,
    kept: Connection | None = None,
) -> Stream:
    """Open the connection, retrying a connect that timed out or met a local limit.

    A connection the sweep ``kept`` is used as it is: no new handshake.

    Raises:
        TimeoutError: Every attempt timed out (or the deadline passed).
        ConnectFailed: The peer refused or the network failed (not retried).
    """
    if kept is not None:
        return await backend.open_stream(
            address, port, timeout=max(share, deadline.left()), connection=kept
        )
    timeouts = resource_errors = 0
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
            await backend.sleep(min(backoff(resource_errors), deadline.left()))


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
        self.certificate: bytes | None = None

    def ended(self, ending: Ending, why: str) -> Exchange:
        """The verdict of an exchange that stopped before the peer closed.

        A parser still waiting for the rest of a reply has no verdict: ``why``
        says what stopped it. One that was mid-conversation (it had asked for
        a next step) has its final word on the replies that did come.
        """
        data = bytes(self.data)
        found: ParseResult | None = _decide(self._parse, data, False) if data else None
        if isinstance(found, Continue):
            found = _final(self._parse, data)
        if found is None:
            found = Fingerprint(None, "unknown", evidence(why, data))
        return Exchange(found, ending, len(data))

    def closed(self) -> Exchange:
        """The verdict once the peer closed (a parser must decide then)."""
        data = bytes(self.data)
        found = _final(self._parse, data)
        if found is None:  # a parser broke its contract; stay safe
            found = Fingerprint(None, "unknown", evidence("closed", data))
        return Exchange(found, "closed", len(data))

    async def run(self, request: bytes, tls: Handshake | None) -> Exchange:
        stream, deadline = self._stream, self._deadline
        if tls is not None:
            await stream.start_tls(
                client_tls_context(), server_hostname=tls.server_hostname, timeout=deadline.left()
            )
            self.certificate = stream.peer_certificate()
            if tls.on_handshake is not None:
                found = tls.on_handshake(self.certificate)
                if found is not None:
                    return Exchange(found, "decided", 0)
        if request:
            await stream.write(request, timeout=deadline.left())
        return await self._read()

    async def _read(self) -> Exchange:
        """Read and decide, sending each new step a parser asks for once."""
        stream, deadline = self._stream, self._deadline
        step = 0
        while len(self.data) < self._cap:
            chunk = await stream.read(self._cap - len(self.data), timeout=deadline.left())
            if not chunk:
                return self.closed()
            self.data += chunk
            found = _decide(self._parse, bytes(self.data), False)
            if isinstance(found, Fingerprint):
                return Exchange(found, "decided", len(self.data))
            if isinstance(found, Continue) and found.step > step:
                step = found.step
                await stream.write(found.request, timeout=deadline.left())
        return self.ended("cap", f"no verdict within {self._cap} bytes")


@dataclass(frozen=True, slots=True)
class Handshake:
    """How to run a TLS handshake: the SNI name to send, and what to do with its certificate."""

    server_hostname: str | None = None
    on_handshake: HandshakeHook | None = None


async def _converse(
    talk: _Conversation, request: bytes, tls: Handshake | None, timeout: float
) -> Exchange:
    """Run the conversation, turning what the network does into an ending."""
    try:
        return await talk.run(request, tls)
    except TimeoutError:
        if not talk.data:
            return talk.ended("deadline", f"{SILENT_REPLY} {timeout:g} s")
        return talk.ended("deadline", f"no verdict within {timeout:g} s")
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
    server_hostname: str | None = None,
    on_handshake: HandshakeHook | None = None,
    connect_timeout: float | None = None,
    rtt: float = 0.0,
    connection: Connection | None = None,
) -> Exchange:
    """Send a request and read the reply, bounded in time and bytes.

    A parser that returns :class:`Continue` gets its next request sent once
    per new step, on the same connection, within the same deadline and cap.

    Args:
        backend: Where the connection is opened (and whose clock is used).
        address: The IP address to connect to.
        port: The TCP port.
        request: The exact bytes to send.
        parse: Decides from ``(data, closed)`` (all bytes so far); raises
            ``NeedMoreData`` to wait, or returns :class:`Continue` to send more.
        tls: Wrap the connection in TLS (unverified).
        timeout: The one deadline for connect, handshake, send and reads.
        cap: The most bytes to read.
        server_hostname: The TLS SNI name (``None``: none sent).
        on_handshake: Called with the peer's DER certificate after the TLS
            handshake; a Fingerprint it returns decides the exchange.
        connect_timeout: The deadline whose thirds the connect attempts get
            (``timeout`` by default): a probe that waits long for its reply
            still retries a lost SYN as soon as any probe would. Never
            shorter than :func:`connect_share` allows.
        rtt: The address's round-trip time as the sweep measured it, in
            seconds: no connect attempt waits less than a few of them.
        connection: An open connection the sweep kept: the exchange runs
            on it instead of connecting (and closes it, as its own).

    Returns:
        The verdict and how the exchange ended. Never raises for anything the
        network or the peer does.
    """
    deadline = _Deadline(backend, timeout)
    try:
        share = connect_share(min(timeout, connect_timeout or timeout), rtt)
        stream = await _connect(backend, address, port, deadline, share, connection)
    except TimeoutError:
        return _unconnected("deadline", f"connect timed out {CONNECT_ATTEMPTS} times")
    except ConnectFailed as error:
        if error.outcome is Outcome.CLOSED:
            return _unconnected("refused", "connection refused")
        return _unconnected("error", f"connect failed ({error})")
    try:
        handshake = Handshake(server_hostname, on_handshake) if tls else None
        talk = _Conversation(stream, parse, deadline, cap)
        result = await _converse(talk, request, handshake, timeout)
        return dataclasses.replace(result, certificate=talk.certificate)
    finally:
        stream.close()
