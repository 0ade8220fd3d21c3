"""What the sweep promises, measured on a virtual network (FakeBackend), not its constants.

- A host slower than its neighbours is still found, whatever ``--retries``.
- A silent address gets the user's full ``--timeout`` before it is given up.
- A host behind loss is found as often as ``docs/cli.md`` says: measured
  over many seeded runs, within four standard deviations of the documented
  miss probability.
- ``--retries 0`` still sweeps: open, closed, unreachable and slow hosts.
"""

from __future__ import annotations

import math
import socket

import pytest

from xendiscover import Outcome
from xendiscover._sweep._prober import Prober
from xendiscover.testing import Behaviour, FakeBackend

EVERY = frozenset(Outcome)
V4 = socket.AF_INET
SEVEN = (443, 80, 8002, 8000, 8006, 9363, 16509)


async def outcomes(
    backend: FakeBackend, addresses: list[str], ports: tuple[int, ...], **options: float
) -> dict[tuple[str, int], Outcome]:
    prober = Prober(backend, report=EVERY, ports=len(ports), **options)  # type: ignore[arg-type]
    items = [(V4, a, p) for a in addresses for p in ports]
    return {(r.address, r.port): r.outcome async for r in prober.run(items)}


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_a_host_slower_than_its_neighbours_is_still_found(retries: int) -> None:
    # Fifty neighbours refuse within a millisecond; one host answers after
    # 2.5 s, under the 3 s --timeout. Whatever the fast ones taught the
    # estimator, the slow one must not be cut off.
    fast = [f"10.0.0.{n}" for n in range(1, 51)]
    latency = dict.fromkeys(fast, 0.001) | {"10.0.0.77": 2.5}
    backend = FakeBackend(
        {**dict.fromkeys(fast, "closed"), "10.0.0.77": "open"}, pending=True, latency=latency
    )
    found = await outcomes(
        backend, [*fast, "10.0.0.77"], (443,), timeout=3.0, retries=retries, window=4
    )
    assert found[("10.0.0.77", 443)] is Outcome.OPEN
    assert {found[(a, 443)] for a in fast} == {Outcome.CLOSED}


@pytest.mark.parametrize("retries", [0, 1, 3])
@pytest.mark.parametrize("ports", [(443,), SEVEN])
async def test_a_silent_address_gets_the_full_timeout(retries: int, ports: tuple[int, ...]) -> None:
    # Behind fast neighbours, a silent address is still waited for as long
    # as the user asked, on every port, before it is called a timeout.
    fast = [f"10.0.0.{n}" for n in range(1, 21)]
    backend = FakeBackend(
        dict.fromkeys(fast, "closed"),
        default="dark",
        pending=True,
        latency=dict.fromkeys(fast, 0.001),
    )
    found = await outcomes(
        backend, [*fast, "10.0.0.99"], ports, timeout=2.0, retries=retries, window=4
    )
    assert {found[("10.0.0.99", p)] for p in ports} == {Outcome.TIMEOUT}
    for port in ports:
        waits = [
            t
            for (a, p), t in zip(backend.attempts, backend.timeouts, strict=True)
            if (a, p) == ("10.0.0.99", port)
        ]
        assert max(waits) == pytest.approx(2.0), (port, waits)


async def test_retries_zero_still_tells_every_outcome_apart() -> None:
    hosts: dict[str | tuple[str, int], Behaviour] = {
        "10.0.0.1": "open",
        "10.0.0.2": "closed",
        "10.0.0.3": "unreachable",
        "10.0.0.4": "rejected",
        "10.0.0.5": "dark",
    }
    backend = FakeBackend(hosts, pending=True, latency={"10.0.0.1": 0.9})
    found = await outcomes(
        backend, [str(h) for h in hosts], (443,), timeout=1.0, retries=0, window=8
    )
    assert found == {
        ("10.0.0.1", 443): Outcome.OPEN,  # 0.9 s away: one attempt, the full timeout
        ("10.0.0.2", 443): Outcome.CLOSED,
        ("10.0.0.3", 443): Outcome.UNREACHABLE,
        ("10.0.0.4", 443): Outcome.UNREACHABLE,
        ("10.0.0.5", 443): Outcome.TIMEOUT,
    }
    assert len(backend.attempts) == 5  # no retries


# Loss, measured --------------------------------------------------------------

RUNS = 400
#: Loss each way: high, so that misses are frequent enough to measure.
LOSS = 0.3
#: The chance that one attempt or its answer is lost (docs/cli.md's q).
Q = 1 - (1 - LOSS) ** 2


async def misses(hosts: dict[str | tuple[str, int], Behaviour], ports: tuple[int, ...]) -> int:
    """In how many of RUNS seeded runs 10.0.0.1:443 (open) was not found."""
    missed = 0
    for seed in range(RUNS):
        backend = FakeBackend(hosts, default="dark", pending=True, loss=LOSS, seed=seed)
        found = await outcomes(backend, ["10.0.0.1"], ports, timeout=1.0, retries=3, window=8)
        missed += found[("10.0.0.1", 443)] is not Outcome.OPEN
    return missed


def assert_rate(missed: int, probability: float) -> None:
    expected = RUNS * probability
    spread = 4 * math.sqrt(RUNS * probability * (1 - probability)) + 1
    assert abs(missed - expected) <= spread, (missed, expected, spread)


async def test_a_lossy_port_probed_alone_is_missed_with_q_to_the_fourth() -> None:
    # docs/cli.md: an answering port gets every retry (3 at the defaults).
    assert_rate(await misses({"10.0.0.1": "open"}, (443,)), Q**4)


async def test_a_lossy_host_answering_on_every_port_is_missed_with_q_to_the_fourth() -> None:
    # Its other ports refuse, so it shows it is there: 443 keeps its retries.
    hosts: dict[str | tuple[str, int], Behaviour] = {
        ("10.0.0.1", 443): "open",
        "10.0.0.1": "closed",
    }
    assert_rate(await misses(hosts, SEVEN), Q**4)


async def test_a_lossy_host_silent_but_for_one_port_is_missed_with_q_squared() -> None:
    # docs/cli.md's price: a host that drops six of seven ports gets two
    # attempts on its open one.
    assert_rate(await misses({("10.0.0.1", 443): "open"}, SEVEN), Q**2)
