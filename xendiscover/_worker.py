"""A probe worker process: ``python -m xendiscover._worker`` (see ``_workers``).

Reads a :class:`~xendiscover._workers.WorkerJob` as JSON on stdin and writes,
on stdout, ``o ADDRESS PORT LATENCY ATTEMPTS`` per open port, ``s COUNTERS``
(JSON) every tenth of a second and ``e COUNTERS`` when its part is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
import sys

from xendiscover._probe import Outcome, Prober, ProbeResult, ScanStats, SocketConnector
from xendiscover._workers import WorkerJob

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds between two counter reports.
REPORT_EVERY = 0.1


def _die_with_parent() -> None:
    """Ask Linux to kill this process if the scanning process dies first."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


async def _sweep(job: WorkerJob) -> None:
    out = sys.stdout
    stats = ScanStats()
    connector = SocketConnector()
    prober = Prober(
        connector,
        timeout=job.timeout,
        retries=job.retries,
        window=job.window,
        rate=job.rate,
        stats=stats,
    )

    def emit(result: ProbeResult) -> None:
        if result.outcome is Outcome.OPEN:
            out.write(f"o {result.address} {result.port} {result.latency!r} {result.attempts}\n")
            out.flush()

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            out.write(f"s {json.dumps(stats.as_dict())}\n")
            out.flush()

    reporter = asyncio.ensure_future(report())
    items = ((family, address, port) for family, address in job.space for port in job.ports)
    try:
        await prober.run(items, emit)
    finally:
        reporter.cancel()
        connector.close()
    out.write(f"e {json.dumps(stats.as_dict())}\n")
    out.flush()


def main() -> None:
    """Run one job from stdin to the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scanning process decides
    _die_with_parent()
    asyncio.run(_sweep(WorkerJob.from_json(sys.stdin.read())))


if __name__ == "__main__":
    main()
