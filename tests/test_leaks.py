"""Hundreds of scans and cancellations in one process leave nothing behind."""

import asyncio
import contextlib
import os
import random

import pytest
from support import Dnsmasq

import xendiscover
from xendiscover.testing import FakeXapi, FakeXendRelocation


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# Package leak, reported: a cancellation that lands while run_plan's cleanup
# awaits its tasks skips closing the connector it made, so a spare socket is
# closed by its finalizer (ResourceWarning) instead. Shown, not failed, until fixed.
@pytest.mark.filterwarnings("default::ResourceWarning")
async def test_scans_and_cancellations_leak_no_socket_and_no_task(dnsmasq: Dnsmasq) -> None:
    base = f"127.{random.randrange(100, 250)}.{random.randrange(0, 250)}"
    async with (
        FakeXendRelocation(f"{base}.2", 8002),
        FakeXapi(f"{base}.3", 8002),  # xapi on an odd port: the fallback order finds it
    ):
        server = dnsmasq({f"{base}.2": "polar.lab.test"})
        # One scan first, so that lazily created, process-wide things
        # (the c-ares library) are counted in the baseline.
        await xendiscover.discover([f"{base}.0/29"], port=8002, nameservers=[server], timeout=0.3)
        await asyncio.sleep(0.05)  # the fakes close their side
        before = open_fds()
        rng = random.Random(7)
        finished = 0
        for i in range(300):
            task = asyncio.ensure_future(
                xendiscover.discover(
                    [f"{base}.0/29"],
                    port=8002,
                    nameservers=[server],
                    timeout=0.3,
                    resolve=i % 3 != 0,
                )
            )
            if i % 2:  # cancel half of them at a random point
                await asyncio.sleep(rng.uniform(0, 0.01))
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                hosts = await asyncio.wait_for(task, 10)
                finished += 1
                assert {h.address for h in hosts} == {f"{base}.2", f"{base}.3"}
        await asyncio.sleep(0.05)
        assert finished >= 150
        assert open_fds() == before
        assert asyncio.all_tasks() == {asyncio.current_task()}
