"""The I/O interface every part of a scan goes through, and its one errno table.

A scan touches the outside world in four ways, all of them here:

- the sweep's connects (:meth:`Backend.connect`), syscall-first: most
  connects end inside the call, so the answer comes back at once;
- the fingerprint's conversations (:meth:`Backend.open_stream`), plain or TLS;
- probe processes for large sweeps (:meth:`Backend.spawn_worker`);
- the clock (:meth:`Backend.time`, :meth:`Backend.sleep`).

:class:`~xendiscover._backend.SocketBackend` is the real one;
:class:`xendiscover.testing.FakeBackend` scripts all four, virtual time
included, so code built on :func:`xendiscover.scan` can be tested with no
socket and no waiting.

Foreign exceptions (``OSError``, ``ssl.SSLError``) are translated once, at
this edge, into one tree::

    XenDiscoverError
    └── NetworkError         a stream could not be opened or used
        ├── ConnectFailed    the connect ended without a connection (.outcome)
        ├── ConnectionLost   the peer reset or aborted an open connection
        └── TLSFailed        the TLS handshake failed

Time-outs are the built-in :class:`TimeoutError`.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import socket
import ssl
from dataclasses import dataclass
from typing import Protocol

from xendiscover._errors import XenDiscoverError

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "RESOURCE_ERRNOS",
    "Backend",
    "ConnectFailed",
    "ConnectResult",
    "Connection",
    "ConnectionLost",
    "NetworkError",
    "Outcome",
    "Started",
    "Stream",
    "TLSFailed",
    "WorkerProcess",
    "backoff",
    "outcome_of_errno",
]

#: The one back-off policy, after a local resource error (too many open
#: files, no buffer space): the first wait and the ceiling, in seconds.
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 1.0


def backoff(errors: int) -> float:
    """Seconds to wait after ``errors`` local resource errors in a row (1 or more).

    The wait doubles from :data:`BACKOFF_FIRST` up to :data:`BACKOFF_MAX`;
    the sweep and the fingerprints both use it.
    """
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(max(errors, 1) - 1, 16))


class Outcome(enum.Enum):
    """What one connect attempt found."""

    #: The port accepted the connection.
    OPEN = "open"
    #: The host answered with a reset: nothing listens there.
    CLOSED = "closed"
    #: The network said no route, no host, or administratively prohibited.
    UNREACHABLE = "unreachable"
    #: No answer within the deadline (dark address, firewall, or loss).
    TIMEOUT = "timeout"
    #: A local resource ran out; the attempt says nothing about the peer.
    RESOURCE = "resource"
    #: A local error that retrying will not cure (reported, not retried).
    ERROR = "error"


#: errno values that mean "this machine ran out of something": retry later.
RESOURCE_ERRNOS = frozenset(
    {
        errno.EMFILE,  # too many open files (per process)
        errno.ENFILE,  # too many open files (system-wide)
        errno.ENOBUFS,  # no buffer space (also: neighbour table overflow)
        errno.ENOMEM,
        errno.EADDRNOTAVAIL,  # ephemeral ports exhausted
        errno.EAGAIN,  # Linux says this when it has no ephemeral port left
    }
)

#: errno values that are an answer from the network, not a failure of ours.
_ERRNO_OUTCOME = {
    errno.ECONNREFUSED: Outcome.CLOSED,
    errno.ECONNRESET: Outcome.CLOSED,
    errno.ENETUNREACH: Outcome.UNREACHABLE,
    errno.EHOSTUNREACH: Outcome.UNREACHABLE,
    errno.EHOSTDOWN: Outcome.UNREACHABLE,
    errno.ENETDOWN: Outcome.UNREACHABLE,
    errno.EACCES: Outcome.UNREACHABLE,  # ICMP admin-prohibited, or a broadcast address
    errno.EPERM: Outcome.UNREACHABLE,  # a local firewall rejected it
    errno.ETIMEDOUT: Outcome.TIMEOUT,
}


def outcome_of_errno(code: int) -> Outcome:
    """Classify the errno a connect failed with (0: it connected)."""
    if code == 0:
        return Outcome.OPEN
    if code in RESOURCE_ERRNOS:
        return Outcome.RESOURCE
    return _ERRNO_OUTCOME.get(code, Outcome.ERROR)


class Connection(Protocol):
    """An open connection the sweep kept for the fingerprint's first probe (opaque).

    Whoever holds one either hands it to :meth:`Backend.open_stream` or
    closes it.
    """

    def close(self) -> None:
        """Close it (a reset, no lingering); idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The end of one connect attempt.

    Attributes:
        outcome: What the attempt found.
        latency: Seconds from the start of the connect to its end.
        errno: The OS error number behind the outcome, or 0.
        icmp: For an unreachable outcome that an ICMP error caused, where
            the kernel says so: its ``(type, code, sender address)``. A
            failed ARP or neighbour discovery on this machine comes as an
            ICMP "host unreachable" sent by one of its own addresses.
        connection: For an open outcome of a connect asked to ``keep`` it,
            the open connection (the caller owns it from here).
        local: For an ICMP error, whether this machine sent it (its own
            failed ARP or neighbour discovery), as far as the backend knows.
    """

    outcome: Outcome
    latency: float = 0.0
    errno: int = 0
    icmp: tuple[int, int, str] | None = None
    connection: Connection | None = None
    local: bool = False


#: A finished attempt, or the future of a pending one.
Started = ConnectResult | asyncio.Future[ConnectResult]


class NetworkError(XenDiscoverError):
    """A stream could not be opened or used (see the tree in the module docstring)."""


class ConnectFailed(NetworkError):
    """The connect ended without a connection.

    Attributes:
        outcome: Why, as the sweep would classify it (never ``OPEN``).
        errno: The OS error number, or 0.
    """

    def __init__(self, outcome: Outcome, code: int = 0, why: str = "") -> None:
        super().__init__(why or outcome.value)
        self.outcome = outcome
        self.errno = code


class ConnectionLost(NetworkError):
    """The peer reset or aborted a connection that was open."""


class TLSFailed(NetworkError):
    """The TLS handshake failed; the message says why, in a few words."""


class Stream(Protocol):
    """One open connection of a fingerprint conversation."""

    async def write(self, data: bytes, *, timeout: float) -> None:
        """Send ``data`` within ``timeout`` seconds.

        Raises:
            TimeoutError: The peer did not take it in time.
            ConnectionLost: The peer reset the connection.
        """
        ...

    async def read(self, max_bytes: int, *, timeout: float) -> bytes:
        """Return up to ``max_bytes`` the peer sent; ``b""`` once it closed.

        Raises:
            TimeoutError: Nothing came within ``timeout`` seconds.
            ConnectionLost: The peer reset the connection.
        """
        ...

    async def start_tls(
        self, context: ssl.SSLContext, *, server_hostname: str | None, timeout: float
    ) -> None:
        """Run a TLS handshake over the open connection (no SNI if no hostname).

        Raises:
            TimeoutError: The handshake did not finish within ``timeout``.
            TLSFailed: The peer spoke no TLS, or refused the handshake.
            ConnectionLost: The peer reset or closed during the handshake.
        """
        ...

    def peer_certificate(self) -> bytes | None:
        """The peer's TLS certificate (DER), or ``None`` (plain, or none sent)."""
        ...

    def close(self) -> None:
        """Close the connection at once (a reset, no lingering); idempotent."""
        ...


class WorkerProcess(Protocol):
    """A running probe process: its output, its exit, and a way to stop it."""

    async def read(self) -> bytes:
        """Return the next bytes it wrote; ``b""`` once its output closed."""
        ...

    async def wait(self) -> int:
        """Wait for it to exit and return its exit status."""
        ...

    def kill(self) -> None:
        """Stop it now (no-op if it has exited)."""
        ...

    def connection(self, address: str, port: int) -> Connection | None:
        """The open connection it handed over for ``address``:``port``, if any (once)."""
        ...


class Backend(Protocol):
    """All the I/O of a scan; swap it to test without a network or a clock."""

    def connect(
        self,
        family: socket.AddressFamily,
        address: str,
        port: int,
        timeout: float,
        keep: bool = False,
    ) -> Started:
        """Start a TCP connect to ``address``:``port`` for the sweep.

        Returns a :class:`ConnectResult` when the attempt ended at once, or a
        future that the backend completes within ``timeout`` seconds. The
        backend closes every socket it opens here (when the future completes,
        and also when the caller cancels it), except, with ``keep``, the
        connection of an open outcome: it comes in the result's
        ``connection``, and the caller owns it.
        """
        ...

    async def open_stream(
        self, address: str, port: int, *, timeout: float, connection: Connection | None = None
    ) -> Stream:
        """Open a TCP connection for a conversation (TLS: :meth:`Stream.start_tls`).

        With ``connection`` (one the sweep kept), no new connect is made:
        the conversation runs on it.

        Raises:
            TimeoutError: No connection within ``timeout`` seconds.
            ConnectFailed: The connect ended otherwise (refused, no route,
                out of a local resource: see its ``outcome``).
        """
        ...

    async def spawn_worker(self, job: bytes, *, connections: bool = False) -> WorkerProcess:
        """Start a probe process that sweeps the encoded ``job``.

        With ``connections``, the process keeps the connection of every open
        port it finds and hands it over (:meth:`WorkerProcess.connection`).

        Raises:
            NetworkError: The process could not be started.
        """
        ...

    def hand_over(self, connection: Connection, address: str, port: int) -> None:
        """In a probe process: send a kept connection to the scanning process.

        The connection is closed here either way; if it cannot be sent (no
        channel, or the channel is full), the scanning process opens a new
        one for its fingerprint.
        """
        ...

    def time(self) -> float:
        """The backend's monotonic clock, in seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the backend's clock."""
        ...

    def close(self) -> None:
        """Release what the backend keeps between calls (spare sockets)."""
        ...
