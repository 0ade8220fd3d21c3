import asyncio
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xendiscover import Outcome, ScanStats
from xendiscover._backend import outcome_of_errno
from xendiscover._sweep._prober import (
    _PREFIXES_KEPT,
    RESOURCE_RETRY_LIMIT,
    Item,
    Prober,
    ProbeResult,
    RttEstimator,
    RttTable,
    _icmp_verdict,
    prefix_of,
    silent_attempts,
)
from xendiscover.testing import FakeBackend

EVERY = frozenset(Outcome)

V4 = socket.AF_INET


def items(count: int, port: int = 8002) -> Iterator[tuple[socket.AddressFamily, str, int]]:
    return ((V4, f"10.0.{i // 256}.{i % 256}", port) for i in range(count))


async def collect(prober: Prober, count: int) -> dict[str, ProbeResult]:
    results: dict[str, ProbeResult] = {}
    async with asyncio.timeout(10):
        async for result in prober.run(items(count)):
            assert result.address not in results, "a probe was reported twice"
            results[result.address] = result
    return results


async def sweep(
    connector: FakeBackend, count: int, *, retries: int = 1, window: int = 64
) -> tuple[dict[str, ProbeResult], ScanStats]:
    prober = Prober(connector, timeout=0.5, retries=retries, window=window, report=EVERY)
    return await collect(prober, count), prober.stats


@pytest.mark.parametrize("pending", [False, True])
async def test_every_address_gets_exactly_one_result(pending: bool) -> None:
    connector = FakeBackend(
        {"10.0.0.5": "open", "10.0.1.7": "open", "10.0.0.9": "dark", "10.0.0.10": "unreachable"},
        pending=pending,
    )
    results, stats = await sweep(connector, 600)
    assert len(results) == 600
    assert {a for a, r in results.items() if r.outcome is Outcome.OPEN} == {"10.0.0.5", "10.0.1.7"}
    assert results["10.0.0.9"].outcome is Outcome.TIMEOUT
    assert results["10.0.0.10"].outcome is Outcome.UNREACHABLE
    assert stats.done == 600
    assert stats.open == 2
    assert stats.outcomes[Outcome.CLOSED] == 596


async def test_a_timeout_is_retried_and_a_lost_syn_costs_no_host() -> None:
    connector = FakeBackend({"10.0.0.3": ["dark", "open"], "10.0.0.4": "dark"}, pending=True)
    results, stats = await sweep(connector, 8, retries=1)
    assert results["10.0.0.3"].outcome is Outcome.OPEN
    assert results["10.0.0.3"].attempts == 2
    assert results["10.0.0.4"].outcome is Outcome.TIMEOUT
    assert results["10.0.0.4"].attempts == 2  # one try plus one retry, no more
    assert connector.attempts.count(("10.0.0.4", 8002)) == 2
    assert stats.retries == 2


async def test_retries_zero_means_one_attempt() -> None:
    connector = FakeBackend({"10.0.0.3": ["dark", "open"]}, pending=True)
    results, _ = await sweep(connector, 4, retries=0)
    assert results["10.0.0.3"].outcome is Outcome.TIMEOUT


async def test_refused_is_not_retried() -> None:
    connector = FakeBackend(pending=True)
    await sweep(connector, 50, retries=3)
    assert len(connector.attempts) == 50


async def test_window_bounds_connects_in_flight() -> None:
    connector = FakeBackend(default="dark", pending=True)
    await sweep(connector, 500, retries=0, window=16)
    assert connector.max_in_flight == 16


async def test_resource_errors_shrink_the_window_and_lose_no_host() -> None:
    # A process allowed 10 sockets, asked to keep 200 connects in flight.
    hosts = {f"10.0.{i // 256}.{i % 256}": "open" for i in range(0, 1000, 37)}
    connector = FakeBackend(hosts, default="dark", pending=True, capacity=10)  # type: ignore[arg-type]
    results, stats = await sweep(connector, 1000, retries=0, window=200)
    assert len(results) == 1000
    assert {a for a, r in results.items() if r.outcome is Outcome.OPEN} == set(hosts)
    assert not any(r.outcome is Outcome.RESOURCE for r in results.values())
    assert stats.backoffs > 0
    assert connector.max_in_flight <= 10
    assert max(connector.sleeps, default=0.0) <= 1.0


@pytest.mark.parametrize("error", ["emfile", "enobufs", "eaddrnotavail"])
async def test_transient_resource_errors_are_retried_not_reported(error: str) -> None:
    connector = FakeBackend({"10.0.0.2": [error, error, error, "open"]})  # type: ignore[list-item]
    results, stats = await sweep(connector, 4)
    assert results["10.0.0.2"].outcome is Outcome.OPEN
    assert stats.backoffs == 3
    # The waits grow while the errors go on, and stay short: the machine recovers.
    assert len(connector.sleeps) == 3
    assert connector.sleeps == sorted(connector.sleeps)
    assert connector.sleeps[0] < connector.sleeps[-1]
    assert sum(connector.sleeps) < 1.0


async def test_a_resource_error_that_never_clears_ends_as_error() -> None:
    connector = FakeBackend({"10.0.0.1": "emfile"})
    results, _ = await sweep(connector, 3)
    assert results["10.0.0.1"].outcome is Outcome.ERROR
    assert connector.attempts.count(("10.0.0.1", 8002)) == RESOURCE_RETRY_LIMIT + 1
    assert results["10.0.0.2"].outcome is Outcome.CLOSED


async def test_only_the_asked_outcomes_are_reported() -> None:
    connector = FakeBackend({"10.0.0.5": "open", "10.0.0.9": "dark"}, pending=True)
    prober = Prober(connector, timeout=0.5, retries=0, window=8)  # default: open only
    results = await collect(prober, 20)
    assert list(results) == ["10.0.0.5"]
    assert prober.stats.done == 20


@pytest.mark.parametrize("round_", range(20))
async def test_cancelling_the_run_cancels_pending_connects(round_: int) -> None:
    connector = FakeBackend(default="dark", pending=True)
    prober = Prober(connector, timeout=60, retries=0, window=8)

    async def consume() -> None:
        async for _ in prober.run(items(1_000_000)):
            pass

    task = asyncio.ensure_future(consume())
    for _ in range(round_ + 1):
        await asyncio.sleep(0)
    # Cancel wherever the loop happens to be (rounds stop at different turns).
    assert connector.pending <= 8
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the cancelled futures' callbacks run
    assert connector.pending == 0


def test_errno_classification() -> None:
    import errno

    assert outcome_of_errno(0) is Outcome.OPEN
    assert outcome_of_errno(errno.ECONNREFUSED) is Outcome.CLOSED
    assert outcome_of_errno(errno.EHOSTUNREACH) is Outcome.UNREACHABLE
    assert outcome_of_errno(errno.EMFILE) is Outcome.RESOURCE
    assert outcome_of_errno(errno.EADDRNOTAVAIL) is Outcome.RESOURCE
    assert outcome_of_errno(errno.EINVAL) is Outcome.ERROR


def test_bad_prober_settings() -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        Prober(FakeBackend(), timeout=0, retries=1, window=1)


def test_rtt_estimator_follows_answers_within_floor_and_ceiling() -> None:
    rtt = RttEstimator(ceiling=2.0, floor=0.25)
    assert rtt.timeout == 2.0  # no sample yet: the user's timeout
    rtt.sample(0.001)
    assert rtt.timeout == 0.25  # fast LAN: the floor
    for _ in range(50):
        rtt.sample(0.4)
    assert 0.4 < rtt.timeout < 0.6  # converged on srtt plus a little variance
    rtt.sample(30.0)
    assert rtt.timeout == 2.0  # never beyond the ceiling


# What one port teaches the others (issue 15) ------------------------------------

SEVEN = (443, 80, 8002, 8000, 8006, 9363, 16509)


def per_address(addresses: list[str], ports: tuple[int, ...] = SEVEN) -> list[Item]:
    return [(V4, address, port) for address in addresses for port in ports]


async def run_items(prober: Prober, jobs: list[Item]) -> dict[tuple[str, int], ProbeResult]:
    results: dict[tuple[str, int], ProbeResult] = {}
    async with asyncio.timeout(10):
        async for result in prober.run(jobs):
            results[(result.address, result.port)] = result
    return results


@pytest.mark.parametrize(
    ("retries", "ports", "expected"),
    [
        (3, 1, 4),  # one port: a silent address is a silent port, full budget
        (3, 2, 2),
        (3, 7, 2),  # the default sweep: never fewer than two
        (7, 2, 4),  # ceil(8 / 2)
        (10, 3, 4),  # ceil(11 / 3)
        (1, 7, 2),
        (0, 7, 1),  # never more than retries + 1
    ],
)
def test_silent_attempts_spread_the_budget_over_the_ports(
    retries: int, ports: int, expected: int
) -> None:
    assert silent_attempts(retries, ports) == expected


def test_a_silent_address_is_missed_no_more_often_than_one_answering_port() -> None:
    # The arithmetic of the docstring, at 5% loss each way: an answering
    # port is missed with q ** (retries + 1); a host answering on all its
    # ports stays silent through k rounds with q ** (k * ports), never more.
    q = 1 - 0.95 * 0.95
    for retries in range(6):
        for ports in range(1, 9):
            k = silent_attempts(retries, ports)
            assert q ** (k * ports) <= q ** (retries + 1) * (1 + 1e-9)


async def test_a_dark_address_gets_the_silent_budget_on_every_port() -> None:
    connector = FakeBackend(default="dark", pending=True)
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1", "10.0.0.2"]))
    assert len(results) == 14
    assert {r.outcome for r in results.values()} == {Outcome.TIMEOUT}
    assert {r.attempts for r in results.values()} == {2}
    assert len(connector.attempts) == 28  # not 56: 2 per port, not 4


async def test_an_address_that_answered_gives_its_silent_ports_every_retry() -> None:
    # 10.0.0.1 refuses on 80 and drops everything else (a firewall that lets
    # one port through); 10.0.0.2 is dark.
    connector = FakeBackend(
        {("10.0.0.1", 80): "closed", "10.0.0.1": "dark"}, default="dark", pending=True
    )
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1", "10.0.0.2"]))
    assert results[("10.0.0.1", 80)].outcome is Outcome.CLOSED
    answered = [r for (a, p), r in results.items() if a == "10.0.0.1" and p != 80]
    assert {r.attempts for r in answered} == {4}
    assert {r.attempts for (a, _), r in results.items() if a == "10.0.0.2"} == {2}


async def test_a_port_behind_loss_on_an_answering_host_is_found_on_its_last_try() -> None:
    # Three SYNs lost in a row on 8002; the host's other ports refuse.
    connector = FakeBackend(
        {("10.0.0.1", 8002): ["dark", "dark", "dark", "open"]}, default="closed", pending=True
    )
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    assert results[("10.0.0.1", 8002)].outcome is Outcome.OPEN
    assert results[("10.0.0.1", 8002)].attempts == 4


async def test_a_fast_lossy_host_costs_about_one_timeout_not_one_per_retry() -> None:
    # 8002 drops every SYN; the host's other ports refuse within 1 ms. It is
    # not slow, only lossy: its retries need not each wait the full 3 s.
    connector = FakeBackend(
        {("10.0.0.1", 8002): "dark", "10.0.0.1": "closed"}, default="dark", pending=True
    )
    prober = Prober(connector, timeout=3.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    assert results[("10.0.0.1", 8002)].attempts == 4  # every retry: the host answered
    waits = [
        t
        for (a, p), t in zip(connector.attempts, connector.timeouts, strict=True)
        if (a, p) == ("10.0.0.1", 8002)
    ]
    assert sum(waits) < 2 * 3.0


async def test_a_slow_host_that_answered_keeps_deadlines_longer_than_its_round_trip() -> None:
    # Its neighbours answer in 1 ms; it answers in 0.9 s, and 443 loses its
    # first SYN. The retry must wait for this host, not for its neighbours.
    fast = [f"10.0.0.{n}" for n in range(1, 30)]
    connector = FakeBackend(
        {**dict.fromkeys(fast, "closed"), ("10.0.0.90", 443): ["dark", "open"]},
        default="closed",
        pending=True,
        latency=dict.fromkeys(fast, 0.001) | {"10.0.0.90": 0.9},
    )
    prober = Prober(connector, timeout=3.0, retries=3, window=1, report=EVERY, ports=2)
    results = await run_items(prober, per_address([*fast, "10.0.0.90"], (80, 443)))
    assert results[("10.0.0.90", 80)].outcome is Outcome.CLOSED
    assert results[("10.0.0.90", 443)].outcome is Outcome.OPEN


async def test_a_dark_network_waits_the_full_timeout_once_and_less_between() -> None:
    # No answer anywhere: every probe still waits the whole timeout once
    # (a slow host is not lost), but its retries, there for lost packets,
    # cost less than a full timeout each.
    connector = FakeBackend(default="dark", pending=True)
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY)
    await collect(prober, 3)
    for address in ("10.0.0.0", "10.0.0.1", "10.0.0.2"):
        waits = [
            t
            for (a, _), t in zip(connector.attempts, connector.timeouts, strict=True)
            if a == address
        ]
        assert len(waits) == 4
        assert max(waits) == 1.0
        assert sum(waits) < 4 * 1.0


async def test_a_route_the_kernel_refuses_ends_every_port_of_the_address_at_once() -> None:
    # EHOSTUNREACH from inside connect(): the routing table's verdict.
    connector = FakeBackend({"10.0.0.1": "unreachable"}, default="closed")
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1", "10.0.0.2"]))
    assert {r.outcome for (a, _), r in results.items() if a == "10.0.0.1"} == {Outcome.UNREACHABLE}
    assert len([r for (a, _), r in results.items() if a == "10.0.0.1"]) == 7
    assert connector.attempts.count(("10.0.0.1", 443)) == 1
    assert [a for a, _ in connector.attempts].count("10.0.0.1") == 1  # one syscall, not 7
    assert prober.stats.outcomes[Outcome.UNREACHABLE] == 7
    assert [a for a, _ in connector.attempts].count("10.0.0.2") == 7


async def test_a_reject_from_the_host_itself_counts_as_an_answer() -> None:
    # A host firewall rejecting with icmp-host-prohibited on some ports (the
    # ICMP comes from the address itself) while 443 is open behind loss.
    connector = FakeBackend(
        {("10.0.0.1", 443): ["dark", "dark", "dark", "open"], "10.0.0.1": "rejected"},
        pending=True,
    )
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    # The rejections say the host is there: 443 keeps all its retries.
    assert results[("10.0.0.1", 443)].outcome is Outcome.OPEN
    assert results[("10.0.0.1", 443)].attempts == 4
    rejected = [p for p in SEVEN if p != 443]
    assert all(connector.attempts.count(("10.0.0.1", p)) == 1 for p in rejected)  # answers


async def test_a_failed_arp_ends_every_port_of_the_address() -> None:
    # ICMP "host unreachable" sent by this machine: its ARP got no answer.
    # The address's ports still waiting for a retry end with it, at once.
    connector = FakeBackend(
        {("10.0.0.1", 443): "gone", "10.0.0.1": "dark", "10.0.0.2": "dark"}, pending=True
    )
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1", "10.0.0.2"]))
    first = {p: r.outcome for (a, p), r in results.items() if a == "10.0.0.1"}
    assert first == dict.fromkeys(SEVEN, Outcome.UNREACHABLE)
    assert [a for a, _ in connector.attempts].count("10.0.0.1") == 7  # no retry at all
    assert [a for a, _ in connector.attempts].count("10.0.0.2") == 14  # silent: 2 each
    assert prober.stats.retries == 7  # 10.0.0.2's only: 10.0.0.1's ports did not retry


@pytest.mark.parametrize(
    ("icmp", "verdict"),
    [
        ((3, 1, "192.0.2.1"), False),  # our own ARP failed
        ((3, 1, "198.51.100.1"), False),  # a router's did
        ((3, 13, "198.51.100.1"), None),  # a filter on the way: says nothing of the host
        ((3, 10, "10.0.0.1"), True),  # the host rejects this port
        ((3, 1, "10.0.0.1"), True),  # "unreachable" from the host itself is a reject rule
        ((1, 3, "fe80::1"), False),  # ICMPv6 address unreachable
        (None, None),
    ],
)
def test_what_an_icmp_error_says_about_the_address(
    icmp: tuple[int, int, str] | None, verdict: bool | None
) -> None:
    assert _icmp_verdict("10.0.0.1", icmp) is verdict


async def test_a_third_partys_host_unreachable_ends_only_its_own_probe() -> None:
    # A router's "host unreachable" for one port (a per-port filter says the
    # same): RFC 1122's soft error. The address's other ports go on.
    connector = FakeBackend({("10.0.0.1", 443): "routed", "10.0.0.1": "closed"}, pending=True)
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    outcomes = {p: r.outcome for (_, p), r in results.items()}
    assert outcomes.pop(443) is Outcome.UNREACHABLE
    assert set(outcomes.values()) == {Outcome.CLOSED}


async def test_a_second_port_with_a_third_partys_host_unreachable_ends_the_address() -> None:
    # Two ports of the address got a router's "host unreachable": now it is
    # believed for every port, and the silent ones stop retrying.
    connector = FakeBackend(
        {("10.0.0.1", 443): "routed", ("10.0.0.1", 80): "routed", "10.0.0.1": "dark"},
        pending=True,
    )
    prober = Prober(connector, timeout=1.0, retries=3, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    assert {r.outcome for r in results.values()} == {Outcome.UNREACHABLE}
    assert [a for a, _ in connector.attempts].count("10.0.0.1") == 7  # no retry at all


async def test_a_third_partys_host_unreachable_leaves_the_silent_ports_to_their_retries() -> None:
    # One port's router "host unreachable" is not believed for the others:
    # the silent ports are still retried and end as timeouts, not as
    # "unreachable" (which only a second port's vote would make them).
    connector = FakeBackend({("10.0.0.1", 443): "routed", "10.0.0.1": "dark"}, pending=True)
    prober = Prober(connector, timeout=1.0, retries=2, window=64, report=EVERY, ports=7)
    results = await run_items(prober, per_address(["10.0.0.1"]))
    outcomes = {p: r.outcome for (_, p), r in results.items()}
    assert outcomes.pop(443) is Outcome.UNREACHABLE
    assert set(outcomes.values()) == {Outcome.TIMEOUT}
    assert all(results[("10.0.0.1", p)].attempts > 1 for p in outcomes)  # retried


@pytest.mark.parametrize("pending", [True, False])
async def test_an_answered_connect_is_no_longer_listed_as_pending(pending: bool) -> None:
    # The live display lists the connects still waiting: once every answer
    # is in, none may be left listed (open, closed, silent or unreachable).
    backend = FakeBackend(
        {"10.4.0.1": "open", "10.4.0.2": "closed", "10.4.0.3": "unreachable"},
        default="dark",
        pending=pending,
    )
    stats = ScanStats()
    prober = Prober(backend, timeout=1.0, retries=1, window=8, report=EVERY, stats=stats)
    answered = []
    async with asyncio.timeout(10):
        async for result in prober.run(per_address([f"10.4.0.{n}" for n in range(1, 6)])):
            answered.append((result.address, result.port))
            assert not set(answered) & set(stats.pending_connects)  # none still listed
    assert len(answered) == 5 * 7
    assert stats.pending_connects == {}


def test_the_summary_counts_what_the_sweep_counted() -> None:
    # The -v summary (JSON) carries each counter under its own name.
    stats = ScanStats(total=9, done=7, open=2, attempts=11, retries=3, backoffs=1)
    stats.outcomes = {Outcome.OPEN: 2, Outcome.TIMEOUT: 5}
    stats.silent_hosts = 4
    summary = stats.as_dict()
    assert {k: summary[k] for k in ("total", "done", "open", "attempts", "retries")} == {
        "total": 9,
        "done": 7,
        "open": 2,
        "attempts": 11,
        "retries": 3,
    }
    assert summary["backoffs"] == 1
    assert summary["silent_hosts"] == 4
    assert summary["outcomes"] == {"open": 2, "timeout": 5}


def test_a_neighbourhood_keeps_its_history_through_one_slow_answer() -> None:
    # Twenty answers in 10 ms, then one in 300 ms: the /24's deadline moves
    # up, but stays below what that one slow answer alone would give.
    table = RttTable(ceiling=5.0, floor=0.01)
    for _ in range(20):
        table.sample("10.1.0.0", 0.010)
    table.sample("10.1.0.0", 0.300)
    alone = RttTable(ceiling=5.0, floor=0.01)
    alone.sample("10.2.0.0", 0.300)
    assert 0.03 < table.near("10.1.0.0").timeout < alone.near("10.2.0.0").timeout


def test_a_neighbourhood_deadline_never_goes_below_the_floor() -> None:
    for floor in (0.1, 0.4):
        table = RttTable(ceiling=3.0, floor=floor)
        for _ in range(10):
            table.sample("10.1.0.0", 0.0004)
        assert table.near("10.1.0.0").timeout == pytest.approx(floor)
        assert table.overall.timeout == pytest.approx(floor)


def test_the_table_forgets_the_oldest_neighbourhood_past_its_bound() -> None:
    # A sweep of a /8 answers from more /24s than the table keeps: it stays
    # bounded, the oldest falls back to the global estimate, the newest keep
    # their own.
    table = RttTable(ceiling=3.0, floor=0.01)
    table.sample("10.0.0.0", 1.0)  # the slow first one
    for n in range(1, _PREFIXES_KEPT + 1):
        table.sample(f"10.{n // 256}.{n % 256}.0", 0.02)
    assert table.near("10.0.0.0") is table.overall
    newest = table.near(f"10.{_PREFIXES_KEPT // 256}.{_PREFIXES_KEPT % 256}.0")
    assert newest is not table.overall
    assert newest.timeout == pytest.approx(0.06)


_snapshots = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 5), st.integers(0, 50)), max_size=6
)


def _growing(steps: list[tuple[int, int, int]]) -> list[ScanStats]:
    """Successive progress snapshots of one probe process (totals so far)."""
    done = opened = timeouts = 0
    out = []
    for d, o, t in steps:
        done, opened, timeouts = done + d, opened + o, timeouts + t
        snapshot = ScanStats(done=done, open=opened, attempts=done + timeouts)
        snapshot.outcomes = {Outcome.OPEN: opened, Outcome.TIMEOUT: timeouts}
        out.append(snapshot)
    return out


@given(_snapshots, _snapshots)
def test_progress_from_two_probe_processes_adds_up_to_their_totals(
    first: list[tuple[int, int, int]], second: list[tuple[int, int, int]]
) -> None:
    # Each process reports totals so far; the scan adds what grew since the
    # last report, so its counters end as the sum of the processes' last ones.
    merged = ScanStats()
    streams = [_growing(first), _growing(second)]
    before = [ScanStats(), ScanStats()]
    for index in range(max(len(first), len(second))):
        for process, stream in enumerate(streams):
            if index < len(stream):
                merged.add_growth(stream[index], before[process])
                before[process] = stream[index]
    for name in ("done", "open", "attempts"):
        assert getattr(merged, name) == getattr(before[0], name) + getattr(before[1], name)
    for outcome in (Outcome.OPEN, Outcome.TIMEOUT):
        expected = before[0].outcomes.get(outcome, 0) + before[1].outcomes.get(outcome, 0)
        assert merged.outcomes.get(outcome, 0) == expected


async def test_a_resource_error_uses_up_no_attempt() -> None:
    # At the open-file limit (connects past 4 pending fail with EMFILE) the
    # sweep backs off and retries; every address still gets exactly the
    # attempts it gets with files to spare, and the same outcome.
    def sweep_with(capacity: int | None) -> tuple[FakeBackend, ScanStats, Prober]:
        backend = FakeBackend(
            {"10.6.0.1": "open", "10.6.0.2": "closed"},
            default="dark",
            pending=True,
            capacity=capacity,
        )
        stats = ScanStats()
        prober = Prober(backend, timeout=1.0, retries=2, window=32, report=EVERY, stats=stats)
        return backend, stats, prober

    addresses = [f"10.6.0.{n}" for n in range(1, 17)]
    _, spare_stats, spare = sweep_with(None)
    spare_results = await run_items(spare, per_address(addresses, ports=(80,)))
    _, tight_stats, tight = sweep_with(4)
    tight_results = await run_items(tight, per_address(addresses, ports=(80,)))
    assert tight_stats.backoffs > 0
    assert spare_stats.backoffs == 0
    # Each back-off answered one connect that never left this machine; the
    # rest are the same connects, as many as with files to spare.
    assert tight_stats.attempts - tight_stats.backoffs == spare_stats.attempts
    assert {k: (r.outcome, r.attempts) for k, r in tight_results.items()} == {
        k: (r.outcome, r.attempts) for k, r in spare_results.items()
    }


def test_a_neighbourhood_is_the_addresss_24_or_64() -> None:
    assert prefix_of("192.0.2.7") == prefix_of("192.0.2.250") != prefix_of("192.0.3.7")
    assert prefix_of("2001:db8:1:2::5") == prefix_of("2001:db8:1:2:ffff::1")
    assert prefix_of("2001:db8:1:2::5") != prefix_of("2001:db8:1:3::5")
    assert prefix_of("2001:db8:1:2::5") != prefix_of("192.0.2.7")


async def test_results_never_taken_have_their_kept_connections_closed() -> None:
    # The consumer stops after the first open port: the others the sweep had
    # already found (and kept connected) are closed, not leaked.
    backend = FakeBackend(default="open", pending=True)  # answers arrive together
    prober = Prober(backend, timeout=1.0, retries=0, window=64, report=EVERY, keep=True)
    results = prober.run(per_address([f"10.8.0.{n}" for n in range(1, 9)]))
    first = await anext(results)
    assert first.connection is not None
    await results.aclose()
    first.connection.close()  # ours to close, as the taker of the result
    assert not backend.kept


@pytest.mark.parametrize("rate", [50.0, 400.0])
async def test_a_rate_cap_spaces_the_connects_out_and_no_more(rate: float) -> None:
    # --rate: 200 connects at `rate` per second take 200 / rate seconds of
    # (virtual) time, give or take the cap's small burst; uncapped, none.
    count = 200
    capped = FakeBackend(default="closed")
    prober = Prober(capped, timeout=1.0, retries=0, window=64, report=EVERY, rate=rate)
    found = await run_items(prober, [(V4, f"10.9.{i // 256}.{i % 256}", 80) for i in range(count)])
    assert len(found) == count
    assert (count - 1) / rate - 0.02 <= capped.time() <= count / rate + 0.02
    free = FakeBackend(default="closed")
    prober = Prober(free, timeout=1.0, retries=0, window=64, report=EVERY)
    await run_items(prober, [(V4, f"10.9.{i // 256}.{i % 256}", 80) for i in range(count)])
    assert free.time() < 0.02


@pytest.mark.parametrize(
    "bad",
    [{"timeout": 0.0}, {"retries": -1}, {"window": 0}, {"rate": 0.0}, {"rate": -5.0}],
)
def test_a_prober_refuses_settings_it_cannot_honour(bad: dict[str, float]) -> None:
    settings: dict[str, float] = {"timeout": 1.0, "retries": 0, "window": 1} | bad
    with pytest.raises(ValueError, match="must be"):
        Prober(FakeBackend(), **settings)  # type: ignore[arg-type]


async def test_a_prober_takes_the_smallest_settings_it_can_honour() -> None:
    # One slot, no retry, half a connect per second: slow, but it works.
    backend = FakeBackend({"10.2.0.1": "open"}, default="closed")
    prober = Prober(backend, timeout=1.0, retries=0, window=1, rate=0.5, report=EVERY)
    found = await run_items(prober, per_address(["10.2.0.1", "10.2.0.2"], ports=(80,)))
    assert {k: r.outcome for k, r in found.items()} == {
        ("10.2.0.1", 80): Outcome.OPEN,
        ("10.2.0.2", 80): Outcome.CLOSED,
    }
    assert backend.time() >= 1.9  # the second connect waited its turn at 0.5/s
