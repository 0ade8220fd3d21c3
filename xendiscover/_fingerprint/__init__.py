"""Tell which Xen management service answers on an open port, without harm.

:func:`fingerprint_port` is the one entry point: it runs the probes that
:func:`~xendiscover._fingerprint._probes.probe_plan` picks for the port, one
connection each, through the shared driver, and stops at the first that
recognises the peer. The parsers are pure functions in ``_xend``, ``_xapi`` and
``_libvirt``.
"""

from __future__ import annotations

import uuid

from xendiscover._backend import Backend, SocketBackend
from xendiscover._fingerprint._driver import READ_CAP, Exchange, exchange
from xendiscover._fingerprint._probes import (
    FORBIDDEN,
    PROBES,
    RELOCATION_PORTS,
    Probe,
    check_request,
    probe_plan,
)
from xendiscover._fingerprint._xend import HOSTS_ALLOW_EVIDENCE
from xendiscover._model import Fingerprint

__all__ = [
    "FORBIDDEN",
    "MAX_DEADLINES_PER_PORT",
    "PROBES",
    "READ_CAP",
    "WELL_KNOWN_PORTS",
    "Probe",
    "fingerprint_port",
    "probe_plan",
    "probe_port",
    "run_probe",
]

#: The Xen management ports a scan covers by default.
WELL_KNOWN_PORTS: tuple[int, ...] = (443, 80, 8002, 8000, 8006, 9363, 16509)

#: However the peer behaves, one port costs at most this many deadlines.
MAX_DEADLINES_PER_PORT = 3


async def run_probe(
    probe: Probe,
    address: str,
    port: int,
    *,
    timeout: float,
    nonce: str | None = None,
    backend: Backend | None = None,
) -> Exchange:
    """Run one probe: one connection, one request, one capped, deadlined read.

    Args:
        probe: The probe to run.
        address: The IP address.
        port: The TCP port.
        timeout: The deadline for the whole exchange, in seconds.
        nonce: The UUID the request carries (a fresh ``uuid4`` if ``None``).
        backend: Where the connection is opened (a :class:`SocketBackend` if ``None``).
    """
    token = nonce if nonce is not None else str(uuid.uuid4())
    request = check_request(probe.build(host=address, nonce=token))

    def parse(data: bytes, closed: bool) -> Fingerprint:
        return probe.parse(data, closed=closed, nonce=token)

    io = backend if backend is not None else SocketBackend()
    return await exchange(io, address, port, request, parse, tls=probe.tls, timeout=timeout)


def _rank(found: Fingerprint) -> int:
    """Which of two unrecognised verdicts to keep: an answer beats silence."""
    return 1 if found.verdict == "not-xen" else 0


async def fingerprint_port(
    address: str, port: int, *, timeout: float = 2.0, backend: Backend | None = None
) -> Fingerprint:
    """Probe one open port and say which Xen management service, if any, is on it.

    The port's own probes go first (:data:`WELL_KNOWN_PORTS`), then the others
    in a safe order; the first probe that recognises the peer ends it. A peer
    that stays silent, streams without end or refuses ends it too: more
    probes would learn nothing and cost more deadlines.

    Args:
        address: The IP address, as text.
        port: The TCP port (known to be open).
        timeout: The deadline of each probe, in seconds; the port as a whole
            costs at most :data:`MAX_DEADLINES_PER_PORT` of them.
        backend: Where connections are opened (a :class:`SocketBackend` if ``None``).

    Returns:
        The fingerprint. Never raises for anything the network or peer does.
    """
    return await probe_port(address, port, timeout=timeout, backend=backend)


async def probe_port(
    address: str,
    port: int,
    *,
    timeout: float = 2.0,
    plan_port: int | None = None,
    backend: Backend | None = None,
) -> Fingerprint:
    """Run :func:`fingerprint_port` with its inputs exposed, for tests and tools.

    Args:
        address: The IP address, as text.
        port: The TCP port to connect to.
        timeout: The deadline of each probe, in seconds.
        plan_port: Choose the probes as if the service sat on this port (a
            fake on an ephemeral port standing in for 8002, say).
        backend: Where connections are opened (a :class:`SocketBackend` if ``None``).
    """
    io = backend if backend is not None else SocketBackend()
    known_port = port if plan_port is None else plan_port
    budget_end = io.time() + timeout * MAX_DEADLINES_PER_PORT
    best: Fingerprint | None = None
    for probe in probe_plan(known_port):
        remaining = budget_end - io.time()
        if remaining <= 0:
            break
        result = await run_probe(probe, address, port, timeout=min(timeout, remaining), backend=io)
        found = result.fingerprint
        if found.evidence == HOSTS_ALLOW_EVIDENCE and known_port not in RELOCATION_PORTS:
            # Closing at once is xend's answer only where xend would listen.
            found = Fingerprint(None, "unknown", "accepted and closed without a reply")
        if found.service is not None:
            return found
        if best is None or _rank(found) > _rank(best):
            best = found
        if result.ending in ("deadline", "cap", "refused"):
            break
    return best if best is not None else Fingerprint(None, "unknown", "not probed")
