"""The connect prober: bounded, adaptive, and syscall-first.

The 2007 design started one thread per address. Here one driver coroutine
walks a lazy stream of ``(address, port)`` pairs and, for each, asks a
:class:`Connector` to start a TCP connect:

- Most connects finish inside the ``connect()`` call itself (a refused port
  on loopback, an unreachable network), so the connector answers at once and
  no task, future or timer is made for them.
- A connect still in progress comes back as a coroutine; the driver runs it
  as a task, at most ``window`` at a time, each with its own deadline.

Outcomes that mean "nobody there" (refused, unreachable, timed out) are
results. A *local* resource error (too many open files, no buffer space,
address not available) is never a result: the driver halves its window,
backs off, and tries the same address again (AIMD, as TCP does).

All I/O, the clock and ``sleep`` go through the connector, so tests drive the
driver with :class:`xendiscover.testing.FakeConnector` and no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import functools
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ConnectResult",
    "Connector",
    "Outcome",
    "Prober",
    "ScanStats",
    "SocketConnector",
]


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
    """Classify the errno a connect failed with."""
    if code == 0:
        return Outcome.OPEN
    if code in RESOURCE_ERRNOS:
        return Outcome.RESOURCE
    return _ERRNO_OUTCOME.get(code, Outcome.ERROR)


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The end of one connect attempt.

    Attributes:
        outcome: What the attempt found.
        latency: Seconds from the start of the connect to its end.
        errno: The OS error number behind the outcome, or 0.
    """

    outcome: Outcome
    latency: float = 0.0
    errno: int = 0


#: The answer of a refused connect (it ended inside connect(): latency 0).
_REFUSED = ConnectResult(Outcome.CLOSED, 0.0, errno.ECONNREFUSED)

#: A finished attempt, or the future of a pending one.
Started = ConnectResult | asyncio.Future[ConnectResult]


class Connector(Protocol):
    """The I/O the prober needs; swap it to test without a network."""

    def connect(
        self, family: socket.AddressFamily, address: str, port: int, timeout: float
    ) -> Started:
        """Start a TCP connect to ``address``:``port``.

        Returns a :class:`ConnectResult` when the attempt ended at once, or a
        future that the connector completes within ``timeout`` seconds. The
        connector closes every socket it opens: when the future completes,
        and also when the caller cancels it.
        """
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait, for back-off."""
        ...


# SO_LINGER {on, 0 s}: close() sends a reset and leaves no TIME_WAIT behind.
_LINGER_ZERO = struct.pack("ii", 1, 0)
_SOCK_FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_EINPROGRESS, _EALREADY = errno.EINPROGRESS, errno.EALREADY
_ECONNREFUSED = errno.ECONNREFUSED
#: A second connect() saying the socket is connected (0, EISCONN) or pending.
_LIVE = frozenset({0, errno.EALREADY, errno.EISCONN})
#: Failures after which the socket is back to unconnected and can connect again.
_REUSABLE = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH})
_perf_counter = time.perf_counter


class SocketConnector:
    """The real connector: non-blocking sockets on the running event loop.

    A socket whose connect was refused (or found no route) is kept and used
    for the next address: Linux lets a TCP socket connect again once a failed
    attempt has been collected, which saves a ``socket()`` and a ``close()``
    per probe, a third of the kernel's work on a refused port.
    """

    def __init__(self) -> None:
        self._spare: dict[int, socket.socket] = {}

    def connect(
        self, family: socket.AddressFamily, address: str, port: int, timeout: float
    ) -> Started:
        """Start a connect; see :meth:`Connector.connect`."""
        start = _perf_counter()
        sock = self._spare.pop(family, None)
        if sock is None:
            try:
                sock = socket.socket(family, _SOCK_FLAGS)
            except OSError as exc:
                return ConnectResult(outcome_of_errno(exc.errno or 0), 0.0, exc.errno or 0)
        target = (address, port)
        try:
            code = sock.connect_ex(target)
            if code == _EINPROGRESS:
                # On loopback and fast links the handshake (or the reset) has
                # usually happened inside connect() already. A second connect()
                # reports it (0: connected; an errno: failed, and the socket is
                # reset for reuse) or says EALREADY: still pending.
                code = sock.connect_ex(target)
        except OSError as exc:  # e.g. an IPv6 address on a host without IPv6
            sock.close()
            return ConnectResult(outcome_of_errno(exc.errno or 0), 0.0, exc.errno or 0)
        if code in _REUSABLE:
            self._spare[family] = sock
            if code == _ECONNREFUSED:
                return _REFUSED  # the common case: no allocation, no clock
            return ConnectResult(outcome_of_errno(code), _perf_counter() - start, code)
        if code in _LIVE:
            # Connected or pending: whatever happens, close() must reset, not linger.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            if code == _EALREADY:
                return self._pending(sock, start, timeout)
            code = 0
        sock.close()
        return ConnectResult(outcome_of_errno(code), _perf_counter() - start, code)

    def close(self) -> None:
        """Close the spare sockets."""
        for sock in self._spare.values():
            sock.close()
        self._spare.clear()

    @staticmethod
    def _pending(
        sock: socket.socket, start: float, timeout: float
    ) -> asyncio.Future[ConnectResult]:
        # No task and no coroutine: a writer callback, a timer and a future,
        # all released together whichever way the attempt ends.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ConnectResult] = loop.create_future()
        fd = sock.fileno()

        def release() -> None:
            timer.cancel()
            loop.remove_writer(fd)
            sock.close()

        def writable() -> None:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            release()
            result = ConnectResult(outcome_of_errno(code), time.perf_counter() - start, code)
            future.set_result(result)

        def expired() -> None:
            release()
            future.set_result(ConnectResult(Outcome.TIMEOUT, timeout, errno.ETIMEDOUT))

        def cancelled(done: asyncio.Future[ConnectResult]) -> None:
            if done.cancelled():
                release()

        loop.add_writer(fd, writable)
        timer = loop.call_later(timeout, expired)
        future.add_done_callback(cancelled)
        return future

    async def sleep(self, seconds: float) -> None:
        """Wait on the event loop."""
        await asyncio.sleep(seconds)


@dataclass
class ScanStats:
    """Live counters of a sweep; safe to read while it runs.

    Attributes:
        total: Probes to make (addresses × ports), when known.
        done: Probes finished, whatever their outcome.
        open: Probes that found an open port.
        outcomes: Finished probes by final outcome.
        attempts: Connect attempts started, retries included.
        retries: Attempts repeated after a timeout.
        backoffs: Times the window shrank after a local resource error.
        window: The current limit on connects in flight.
        in_flight: Connects pending right now.
    """

    total: int = 0
    done: int = 0
    open: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    attempts: int = 0
    retries: int = 0
    backoffs: int = 0
    window: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, object]:
        """The counters as a JSON-ready dictionary (outcomes by name)."""
        return {
            "total": self.total,
            "done": self.done,
            "open": self.open,
            "outcomes": {o.value: n for o, n in sorted(self.outcomes.items(), key=_by_value)},
            "attempts": self.attempts,
            "retries": self.retries,
            "backoffs": self.backoffs,
        }


def _by_value(item: tuple[Outcome, int]) -> str:
    return item[0].value


#: Back-off after a local resource error: first wait, and the ceiling.
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 1.0
#: How many times one probe meets a resource error before it is given up
#: as ``Outcome.ERROR`` (a machine that never recovers must still finish).
RESOURCE_RETRY_LIMIT = 64
#: How many connects that finish at once run before yielding to the loop.
_YIELD_EVERY = 64

_Item = tuple[socket.AddressFamily, str, int]

#: The shortest first-attempt deadline the estimator may choose, in seconds.
#: Retries always get the user's full timeout, so a host slower than its
#: neighbours is still found; this floor only bounds how eager the first try is.
MIN_TIMEOUT = 0.25


class RttEstimator:
    """Smoothed round-trip time and the deadline it suggests (RFC 6298).

    The deadline starts at ``ceiling`` (the user's ``--timeout``) and, once
    answers have been timed, follows ``srtt + 4 * rttvar``, kept between
    ``floor`` and ``ceiling``. Only answers (open or refused) are samples:
    silence says nothing about the round-trip time.

    Args:
        ceiling: The initial and the largest deadline, in seconds.
        floor: The smallest deadline, in seconds.
    """

    def __init__(self, ceiling: float, floor: float = MIN_TIMEOUT) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.timeout = ceiling

    def sample(self, rtt: float) -> None:
        """Fold in one measured round-trip time, in seconds."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.timeout = min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The final word on one ``(address, port)``.

    Attributes:
        address: The address probed.
        port: The port probed.
        outcome: The outcome of the last attempt.
        latency: Seconds the last attempt took.
        attempts: Attempts made, resource retries not counted.
    """

    address: str
    port: int
    outcome: Outcome
    latency: float
    attempts: int


class Prober:
    """Drives connects over a stream of targets with a bounded, adaptive window.

    Args:
        connector: Where connects happen (:class:`SocketConnector` for real).
        timeout: Seconds an attempt may wait for an answer: every attempt's
            deadline until round-trip times are known, the ceiling after
            that, and always the last attempt's deadline.
        retries: Extra attempts for a probe whose attempt timed out.
        window: The most connects pending at once.
        rate: The most connects started per second, or ``None``.
        stats: Counters to update (a fresh :class:`ScanStats` by default).
    """

    def __init__(
        self,
        connector: Connector,
        *,
        timeout: float,
        retries: int,
        window: int,
        rate: float | None = None,
        stats: ScanStats | None = None,
    ) -> None:
        if timeout <= 0 or retries < 0 or window < 1 or (rate is not None and rate <= 0):
            raise ValueError("timeout must be > 0, retries >= 0, window >= 1, rate > 0")
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = 0.0
        self._connector = connector
        self.rtt = RttEstimator(timeout)
        self._retries = retries
        self._max_window = window
        self.stats = stats if stats is not None else ScanStats()
        self.stats.window = window
        self._pending: set[asyncio.Future[ConnectResult]] = set()
        self._wake = asyncio.Event()
        # Probes to try again: (item, attempts so far, resource errors so far).
        self._again: deque[tuple[_Item, int, int]] = deque()
        self._backoff = 0.0

    async def run(self, items: Iterable[_Item], emit: Callable[[ProbeResult], None]) -> None:
        """Probe every item once (plus retries) and ``emit`` each final result.

        Cancelling ``run`` cancels every pending connect, which closes its
        socket.
        """
        source: Iterator[_Item] | None = iter(items)
        stats = self.stats
        immediate = 0
        try:
            while True:
                if self._again:
                    item, attempts, resource_errors = self._again.popleft()
                elif source is not None and (fresh := next(source, None)) is not None:
                    item, attempts, resource_errors = fresh, 0, 0
                else:
                    source = None
                    if not self._pending and not self._again:
                        return
                    await self._wait()
                    continue
                while stats.in_flight >= stats.window:
                    await self._wait()
                if self._backoff:
                    await self._connector.sleep(self._backoff)
                if self._interval:
                    await self._pace()
                stats.attempts += 1
                # Attempts wait as long as the network has shown it needs (a
                # lost SYN shows within a few round trips); the last one
                # waits the full timeout, so a slow host is not lost to a
                # fast neighbourhood.
                deadline = self.rtt.ceiling if attempts >= self._retries else self.rtt.timeout
                started = self._connector.connect(item[0], item[1], item[2], deadline)
                if isinstance(started, ConnectResult):
                    self._settle(item, attempts + 1, resource_errors, started, emit)
                    immediate += 1
                    if immediate >= _YIELD_EVERY:
                        immediate = 0
                        await asyncio.sleep(0)
                else:
                    stats.in_flight += 1
                    self._pending.add(started)
                    started.add_done_callback(
                        functools.partial(self._done, item, attempts + 1, resource_errors, emit)
                    )
        finally:
            for future in self._pending:
                future.cancel()
            if self._pending:
                self._pending.clear()
                await asyncio.sleep(0)  # let the connector release what it holds

    async def _pace(self) -> None:
        # Token bucket with a burst of about 10 ms: sleeping per connect
        # would cost more than the connects at high rates.
        now = asyncio.get_running_loop().time()
        self._next_slot = max(self._next_slot, now) + self._interval
        ahead = self._next_slot - now
        if ahead > 0.01:
            await self._connector.sleep(ahead)

    async def _wait(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    def _done(
        self,
        item: _Item,
        attempts: int,
        resource_errors: int,
        emit: Callable[[ProbeResult], None],
        future: asyncio.Future[ConnectResult],
    ) -> None:
        if future not in self._pending:
            return  # cancelled by run()'s clean-up
        self._pending.discard(future)
        self.stats.in_flight -= 1
        self._wake.set()
        if not future.cancelled():
            self._settle(item, attempts, resource_errors, future.result(), emit)

    def _settle(
        self,
        item: _Item,
        attempts: int,
        resource_errors: int,
        result: ConnectResult,
        emit: Callable[[ProbeResult], None],
    ) -> None:
        stats = self.stats
        outcome = result.outcome
        if outcome is Outcome.RESOURCE and resource_errors >= RESOURCE_RETRY_LIMIT:
            outcome = Outcome.ERROR  # the machine never recovered: say so, move on
        if outcome is Outcome.RESOURCE:
            # Not an answer from the peer: shrink, back off, ask again.
            stats.backoffs += 1
            stats.window = max(1, min(stats.window, stats.in_flight + 1) // 2)
            self._backoff = min(BACKOFF_MAX, max(BACKOFF_FIRST, self._backoff * 2))
            self._again.append((item, attempts - 1, resource_errors + 1))
            return
        if self._backoff or stats.window < self._max_window:
            # Additive increase: one more slot per answer, until the ceiling.
            self._backoff = 0.0
            stats.window = min(self._max_window, stats.window + 1)
        if outcome is Outcome.OPEN or outcome is Outcome.CLOSED:
            self.rtt.sample(result.latency)
        if outcome is Outcome.TIMEOUT and attempts <= self._retries:
            stats.retries += 1
            self._again.append((item, attempts, resource_errors))
            return
        stats.done += 1
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        if outcome is Outcome.OPEN:
            stats.open += 1
        emit(ProbeResult(item[1], item[2], outcome, result.latency, attempts))


def default_window(cap: int = 4096, headroom: int = 128) -> int:
    """The default connect window, sized from the open-file limit.

    Raises the soft ``RLIMIT_NOFILE`` toward the hard limit where allowed,
    then keeps ``headroom`` descriptors for everything else the process does
    (DNS, fingerprint connections, the event loop).
    """
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, cap + headroom)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
        if soft != resource.RLIM_INFINITY:
            return max(1, min(cap, soft - min(headroom, soft // 2)))
    return 256
