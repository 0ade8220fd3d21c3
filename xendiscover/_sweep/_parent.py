"""The scanning process's side of a probe process: start it, read it, merge it.

Everything a probe process writes is read by the one protocol
(:mod:`~xendiscover._sweep._protocol`). Whatever goes wrong on the other side
(a bad line, a line cut short, an exit before its ``finished`` line, an
explicit ``failed``) ends the scan with a :class:`WorkerError`: a part of the
sweep is never silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from xendiscover._backend import Backend, Outcome, WorkerProcess
from xendiscover._errors import XenDiscoverError
from xendiscover._sweep._prober import ProbeResult, ScanStats
from xendiscover._sweep._protocol import (
    Failed,
    Job,
    Message,
    OpenPort,
    Reader,
    WireError,
    encode_job,
)

__all__ = ["WorkerError", "run_worker"]


class WorkerError(XenDiscoverError):
    """A probe process failed, so its part of the sweep is not done."""


class _Merge:
    """Acts on a probe process's messages; adds what it counted to the scan's stats.

    With ``proc``, an open port comes with the connection it handed over.
    """

    def __init__(self, stats: ScanStats, proc: WorkerProcess | None) -> None:
        self._stats = stats
        self._proc = proc
        self._before = ScanStats()

    def take(self, message: Message) -> ProbeResult | None:
        """Act on one message: an open port to yield, counters to add, or a failure."""
        if isinstance(message, OpenPort):
            proc = self._proc
            kept = proc.connection(message.address, message.port) if proc is not None else None
            return ProbeResult(
                message.address,
                message.port,
                Outcome.OPEN,
                message.latency,
                message.attempts,
                connection=kept,
            )
        if isinstance(message, Failed):
            raise WorkerError(f"a probe process failed: {message.reason}")
        self._stats.add_growth(message.stats, self._before)
        self._before = message.stats
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
        WorkerError: The process could not start, wrote something that is not
            the protocol, or ended without finishing its part.
    """
    try:
        proc = await backend.spawn_worker(encode_job(job), connections=keep)
    except XenDiscoverError as exc:
        raise WorkerError(str(exc)) from None
    reader = Reader()
    merge = _Merge(stats, proc if keep else None)
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
