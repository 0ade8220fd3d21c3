"""Connect once (issue 22): the first fingerprint probe runs on the sweep's connection.

xend 4.4's accept thread runs ``socket.getfqdn(peer)`` for every connection
before it accepts the next; with a resolver that does not answer, each
connection costs a stall. The sweep's own connect used to be closed at once
and a new one opened for the fingerprint, which then waited out two stalls.
Now the connection is kept, and handed from probe processes to the scanning
process over a Unix socket (``SCM_RIGHTS``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from support import hosts_of, open_ports, set_relocation_wait

from xendiscover.testing import Behaviour, FakeBackend, FakeService, FakeXendRelocation

pytestmark = pytest.mark.asyncio

HELP = b"(ok (help quit receive sslreceive))\n"


@pytest.mark.parametrize("workers", [1, 3])
async def test_the_first_probe_adds_no_handshake(workers: int) -> None:
    # Virtual time, the probe "processes" included: one handshake per open
    # port (the sweep's), and every kept connection is used or closed.
    hosts = [f"10.3.0.{n}" for n in (2, 77, 200)]
    script: dict[str | tuple[str, int], Behaviour] = dict.fromkeys(hosts, "closed")
    script.update({(h, 8002): "open" for h in hosts})
    backend = FakeBackend(
        script,
        services={(h, 8002): FakeService(HELP) for h in hosts},
        pending=True,
    )
    found = await open_ports(["10.3.0.0/24"], port=8002, backend=backend, resolve=False,
                             workers=workers)  # fmt: skip
    assert [(f.address, f.verdict) for f in found] == [(h, "confirmed") for h in hosts]
    assert set(backend.adopted) == {(h, 8002) for h in hosts}
    assert len(backend.adopted) == len(hosts)
    assert backend.handshakes == {(h, 8002): 1 for h in hosts}
    assert not backend.kept
    assert not backend.handed_over
    assert not backend.open_streams


async def test_connections_of_ports_never_fingerprinted_are_closed() -> None:
    # A tarpit range: most open ports are folded into one report per
    # address, never fingerprinted; their kept connections are closed.
    backend = FakeBackend(default="open", pending=True)
    found = await open_ports(["10.4.0.0/28"], backend=backend, resolve=False)
    assert len(found) == 16
    assert not backend.kept
    assert not backend.open_streams


@pytest.mark.parametrize("workers", [1, 2])
async def test_real_probe_processes_hand_their_connections_over(
    loopback_net: str, workers: int
) -> None:
    # Real sockets, real probe processes: each xend fake sees one connection
    # in all, the sweep's, on which the relocation probe ran.
    addresses = hosts_of(loopback_net, 3, 1500, 4000)
    fakes = [FakeXendRelocation(a, 8002) for a in addresses]
    for fake in fakes:
        await fake.start()
    try:
        found = await open_ports([loopback_net], port=8002, resolve=False, workers=workers)
    finally:
        for fake in fakes:
            await fake.close()
    assert [(f.address, f.verdict) for f in found] == [(a, "confirmed") for a in addresses]
    assert [fake.connections for fake in fakes] == [1, 1, 1]


class SerialXend:
    """xend's accept loop: one connection at a time, each stalled (its reverse lookup).

    Then the hosts-allow reject: closed without a byte.
    """

    def __init__(self, address: str, stall: float) -> None:
        self.stall = stall
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((address, 8002))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        deadline = time.monotonic() + 60  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._stop.wait(self.stall)  # socket.getfqdn(peer), in the one accept thread
            conn.close()

    def __enter__(self) -> SerialXend:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def serial_xend(loopback_net: str) -> Iterator[SerialXend]:
    with SerialXend(hosts_of(loopback_net, 9)[0], stall=2.0) as fake:
        yield fake


async def test_a_serial_accept_loop_with_a_stall_is_likely_xend(
    serial_xend: SerialXend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaled down (a 2 s stall, a 3.5 s wait; the real ones are 10 s and 12 s;
    # tests/lab has them at full size). The probe runs on the sweep's
    # connection, so it waits one stall (2 s), not two (4 s, past the wait:
    # unknown), and sees the silent close: likely. Only the TLS check that
    # follows a silent close opens a second connection.
    set_relocation_wait(monkeypatch, 3.5)
    address = serial_xend._sock.getsockname()[0]
    found = await open_ports([address], port=8002, resolve=False)
    assert [(f.port, f.verdict) for f in found] == [(8002, "likely")]
    await asyncio.sleep(0)
    assert serial_xend.accepted <= 2  # the sweep's (= the probe's), and the TLS check's
