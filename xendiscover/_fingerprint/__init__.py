"""Tell which Xen management service answers on an open port, without harm.

:func:`fingerprint_port` is the one entry point: it runs the probes that
:func:`~xendiscover._fingerprint._probes.probe_plan` picks for the port, one
connection each, through the shared driver, and stops at the first that
recognises the peer. The parsers are pure functions in ``_xend``, ``_xapi`` and
``_libvirt``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from xendiscover._backend import Backend, Connection, SocketBackend
from xendiscover._fingerprint._common import Continue, ParseResult
from xendiscover._fingerprint._driver import (
    READ_CAP,
    SILENT_REPLY,
    Exchange,
    exchange,
    stretched,
)
from xendiscover._fingerprint._probes import (
    FORBIDDEN,
    PROBES,
    RELOCATION_PORTS,
    TLS_HELLO,
    XAPI_LIST_METHODS,
    XAPI_PAGE,
    XAPI_POOL_CERT,
    Probe,
    check_request,
    probe_plan,
)
from xendiscover._fingerprint._product import POOL_CERTIFICATE, combine_xapi
from xendiscover._fingerprint._tls import xapi_identity
from xendiscover._fingerprint._xend import HOSTS_ALLOW_EVIDENCE
from xendiscover._model import Fingerprint

__all__ = [
    "FORBIDDEN",
    "MAX_DEADLINES_PER_PORT",
    "PROBES",
    "READ_CAP",
    "WELL_KNOWN_PORTS",
    "Probe",
    "bind_parser",
    "fingerprint_port",
    "is_silent",
    "probe_plan",
    "run_probe",
]

_PAGE_TLS = next(probe for probe in PROBES if probe.name == "xapi-page-tls")

#: The Xen management ports a scan covers by default.
WELL_KNOWN_PORTS: tuple[int, ...] = (443, 80, 8002, 8000, 8006, 9363, 16509)

#: However the peer behaves, one port costs at most this many deadlines, plus
#: the extra wait of a probe with its own longer deadline (the relocation
#: probe on 8002, see ``RELOCATION_WAIT``).
MAX_DEADLINES_PER_PORT = 3


def bind_parser(probe: Probe, nonce: str) -> Callable[[bytes, bool], ParseResult]:
    """The probe's parser with its nonce bound, as the driver calls it: ``(data, closed)``.

    Every follow-up request a parser asks for (:class:`Continue`) is checked
    against :data:`FORBIDDEN` like the first one; a forbidden one raises
    ``UnsafeRequestError`` and is never sent.
    """

    def parse(data: bytes, closed: bool) -> ParseResult:
        found = probe.parse(data, closed=closed, nonce=nonce)
        if isinstance(found, Continue):
            check_request(found.request)
        return found

    return parse


async def run_probe(
    probe: Probe,
    address: str,
    port: int,
    *,
    timeout: float,
    nonce: str | None = None,
    backend: Backend | None = None,
    connect_timeout: float | None = None,
    rtt: float = 0.0,
    connection: Connection | None = None,
) -> Exchange:
    """Run one probe: one connection, its requests, capped, deadlined reads.

    Args:
        probe: The probe to run.
        address: The IP address.
        port: The TCP port.
        timeout: The deadline for the whole exchange, in seconds.
        nonce: The UUID the request carries (a fresh ``uuid4`` if ``None``).
        backend: Where the connection is opened (a :class:`SocketBackend` if ``None``).
        connect_timeout: The deadline the connect attempts share (``timeout``
            by default; shorter for a probe that waits long for its reply).
        rtt: The address's measured round-trip time, in seconds (see
            :func:`~xendiscover._fingerprint._driver.connect_share`).
        connection: A connection the sweep kept, to run on instead of
            connecting (the probe closes it).
    """
    token = nonce if nonce is not None else str(uuid.uuid4())
    request = check_request(probe.build(host=address, nonce=token))
    return await exchange(
        backend if backend is not None else SocketBackend(),
        address,
        port,
        request,
        bind_parser(probe, token),
        tls=probe.tls,
        timeout=timeout,
        server_hostname=probe.server_hostname,
        on_handshake=probe.on_handshake,
        connect_timeout=connect_timeout,
        cap=probe.cap if probe.cap is not None else READ_CAP,
        rtt=rtt,
        connection=connection,
    )


def is_silent(found: Fingerprint) -> bool:
    """Whether the peer accepted and then sent nothing at all before the deadline."""
    return found.service is None and found.evidence.startswith(SILENT_REPLY)


def _rank(found: Fingerprint) -> int:
    """Which of two unrecognised verdicts to keep: a named product beats an answer beats silence."""
    if found.product is not None:
        return 2
    return 1 if found.verdict == "not-xen" else 0


async def fingerprint_port(
    address: str,
    port: int,
    *,
    timeout: float = 2.0,
    backend: Backend | None = None,
    rtt: float = 0.0,
    connection: Connection | None = None,
    plan_port: int | None = None,
) -> Fingerprint:
    """Probe one open port and say which Xen management service, if any, is on it.

    The port's own probes go first (:data:`WELL_KNOWN_PORTS`), then the others
    in a safe order; the first probe that confirms a service ends it (a reply
    shape that is only *likely* xapi, a page, a 403, a 301, lets xapi's own
    probes still run, to confirm it with an echo). A peer that stays silent,
    streams without end or refuses ends it too: more probes would learn
    nothing and cost more deadlines.

    Args:
        address: The IP address, as text.
        port: The TCP port (known to be open).
        timeout: The deadline of each probe, in seconds; the port as a whole
            costs at most :data:`MAX_DEADLINES_PER_PORT` of them (and on 8002
            the relocation probe's own longer wait).
        backend: Where connections are opened (a :class:`SocketBackend` if ``None``).
        rtt: The address's round-trip time as the sweep measured it, in
            seconds: every deadline (connect, TLS handshake, reply) is
            stretched to a multiple of it, ``timeout`` being the floor, so a
            far site (a VPN, a satellite link) is fingerprinted like a LAN.
        connection: The connection the sweep opened to the port and kept:
            the first probe runs on it, so the peer sees one handshake
            fewer, and a service that accepts one connection at a time
            (xend's accept thread, stalled by its reverse lookup of the
            scanner) makes the scanner wait once, not twice. Closed here.
        plan_port: Choose the probes as if the service sat on this port (a
            fake on an ephemeral port standing in for 8002, say).

    Returns:
        The fingerprint. Never raises for anything the network or peer does.
    """
    try:
        return await _probe_port(
            address, port, timeout, plan_port, backend or SocketBackend(), rtt, connection
        )
    finally:
        if connection is not None:
            connection.close()  # unused (no probe ran), or already closed: idempotent


class _Budget:
    """The time one port may cost: a number of deadlines, plus any probe's own longer wait."""

    def __init__(self, backend: Backend, timeout: float, rtt: float = 0.0) -> None:
        self._backend = backend
        self.rtt = rtt
        self.timeout = stretched(timeout, rtt)
        self.end = backend.time() + self.timeout * MAX_DEADLINES_PER_PORT

    def left(self) -> float:
        return self.end - self._backend.time()

    def deadline(self, probe: Probe) -> float | None:
        """Return the probe's deadline, or ``None`` when the port's time is spent.

        A probe's own :attr:`~Probe.timeout` (never shorter than the
        caller's) extends the budget by its extra wait.
        """
        left = self.left()
        if left <= 0:
            return None
        if probe.timeout is not None and probe.timeout > self.timeout:
            self.end += probe.timeout - self.timeout
            return probe.timeout
        return min(self.timeout, left)


async def _silent_close(
    found: Fingerprint,
    known_port: int,
    address: str,
    port: int,
    budget: _Budget,
    backend: Backend,
) -> Fingerprint:
    """Weigh an "accepted and closed without a byte" on a relocation port.

    Off the relocation ports it means nothing (``unknown``). On them, it is
    xend's hosts-allow reject -- or a TLS server that dropped our plain
    ``(help)``: a ClientHello on the same port tells (:data:`TLS_HELLO`): a
    completed handshake is ``not-xen``; a failed one keeps ``likely``.
    """
    if found.evidence != HOSTS_ALLOW_EVIDENCE:
        return found
    if known_port not in RELOCATION_PORTS:
        return Fingerprint(None, "unknown", "accepted and closed without a reply")
    deadline = budget.deadline(TLS_HELLO)
    if deadline is None:
        return found
    tls = await run_probe(
        TLS_HELLO, address, port, timeout=deadline, backend=backend, rtt=budget.rtt
    )
    return tls.fingerprint if tls.fingerprint.verdict == "not-xen" else found


async def _xapi_identity(
    found: Fingerprint, result: Exchange, address: str, port: int, budget: _Budget, backend: Backend
) -> Fingerprint:
    """Add what xapi's certificates say and prove to a TLS-confirmed xapi.

    The names come from the certificate of the handshake that confirmed it;
    the pool certificate from one more handshake, with SNI ``pool``. Names
    and the UUID are claims; the keys of the self-signed certificates (the
    handshakes proved them) are what groups the machine's addresses. A pool
    certificate also says xapi >= 1.291.
    """
    if result.certificate is None:
        return found
    deadline = budget.deadline(XAPI_POOL_CERT)
    pool = None
    if deadline is not None:
        pool = await run_probe(
            XAPI_POOL_CERT, address, port, timeout=deadline, backend=backend, rtt=budget.rtt
        )
    facts = xapi_identity(result.certificate, pool.certificate if pool is not None else None)
    product = found.product
    if facts.pool_certificate:
        product = combine_xapi((product, POOL_CERTIFICATE))
    return dataclasses.replace(
        found,
        names=facts.names,
        host_uuid=facts.host_uuid,
        key_fingerprints=facts.key_fingerprints,
        product=product,
    )


async def _xapi_product(
    found: Fingerprint, probe: Probe, address: str, port: int, budget: _Budget, backend: Backend
) -> Fingerprint:
    """Ask a confirmed xapi for what its version shows, with no session and no login.

    ``system.listMethods`` (a version floor from its messages) over the
    transport that confirmed it, and its landing page (brand and version,
    tentative) unless that was the confirming probe. Each clue is
    weighed by :func:`~xendiscover._fingerprint._product.combine_xapi`.
    """
    follow = [XAPI_LIST_METHODS[probe.tls], _PAGE_TLS if probe.tls else XAPI_PAGE]
    clues = [found.product]
    for extra in follow:
        deadline = budget.deadline(extra)
        if extra.name == probe.name or deadline is None:
            continue
        result = await run_probe(
            extra, address, port, timeout=deadline, backend=backend, rtt=budget.rtt
        )
        if result.fingerprint.service == "xapi":
            clues.append(result.fingerprint.product)
    return dataclasses.replace(found, product=combine_xapi(clues))


async def _recognised(
    found: Fingerprint,
    probe: Probe,
    result: Exchange,
    address: str,
    port: int,
    budget: _Budget,
    backend: Backend,
) -> Fingerprint:
    """Complete a recognised service's fingerprint: xapi's identity and product."""
    if found.service != "xapi":
        return found
    if probe.tls:
        found = await _xapi_identity(found, result, address, port, budget, backend)
    return await _xapi_product(found, probe, address, port, budget, backend)


async def _probe_port(
    address: str,
    port: int,
    timeout: float,
    plan_port: int | None,
    io: Backend,
    rtt: float,
    connection: Connection | None,
) -> Fingerprint:
    known_port = port if plan_port is None else plan_port
    budget = _Budget(io, timeout, rtt)
    best: Fingerprint | None = None
    likely: tuple[Fingerprint, Probe, Exchange] | None = None
    for probe in probe_plan(known_port):
        deadline = budget.deadline(probe)
        if deadline is None:
            break
        if likely is not None and probe.service != "xapi":
            continue  # a likely xapi: only xapi's own probes may still confirm it
        kept, connection = connection, None  # the first probe runs on it, the rest connect
        result = await run_probe(
            probe,
            address,
            port,
            timeout=deadline,
            backend=io,
            connect_timeout=budget.timeout,
            rtt=rtt,
            connection=kept,
        )
        found = await _silent_close(result.fingerprint, known_port, address, port, budget, io)
        if likely is None and found.service == "xapi" and found.verdict == "likely":
            likely = (found, probe, result)
        elif found.service is not None and (likely is None or found.verdict == "confirmed"):
            return await _recognised(found, probe, result, address, port, budget, io)
        elif best is None or _rank(found) > _rank(best):
            best = found
        if result.ending in ("deadline", "cap", "refused"):
            break
    if likely is not None:
        return await _recognised(*likely, address, port, budget, io)
    return best if best is not None else Fingerprint(None, "unknown", "not probed")
