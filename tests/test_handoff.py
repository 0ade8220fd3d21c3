"""The bounded hand-off between sweep and fingerprints (issue 22).

A range where every port accepts and nothing answers (a SYN proxy, a
tarpit farm) once made one task per open port at once, and spent a
deadline on each. Now the queue has a fixed size, and such an address is
reported once. Virtual time (FakeBackend) throughout.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support import open_ports

from xendiscover._backend import Outcome
from xendiscover._handoff import SILENT_EVIDENCE, SILENT_PORTS, Finished, Handoff
from xendiscover._model import Finding
from xendiscover._sweep import ProbeResult, ScanStats
from xendiscover.testing import FakeBackend, FakeService

pytestmark = pytest.mark.asyncio

HELP = b"(ok (help quit receive sslreceive))\n"
DEFAULT_PORTS = 7


async def test_a_syn_proxy_range_is_reported_once_per_address() -> None:
    # 64 addresses, every one of the seven default ports accepts, nothing
    # answers. Each address is one finding, and only a few of its ports are
    # ever asked (not seven deadlines an address).
    backend = FakeBackend(default="open", pending=True)
    found = await open_ports(["10.5.0.0/26"], backend=backend, resolve=False)
    assert len(found) == 64
    assert {f.evidence for f in found} == {SILENT_EVIDENCE}
    assert {f.verdict for f in found} == {"unknown"}
    asked = Counter(address for address, _ in backend.streams)
    assert max(asked.values()) <= SILENT_PORTS
    assert not backend.open_streams


async def test_an_address_that_answers_on_one_port_is_fingerprinted_on_all() -> None:
    # Every port accepts, but one of the first asked answers (a web server on
    # 80): not a tarpit. All its ports are fingerprinted, xend's on 8002
    # included, and nothing is folded.
    services = {
        ("10.5.0.1", 8002): FakeService(HELP),
        ("10.5.0.1", 80): FakeService(b"HTTP/1.0 404 Not Found\r\n\r\n"),
        ("10.5.0.1", 443): FakeService(b"HTTP/1.0 404 Not Found\r\n\r\n"),
    }
    backend = FakeBackend({"10.5.0.1": "open"}, services=services, pending=True)
    found = await open_ports(["10.5.0.1"], backend=backend, resolve=False)
    assert len(found) == DEFAULT_PORTS
    by_port = {f.port: f for f in found}
    assert by_port[8002].verdict == "confirmed"
    assert SILENT_EVIDENCE not in {f.evidence for f in found}


async def test_an_address_with_a_closed_port_is_not_folded() -> None:
    # Two silent open ports, the others refused: it does not accept "every
    # port", so each open port is reported on its own.
    hosts = {"10.5.0.1": "closed", ("10.5.0.1", 443): "open", ("10.5.0.1", 80): "open"}
    backend = FakeBackend(hosts, pending=True)  # type: ignore[arg-type]
    found = await open_ports(["10.5.0.1"], backend=backend, resolve=False)
    assert sorted(f.port for f in found) == [80, 443]
    assert all(f.evidence.startswith("no reply within") for f in found)


async def test_the_queue_is_bounded_and_the_sweep_waits() -> None:
    # A queue of 4, one worker stuck on its port: the fifth hand-over waits.
    gate = asyncio.Event()
    emitted: list[Finding] = []
    stats = ScanStats()

    async def finish(hit: ProbeResult) -> Finished:
        await gate.wait()
        return Finding(hit.address, hit.port, None, "unknown", "x", 0.0), False

    handoff = Handoff(finish, emitted.append, stats, ports=1, size=4, workers=1)
    hits = [ProbeResult(f"10.6.0.{n}", 80, Outcome.OPEN, 0.001, 1) for n in range(10)]
    for hit in hits[:5]:  # one taken by the worker, four queued
        await asyncio.wait_for(handoff.put(hit), 1)
    await asyncio.sleep(0)
    assert stats.waiting == 4
    blocked = asyncio.ensure_future(handoff.put(hits[5]))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # the sweep waits while the queue is full
    gate.set()
    await asyncio.wait_for(blocked, 1)
    for hit in hits[6:]:
        await handoff.put(hit)
    await asyncio.wait_for(handoff.drain(), 1)
    assert sorted(f.address for f in emitted) == sorted(h.address for h in hits)
    assert stats.waiting == stats.fingerprinting == 0
    await handoff.close()


async def test_many_tarpit_ports_hold_a_bounded_number_of_conversations() -> None:
    # A /22 of tarpits: at no time more conversations than the pool has
    # workers (the old design opened a task per open port at once).
    backend = FakeBackend(default="open", pending=True)
    stats = ScanStats()
    found = await open_ports(["10.7.0.0/22"], backend=backend, resolve=False, stats=stats)
    assert len(found) == 1024
    assert stats.silent_hosts == 1024
    assert stats.waiting == stats.fingerprinting == 0


async def test_the_stats_time_the_sweep_itself() -> None:
    # The -v summary says how long the sweep took, apart from fingerprinting.
    backend = FakeBackend(
        {"10.5.0.1": "open"}, services={("10.5.0.1", 8002): FakeService(HELP)}, pending=True
    )
    stats = ScanStats()
    await open_ports(["10.5.0.1"], port=8002, backend=backend, resolve=False, stats=stats)
    assert stats.sweep_seconds is not None
    assert stats.waiting == stats.fingerprinting == 0
    assert stats.as_dict()["sweep_seconds"] == stats.sweep_seconds
