"""Drive SocketBackend connects to dropped addresses; print what happened as JSON.

Run by ``test_limits.py`` inside its namespace, where SYNs to most of
127.99.0.0/23 on port 8002 are dropped: every connect there stays pending
until its deadline. Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket

from xendiscover._backend import ConnectResult, SocketBackend

DROPPED = "127.99.0.{}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def main() -> dict[str, object]:
    backend = SocketBackend()
    before = open_fds()
    order: list[str] = []
    settled: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()

    def settle(name: str, _: object) -> None:
        order.append(name)
        settled[name] = round(loop.time() - start, 3)

    # Longest first: the one timer must be moved earlier for each later,
    # shorter deadline, and every connect must settle by its own.
    deadlines = {"long": 0.9, "middle": 0.5, "short": 0.2}
    futures: dict[str, asyncio.Future[ConnectResult]] = {}
    for index, (name, deadline) in enumerate(deadlines.items()):
        started = backend.connect(socket.AF_INET, DROPPED.format(50 + index), 8002, deadline)
        assert isinstance(started, asyncio.Future), started
        started.add_done_callback(functools.partial(settle, name))
        futures[name] = started
    # One cancelled by its caller: its socket closes at once.
    cancelled = backend.connect(socket.AF_INET, DROPPED.format(60), 8002, 5.0)
    assert isinstance(cancelled, asyncio.Future)
    during = open_fds()
    cancelled.cancel()
    await asyncio.sleep(0)
    after_cancel = open_fds()
    results = {name: (await f).outcome.value for name, f in futures.items()}
    latencies = {name: (await f).latency for name, f in futures.items()}
    # One left pending when the backend closes: closed with it, nothing leaks.
    left = backend.connect(socket.AF_INET, DROPPED.format(61), 8002, 5.0)
    backend.close()
    await asyncio.sleep(0)
    return {
        "order": order,
        "outcomes": results,
        "latencies": latencies,
        "settled": settled,
        "fds": [before, during, after_cancel, open_fds()],
        "left_cancelled": isinstance(left, asyncio.Future) and left.cancelled(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
