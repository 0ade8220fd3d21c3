"""The sweep: which ``(address, port)`` pairs accept a TCP connection.

:func:`sweep` is the one entry point. It runs the
:class:`~xendiscover._sweep._prober.Prober` over the plan's addresses in this
process, or, for large sweeps, over the first of ``plan.workers``
interleaved parts while probe processes (``_worker``, started through the
backend) sweep the others and stream their open ports back over the wire
codec (``_codec``, read by ``_parent``)::

    sweep(plan, backend, stats)
      ├── Prober.run(part 1)                      in this process
      └── run_worker(part k) ── backend.spawn_worker ── _worker.run_job(part k)
                    ▲                                         │
                    └──── Hello, OpenPort…, Progress…, Finished (_codec)

The decision rests on ``plan.workers`` alone; a fake backend runs its probe
"processes" as tasks over the same codec, so the multi-process path is
tested without a network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import TYPE_CHECKING

from xendiscover._backend import Backend
from xendiscover._sweep._codec import Job
from xendiscover._sweep._parent import WorkerError, run_worker
from xendiscover._sweep._prober import Item, Prober, ProbeResult, ScanStats
from xendiscover._sweep._sizing import auto_workers, default_window, raise_open_file_limit
from xendiscover._targets import TargetSpace

if TYPE_CHECKING:
    from xendiscover._plan import ScanPlan

__all__ = [
    "ProbeResult",
    "ScanStats",
    "WorkerError",
    "auto_workers",
    "default_window",
    "raise_open_file_limit",
    "sweep",
]


def _items(space: TargetSpace, ports: Sequence[int]) -> Iterator[Item]:
    return ((family, address, port) for family, address in space for port in ports)


async def sweep(
    plan: ScanPlan, backend: Backend, stats: ScanStats, *, keep: bool = False
) -> AsyncGenerator[ProbeResult, None]:
    """Sweep the plan's addresses and ports; yield each open port as it is found.

    With ``keep``, each open port comes with the connection the sweep opened
    (``ProbeResult.connection``, from probe processes too), for the
    fingerprint's first probe; the consumer owns it.

    Raises:
        WorkerError: A probe process failed (its part is not done).
    """
    stats.total = plan.total
    parts = plan.space.split(plan.workers)
    window = max(1, plan.window // len(parts))
    rate = plan.rate / len(parts) if plan.rate else None
    prober = Prober(
        backend,
        timeout=plan.timeout,
        retries=plan.retries,
        window=window,
        rate=rate,
        stats=stats,
        ports=len(plan.ports),
        keep=keep,
    )
    sources = [prober.run(_items(parts[0], plan.ports))]
    for part in parts[1:]:
        job = Job(part, plan.ports, plan.timeout, plan.retries, window, rate)
        sources.append(run_worker(backend, job, stats, keep=keep))
    results = sources[0] if len(sources) == 1 else _merge(sources)
    async with contextlib.aclosing(results):
        async for result in results:
            yield result


async def _merge(
    sources: list[AsyncGenerator[ProbeResult, None]],
) -> AsyncGenerator[ProbeResult, None]:
    """Yield from every source as items come; the first failure stops them all.

    Everything a source yielded before a failure is yielded before the
    failure is raised.
    """
    queue: asyncio.Queue[ProbeResult | None] = asyncio.Queue()

    async def pump(source: AsyncGenerator[ProbeResult, None]) -> None:
        async with contextlib.aclosing(source):
            async for item in source:
                queue.put_nowait(item)

    async def run_all() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for source in sources:
                    group.create_task(pump(source))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        finally:
            queue.put_nowait(None)

    runner = asyncio.ensure_future(run_all())
    try:
        while (item := await queue.get()) is not None:
            yield item
        await runner
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
