"""The one coroutine pipeline: sweep → fingerprint → name → yield.

:func:`scan` streams one :class:`~xendiscover.Finding` per open port as soon
as it is fingerprinted and named; :func:`discover` groups them into machines
(:class:`~xendiscover.Host`); the command line uses :func:`scan`. Inputs are
checked first by :func:`~xendiscover._plan.plan`, before the first packet
leaves. A failure while fingerprinting or naming a port becomes that
finding's evidence, never a lost port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any, Literal, Unpack

from xendiscover._backend import Backend, SocketBackend
from xendiscover._fingerprint import MAX_DEADLINES_PER_PORT, fingerprint_port, is_silent
from xendiscover._fingerprint._probes import RELOCATION_WAIT
from xendiscover._handoff import Finished, Handoff
from xendiscover._model import (
    UNPROBED,
    XEN_VERDICTS,
    Finding,
    Fingerprint,
    Host,
    HostnameSource,
    group_findings,
)
from xendiscover._names import escape_name, is_dns_name, same_address
from xendiscover._plan import (
    ScanOptions,
    ScanPlan,
    Targets,
    _LocalNetworks,
    discovery_of,
    plan,
)
from xendiscover._resolve import DNSNameResolver, NameResolver
from xendiscover._run import space_networks
from xendiscover._sweep import ProbeResult, ScanStats, sweep
from xendiscover._targets import host_name_of

__all__ = ["FINGERPRINT_TIMEOUT", "Include", "discover", "run_plan", "scan"]

#: Which machines :func:`discover` returns: the Xen machines (``xen``: a
#: service confirmed or likely), or every machine with an open port (``open``).
Include = Literal["xen", "open"]

#: A PTR name and how far it is confirmed.
_Name = tuple[str | None, HostnameSource | None]

_log = logging.getLogger("xendiscover")

#: The shortest per-probe deadline of a fingerprint, in seconds: a service
#: that answers its handshake in time may still take a moment to reply.
FINGERPRINT_TIMEOUT = 2.0


class _Finisher:
    """Turns open ports into findings: fingerprint, then name.

    The ports come through the bounded :class:`~xendiscover._handoff.Handoff`
    (a fixed-size queue, a pool of workers, one report per silent address).
    One reverse lookup per address, whatever its ports. A failure of either
    step is caught here and recorded as the finding's evidence.
    """

    def __init__(
        self,
        scan_plan: ScanPlan,
        backend: Backend,
        names: NameResolver | None,
        stats: ScanStats | None = None,
    ) -> None:
        self._plan = scan_plan
        self._stats = stats if stats is not None else ScanStats()
        self._backend = backend
        self._names = names
        self._lookups: dict[str, asyncio.Future[_Name]] = {}
        self.out: asyncio.Queue[Finding | None] = asyncio.Queue()
        self.stats = stats if stats is not None else ScanStats()
        self._handoff = Handoff(self._finish, self._emit, self.stats, ports=len(scan_plan.ports))

    def _emit(self, finding: Finding) -> None:
        """Pass a finding on; its port is no longer pending (the live display's list)."""
        self.out.put_nowait(finding)
        self.stats.pending_fingerprints.pop((finding.address, finding.port), None)

    async def submit(self, hit: ProbeResult) -> None:
        """Hand over an open port (waits while the hand-off is full)."""
        await self._handoff.put(hit)

    async def drain(self) -> None:
        """Wait until every port submitted so far is finished (and reported, see Handoff)."""
        await self._handoff.drain()

    async def cancel(self) -> None:
        await self._handoff.close()
        pending: list[asyncio.Future[Any]] = list(self._lookups.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _finish(self, hit: ProbeResult) -> Finished:
        key = (hit.address, hit.port)
        now = self._backend.time()
        self.stats.pending_fingerprints[key] = (now, now + self._budget())
        try:
            found = await self._fingerprint(hit)
            hostname, source = await self._name_of(hit.address)
        except BaseException:
            self.stats.pending_fingerprints.pop(key, None)
            raise
        finding = Finding(
            address=hit.address,
            port=hit.port,
            service=found.service,
            verdict=found.verdict,
            evidence=found.evidence,
            latency_ms=hit.latency * 1000.0,
            hostname=hostname,
            hostname_source=source,
            host_uuid=found.host_uuid,
            certificate_names=tuple(n for n in found.names if is_dns_name(n)),
            key_fingerprints=found.key_fingerprints,
            product=found.product,
        )
        return finding, self._plan.fingerprint and is_silent(found)

    def _budget(self) -> float:
        """The longest one port's fingerprint may take, in seconds."""
        if not self._plan.fingerprint:
            return 0.0
        deadline = max(FINGERPRINT_TIMEOUT, self._plan.timeout)
        return deadline * MAX_DEADLINES_PER_PORT + RELOCATION_WAIT

    async def _fingerprint(self, hit: ProbeResult) -> Fingerprint:
        if not self._plan.fingerprint:
            return UNPROBED
        deadline = max(FINGERPRINT_TIMEOUT, self._plan.timeout)
        try:
            return await fingerprint_port(
                hit.address,
                hit.port,
                timeout=deadline,
                backend=self._backend,
                rtt=hit.latency,
                connection=hit.connection,
            )
        except Exception as exc:  # a bug must not cost the host: report it as evidence
            _log.warning("fingerprinting %s:%d failed: %r", hit.address, hit.port, exc)
            return Fingerprint(None, "unknown", f"fingerprint failed ({type(exc).__name__})")

    async def _name_of(self, address: str) -> _Name:
        if self._names is None:
            return None, None
        if address not in self._lookups:
            self._lookups[address] = asyncio.ensure_future(_confirmed_name(self._names, address))
        try:
            return await asyncio.shield(self._lookups[address])
        except Exception as exc:  # the port stays, unnamed
            _log.warning("looking up the name of %s failed: %r", address, exc)
            return None, None


async def _confirmed_name(names: NameResolver, address: str) -> _Name:
    """The PTR name of ``address``, and whether its forward lookup gives it back (FCrDNS).

    A name that is not a DNS name is kept only escaped, and never confirmed.
    """
    name = await names.reverse(address)
    if name is None:
        return None, None
    if not is_dns_name(name):
        return escape_name(name), "ptr-unconfirmed"
    addresses = await names.forward(name)
    confirmed = any(same_address(address, a) for a in addresses)
    return name, "ptr" if confirmed else "ptr-unconfirmed"


async def run_plan(
    scan_plan: ScanPlan,
    *,
    backend: Backend | None = None,
    resolver: NameResolver | None = None,
    stats: ScanStats | None = None,
) -> AsyncGenerator[Finding, None]:
    """Run a checked :class:`~xendiscover._plan.ScanPlan`, yielding a Finding per open port.

    ``backend`` and ``resolver`` replace the real I/O; ``stats`` is updated
    as the sweep runs. What this function makes, it closes.
    """
    io = backend if backend is not None else SocketBackend()
    names = (resolver or DNSNameResolver(scan_plan.nameservers)) if scan_plan.resolve else None
    finisher = _Finisher(scan_plan, io, names, stats)

    async def produce() -> None:
        try:
            started = io.time()
            hits = sweep(
                scan_plan.job,
                io,
                finisher.stats,
                workers=scan_plan.workers,
                keep=scan_plan.fingerprint,
            )
            async with contextlib.aclosing(hits):
                async for hit in hits:
                    await finisher.submit(hit)
            finisher.stats.sweep_seconds = io.time() - started
            await finisher.drain()
        finally:
            finisher.out.put_nowait(None)

    producer = asyncio.ensure_future(produce())
    try:
        while (finding := await finisher.out.get()) is not None:
            yield finding
        await producer
    finally:
        # Each step runs whatever happens to the one before (a second
        # cancellation included): the backend's spare sockets and the DNS
        # channel are closed here, not by the garbage collector.
        try:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await finisher.cancel()
        finally:
            try:
                if names is not None and resolver is None:
                    await names.aclose()
            finally:
                if backend is None:
                    io.close()


async def _resolve_targets(targets: Targets, options: ScanOptions) -> dict[str, str]:
    """Look up the host names among the targets and exclusions, without blocking.

    Through the scan's resolver (its nameservers), each name's first address
    (A before AAAA, as nmap takes it); a name without one is left out, and
    :func:`plan` then says it cannot be resolved.
    """
    specs = [] if isinstance(targets, str | _LocalNetworks) or targets is None else list(targets)
    specs += list(options.get("exclude", ()))
    names = sorted({name for spec in specs if (name := host_name_of(spec)) is not None})
    if not names:
        return {}
    resolver = options.get("resolver")
    own = resolver is None
    dns = DNSNameResolver(options.get("nameservers", ())) if resolver is None else resolver
    try:
        answers = await asyncio.gather(*(dns.forward(name) for name in names))
    finally:
        if own:
            await dns.aclose()
    return {name: found[0] for name, found in zip(names, answers, strict=True) if found}


async def scan(targets: Targets, **options: Unpack[ScanOptions]) -> AsyncGenerator[Finding, None]:
    """Sweep for Xen services, yielding each open port as soon as it is known.

    Args:
        targets: Networks, addresses, ranges or host names (nmap syntax), or
            :data:`~xendiscover.LOCAL_NETWORKS` to sweep the IPv4 networks of
            this machine's up interfaces (combined with ``|``:
            :data:`~xendiscover.ROUTED_NETWORKS` for networks behind gateways,
            :data:`~xendiscover.IPV6_NEIGHBOURS` for IPv6 hosts on the links).
            Nothing is swept by default.
        **options: See :class:`~xendiscover.ScanOptions`.

    Yields:
        One :class:`~xendiscover.Finding` per open port, fingerprinted and
        named, in the order they are finished. Group them into machines with
        :func:`~xendiscover.group_findings` (as :func:`discover` does).

    Raises:
        TargetError: An input is invalid (raised before anything is sent).
        WorkerError: A probe process failed: the sweep is incomplete.

    Closing the iterator early (``contextlib.aclosing``) or cancelling the
    task that iterates it closes every socket the scan opened.
    """
    resolved = await _resolve_targets(targets, options)
    discovered = None
    if isinstance(targets, _LocalNetworks):  # netlink and the ICMPv6 echo block: not on the loop
        discovered = await asyncio.to_thread(discovery_of, targets, options)
    checked = plan(targets, resolved=resolved, discovered=discovered, **options)
    if (stats := options.get("stats")) is not None:
        stats.networks, stats.ports = space_networks(checked.space), checked.ports
    findings = run_plan(
        checked,
        backend=options.get("backend"),
        resolver=options.get("resolver"),
        stats=options.get("stats"),
    )
    async with contextlib.aclosing(findings):
        async for finding in findings:
            yield finding


async def discover(
    targets: Targets, *, include: Include = "xen", **options: Unpack[ScanOptions]
) -> list[Host]:
    """Sweep for Xen machines and return them, one :class:`~xendiscover.Host` each, sorted.

    Takes the same arguments as :func:`scan`, which it runs to the end, and
    groups the findings into machines (:func:`~xendiscover.group_findings`:
    one machine per address, and across addresses per key a XAPI host
    proved in a handshake; never per UUID).

    Args:
        targets: As for :func:`scan`.
        include: ``"xen"`` (the default) returns the Xen machines, whose
            verdict is ``confirmed`` or ``likely`` (what the command prints);
            ``"open"`` returns every machine with an open port.
        **options: See :class:`~xendiscover.ScanOptions`.

    Example::

        hosts = await discover(["10.0.0.0/24"], port=8002)
        print([h.key for h in hosts])  # confirmed names, else addresses
    """
    async with contextlib.aclosing(scan(targets, **options)) as findings:
        found = [finding async for finding in findings]
    machines = group_findings(found)
    if include == "open":
        return machines
    return [host for host in machines if host.verdict in XEN_VERDICTS]
