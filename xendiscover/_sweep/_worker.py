"""A probe process: ``python -m xendiscover._sweep._worker PARENT_PID [FD]``.

Reads one :class:`~xendiscover._sweep._protocol.Job` line on stdin, sweeps it
with the prober the job builds (:meth:`Job.prober`, the scanning process's
own), and writes the messages of :mod:`~xendiscover._sweep._protocol` on
stdout: one ``open`` line per open port, ``progress`` every tenth of a
second, and ``finished`` (or ``failed``) at the end. Given a second argument,
the descriptor of a Unix socket, it keeps the connection of every open port
and sends it there (``SCM_RIGHTS``) before the port's line, so the
fingerprint's first probe runs on the connection the sweep opened.

The scanning process owns termination: a probe process follows the one
signal policy (:func:`xendiscover._signals.probe_process`), ignoring SIGINT,
exiting at once on SIGTERM, and dying with its parent. Output goes through a
non-blocking pipe transport, so a slow reader never stalls the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable

from xendiscover._backend import Backend, SocketBackend
from xendiscover._signals import exit_if_orphaned, probe_process
from xendiscover._sweep._prober import ScanStats
from xendiscover._sweep._protocol import (
    MAX_JOB,
    Failed,
    Job,
    OpenPort,
    Progress,
    WireError,
    decode_job,
    encode,
)

__all__ = ["REPORT_EVERY", "main", "run_encoded_job", "run_job"]

#: Seconds between two progress reports (wall-clock: a display cadence,
#: not network time, so it does not go through the backend's clock).
REPORT_EVERY = 0.1


async def run_job(
    job: Job,
    backend: Backend,
    write: Callable[[bytes], None],
    *,
    keep: bool = False,
    parent: int | None = None,
) -> None:
    """Sweep ``job`` through ``backend``, writing protocol lines with ``write``.

    With ``keep``, the connection of each open port is handed over
    (:meth:`~xendiscover._backend.Backend.hand_over`) before its ``open``
    line is written, so the scanning process finds it there when it reads
    the line. With ``parent``, the process exits once that is no longer its
    parent (checked at each progress report).
    """
    stats = ScanStats()

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            exit_if_orphaned(parent)  # where no PR_SET_PDEATHSIG did it already
            write(encode(Progress(stats)))

    reporter = asyncio.ensure_future(report())
    try:
        async with contextlib.aclosing(
            job.prober(backend, stats, keep=keep).run(job.items())
        ) as results:
            async for hit in results:
                if hit.connection is not None:
                    backend.hand_over(hit.connection, hit.address, hit.port)
                write(encode(OpenPort(hit.address, hit.port, hit.latency, hit.attempts)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    write(encode(Progress(stats, final=True)))


async def run_encoded_job(
    job: bytes,
    backend: Backend,
    write: Callable[[bytes], None],
    *,
    keep: bool = False,
    parent: int | None = None,
) -> None:
    """Decode ``job`` and run it; a job that does not decode is answered ``failed``."""
    try:
        decoded = decode_job(job)
    except WireError as exc:
        write(encode(Failed.of(f"bad job: {exc}")))
        return
    await run_job(decoded, backend, write, keep=keep, parent=parent)


class _Pipe(asyncio.Protocol):
    """Stdout as a non-blocking pipe; ``gone`` completes once it has closed."""

    def __init__(self) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


async def _main(job: bytes, channel: socket.socket | None, parent: int | None) -> None:
    loop = asyncio.get_running_loop()
    transport, pipe = await loop.connect_write_pipe(_Pipe, sys.stdout.buffer)
    backend = SocketBackend(channel)
    try:
        keep = channel is not None
        await run_encoded_job(job, backend, transport.write, keep=keep, parent=parent)
    finally:
        backend.close()
        transport.close()  # flushes what is buffered, then closes
        await pipe.gone


def main(argv: list[str] | None = None) -> None:
    """Run one job from stdin to the end (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    parent = int(args[0]) if args and args[0].isdigit() else None
    probe_process(parent)
    # The second argument, if any: the descriptor of the Unix socket over
    # which open connections go to the scanning process.
    channel = None
    if len(args) > 1 and args[1].isdigit():
        channel = socket.socket(fileno=int(args[1]))
        channel.setblocking(False)
    asyncio.run(_main(sys.stdin.buffer.readline(MAX_JOB + 1), channel, parent))


if __name__ == "__main__":
    main()
