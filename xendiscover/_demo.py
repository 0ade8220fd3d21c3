"""The fakes behind ``python -m xendiscover demo``: a small Xen network on loopback.

Each fake binds its own 127.77.0.x address (Linux answers on all of 127/8
without configuration) and its service's well-known port; where that port
cannot be bound (ports below 1024 without root, or a port in use) it falls
back to a free port, so the demo runs anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from xendiscover._model import Service, Verdict
from xendiscover.testing import (
    FakeHttpServer,
    FakeLibvirt,
    FakeServer,
    FakeTarpit,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
)

__all__ = ["DEMO_FAKES", "DemoFake", "start_demo_fakes"]


@dataclass(frozen=True, slots=True)
class DemoFake:
    """One fake of the demo network.

    Attributes:
        address: The loopback address it binds.
        port: The port it tries first (its service's well-known port).
        make: Builds the fake for an ``(address, port)``.
        service: What a scan should find there.
        verdict: How sure the scan should be (on the well-known port).
    """

    address: str
    port: int
    make: Callable[[str, int], FakeServer]
    service: Service | None
    verdict: Verdict


#: The demo network: one fake of each Xen service and two decoys.
DEMO_FAKES: tuple[DemoFake, ...] = (
    DemoFake("127.77.0.2", 443, lambda h, p: FakeXapi(h, p, tls=True), "xapi", "confirmed"),
    DemoFake("127.77.0.2", 80, lambda h, p: FakeXapi(h, p), "xapi", "confirmed"),
    DemoFake("127.77.0.3", 8002, FakeXendRelocation, "xend-relocation", "confirmed"),
    DemoFake("127.77.0.3", 8000, FakeXendHttp, "xend-http", "confirmed"),
    DemoFake("127.77.0.3", 8006, FakeXendXmlRpc, "xend-xmlrpc", "confirmed"),
    DemoFake(
        "127.77.0.4",
        8002,
        lambda h, p: FakeXendRelocation(h, p, hosts_allow=False),
        "xend-relocation",
        "likely",
    ),
    DemoFake("127.77.0.5", 16509, FakeLibvirt, "libvirt", "unknown"),
    DemoFake("127.77.0.6", 443, lambda h, p: FakeHttpServer(h, p, tls=True), None, "not-xen"),
    # A silent peer on 9363: on 8002 it would be given xend's long hosts-allow wait.
    DemoFake("127.77.0.7", 9363, FakeTarpit, None, "unknown"),
)


async def _start(spec: DemoFake, stack: contextlib.AsyncExitStack) -> FakeServer:
    try:
        return await stack.enter_async_context(spec.make(spec.address, spec.port))
    except OSError:  # the well-known port is privileged or taken: any free port
        return await stack.enter_async_context(spec.make(spec.address, 0))


async def start_demo_fakes(stack: contextlib.AsyncExitStack) -> list[tuple[str, int, str]]:
    """Start the demo fakes; they stop when ``stack`` closes.

    Args:
        stack: The exit stack that owns the fakes.

    Returns:
        ``(address, port, description)`` for each fake, in :data:`DEMO_FAKES`
        order; the port is the one actually bound.
    """
    started = []
    for spec in DEMO_FAKES:
        fake = await _start(spec, stack)
        started.append((fake.host, fake.port, fake.description))
    return started
