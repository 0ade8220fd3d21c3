"""The sweep: which ``(address, port)`` pairs accept a TCP connection.

:func:`sweep` is the one entry point. It runs the
:class:`~xendiscover._sweep._prober.Prober` over a :class:`Job` in this
process, or, for large sweeps, over the first of ``workers`` interleaved
parts while probe processes (``_worker``, started through the backend)
sweep the others and stream their open ports back over the protocol
(``_protocol``, read by ``_parent``)::

    sweep(job, backend, stats, workers=n)
      ├── job.prober().run(part 1)                 in this process
      └── run_worker(part k) ── backend.spawn_worker ── _worker.run_job(part k)
                    ▲                                         │
                    └──── open…, progress…, finished (_protocol)

Both sides build their prober from the job (:meth:`Job.prober`). A fake
backend runs its probe "processes" as tasks over the same protocol, so the
multi-process path is tested without a network.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from xendiscover._backend import Backend
from xendiscover._sweep._parent import WorkerError, run_worker
from xendiscover._sweep._prober import ProbeResult, ScanStats
from xendiscover._sweep._protocol import Job
from xendiscover._sweep._sizing import auto_workers, default_window, raise_open_file_limit

__all__ = [
    "Job",
    "ProbeResult",
    "ScanStats",
    "WorkerError",
    "auto_workers",
    "default_window",
    "raise_open_file_limit",
    "sweep",
]


async def sweep(
    job: Job, backend: Backend, stats: ScanStats, *, workers: int = 1, keep: bool = False
) -> AsyncGenerator[ProbeResult, None]:
    """Sweep the job's addresses and ports; yield each open port as it is found.

    With ``workers`` above 1, the job is split into that many interleaved
    parts, all but the first swept by probe processes.

    With ``keep``, each open port comes with the connection the sweep opened
    (``ProbeResult.connection``, from probe processes too), for the
    fingerprint's first probe; the consumer owns it.

    Raises:
        WorkerError: A probe process failed (its part is not done).
    """
    stats.total = job.total
    first, *others = job.split(workers)
    sources = [first.prober(backend, stats, keep=keep).run(first.items())]
    sources.extend(run_worker(backend, part, stats, keep=keep) for part in others)
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
