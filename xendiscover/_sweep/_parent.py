"""The scanning process's side of a probe process: start it, read it, merge it.

Everything a probe process writes is read by the one protocol
(:mod:`~xendiscover._sweep._protocol`). Whatever goes wrong on the other side
(a bad line, a line cut short, an exit before its ``finished`` line, an
explicit ``failed``) ends the scan with a :class:`WorkerError`: a part of the
sweep is never silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from xendiscover._backend import Backend, Outcome
from xendiscover._errors import XenDiscoverError
from xendiscover._sweep._prober import ProbeResult, ScanStats
from xendiscover._sweep._protocol import (
    Failed,
    Job,
    Message,
    OpenPort,
    Progress,
    Reader,
    WireError,
    encode_job,
)

__all__ = ["WorkerError", "run_worker"]


class WorkerError(XenDiscoverError):
    """A probe process failed, so its part of the sweep is not done."""


class _Merge:
    """Adds what a probe process counted since its last report to the scan's stats."""

    def __init__(self, stats: ScanStats) -> None:
        self._stats = stats
        self._before = ScanStats()

    def take(self, message: Message) -> ProbeResult | None:
        """Act on one message: an open port to yield, counters to add, or a failure."""
        if isinstance(message, OpenPort):
            return ProbeResult(
                message.address, message.port, Outcome.OPEN, message.latency, message.attempts
            )
        if isinstance(message, Failed):
            raise WorkerError(f"a probe process failed: {message.reason}")
        if isinstance(message, Progress):
            self._stats.add_growth(message.stats, self._before)
            self._before = message.stats
        return None


async def run_worker(
    backend: Backend, job: Job, stats: ScanStats
) -> AsyncGenerator[ProbeResult, None]:
    """Sweep ``job`` in a probe process, yielding its open ports as they come.

    Its counters are added into ``stats`` as they arrive. Closing the
    iterator (or cancelling its consumer) kills the process.

    Raises:
        WorkerError: The process could not start, wrote something that is not
            the protocol, or ended without finishing its part.
    """
    try:
        proc = await backend.spawn_worker(encode_job(job))
    except XenDiscoverError as exc:
        raise WorkerError(str(exc)) from None
    reader = Reader()
    merge = _Merge(stats)
    ended = False
    try:
        while chunk := await proc.read():
            for message in reader.feed(chunk):
                if (found := merge.take(message)) is not None:
                    yield found
        code = await proc.wait()
        ended = True
        if code != 0:
            raise WorkerError(f"a probe process ended early (exit status {code})")
        reader.end()  # a cut line, or no finished line: a WireError
    except WireError as exc:
        raise WorkerError(f"a probe process sent a bad message: {exc}") from None
    finally:
        if not ended:  # failed, or closed early: stop it, and reap it
            proc.kill()
            await proc.wait()
