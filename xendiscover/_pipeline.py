"""The one coroutine pipeline: targets → connect → fingerprint → name → Host.

:func:`scan` is the pipeline; :func:`discover` and the command line are thin
layers over it. Every input is checked by :func:`plan` before the first
packet leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

from xendiscover._errors import TargetError
from xendiscover._fingerprint import WELL_KNOWN_PORTS, fingerprint_port
from xendiscover._model import UNPROBED, Fingerprint, Host
from xendiscover._networks import system_networks
from xendiscover._probe import (
    Connector,
    Outcome,
    Prober,
    ProbeResult,
    ScanStats,
    SocketConnector,
    default_window,
)
from xendiscover._resolve import DNSNameResolver, NameResolver, parse_nameserver
from xendiscover._targets import DEFAULT_MAX_HOSTS, TargetSpace, parse_port
from xendiscover._workers import WorkerJob, auto_workers, run_worker

__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ScanOptions",
    "ScanPlan",
    "discover",
    "plan",
    "run_plan",
    "scan",
]

#: The ports swept when none is named: every Xen management port we know.
DEFAULT_PORTS: tuple[int, ...] = WELL_KNOWN_PORTS

#: Seconds a connect attempt may wait: every attempt's deadline until
#: round-trip times are known, and always the last attempt's.
DEFAULT_TIMEOUT = 1.0

#: Extra attempts after a timeout. At 5% loss each way an attempt at an open
#: port fails about one time in ten; with three retries, one port in 10,000
#: is missed. The retries wait only as long as round-trip times say (the
#: last waits the full timeout), so they cost little on a dark network.
DEFAULT_RETRIES = 3

#: A function that fingerprints one open port within a deadline.
Fingerprinter = Callable[[str, int, float], Awaitable[Fingerprint]]

#: The shortest per-probe deadline of a fingerprint, in seconds: a service
#: that answers its handshake in time may still take a moment to reply.
FINGERPRINT_TIMEOUT = 2.0

#: How many open ports are fingerprinted and named at once.
_POST_CONCURRENCY = 64


@dataclass(frozen=True)
class ScanPlan:
    """A checked scan, ready to run: every input validated, nothing sent yet.

    Attributes:
        space: The addresses to sweep.
        ports: The TCP ports to try on each address.
        timeout: Seconds one connect attempt may wait.
        retries: Extra attempts after a timeout.
        window: The most connects pending at once.
        nameservers: DNS servers for reverse lookups (system's when empty).
        resolve: Whether to look up names.
        fingerprint: Whether to ask each open port what it is.
        rate: The most connects started per second, or ``None``.
        workers: Probe processes (1: all in this one).
    """

    space: TargetSpace
    ports: tuple[int, ...]
    timeout: float
    retries: int
    window: int
    nameservers: tuple[str, ...]
    resolve: bool
    fingerprint: bool
    rate: float | None = None
    workers: int = 1

    @property
    def total(self) -> int:
        """The number of probes: addresses × ports."""
        return self.space.size * len(self.ports)


def _ports(port: int | str | Iterable[int | str] | None) -> tuple[int, ...]:
    if port is None:
        return DEFAULT_PORTS
    raw = [port] if isinstance(port, int | str) else list(port)
    if not raw:
        return DEFAULT_PORTS
    return tuple(dict.fromkeys(parse_port(p) for p in raw))


class ScanOptions(TypedDict, total=False):
    """The options of :func:`scan` and :func:`discover`, all optional.

    Attributes:
        port: One port or several; all well-known Xen ports by default.
        exclude: Targets to leave out (same syntax as the targets).
        interfaces: With no targets, sweep only these interfaces' networks.
        timeout: Seconds a connect attempt may wait for an answer (1.0): every
            attempt's deadline until round-trip times are known (it then
            follows them, never below 0.25 s), and always the last attempt's.
        retries: Extra attempts after a timeout, so a lost SYN costs no host (3).
        concurrency: The most connects in flight; sized from the open-file
            limit by default.
        max_hosts: Refuse sweeps of more addresses than this (65,536).
        resolve: Look up each host's name by PTR (True).
        nameservers: DNS servers for names (``IP`` or ``IP:PORT``); the
            system's resolver configuration by default.
        fingerprint: Probe each open port for the service behind it (True).
        shard: ``(i, n)``: sweep only the i-th of n interleaved shards of the
            targets, so n machines together sweep them exactly once.
        rate: The most new connections per second (no limit by default).
        workers: Probe processes for the sweep; by default one per core for
            sweeps of 32,768 probes or more, else 1. A fake ``connector``
            always runs in this process.
        connector: Where connects happen (tests pass a fake).
        resolver: Where names come from (tests pass a fake).
        fingerprinter: How open ports are probed (tests pass a fake).
        stats: Counters updated as the sweep runs, for progress displays.
    """

    port: int | str | Iterable[int | str] | None
    exclude: Iterable[str]
    interfaces: Iterable[str] | None
    timeout: float
    retries: int
    concurrency: int | None
    max_hosts: int
    resolve: bool
    nameservers: Sequence[str]
    fingerprint: bool
    shard: tuple[int, int] | None
    rate: float | None
    workers: int | None
    connector: Connector | None
    resolver: NameResolver | None
    fingerprinter: Fingerprinter | None
    stats: ScanStats | None


def plan(targets: Iterable[str] | None = None, **options: Unpack[ScanOptions]) -> ScanPlan:
    """Check a scan's inputs and work out what it will sweep; send nothing.

    With no ``targets`` the IPv4 networks of this machine's up interfaces are
    swept. The I/O options (``connector``, ``resolver``, ``fingerprinter``,
    ``stats``) are ignored here; see :class:`ScanOptions` for the rest.

    Raises:
        TargetError: An input is invalid, or the sweep is too large.
    """
    timeout = options.get("timeout", DEFAULT_TIMEOUT)
    retries = options.get("retries", DEFAULT_RETRIES)
    concurrency = options.get("concurrency")
    max_hosts = options.get("max_hosts", DEFAULT_MAX_HOSTS)
    exclude = list(options.get("exclude", ()))
    if not timeout > 0:
        raise TargetError(f"invalid timeout {timeout}: must be more than 0 seconds")
    if retries < 0:
        raise TargetError(f"invalid retries {retries}: must be 0 or more")
    if concurrency is not None and concurrency < 1:
        raise TargetError(f"invalid concurrency {concurrency}: must be 1 or more")
    if max_hosts < 1:
        raise TargetError(f"invalid max-hosts {max_hosts}: must be 1 or more")
    rate = options.get("rate")
    if rate is not None and not rate > 0:
        raise TargetError(f"invalid rate {rate}: must be more than 0 per second")
    workers = options.get("workers")
    if workers is not None and workers < 1:
        raise TargetError(f"invalid workers {workers}: must be 1 or more")
    ports = _ports(options.get("port"))
    servers = tuple(parse_nameserver(n) for n in options.get("nameservers", ()))
    specs = list(targets) if targets is not None else []
    if specs and options.get("interfaces"):
        raise TargetError("--interface chooses networks to discover: give it without targets")
    if specs:
        space = TargetSpace.from_specs(specs, exclude=exclude)
    else:
        networks = system_networks(options.get("interfaces"))
        if not networks:
            raise TargetError("no up IPv4 network to sweep; name the targets")
        space = TargetSpace.from_networks(networks, exclude=exclude)
    if (shard := options.get("shard")) is not None:
        space = space.sharded(*shard)
    space.check_size(max_hosts)
    total = space.size * len(ports)
    return ScanPlan(
        space=space,
        ports=ports,
        timeout=float(timeout),
        retries=retries,
        window=concurrency or default_window(),
        nameservers=servers,
        resolve=options.get("resolve", True),
        fingerprint=options.get("fingerprint", True),
        rate=rate,
        workers=workers or auto_workers(total),
    )


async def _fingerprint(address: str, port: int, timeout: float) -> Fingerprint:
    return await fingerprint_port(address, port, timeout=timeout)


async def run_plan(
    scan_plan: ScanPlan,
    *,
    connector: Connector | None = None,
    resolver: NameResolver | None = None,
    fingerprinter: Fingerprinter | None = None,
    stats: ScanStats | None = None,
) -> AsyncGenerator[Host, None]:
    """Run a checked :class:`ScanPlan`, yielding each open port as a Host.

    The I/O can be swapped: ``connector`` (connects), ``resolver`` (names),
    ``fingerprinter`` (service probes). ``stats`` is updated as it runs.
    """
    stats = stats if stats is not None else ScanStats()
    stats.total = scan_plan.total
    owned = None  # a connector made here is closed here
    parts = [scan_plan.space]
    if connector is None:
        connector = owned = SocketConnector()
        parts = scan_plan.space.split(scan_plan.workers)
    window = max(1, scan_plan.window // len(parts))
    rate = scan_plan.rate / len(parts) if scan_plan.rate else None
    prober = Prober(
        connector,
        timeout=scan_plan.timeout,
        retries=scan_plan.retries,
        window=window,
        rate=rate,
        stats=stats,
    )
    jobs = [
        WorkerJob(part, scan_plan.ports, scan_plan.timeout, scan_plan.retries, window, rate)
        for part in parts[1:]
    ]
    names: NameResolver | None = None
    if scan_plan.resolve:
        names = resolver or DNSNameResolver(scan_plan.nameservers)
    probe_service = fingerprinter or _fingerprint
    found: asyncio.Queue[Host | None] = asyncio.Queue()
    post: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(_POST_CONCURRENCY)
    lookups: dict[str, asyncio.Task[str | None]] = {}

    async def name_of(address: str) -> str | None:
        if names is None:
            return None
        if address not in lookups:  # one lookup per address, whatever its ports
            lookups[address] = asyncio.ensure_future(names.reverse(address))
        return await lookups[address]

    async def finish(hit: ProbeResult) -> None:
        async with gate:
            fp = UNPROBED
            if scan_plan.fingerprint:
                deadline = max(FINGERPRINT_TIMEOUT, scan_plan.timeout)
                fp = await probe_service(hit.address, hit.port, deadline)
            hostname = await name_of(hit.address)
        found.put_nowait(
            Host(
                address=hit.address,
                port=hit.port,
                hostname=hostname,
                latency_ms=hit.latency * 1000.0,
                service=fp.service,
                verdict=fp.verdict,
                evidence=fp.evidence,
            )
        )

    def on_result(result: ProbeResult) -> None:
        if result.outcome is Outcome.OPEN:
            task = asyncio.ensure_future(finish(result))
            post.add(task)
            task.add_done_callback(post.discard)

    async def produce() -> None:
        try:
            items = ((family, address, p) for family, address in parts[0] for p in scan_plan.ports)
            try:
                async with asyncio.TaskGroup() as group:  # one failing part stops them all
                    group.create_task(prober.run(items, on_result))
                    for job in jobs:
                        group.create_task(run_worker(job, on_result, stats))
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
            while post:
                await asyncio.gather(*post)
        finally:
            found.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (host := await found.get()) is not None:
            yield host
        await producer
    finally:
        for task in (producer, *post, *lookups.values()):
            task.cancel()
        await asyncio.gather(producer, *post, *lookups.values(), return_exceptions=True)
        if names is not None and resolver is None:
            await names.aclose()
        if owned is not None:
            owned.close()


async def scan(
    targets: Iterable[str] | None = None, **options: Unpack[ScanOptions]
) -> AsyncGenerator[Host, None]:
    """Sweep for Xen hosts, yielding each open port as soon as it is known.

    Args:
        targets: Networks, addresses, ranges or host names (nmap syntax). With
            none, the IPv4 networks of this machine's up interfaces.
        **options: See :class:`ScanOptions`.

    Yields:
        One :class:`Host` per open port, in the order they are found.

    Raises:
        TargetError: An input is invalid (raised before anything is sent).

    Closing the iterator early (``contextlib.aclosing``) or cancelling the
    task that iterates it closes every socket the scan opened.
    """
    checked = plan(targets, **options)
    async with contextlib.aclosing(
        run_plan(
            checked,
            connector=options.get("connector"),
            resolver=options.get("resolver"),
            fingerprinter=options.get("fingerprinter"),
            stats=options.get("stats"),
        )
    ) as hosts:
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
