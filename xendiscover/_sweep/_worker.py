"""A probe process: ``python -m xendiscover._sweep._worker PARENT_PID``.

Reads one encoded :class:`~xendiscover._sweep._codec.Job` on stdin, sweeps it
with the ordinary :class:`~xendiscover._sweep._prober.Prober`, and writes the
wire messages of :mod:`~xendiscover._sweep._codec` on stdout: ``Hello``, one
``OpenPort`` per open port, ``Progress`` every tenth of a second, and
``Finished`` (or ``Failed``) at the end. Given a second argument, the
descriptor of a Unix socket, it keeps the connection of every open port and
sends it there (``SCM_RIGHTS``) before the port's line, so the fingerprint's
first probe runs on the connection the sweep opened.

The scanning process owns termination. A probe process ignores SIGINT (it
runs in its own process group anyway), exits at once and silently on
SIGTERM, and dies with its parent: Linux sends it SIGTERM when the parent
goes, and a parent that was gone before that was asked for is caught by
comparing ``getppid()`` with the PID it was given. Output goes through a
non-blocking pipe transport, so a slow reader never stalls the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable

from xendiscover import _platform
from xendiscover._backend import Backend, SocketBackend
from xendiscover._sweep._codec import (
    WIRE_VERSION,
    Counters,
    Failed,
    Finished,
    Hello,
    Job,
    OpenPort,
    Progress,
    WireError,
    decode_job,
    encode,
)
from xendiscover._sweep._prober import Prober, ScanStats

__all__ = ["REPORT_EVERY", "main", "run_encoded_job", "run_job"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds between two progress reports (wall-clock: a display cadence,
#: not network time, so it does not go through the backend's clock).
REPORT_EVERY = 0.1

#: Exit status of a probe process told to stop by SIGTERM.
_TERMINATED = 128 + signal.SIGTERM


def counters_of(stats: ScanStats) -> Counters:
    """The wire form of a sweep's counters."""
    return Counters(
        done=stats.done,
        open=stats.open,
        attempts=stats.attempts,
        retries=stats.retries,
        backoffs=stats.backoffs,
        outcomes={o.value: n for o, n in stats.outcomes.items()},
    )


async def run_job(
    job: Job,
    backend: Backend,
    write: Callable[[bytes], None],
    *,
    keep: bool = False,
    parent: int | None = None,
) -> None:
    """Sweep ``job`` through ``backend``, writing wire messages with ``write``.

    With ``keep``, the connection of each open port is handed over
    (:meth:`~xendiscover._backend.Backend.hand_over`) before its ``OpenPort``
    line is written, so the scanning process finds it there when it reads
    the line. With ``parent``, the process exits once that is no longer its
    parent (checked at each progress report).
    """
    stats = ScanStats()
    prober = Prober(
        backend,
        timeout=job.timeout,
        retries=job.retries,
        window=job.window,
        rate=job.rate,
        stats=stats,
        ports=len(job.ports),
        keep=keep,
    )

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            _exit_if_orphaned(parent)  # where no PR_SET_PDEATHSIG did it already
            write(encode(Progress(counters_of(stats))))

    write(encode(Hello(WIRE_VERSION)))
    items = ((family, address, port) for family, address in job.space for port in job.ports)
    reporter = asyncio.ensure_future(report())
    try:
        async with contextlib.aclosing(prober.run(items)) as results:
            async for hit in results:
                if hit.connection is not None:
                    backend.hand_over(hit.connection, hit.address, hit.port)
                write(encode(OpenPort(hit.address, hit.port, hit.latency, hit.attempts)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    write(encode(Finished(counters_of(stats))))


async def run_encoded_job(
    job: bytes,
    backend: Backend,
    write: Callable[[bytes], None],
    *,
    keep: bool = False,
    parent: int | None = None,
) -> None:
    """Decode ``job`` and run it; a job that does not decode is answered ``Failed``."""
    try:
        decoded = decode_job(job)
    except WireError as exc:
        write(encode(Hello(WIRE_VERSION)))
        write(encode(Failed.sanitized(f"bad job: {exc}")))
        return
    await run_job(decoded, backend, write, keep=keep, parent=parent)


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the parent dies; exit now if it already has.

    Without ``PR_SET_PDEATHSIG`` (see :mod:`xendiscover._platform`), the
    progress reports notice a parent that is gone (:func:`_orphaned`).
    """
    if _platform.FEATURES.pdeathsig:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    _exit_if_orphaned(parent)


def _exit_if_orphaned(parent: int | None) -> None:
    """Exit at once, silently, if ``parent`` is no longer this process's parent."""
    if parent is not None and os.getppid() != parent:
        os._exit(_TERMINATED)


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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(_TERMINATED))
    parent = int(args[0]) if args and args[0].isdigit() else None
    if parent is not None:
        _die_with_parent(parent)
    # The second argument, if any: the descriptor of the Unix socket over
    # which open connections go to the scanning process.
    channel = None
    if len(args) > 1 and args[1].isdigit():
        channel = socket.socket(fileno=int(args[1]))
        channel.setblocking(False)
    asyncio.run(_main(sys.stdin.buffer.read(), channel, parent))


if __name__ == "__main__":
    main()
