"""Per-destination timing (issue 22): far sites, a LAN beside them, ``--retries 0``.

Everything here runs in virtual time on :class:`FakeBackend`, whose
addresses have their own round-trip time and loss: a 700 ms round trip
costs nothing on the wall clock, and a loaded machine changes nothing.
"""

from __future__ import annotations

import re

import pytest
from support import open_ports

from xendiscover._backend import Outcome
from xendiscover._sweep._prober import Prober
from xendiscover.testing import FakeBackend, FakeService

pytestmark = pytest.mark.asyncio

HELP = b"(ok (help quit receive sslreceive))\n"
#: A DER blob standing in for xapi's certificate (the fake only hands it back).
CERT = b"0\x03\x02\x01\x00"
EVERY = frozenset(Outcome)


def _xapi_reply(received: bytes) -> bytes:
    """xapi's answer to ``system.isAlive:<nonce>``: the nonce echoed in a Success."""
    found = re.search(rb"system\.isAlive:([0-9a-f-]{36})", received)
    if found is None:
        return b""
    nonce = found.group(1).decode()
    body = (
        "<?xml version='1.0'?><methodResponse><params><param><value><struct>"
        "<member><name>Status</name><value>Success</value></member>"
        f"<member><name>Value</name><value>{nonce}</value></member>"
        "</struct></value></param></params></methodResponse>"
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return head + body


def _far_site(rtt: float, loss: float, seed: int, lan: bool = False) -> FakeBackend:
    """A far site (xapi on 443 and 80, xend on 8002, dark neighbours), maybe with a LAN."""
    hosts: dict[str | tuple[str, int], object] = {
        "10.9.0.5": "closed",
        ("10.9.0.5", 443): "open",
        ("10.9.0.5", 80): "open",
        "10.9.0.6": "closed",
        ("10.9.0.6", 8002): "open",
        "10.9.0.7": "dark",
    }
    services = {
        ("10.9.0.5", 443): FakeService(_xapi_reply, certificate=CERT),
        ("10.9.0.5", 80): FakeService(_xapi_reply),
        ("10.9.0.6", 8002): FakeService(HELP),
    }
    latency = {f"10.9.0.{n}": rtt for n in range(1, 255)}
    if lan:
        hosts[("10.1.0.3", 8002)] = "open"
        services[("10.1.0.3", 8002)] = FakeService(HELP)
        latency.update({f"10.1.0.{n}": 0.0004 for n in range(1, 255)})
    return FakeBackend(
        hosts,  # type: ignore[arg-type]
        default="dark",
        services=services,
        pending=True,
        latency=latency,
        loss=loss,
        seed=seed,
    )


async def _xen_services(backend: FakeBackend, targets: list[str]) -> set[tuple[str, int, str]]:
    found = await open_ports(targets, backend=backend, resolve=False)
    return {(f.address, f.port, f.verdict) for f in found if f.service is not None}


FAR = {
    ("10.9.0.5", 443, "confirmed"),
    ("10.9.0.5", 80, "confirmed"),
    ("10.9.0.6", 8002, "confirmed"),
}


async def test_a_far_site_is_fingerprinted_at_defaults() -> None:
    # A 700 ms round trip: every connect of a fingerprint used to get a third
    # of 2 s (less than one round trip), so every port came back unknown.
    found = await _xen_services(_far_site(0.7, 0.0, 0), ["10.9.0.5-7"])
    assert found == FAR


@pytest.mark.parametrize("seed", range(20))
async def test_a_lossy_far_site_and_a_lan_are_found_every_run(seed: int) -> None:
    # 600-800 ms, 2 % loss each way, a LAN in the same run: the LAN's
    # sub-millisecond answers must not shorten the far site's deadlines.
    rtt = 0.6 + 0.2 * (seed % 5) / 4
    found = await _xen_services(_far_site(rtt, 0.02, seed, lan=True), ["10.1.0.1-8", "10.9.0.1-8"])
    assert found == {*FAR, ("10.1.0.3", 8002, "confirmed")}


async def test_each_neighbourhood_keeps_its_own_round_trip() -> None:
    # A LAN answers in 0.4 ms, a far /24 in 700 ms. Once both have answered,
    # a dark address on the LAN gets the LAN's short first attempt, and one
    # at the far site an attempt long enough for the far round trip.
    lan = [f"10.1.0.{n}" for n in range(1, 21)]
    latency = {a: 0.0004 for a in [*lan, "10.1.0.99"]} | {"10.9.0.1": 0.7, "10.9.0.2": 0.7}
    backend = FakeBackend(
        {**dict.fromkeys(lan, "closed"), "10.9.0.1": "closed"},
        default="dark",
        pending=True,
        latency=latency,
    )
    prober = Prober(backend, timeout=3.0, retries=3, window=1, report=EVERY)
    # The far answer first, then many LAN answers that pull a single,
    # global estimate down to the LAN's floor.
    order = ["10.9.0.1", *lan, "10.1.0.99", "10.9.0.2"]
    results = [r async for r in prober.run([(2, a, 80) for a in order])]  # type: ignore[misc]
    assert {r.address: r.outcome for r in results}["10.9.0.1"] is Outcome.CLOSED
    first: dict[str, float] = {}
    for address, timeout in zip(backend.attempts, backend.timeouts, strict=True):
        first.setdefault(address[0], timeout)
    assert first["10.1.0.99"] == pytest.approx(0.25)  # the LAN's floor
    assert first["10.9.0.2"] > 0.7  # longer than the far site's round trip


async def test_retries_zero_waits_the_full_timeout() -> None:
    # --retries 0: the only attempt at a silent address is its last one, so it
    # waits the user's --timeout, not the estimate of a fast neighbourhood.
    backend = FakeBackend({"10.1.0.1": "closed"}, default="dark", pending=True)
    prober = Prober(backend, timeout=3.0, retries=0, window=1, report=EVERY)
    items = [(2, "10.1.0.1", 80), (2, "10.1.0.2", 80)]
    [r async for r in prober.run(items)]  # type: ignore[arg-type]
    assert backend.attempts == [("10.1.0.1", 80), ("10.1.0.2", 80)]
    assert backend.timeouts[1] == 3.0


async def test_a_host_beyond_the_timeout_is_not_found() -> None:
    # The fake's latency is honoured, not ignored: a round trip longer than
    # every deadline finds nothing (the user's --timeout still rules the sweep).
    backend = FakeBackend({"10.9.0.1": "open"}, pending=True, latency={"10.9.0.1": 1.5})
    prober = Prober(backend, timeout=1.0, retries=1, window=4, report=EVERY)
    results = [r async for r in prober.run([(2, "10.9.0.1", 80)])]  # type: ignore[list-item]
    assert [r.outcome for r in results] == [Outcome.TIMEOUT]
