"""The connect prober: bounded, adaptive, and syscall-first.

The 2007 design started one thread per address. Here one driver coroutine
walks a lazy stream of ``(family, address, port)`` items and, for each, asks
the :class:`~xendiscover._backend.Backend` to start a TCP connect:

- Most connects finish inside the ``connect()`` call itself (a refused port
  on loopback, an unreachable network), so the backend answers at once and
  no task, future or timer is made for them.
- A connect still in progress comes back as a future; at most ``window`` are
  pending at once, each with its own deadline.

Outcomes that mean "nobody there" (refused, unreachable, timed out) are
results. What one port teaches is used for the address's other ports (see
:class:`Prober` and :func:`silent_attempts` for the arithmetic): an address
that answered on any port gives every port its full retries; an address
silent on every port gets fewer; and an address where nobody is there (no
route, a failed ARP) ends all of its probes at once. A *local* resource
error (too many open files, no buffer space, address not available) is never
a result: the prober halves its window, backs off, and tries the same
address again (AIMD, as TCP does).

Final results are yielded by :meth:`Prober.run` itself, in the coroutine that
iterates it: a future's done-callback only queues them, so nothing the
consumer raises can vanish into the event loop's exception handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import math
import socket
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from xendiscover._backend import Backend, Connection, ConnectResult, Outcome, backoff
from xendiscover._names import same_address

__all__ = [
    "MIN_TIMEOUT",
    "RESOURCE_RETRY_LIMIT",
    "SILENT_MIN_ATTEMPTS",
    "Item",
    "ProbeResult",
    "Prober",
    "RttEstimator",
    "RttTable",
    "ScanStats",
    "prefix_of",
    "silent_attempts",
]

#: How many times one probe meets a resource error before it is given up
#: as ``Outcome.ERROR`` (a machine that never recovers must still finish).
RESOURCE_RETRY_LIMIT = 64
#: How many connects that finish at once run before yielding to the loop.
_YIELD_EVERY = 64
#: The shortest first-attempt deadline the estimator may choose, in seconds.
#: Retries always get the user's full timeout, so a host slower than its
#: neighbours is still found; this floor only bounds how eager the first try is.
MIN_TIMEOUT = 0.25

#: The fewest attempts any port of a silent address gets: an adaptive one and
#: a full-length one, so a host slower than its neighbours is still found.
SILENT_MIN_ATTEMPTS = 2

#: errno values that the local kernel gives from inside ``connect()`` when its
#: routing table has no way to the address: true for every port alike.
_NO_ROUTE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})

#: ICMP ``(type, code)`` pairs that say no host answers at the address: a
#: failed ARP or neighbour discovery (on this machine, which then sends itself
#: "host unreachable", or at a router), or no route at a router.
_GONE = frozenset(
    {
        (3, 0), (3, 1), (3, 6), (3, 7),  # ICMP: net/host unreachable, unknown
        (1, 0), (1, 3),  # ICMPv6: no route, address unreachable
    }
)  # fmt: skip


#: How many ports of an address must get a third party's "host unreachable"
#: before it is believed for every port.
_THIRD_PARTY_VOTES = 2


def _icmp_verdict(address: str, icmp: tuple[int, int, str] | None) -> bool | None:
    """What an ICMP error says about ``address``.

    ``True``: the address itself sent it (a host firewall's reject, maybe of
    this port only), so it is there. ``False``: someone else found nobody
    there. ``None``: a filter on the way, or no detail to go on.
    """
    if icmp is None:
        return None
    kind, code, sender = icmp
    if same_address(sender, address):
        return True  # whatever it says, it said it: a reject rule, maybe per port
    return False if (kind, code) in _GONE else None


#: One probe: the address family, the address, the port.
Item = tuple[socket.AddressFamily, str, int]


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
        waiting: Open ports waiting for a fingerprint (the hand-off's queue).
        fingerprinting: Open ports being fingerprinted and named right now.
        silent_hosts: Addresses reported once as accepting every port silently.
        sweep_seconds: How long the sweep took, once it is over (the rest of
            a job is fingerprints and names); ``None`` before.
        pending_connects: The connect attempts pending in this process, by
            ``(address, port)``: when the attempt started and the latest
            time (the backend's clock) its probe can end, retries included.
            Probe processes keep their own (it is not sent to the parent).
        pending_fingerprints: The open ports being fingerprinted and named,
            by ``(address, port)``: when that started and the latest time it
            can end (the fingerprint's deadlines; a name lookup may add its own).
        networks: The whole plan (before any shard) as CIDR networks, once
            the targets are resolved; for the run metadata of the outputs.
        ports: The ports the plan tries on each address, once known.
    """

    total: int = 0
    done: int = 0
    open: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    attempts: int = 0
    retries: int = 0
    backoffs: int = 0
    waiting: int = 0
    fingerprinting: int = 0
    silent_hosts: int = 0
    sweep_seconds: float | None = None
    pending_connects: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    pending_fingerprints: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    networks: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()

    #: The counters a sweep keeps by itself (besides ``outcomes``): what a
    #: probe process reports (:meth:`counts`) and the scanning process adds up.
    COUNTED: ClassVar[tuple[str, ...]] = ("done", "open", "attempts", "retries", "backoffs")

    def counts(self) -> dict[str, object]:
        """The sweep's own counters, JSON-ready (what a probe process reports)."""
        counted: dict[str, object] = {name: getattr(self, name) for name in self.COUNTED}
        counted["outcomes"] = {o.value: n for o, n in self.outcomes.items()}
        return counted

    def add_growth(self, now: ScanStats, before: ScanStats) -> None:
        """Add what another sweep counted between ``before`` and ``now``."""
        for name in self.COUNTED:
            setattr(self, name, getattr(self, name) + getattr(now, name) - getattr(before, name))
        for outcome, count in now.outcomes.items():
            grown = count - before.outcomes.get(outcome, 0)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + grown

    def as_dict(self) -> dict[str, object]:
        """The counters as a JSON-ready dictionary (outcomes by name)."""
        return {
            "total": self.total,
            "done": self.done,
            "open": self.open,
            "outcomes": {o.value: self.outcomes[o] for o in Outcome if o in self.outcomes},
            "attempts": self.attempts,
            "retries": self.retries,
            "backoffs": self.backoffs,
            "silent_hosts": self.silent_hosts,
            "sweep_seconds": self.sweep_seconds,
        }


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

    @property
    def retry(self) -> float:
        """The deadline of an attempt that is neither the first nor the last.

        With samples, the estimate. Without any (nothing has answered yet,
        e.g. a dark network), the floor: the first attempt already waited the
        full ceiling and the last one will again, so a slow host still gets
        two full-length chances, while the attempts between them, which are
        there for lost packets, do not each wait out a round trip no one has
        seen.
        """
        return self.floor if self.srtt is None else self.timeout


#: How many /24 (IPv4) or /64 (IPv6) estimators :class:`RttTable` keeps; past
#: it, the oldest are forgotten (a sweep of a /8 must not grow without end).
_PREFIXES_KEPT = 4096


def prefix_of(address: str) -> str:
    """The address's /24 (IPv4) or /64 (IPv6), as text: its neighbourhood's key."""
    if ":" not in address:  # dotted quad: string work, ~50x cheaper than ipaddress
        return address.rpartition(".")[0] + ".0"  # once per address: the sweep's hot path
    return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)


class RttTable:
    """Round-trip estimates per neighbourhood (/24 or /64), with a global fallback.

    A LAN and a far site swept in one run each get their own deadlines: an
    address's first attempt waits as long as its /24 (or /64) has shown it
    needs, or, before anything there answered, as long as the whole sweep
    has; an address that answered has its own estimate (kept by the prober
    with the address's other state, see ``_Address``).

    Args:
        ceiling: The initial and the largest deadline, in seconds.
        floor: The smallest deadline, in seconds.
    """

    def __init__(self, ceiling: float, floor: float = MIN_TIMEOUT) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.overall = RttEstimator(ceiling, floor)
        self._prefixes: dict[str, RttEstimator] = {}

    def sample(self, prefix: str, rtt: float) -> None:
        """Fold in an answer from ``prefix`` that took ``rtt`` seconds."""
        self.overall.sample(rtt)
        estimator = self._prefixes.get(prefix)
        if estimator is None:
            if len(self._prefixes) >= _PREFIXES_KEPT:
                del self._prefixes[next(iter(self._prefixes))]
            estimator = self._prefixes[prefix] = RttEstimator(self.ceiling, self.floor)
        estimator.sample(rtt)

    def near(self, prefix: str) -> RttEstimator:
        """The estimator for ``prefix``: its own once it has answers, else the global one."""
        return self._prefixes.get(prefix) or self.overall


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The final word on one ``(address, port)``.

    Attributes:
        address: The address probed.
        port: The port probed.
        outcome: The outcome of the last attempt.
        latency: Seconds the last attempt took.
        attempts: Attempts made, resource retries not counted.
        connection: The open connection the sweep kept (``keep``), which
            whoever takes the result owns; ``None`` otherwise.
    """

    address: str
    port: int
    outcome: Outcome
    latency: float
    attempts: int
    connection: Connection | None = field(default=None, compare=False, repr=False)


class _Address:
    """What the sweep has learnt about one address, shared by its probes.

    Attributes:
        answered: Some port of it answered (open, refused, or an ICMP error
            sent by the address itself): it is alive, so lost packets are the
            only reason a port of it stays silent.
        slowest: The longest any of those answers took, in seconds.
        unreachable: Why nobody is there, for every port (no route, or ICMP
            "host unreachable" from this machine or a router), once known.
        prefix: Its /24 or /64 (see :func:`prefix_of`), computed once.
        third_party: How many of its ports met an ICMP "host unreachable"
            sent by someone else (a router on the way, not this machine).
    """

    __slots__ = ("answered", "prefix", "slowest", "third_party", "unreachable")

    def __init__(self, address: str = "") -> None:
        self.answered = False
        self.slowest = 0.0
        self.unreachable: ConnectResult | None = None
        self.prefix = prefix_of(address) if address else ""
        self.third_party = 0

    def heard(self, latency: float) -> None:
        """Note an answer about this address that took ``latency`` seconds."""
        self.answered = True
        self.slowest = max(self.slowest, latency)


#: A probe waiting to be (re)tried: the item, attempts so far, resource errors
#: so far, and its address's shared state.
_Job = tuple[Item, int, int, _Address]


def silent_attempts(retries: int, ports: int) -> int:
    """Attempts per port for an address that has answered on no port.

    An address's probes go out together, one per port, round by round. If a
    host answers on ``r`` of the ``ports`` probed (open or refused) and each
    attempt is lost with probability ``q``, it stays silent through ``k``
    rounds with probability ``q ** (k * r)``. An answering address's port gets
    ``retries + 1`` attempts, missed with ``q ** (retries + 1)``; a silent
    address gets ``k = ceil((retries + 1) / ports)`` rounds, so a host that
    answers on every port is missed no more often than one answering port is,
    never fewer than :data:`SILENT_MIN_ATTEMPTS`, never more than
    ``retries + 1``. With one port this is the full budget.
    """
    full = retries + 1
    spread = math.ceil(full / max(1, ports))
    return min(full, max(SILENT_MIN_ATTEMPTS, spread))


class Prober:
    """Drives connects over a stream of targets with a bounded, adaptive window.

    Args:
        backend: Where connects and back-off sleeps happen.
        timeout: Seconds an attempt may wait for an answer: every attempt's
            deadline until round-trip times are known, the ceiling after
            that, and always the last attempt's deadline.
        retries: Extra attempts for a probe whose attempt timed out.
        window: The most connects pending at once.
        rate: The most connects started per second, or ``None``.
        stats: Counters to update (a fresh :class:`ScanStats` by default).
        report: The final outcomes :meth:`run` yields (open ports only, by
            default: that is all a scan needs).
        ports: Ports tried per address, consecutively in ``items``: spreads a
            silent address's attempts over them (:func:`silent_attempts`).
        keep: Keep the connection of each open port and yield it with the
            result (``ProbeResult.connection``), for the fingerprint's first
            probe: the peer sees one handshake, not two.

    What an address's ports teach each other (items arrive address by
    address, so this needs no table):

    - An address that answered on any port is alive: each of its ports gets
      ``retries`` retries after a timeout, each waiting as long as the
      address has shown it needs (see :meth:`_deadline`).
    - An address silent on every port so far is likely dark: each of its
      ports gets :func:`silent_attempts` attempts in all, the last one at the
      full timeout. If a port answers meanwhile, the others get their full
      retries again.
    - An address whose connect the local kernel refused at once (no route:
      ``ENETUNREACH``, ``EHOSTUNREACH`` from inside ``connect()``), or whose
      connect later failed with ICMP "host unreachable" sent by this
      machine (its failed ARP or neighbour discovery) is unreachable on
      every port: its other ports end with the same outcome, without a
      syscall once not started. The same from a third party (a router) is
      believed for every port only once a second port of the address got
      it too (RFC 1122 calls it a soft error: a per-port filter says it).
    - An ICMP error sent by the address itself (a host firewall that rejects
      with ``icmp-host-prohibited``, as XenServer's and RHEL's default
      firewalls do) says the host is there: it counts as an answer. Any
      other ICMP error (a filter on the way) ends only its own probe.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        timeout: float,
        retries: int,
        window: int,
        rate: float | None = None,
        stats: ScanStats | None = None,
        report: frozenset[Outcome] = frozenset({Outcome.OPEN}),
        ports: int = 1,
        keep: bool = False,
    ) -> None:
        if timeout <= 0 or retries < 0 or window < 1 or (rate is not None and rate <= 0):
            raise ValueError("timeout must be > 0, retries >= 0, window >= 1, rate > 0")
        self._backend = backend
        self._keep = keep
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = 0.0
        self.rtt = RttTable(timeout)
        self._retries = retries
        self._silent_retries = silent_attempts(retries, ports) - 1
        self._max_window = window
        self._window = window
        self._in_flight = 0
        self._report = report
        self.stats = stats if stats is not None else ScanStats()
        self._pending: set[asyncio.Future[ConnectResult]] = set()
        self._wake = asyncio.Event()
        self._again: deque[_Job] = deque()
        self._ready: deque[ProbeResult] = deque()
        self._source: Iterator[Item] | None = None
        self._address_name = ""
        self._address_state = _Address()
        self._backoff = 0.0
        self._resource_errors = 0  # in a row, for the back-off

    async def run(self, items: Iterable[Item]) -> AsyncGenerator[ProbeResult, None]:
        """Probe every item once (plus retries), yielding the final results.

        Only results whose outcome is in ``report`` are yielded. Closing or
        cancelling the iterator cancels every pending connect, which closes
        its socket.
        """
        self._source = iter(items)
        immediate = 0
        try:
            while True:
                while self._ready:
                    yield self._ready.popleft()
                job = self._next_job()
                if job is None:
                    if not self._pending:
                        return  # nothing to start, nothing to wait for, all yielded
                    await self._wait()
                    continue
                await self._admit()
                if self._start(*job):
                    immediate += 1
                    if immediate >= _YIELD_EVERY:
                        immediate = 0
                        await asyncio.sleep(0)
        finally:
            await self._abandon()
            while self._ready:  # found, never taken: nobody else will close them
                kept = self._ready.popleft().connection
                if kept is not None:
                    kept.close()

    def _next_job(self) -> _Job | None:
        if self._again:
            return self._again.popleft()
        if self._source is not None:
            item = next(self._source, None)
            if item is not None:
                # Items come address by address: one shared state per run of them.
                if item[1] != self._address_name:
                    self._address_name = item[1]
                    self._address_state = _Address(item[1])
                return item, 0, 0, self._address_state
            self._source = None
        return None

    async def _admit(self) -> None:
        """Wait for a free slot in the window, the back-off and the rate cap."""
        while self._in_flight >= self._window:
            await self._wait()
        if self._backoff:
            await self._backend.sleep(self._backoff)
        if self._interval:
            await self._pace()

    def _allowed(self, host: _Address) -> int:
        """Retries a probe of ``host`` may have, as far as is known now."""
        return self._retries if host.answered else self._silent_retries

    def _deadline(self, attempts: int, host: _Address) -> float:
        """How long attempt number ``attempts + 1`` of a probe of ``host`` waits.

        Attempts wait as long as the destination has shown it needs: a lost
        SYN shows within a few round trips. The estimate is the address's
        neighbourhood's (its /24 or /64, see :class:`RttTable`), or the whole
        sweep's before anything there answered, so a far site keeps its own
        deadlines beside a LAN. A host that answered on some port has shown
        its own round trip, so its attempts wait that estimate or twice its
        slowest answer, whichever is longer. A host that has not answered
        gets its last (or only: ``retries`` 0) attempt at the full timeout,
        as does every first attempt before anything has answered: a slow
        host is not lost to a fast neighbourhood.
        """
        table = self.rtt
        if host.answered:
            return min(table.ceiling, max(table.near(host.prefix).timeout, 2 * host.slowest))
        if attempts >= self._silent_retries:
            return table.ceiling  # the last chance of a silent address: the full timeout
        rtt = table.near(host.prefix)
        return rtt.timeout if not attempts else rtt.retry

    def _start(self, item: Item, attempts: int, resource_errors: int, host: _Address) -> bool:
        """Start one attempt; return whether it ended at once."""
        if host.unreachable is not None:  # no attempt: the kernel already said no
            self._settle(item, max(1, attempts), resource_errors, host, host.unreachable)
            return True
        self.stats.attempts += 1
        deadline = self._deadline(attempts, host)
        started = self._backend.connect(item[0], item[1], item[2], deadline, self._keep)
        if isinstance(started, ConnectResult):
            if started.outcome is Outcome.UNREACHABLE and started.errno in _NO_ROUTE:
                host.unreachable = started
            self._settle(item, attempts + 1, resource_errors, host, started)
            return True
        self._in_flight += 1
        self._pending.add(started)
        now = self._backend.time()  # only a pending connect is shown as waited on
        later = max(0, self._allowed(host) - attempts) * self.rtt.ceiling
        self.stats.pending_connects[item[1], item[2]] = (now, now + deadline + later)
        started.add_done_callback(
            functools.partial(self._done, item, attempts + 1, resource_errors, host)
        )
        return False

    async def _abandon(self) -> None:
        """Cancel every pending connect (their sockets close) and forget them."""
        pending, self._pending = self._pending, set()
        self._in_flight -= len(pending)
        self.stats.pending_connects.clear()
        for future in pending:
            future.cancel()
        if pending:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)  # let the backend release what it holds

    async def _pace(self) -> None:
        # Token bucket with a burst of about 10 ms: sleeping per connect
        # would cost more than the connects at high rates.
        now = self._backend.time()
        self._next_slot = max(self._next_slot, now) + self._interval
        ahead = self._next_slot - now
        if ahead > 0.01:
            await self._backend.sleep(ahead)

    async def _wait(self) -> None:
        self._wake.clear()
        await self._wake.wait()

    def _done(
        self,
        item: Item,
        attempts: int,
        resource_errors: int,
        host: _Address,
        future: asyncio.Future[ConnectResult],
    ) -> None:
        if future not in self._pending:
            return  # abandoned by run()'s clean-up, which already counted it
        self._pending.discard(future)
        self._in_flight -= 1
        self.stats.pending_connects.pop((item[1], item[2]), None)
        self._wake.set()
        if not future.cancelled():
            result = future.result()
            if result.outcome is Outcome.UNREACHABLE:
                verdict = _icmp_verdict(item[1], result.icmp)
                if verdict is False:
                    self._nobody(host, result)
                elif verdict:
                    host.heard(result.latency)  # the host itself rejected this port
            self._settle(item, attempts, resource_errors, host, result)

    @staticmethod
    def _nobody(host: _Address, result: ConnectResult) -> None:
        """Someone else said nobody is at ``host``: believe it for every port, or not yet.

        This machine's own failed ARP or neighbour discovery is true of every
        port. A third party's "host unreachable" (a router's per-port filter
        says the same) is a soft error (RFC 1122): it ends only its own
        probe, unless a second port of the address gets the same.
        """
        if result.local:
            host.unreachable = result
            return
        host.third_party += 1
        if host.third_party >= _THIRD_PARTY_VOTES:
            host.unreachable = result

    def _settle(
        self,
        item: Item,
        attempts: int,
        resource_errors: int,
        host: _Address,
        result: ConnectResult,
    ) -> None:
        outcome = result.outcome
        if outcome is Outcome.RESOURCE:
            if resource_errors < RESOURCE_RETRY_LIMIT:
                self._back_off((item, attempts - 1, resource_errors + 1, host))
                return
            outcome = Outcome.ERROR  # the machine never recovered: say so, move on
        if self._backoff or self._window < self._max_window:
            # Additive increase: one more slot per answer, until the ceiling.
            self._backoff = 0.0
            self._resource_errors = 0
            self._window = min(self._max_window, self._window + 1)
        if outcome is Outcome.OPEN or outcome is Outcome.CLOSED:
            host.heard(result.latency)
            self.rtt.sample(host.prefix, result.latency)
        if outcome is Outcome.TIMEOUT and host.unreachable is not None:
            result = host.unreachable  # a sibling port learnt that nobody is there
            outcome = result.outcome
        stats = self.stats
        if outcome is Outcome.TIMEOUT and attempts <= self._allowed(host):
            stats.retries += 1
            self._again.append((item, attempts, resource_errors, host))
            return
        stats.done += 1
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + 1
        if outcome is Outcome.OPEN:
            stats.open += 1
        kept = result.connection
        if outcome in self._report:
            self._ready.append(
                ProbeResult(item[1], item[2], outcome, result.latency, attempts, kept)
            )
        elif kept is not None:
            kept.close()

    def _back_off(self, job: _Job) -> None:
        """A local resource ran out: not an answer from the peer. Shrink, wait, ask again."""
        self.stats.backoffs += 1
        self._window = max(1, min(self._window, self._in_flight + 1) // 2)
        self._resource_errors += 1
        self._backoff = backoff(self._resource_errors)
        self._again.append(job)
