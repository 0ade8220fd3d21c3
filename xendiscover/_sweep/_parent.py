"""The scanning process's side of a probe process: start it, read it, merge it.

Everything a probe process writes is decoded by the one wire codec
(:mod:`~xendiscover._sweep._codec`). Whatever goes wrong on the other side
(a bad message, a line cut short, an exit before ``Finished``, an explicit
``Failed``) ends the scan with a :class:`WorkerError`: a part of the sweep
is never silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from xendiscover._backend import Backend, Outcome, WorkerProcess
from xendiscover._errors import XenDiscoverError
from xendiscover._sweep._codec import (
    Counters,
    Failed,
    Finished,
    Job,
    Message,
    MessageReader,
    OpenPort,
    Progress,
    WireError,
    encode_job,
)
from xendiscover._sweep._prober import ProbeResult, ScanStats

__all__ = ["WorkerError", "run_worker"]


class WorkerError(XenDiscoverError):
    """A probe process failed, so its part of the sweep is not done."""


class _CounterMerge:
    """Adds what a probe process counted since its last report to the scan's stats."""

    def __init__(self, stats: ScanStats) -> None:
        self._stats = stats
        self._before = Counters(0, 0, 0, 0, 0, {})

    def take(self, now: Counters) -> None:
        stats, before = self._stats, self._before
        stats.done += now.done - before.done
        stats.open += now.open - before.open
        stats.attempts += now.attempts - before.attempts
        stats.retries += now.retries - before.retries
        stats.backoffs += now.backoffs - before.backoffs
        for name, count in now.outcomes.items():
            outcome = Outcome(name)
            delta = count - before.outcomes.get(name, 0)
            stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + delta
        self._before = now


def _take(message: Message, merge: _CounterMerge, proc: WorkerProcess | None) -> ProbeResult | None:
    """Act on one message: an open port to yield, counters to add, or a failure.

    With ``proc``, an open port comes with the connection it handed over.
    """
    if isinstance(message, OpenPort):
        kept = proc.connection(message.address, message.port) if proc is not None else None
        return ProbeResult(
            message.address,
            message.port,
            Outcome.OPEN,
            message.latency,
            message.attempts,
            connection=kept,
        )
    if isinstance(message, Progress | Finished):
        merge.take(message.counters)
    elif isinstance(message, Failed):
        raise WorkerError(f"a probe process failed: {message.reason}")
    return None


async def run_worker(
    backend: Backend, job: Job, stats: ScanStats, *, keep: bool = False
) -> AsyncGenerator[ProbeResult, None]:
    """Sweep ``job`` in a probe process, yielding its open ports as they come.

    Its counters are added into ``stats`` as they arrive. Closing the
    iterator (or cancelling its consumer) kills the process. With ``keep``,
    each open port comes with the connection the process opened (or
    ``None`` where it could not be handed over).

    Raises:
        WorkerError: The process could not start, sent something that is not
            the wire format, or ended without finishing its part.
    """
    try:
        proc = await backend.spawn_worker(encode_job(job), connections=keep)
    except XenDiscoverError as exc:
        raise WorkerError(str(exc)) from None
    reader = MessageReader()
    merge = _CounterMerge(stats)
    ended = False
    try:
        while chunk := await proc.read():
            for message in reader.feed(chunk):
                if (found := _take(message, merge, proc if keep else None)) is not None:
                    yield found
        code = await proc.wait()
        ended = True
        if code != 0:
            raise WorkerError(f"a probe process ended early (exit status {code})")
        reader.end()  # a cut line, or no Finished: a WireError
    except WireError as exc:
        raise WorkerError(f"a probe process sent a bad message: {exc}") from None
    finally:
        if not ended:  # failed, or closed early: stop it, and reap it
            proc.kill()
            await proc.wait()
