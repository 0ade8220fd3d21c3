"""The one coroutine pipeline: sweep → fingerprint → name → yield.

:func:`scan` streams hosts as they are known; :func:`discover` collects and
sorts them; the command line uses :func:`scan`. Inputs are checked first by
:func:`~xendiscover._plan.plan`, before the first packet leaves. Every open
port found by the sweep becomes a :class:`~xendiscover.Host`: a failure while
fingerprinting or naming it becomes that host's evidence, never a lost host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Iterable
from typing import Any, Unpack

from xendiscover._backend import Backend, SocketBackend
from xendiscover._fingerprint import fingerprint_port
from xendiscover._model import UNPROBED, Fingerprint, Host
from xendiscover._plan import ScanOptions, ScanPlan, plan
from xendiscover._resolve import DNSNameResolver, NameResolver
from xendiscover._sweep import ProbeResult, ScanStats, sweep

__all__ = ["FINGERPRINT_TIMEOUT", "discover", "run_plan", "scan"]

_log = logging.getLogger("xendiscover")

#: The shortest per-probe deadline of a fingerprint, in seconds: a service
#: that answers its handshake in time may still take a moment to reply.
FINGERPRINT_TIMEOUT = 2.0

#: How many open ports are fingerprinted and named at once.
_POST_CONCURRENCY = 64


class _Finisher:
    """Turns open ports into hosts, concurrently: fingerprint, then name.

    One reverse lookup per address, whatever its ports. A failure of either
    step is caught here and recorded as the host's evidence.
    """

    def __init__(self, scan_plan: ScanPlan, backend: Backend, names: NameResolver | None) -> None:
        self._plan = scan_plan
        self._backend = backend
        self._names = names
        self._gate = asyncio.Semaphore(_POST_CONCURRENCY)
        self._lookups: dict[str, asyncio.Future[str | None]] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.out: asyncio.Queue[Host | None] = asyncio.Queue()

    def submit(self, hit: ProbeResult) -> None:
        task = asyncio.ensure_future(self._finish(hit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def cancel(self) -> None:
        pending: list[asyncio.Future[Any]] = [*self._tasks, *self._lookups.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _finish(self, hit: ProbeResult) -> None:
        async with self._gate:
            found = await self._fingerprint(hit)
            hostname = await self._name_of(hit.address)
        self.out.put_nowait(
            Host(
                address=hit.address,
                port=hit.port,
                hostname=hostname,
                latency_ms=hit.latency * 1000.0,
                service=found.service,
                verdict=found.verdict,
                evidence=found.evidence,
            )
        )

    async def _fingerprint(self, hit: ProbeResult) -> Fingerprint:
        if not self._plan.fingerprint:
            return UNPROBED
        deadline = max(FINGERPRINT_TIMEOUT, self._plan.timeout)
        try:
            return await fingerprint_port(
                hit.address, hit.port, timeout=deadline, backend=self._backend
            )
        except Exception as exc:  # a bug must not cost the host: report it as evidence
            _log.warning("fingerprinting %s:%d failed: %r", hit.address, hit.port, exc)
            return Fingerprint(None, "unknown", f"fingerprint failed ({type(exc).__name__})")

    async def _name_of(self, address: str) -> str | None:
        if self._names is None:
            return None
        if address not in self._lookups:
            self._lookups[address] = asyncio.ensure_future(self._names.reverse(address))
        try:
            return await asyncio.shield(self._lookups[address])
        except Exception as exc:  # the host stays, unnamed
            _log.warning("looking up the name of %s failed: %r", address, exc)
            return None


async def run_plan(
    scan_plan: ScanPlan,
    *,
    backend: Backend | None = None,
    resolver: NameResolver | None = None,
    stats: ScanStats | None = None,
) -> AsyncGenerator[Host, None]:
    """Run a checked :class:`~xendiscover._plan.ScanPlan`, yielding each open port as a Host.

    ``backend`` and ``resolver`` replace the real I/O; ``stats`` is updated
    as the sweep runs. What this function makes, it closes.
    """
    io = backend if backend is not None else SocketBackend()
    names = (resolver or DNSNameResolver(scan_plan.nameservers)) if scan_plan.resolve else None
    finisher = _Finisher(scan_plan, io, names)

    async def produce() -> None:
        try:
            hits = sweep(scan_plan, io, stats if stats is not None else ScanStats())
            async with contextlib.aclosing(hits):
                async for hit in hits:
                    finisher.submit(hit)
            await finisher.drain()
        finally:
            finisher.out.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (host := await finisher.out.get()) is not None:
            yield host
        await producer
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await finisher.cancel()
        if names is not None and resolver is None:
            await names.aclose()
        if backend is None:
            io.close()


async def scan(
    targets: Iterable[str] | None = None, **options: Unpack[ScanOptions]
) -> AsyncGenerator[Host, None]:
    """Sweep for Xen hosts, yielding each open port as soon as it is known.

    Args:
        targets: Networks, addresses, ranges or host names (nmap syntax). With
            none, the IPv4 networks of this machine's up interfaces.
        **options: See :class:`~xendiscover.ScanOptions`.

    Yields:
        One :class:`~xendiscover.Host` per open port, in the order they are found.

    Raises:
        TargetError: An input is invalid (raised before anything is sent).
        WorkerError: A probe process failed: the sweep is incomplete.

    Closing the iterator early (``contextlib.aclosing``) or cancelling the
    task that iterates it closes every socket the scan opened.
    """
    checked = plan(targets, **options)
    hosts = run_plan(
        checked,
        backend=options.get("backend"),
        resolver=options.get("resolver"),
        stats=options.get("stats"),
    )
    async with contextlib.aclosing(hosts):
        async for host in hosts:
            yield host


async def discover(
    targets: Iterable[str] | None = None, **options: Unpack[ScanOptions]
) -> list[Host]:
    """Sweep for Xen hosts and return every open port found, sorted by address.

    Takes the same arguments as :func:`scan`, which it runs to the end.

    Example::

        hosts = await discover(["10.0.0.0/24"], port=8002)
        print([h.display_name for h in hosts if h.verdict == "confirmed"])
    """
    async with contextlib.aclosing(scan(targets, **options)) as hosts:
        found = [host async for host in hosts]
    return sorted(found, key=lambda h: h.sort_key)
