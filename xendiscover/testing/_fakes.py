r"""Fake I/O for the pipeline: a whole network, DNS and clock without a socket.

:class:`FakeBackend` implements :class:`~xendiscover._backend.Backend`: the
sweep's connects answer as scripted per address, open ports hold scripted
:class:`FakeService` peers that the fingerprint probes talk to, probe
"processes" run in this process over the same wire protocol as real ones,
and time is virtual (a silent peer costs its deadline on the fake clock, not
in real life). :class:`FakeResolver` stands in for DNS. With both, code built
on :func:`xendiscover.scan` is tested with no network and no waiting::

    backend = FakeBackend(
        {"10.0.0.7": "open"},
        services={("10.0.0.7", 8002): FakeService(b"(ok (help quit receive sslreceive))\n")},
    )
    hosts = await xendiscover.discover(["10.0.0.0/29"], port=8002, backend=backend,
                                       resolver=FakeResolver({"10.0.0.7": "xen1.example"}))
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import errno
import random
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from xendiscover._backend import (
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectResult,
    Outcome,
    Started,
    Stream,
    TLSFailed,
    WorkerProcess,
)

__all__ = ["Behaviour", "FakeBackend", "FakeResolver", "FakeService"]

#: How a fake address answers one connect attempt.
#:
#: ``open`` accepts, ``closed`` resets, ``dark`` never answers (the attempt
#: times out), ``unreachable`` finds no route (``EHOSTUNREACH`` from the
#: connect itself), ``rejected`` gets an ICMP "administratively prohibited"
#: from the address itself (a host firewall's reject), ``gone`` gets an ICMP
#: "host unreachable" from this machine (its ARP failed), ``routed`` one from
#: a router on the way (a third party: a per-port filter, or its own failed
#: ARP); all three arrive later, as on a network. ``emfile`` / ``enobufs`` /
#: ``eaddrnotavail`` are local resource errors.
Behaviour = Literal[
    "open", "closed", "dark", "unreachable", "rejected", "gone", "routed", "emfile",
    "enobufs", "eaddrnotavail",
]  # fmt: skip

#: The sender of a fake "host unreachable": as if this machine's ARP failed.
FAKE_SCANNER_ADDRESS = "192.0.2.1"
#: The sender of a fake router's "host unreachable".
FAKE_ROUTER_ADDRESS = "192.0.2.254"

_RESULTS: dict[str, ConnectResult] = {
    "open": ConnectResult(Outcome.OPEN, 0.001, 0),
    "closed": ConnectResult(Outcome.CLOSED, 0.001, errno.ECONNREFUSED),
    "unreachable": ConnectResult(Outcome.UNREACHABLE, 0.001, errno.EHOSTUNREACH),
    "emfile": ConnectResult(Outcome.RESOURCE, 0.0, errno.EMFILE),
    "enobufs": ConnectResult(Outcome.RESOURCE, 0.0, errno.ENOBUFS),
    "eaddrnotavail": ConnectResult(Outcome.RESOURCE, 0.0, errno.EADDRNOTAVAIL),
}


def _icmp_error(behaviour: str, address: str) -> ConnectResult:
    if behaviour == "rejected":  # ICMP 3/10 (host prohibited), from the host itself
        return ConnectResult(Outcome.UNREACHABLE, 0.001, errno.EHOSTUNREACH, (3, 10, address))
    if behaviour == "routed":  # ICMP 3/1 (host unreachable), from a router on the way
        icmp = (3, 1, FAKE_ROUTER_ADDRESS)
        return ConnectResult(Outcome.UNREACHABLE, 0.01, errno.EHOSTUNREACH, icmp)
    # ICMP 3/1 (host unreachable), from this machine: its ARP got no answer
    icmp = (3, 1, FAKE_SCANNER_ADDRESS)
    return ConnectResult(Outcome.UNREACHABLE, 3.0, errno.EHOSTUNREACH, icmp, local=True)


#: What a :class:`FakeService` sends back: fixed bytes, or a function of
#: everything the client has sent so far (returning everything sent so far).
ReplyScript = bytes | Callable[[bytes], bytes]


class FakeService:
    """A scripted peer behind an open port of a :class:`FakeBackend`.

    Args:
        reply: What it sends: fixed bytes (sent once the client has sent
            anything), or a function from all the bytes received so far to
            all the bytes sent so far (so a conversation can go on).
        close: Close the connection once the reply is out (``False``: stay
            open and silent, like a tarpit once its reply is read).
        delay: Virtual seconds before anything is sent (and before the close).
        greeting: Bytes sent on connect, before any request (a banner).
        certificate: Speak TLS with this DER certificate; ``None``: a TLS
            handshake fails as against a plain service (or, against a
            service that never sends nor closes, times out).
        sni_certificates: Certificates served instead of ``certificate`` to
            clients that send these SNI names (xapi's pool certificate, for
            SNI ``pool``).

    Attributes:
        received: What each connection sent, in order.
    """

    def __init__(
        self,
        reply: ReplyScript = b"",
        *,
        close: bool = True,
        delay: float = 0.0,
        greeting: bytes = b"",
        certificate: bytes | None = None,
        sni_certificates: Mapping[str, bytes] | None = None,
    ) -> None:
        self._reply = reply
        self.close = close
        self.delay = delay
        self.greeting = greeting
        self.certificate = certificate
        self.sni_certificates = dict(sni_certificates or {})
        self.received: list[bytes] = []

    @property
    def silent(self) -> bool:
        """Whether it never sends a byte nor closes (a tarpit): a TLS handshake times out."""
        return not self.close and not callable(self._reply) and not (self._reply or self.greeting)

    def answer(self, received: bytes) -> bytes:
        """All the bytes the service has sent, given all it has received."""
        if callable(self._reply):
            return self.greeting + self._reply(received)
        return self.greeting + (self._reply if received else b"")


class _FakeStream:
    """A :class:`~xendiscover._backend.Stream` to a :class:`FakeService`."""

    def __init__(self, backend: FakeBackend, service: FakeService, rtt: float = 0.0) -> None:
        self._backend = backend
        self._service = service
        self._received = bytearray()
        self._sent = 0
        self._opened = backend.time()
        self._asked: float | None = None
        self._rtt = rtt
        self._certificate: bytes | None = None
        self.closed = False
        service.received.append(b"")
        self._index = len(service.received) - 1

    async def write(self, data: bytes, *, timeout: float) -> None:
        await asyncio.sleep(0)
        if self.closed:
            raise ConnectionLost("closed")
        self._received += data
        self._service.received[self._index] = bytes(self._received)
        self._asked = self._backend.time()

    async def read(self, max_bytes: int, *, timeout: float) -> bytes:
        await asyncio.sleep(0)
        service = self._service
        # The reply leaves after the service's delay and takes a round trip
        # from the request (or from the connect, for a banner or a close);
        # a lost segment costs a retransmission.
        asked = self._opened if self._asked is None else self._asked
        ready_at = max(self._opened + service.delay, asked + self._rtt)
        ready_at += self._backend.retransmission(self._rtt)
        pending = service.answer(bytes(self._received))[self._sent :]
        if pending or service.close:
            wait = ready_at - self._backend.time()
            if wait > timeout:
                self._backend.advance(timeout)
                raise TimeoutError
            self._backend.advance(max(0.0, wait))
            chunk = pending[:max_bytes]
            self._sent += len(chunk)
            return chunk
        self._backend.advance(timeout)  # open and silent: the deadline passes
        raise TimeoutError

    async def start_tls(
        self, context: ssl.SSLContext, *, server_hostname: str | None, timeout: float
    ) -> None:
        await asyncio.sleep(0)
        # A TLS 1.2 handshake: two round trips, plus any retransmission.
        cost = 2 * self._rtt + self._backend.retransmission(self._rtt)
        if cost > timeout or self._service.silent:
            self._backend.advance(timeout)
            raise TimeoutError
        self._backend.advance(cost)
        if self._service.certificate is None:
            raise TLSFailed("wrong version number")
        by_name = self._service.sni_certificates
        chosen = by_name.get(server_hostname) if server_hostname is not None else None
        self._certificate = chosen if chosen is not None else self._service.certificate

    def peer_certificate(self) -> bytes | None:
        return self._certificate

    def close(self) -> None:
        self.closed = True
        self._backend.open_streams.discard(self)


class _FakeConnection:
    """An open connection a :class:`FakeBackend` sweep connect kept (``keep``).

    Attributes:
        address: Where it goes.
        port: The port.
        closed: Whether it was closed (handed to a stream, or dropped).
    """

    def __init__(self, backend: FakeBackend, address: str, port: int) -> None:
        self._backend = backend
        self.address = address
        self.port = port
        self.closed = False
        backend.kept.add(self)

    def close(self) -> None:
        """Close it; idempotent."""
        self.closed = True
        self._backend.kept.discard(self)


class _FakeProcess:
    """A probe "process" run as a task in this process, speaking the real wire format."""

    def __init__(self, job: bytes, backend: FakeBackend, keep: bool = False) -> None:
        from xendiscover._sweep._worker import run_encoded_job

        self._backend = backend
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._task = asyncio.ensure_future(
            run_encoded_job(job, backend, self._output.put_nowait, keep=keep)
        )
        self._task.add_done_callback(lambda _: self._output.put_nowait(b""))

    def connection(self, address: str, port: int) -> Connection | None:
        return self._backend.handed_over.pop((address, port), None)

    async def read(self) -> bytes:
        return await self._output.get()

    async def wait(self) -> int:
        try:
            await self._task
        except asyncio.CancelledError:
            return -9
        except Exception:
            return 1
        return 0

    def kill(self) -> None:
        self._task.cancel()


class FakeBackend:
    """A scripted :class:`~xendiscover._backend.Backend`: a network in a dictionary.

    Args:
        hosts: For each ``address`` or ``(address, port)``, how a sweep
            connect to it answers: one :data:`Behaviour` for every attempt,
            or a sequence consumed one attempt at a time (the last entry
            repeats), e.g. ``["dark", "open"]`` for a host whose first SYN is
            lost.
        default: How every other address answers.
        services: The peer behind each open ``(address, port)`` that a
            fingerprint probe talks to; an open port without one accepts and
            stays silent.
        pending: If true, sweep answers come later through the event loop (as
            on a real network); if false, at once (as on loopback).
        capacity: The most connects that may be pending at once; beyond it a
            connect fails with ``EMFILE``, like a process at its file limit.
        latency: The round-trip time to each address, in seconds (0 for any
            other). A sweep connect whose deadline is shorter times out; a
            stream's connect, TLS handshake and replies each cost their
            round trips on the virtual clock, within their deadlines.
        loss: The chance that a packet to or from any address is lost, each
            way. A lost sweep SYN (or SYN-ACK) is a timeout; on a stream, a
            lost connect is a timeout, and a lost segment later costs a
            retransmission (one second plus a round trip), as TCP does.
        seed: Seeds the losses, so a run is repeatable.

    Attributes:
        attempts: Every sweep ``(address, port)`` tried, in order.
        sleeps: Every back-off the prober asked for, in seconds.
        timeouts: The deadline each sweep attempt was given.
        max_in_flight: The most sweep connects that were pending at once.
        streams: Every ``(address, port)`` a stream was opened to, in order
            (a new connect, or a connection the sweep kept: see ``adopted``).
        adopted: Every ``(address, port)`` whose stream ran on a connection
            the sweep kept, in order.
        handshakes: How many TCP handshakes completed to each
            ``(address, port)`` (sweep connects and streams alike).
        kept: Connections kept by sweep connects and not closed yet.
        handed_over: Connections a probe "process" handed over, not taken yet.
        open_streams: Streams not closed yet (a leak check for tests).
        workers: How many probe processes were started.
    """

    def __init__(
        self,
        hosts: Mapping[str | tuple[str, int], Behaviour | Sequence[Behaviour]] | None = None,
        *,
        default: Behaviour = "closed",
        services: Mapping[tuple[str, int], FakeService] | None = None,
        pending: bool = False,
        capacity: int | None = None,
        latency: Mapping[str, float] | None = None,
        loss: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._hosts = dict(hosts or {})
        self._latency = dict(latency or {})
        self._loss = loss
        self._random = random.Random(seed)
        self._default: Behaviour = default
        self._services = dict(services or {})
        self._pending = pending
        self._capacity = capacity
        self._seen: dict[tuple[str, int], int] = {}
        self._in_flight = 0
        self._now = 0.0
        # Each task keeps its own virtual clock (inherited by the tasks it
        # starts), so concurrent conversations do not spend each other's
        # deadlines; ``_now`` is the latest time any of them reached.
        self._clock: contextvars.ContextVar[float] = contextvars.ContextVar(
            f"fake-clock-{id(self)}"
        )
        self.attempts: list[tuple[str, int]] = []
        self.sleeps: list[float] = []
        self.timeouts: list[float] = []
        self.max_in_flight = 0
        self.streams: list[tuple[str, int]] = []
        self.adopted: list[tuple[str, int]] = []
        self.handshakes: dict[tuple[str, int], int] = {}
        self.kept: set[_FakeConnection] = set()
        self.handed_over: dict[tuple[str, int], Connection] = {}
        self.open_streams: set[_FakeStream] = set()
        self.workers = 0

    @property
    def pending(self) -> int:
        """Sweep connects pending now (0 once a scan has released them all)."""
        return self._in_flight

    def _behaviour(self, address: str, port: int) -> Behaviour:
        script = self._hosts.get((address, port), self._hosts.get(address, self._default))
        if isinstance(script, str):
            return script
        count = self._seen.get((address, port), 0)
        self._seen[(address, port)] = count + 1
        return script[min(count, len(script) - 1)]

    def connect(
        self,
        family: socket.AddressFamily,
        address: str,
        port: int,
        timeout: float,
        keep: bool = False,
    ) -> Started:
        """Answer a sweep connect as scripted; see ``Backend.connect``."""
        self.attempts.append((address, port))
        self.timeouts.append(timeout)
        if self._capacity is not None and self._in_flight >= self._capacity:
            return _RESULTS["emfile"]
        behaviour = self._behaviour(address, port)
        if behaviour == "dark" or self._lost_handshake(address, timeout):
            return self._later(ConnectResult(Outcome.TIMEOUT, timeout, errno.ETIMEDOUT))
        if behaviour in ("rejected", "gone", "routed"):
            return self._later(_icmp_error(behaviour, address))
        result = _RESULTS[behaviour]
        if result.outcome is Outcome.OPEN:
            self._shake(address, port)
            if keep:
                result = dataclasses.replace(
                    result, connection=_FakeConnection(self, address, port)
                )
        rtt = self._latency.get(address, 0.0)
        if rtt and result.outcome is not Outcome.RESOURCE:
            return self._later(dataclasses.replace(result, latency=rtt))
        if self._pending and result.outcome is not Outcome.RESOURCE:
            return self._later(result)
        return result

    def _lost_handshake(self, address: str, timeout: float) -> bool:
        """Whether a connect's handshake misses its deadline: too far, or a packet lost."""
        if self._latency.get(address, 0.0) > timeout:
            return True
        return self.lost() or self.lost()  # the SYN, or the answer to it

    def lost(self) -> bool:
        """Whether one packet (one way) is lost, at the backend's ``loss``."""
        return bool(self._loss) and self._random.random() < self._loss

    def retransmission(self, rtt: float) -> float:
        """Seconds a stream exchange loses to retransmission (0 unless a segment was lost)."""
        return 1.0 + rtt if self.lost() or self.lost() else 0.0

    def _later(self, result: ConnectResult) -> asyncio.Future[ConnectResult]:
        # Virtual time: the answer (or the deadline) comes on the next turn.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ConnectResult] = loop.create_future()
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)

        def answer() -> None:
            if not future.done():
                future.set_result(result)

        def release(_: asyncio.Future[ConnectResult]) -> None:
            self._in_flight -= 1

        future.add_done_callback(release)
        loop.call_soon(answer)
        return future

    def _shake(self, address: str, port: int) -> None:
        self.handshakes[(address, port)] = self.handshakes.get((address, port), 0) + 1

    async def open_stream(
        self, address: str, port: int, *, timeout: float, connection: Connection | None = None
    ) -> Stream:
        """Connect to the scripted service, or adopt a kept connection; see ``Backend``."""
        await asyncio.sleep(0)
        self.streams.append((address, port))
        service = self._services.get((address, port)) or FakeService(close=False)
        if isinstance(connection, _FakeConnection) and not connection.closed:
            connection.close()
            self.adopted.append((address, port))
            stream = _FakeStream(self, service, self._latency.get(address, 0.0))
            self.open_streams.add(stream)
            return stream
        if connection is not None:
            connection.close()
        behaviour = self._behaviour(address, port)
        if behaviour == "dark" or self._lost_handshake(address, timeout):
            self.advance(timeout)
            raise TimeoutError
        rtt = self._latency.get(address, 0.0)
        self.advance(rtt)
        result = _RESULTS.get(behaviour) or _icmp_error(behaviour, address)
        if result.outcome is not Outcome.OPEN:
            raise ConnectFailed(result.outcome, result.errno, result.outcome.value)
        self._shake(address, port)
        stream = _FakeStream(self, service, rtt)
        self.open_streams.add(stream)
        return stream

    async def spawn_worker(self, job: bytes, *, connections: bool = False) -> WorkerProcess:
        """Run a probe "process" as a task here, over the real wire format."""
        self.workers += 1
        return _FakeProcess(job, self, keep=connections)

    def hand_over(self, connection: Connection, address: str, port: int) -> None:
        """Pass a kept connection to the "scanning process" (a table here)."""
        self.handed_over[(address, port)] = connection

    def time(self) -> float:
        """The virtual clock, in seconds.

        Each task has its own, started from the latest time any task had
        reached when it first asks (or inherited from the task that started
        it): concurrent conversations each spend their own deadlines, as
        they would on a network.
        """
        now = self._clock.get(None)
        if now is None:
            now = self._now
            self._clock.set(now)
        return now

    def advance(self, seconds: float) -> None:
        """Move the current task's virtual clock forward."""
        now = self.time() + max(0.0, seconds)
        self._clock.set(now)
        self._now = max(self._now, now)

    async def sleep(self, seconds: float) -> None:
        """Record a wait and pass it on the virtual clock at once."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)

    def close(self) -> None:
        """Nothing to release."""


class FakeResolver:
    """A :class:`~xendiscover._resolve.NameResolver` answering from tables.

    Args:
        names: The PTR name of each address that has one.
        forward: The addresses of each name, for forward lookups. By default
            every PTR record has its matching A/AAAA record (every name is
            forward-confirmed); give a table to model zones that disagree.

    Attributes:
        lookups: Every address asked about, in order.
        forward_lookups: Every name asked about, in order.
        closed: Whether :meth:`aclose` was called.
    """

    def __init__(
        self,
        names: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        forward: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._names = dict(names)
        if forward is None:
            table: dict[str, list[str]] = {}
            for address, name in self._names.items():
                table.setdefault(name, []).append(address)
            self._forward: dict[str, list[str]] = table
        else:
            self._forward = {name: list(addresses) for name, addresses in forward.items()}
        self.lookups: list[str] = []
        self.forward_lookups: list[str] = []
        self.closed = False

    async def forward(self, name: str) -> list[str]:
        """The addresses in the forward table, or ``[]``."""
        self.forward_lookups.append(name)
        await asyncio.sleep(0)
        return list(self._forward.get(name, []))

    async def reverse(self, address: str) -> str | None:
        """The name in the table, or ``None``."""
        self.lookups.append(address)
        await asyncio.sleep(0)
        return self._names.get(address)

    async def aclose(self) -> None:
        """Mark the resolver closed."""
        self.closed = True
