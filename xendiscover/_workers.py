"""Probe workers: one process per core for large sweeps.

A connect sweep is bound by system calls, and one Python process keeps one
core busy. For large sweeps the target space is split into interleaved parts
(the same arithmetic as ``--shard``): the scanning process probes the first
part itself and starts one ``python -m xendiscover._worker`` per other part.
A worker runs the ordinary :class:`~xendiscover._probe.Prober` over its part
and writes one line per open port and, every tenth of a second, its counters;
the scanning process turns those lines back into results, so fingerprints,
names and output stay in one place.

Workers ignore SIGINT (Ctrl-C reaches the whole process group; the scanning
process decides), die with their parent, and are killed when the scan ends
or is cancelled. A worker that fails makes the scan fail loudly: its
addresses are never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xendiscover._errors import XenDiscoverError
from xendiscover._probe import Outcome, ProbeResult, ScanStats
from xendiscover._targets import TargetSpace

__all__ = ["WORKER_THRESHOLD", "WorkerJob", "auto_workers", "run_worker"]

#: Sweeps of fewer probes than this stay in one process: starting a worker
#: costs about 0.1 s, which a smaller sweep would not win back.
WORKER_THRESHOLD = 32_768

#: The most probe processes a scan starts, whatever the core count.
MAX_WORKERS = 8


def auto_workers(total: int) -> int:
    """How many probe processes suit a sweep of ``total`` probes on this machine."""
    if total < WORKER_THRESHOLD:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@dataclass(frozen=True)
class WorkerJob:
    """What one worker process sweeps, and how.

    Attributes:
        space: Its part of the target space.
        ports: The ports to try on each address.
        timeout: Seconds a connect attempt may wait (the ceiling).
        retries: Extra attempts after a timeout.
        window: The most connects in flight in this worker.
        rate: This worker's share of the connection-rate cap, or ``None``.
    """

    space: TargetSpace
    ports: tuple[int, ...]
    timeout: float
    retries: int
    window: int
    rate: float | None

    def to_json(self) -> str:
        """The job as one JSON document (the worker reads it on stdin)."""
        return json.dumps(
            {
                "intervals": [
                    [v, [list(span) for span in spans]] for v, spans in self.space.intervals
                ],
                "shard": list(self.space.shard),
                "ports": list(self.ports),
                "timeout": self.timeout,
                "retries": self.retries,
                "window": self.window,
                "rate": self.rate,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WorkerJob:
        """Read a job written by :meth:`to_json`."""
        raw = json.loads(text)
        intervals = tuple(
            (int(v), tuple((int(a), int(b)) for a, b in spans)) for v, spans in raw["intervals"]
        )
        index, count = raw["shard"]
        return cls(
            space=TargetSpace(intervals, shard=(int(index), int(count))),
            ports=tuple(int(p) for p in raw["ports"]),
            timeout=float(raw["timeout"]),
            retries=int(raw["retries"]),
            window=int(raw["window"]),
            rate=None if raw["rate"] is None else float(raw["rate"]),
        )


#: The counters a worker reports, added into the scan's own ScanStats.
_COUNTERS = ("done", "open", "attempts", "retries", "backoffs")


def _merge(stats: ScanStats, now: dict[str, Any], before: dict[str, Any]) -> None:
    """Add what a worker counted since its last report (``as_dict`` form) to ``stats``."""
    for name in _COUNTERS:
        setattr(stats, name, getattr(stats, name) + now[name] - before.get(name, 0))
    earlier = before.get("outcomes", {})
    for value, count in now["outcomes"].items():
        outcome = Outcome(value)
        stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + count - earlier.get(value, 0)


async def run_worker(
    job: WorkerJob, on_result: Callable[[ProbeResult], None], stats: ScanStats
) -> None:
    """Run one worker process over ``job``; feed its open ports to ``on_result``.

    Its counters are added into ``stats`` as they arrive. Cancelling this
    coroutine kills the worker.

    Raises:
        XenDiscoverError: The worker could not start, or ended without
            finishing its part.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xendiscover._worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    reported: dict[str, Any] = {}
    finished = False
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        with contextlib.suppress(ConnectionError):  # a worker that died: told below
            proc.stdin.write(job.to_json().encode())
            await proc.stdin.drain()
            proc.stdin.close()
        async for line in proc.stdout:
            kind, _, rest = line.decode().rstrip("\n").partition(" ")
            if kind == "o":
                address, port, latency, attempts = rest.split(" ")
                on_result(
                    ProbeResult(address, int(port), Outcome.OPEN, float(latency), int(attempts))
                )
            elif kind in ("s", "e"):
                counters = json.loads(rest)
                _merge(stats, counters, reported)
                reported = counters
                finished = kind == "e"
        code = await proc.wait()
        if code != 0 or not finished:
            raise XenDiscoverError(f"a probe worker ended early (exit status {code})")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
