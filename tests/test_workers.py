"""Probe worker processes: the same answer as one process, nothing left behind."""

import asyncio

import pytest
from support import Listen, hosts_of

import xendiscover
from xendiscover import TargetSpace, XenDiscoverError
from xendiscover._workers import WORKER_THRESHOLD, WorkerJob, auto_workers


@pytest.mark.parametrize("workers", [2, 3])
async def test_workers_find_exactly_what_one_process_finds(
    loopback_net: str, listeners: Listen, workers: int
) -> None:
    expected = hosts_of(loopback_net, 1, 2, 3, 1000, 2049, 4094)
    listeners(expected, 8002)
    listeners(hosts_of(loopback_net, 7), 8000)
    stats = xendiscover.ScanStats()
    hosts = await xendiscover.discover(
        [loopback_net], port=[8002, 8000], resolve=False, fingerprint=False,
        workers=workers, stats=stats,
    )  # fmt: skip
    assert [(h.address, h.port) for h in hosts] == sorted(
        [(a, 8002) for a in expected] + [(hosts_of(loopback_net, 7)[0], 8000)],
        key=lambda pair: (tuple(map(int, pair[0].split("."))), pair[1]),
    )
    assert stats.total == stats.done == 2 * 4096  # every worker's count arrived
    assert stats.open == len(hosts)


def test_split_parts_are_disjoint_cover_and_compose_with_shards() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/25", "fd00::1-fd00::9"]).sharded(2, 3)
    parts = space.split(4)
    walked = [[a for _, a in part] for part in parts]
    together = [a for part in walked for a in part]
    assert sorted(together) == sorted(a for _, a in space)
    assert len(set(together)) == len(together) == space.size
    assert sum(p.size for p in parts) == space.size


def test_jobs_round_trip_through_json() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/30", "fd00::/126"]).split(2)[1]
    job = WorkerJob(space, (8002, 443), 0.5, 3, 100, None)
    assert WorkerJob.from_json(job.to_json()) == job


def test_small_sweeps_stay_in_one_process() -> None:
    assert auto_workers(WORKER_THRESHOLD - 1) == 1
    assert auto_workers(WORKER_THRESHOLD) >= 1


async def test_cancelling_a_worker_scan_leaves_no_process_and_no_fd(loopback_net: str) -> None:
    # No worker process (nor zombie), fd or task may outlive the test: the
    # autouse check of tests/hygiene.py asserts that after it.
    for delay in (0.0, 0.05, 0.2):
        task = asyncio.ensure_future(
            xendiscover.discover(
                [loopback_net.replace("/20", "/12")],
                port=8002,
                resolve=False,
                fingerprint=False,
                workers=2,
                max_hosts=2_000_000,
            )
        )
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_dead_worker_fails_the_scan_loudly(
    loopback_net: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("xendiscover._workers.sys.executable", "/bin/false")
    with pytest.raises(XenDiscoverError, match="probe worker ended early"):
        await xendiscover.discover(
            [loopback_net], port=8002, resolve=False, fingerprint=False, workers=2
        )
