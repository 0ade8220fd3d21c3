"""The bounded hand-off between the sweep and the fingerprints.

The sweep finds open ports far faster than they can be fingerprinted (a
fingerprint may wait seconds for a silent peer). A range behind a SYN proxy
or a tarpit farm, where every port accepts and nothing answers, once made a
task per open port at once: hundreds of thousands of them, and hours of
silent waits. Here:

- **The queue has a fixed size** (:data:`HANDOFF_SIZE`): when it is full,
  the sweep waits, and memory stays flat whatever the range.
- **A fixed pool of workers** (:data:`WORKERS`) fingerprints and names the
  ports, one at a time each.
- **An address that has not answered yet is asked on a few ports at
  once** (:data:`SILENT_PORTS`), its other open ports kept aside. As soon as
  one of its ports answers (anything: a verdict, a close, a reset, a byte),
  the rest go ahead. If every port the sweep probed accepted, and that many
  of them stayed silent, the address is reported once, as "accepts every
  port; silent", and its other open ports are not fingerprinted port by
  port: every deadline would be spent on a machine that only ever accepts.

What the pool is doing is counted in the sweep's :class:`ScanStats`
(``fingerprinting``, ``waiting``, ``silent_hosts``), so a display can say
what the job is waiting for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from xendiscover._model import Finding
from xendiscover._sweep import ProbeResult, ScanStats

__all__ = ["HANDOFF_SIZE", "SILENT_EVIDENCE", "SILENT_PORTS", "WORKERS", "Finished", "Handoff"]

_log = logging.getLogger("xendiscover")

#: The most open ports waiting between the sweep and the fingerprints.
HANDOFF_SIZE = 1024
#: How many open ports are fingerprinted and named at once. A silent peer
#: costs a worker one deadline (2 s at the defaults), so this many workers
#: wait out a /20 of tarpits, two ports each, in about half a minute.
WORKERS = 512
#: How many ports of an address that has not answered are asked at once,
#: and how many silent ones make it "accepts every port; silent".
SILENT_PORTS = 2
#: The evidence of an address reported once for accepting every port silently.
SILENT_EVIDENCE = "accepts every port; silent"

#: What finishing an open port gives: its finding, and whether the peer
#: stayed silent (accepted, and sent nothing before the deadline).
Finished = tuple[Finding, bool]


@dataclass(slots=True)
class _Address:
    """What the hand-off knows about one address whose ports are being finished."""

    running: int = 0
    silent: int = 0
    #: Its open ports handed over so far.
    accepted: int = 0
    #: Silent findings not reported yet (the address may still answer).
    held: list[Finding] = field(default_factory=list)
    #: Open ports kept aside until the address answers, or is found silent.
    parked: list[ProbeResult] = field(default_factory=list)


class Handoff:
    """A fixed-size queue from the sweep, a pool of workers, one report per silent address.

    Args:
        finish: Fingerprints and names one open port.
        emit: Called with each finding, in the order they are finished.
        stats: The counters to keep up to date.
        ports: How many ports the sweep probes per address: an address is
            folded only once every one of them accepted.
        size: The queue's size (:data:`HANDOFF_SIZE`).
        workers: The pool's size (:data:`WORKERS`).
    """

    def __init__(
        self,
        finish: Callable[[ProbeResult], Awaitable[Finished]],
        emit: Callable[[Finding], None],
        stats: ScanStats,
        *,
        ports: int,
        size: int = HANDOFF_SIZE,
        workers: int = WORKERS,
    ) -> None:
        self._finish = finish
        self._emit = emit
        self._stats = stats
        # Unbounded itself: the room semaphore bounds what the sweep puts in;
        # ports set aside and let go again re-enter without waiting.
        self._queue: asyncio.Queue[tuple[ProbeResult, bool]] = asyncio.Queue()
        self._room = asyncio.Semaphore(size)
        self._size = workers
        self._ports = ports
        self._workers: list[asyncio.Task[None]] = []
        self._addresses: dict[str, _Address] = {}  # not decided yet
        self._answered: set[str] = set()
        self._silent: set[str] = set()

    async def put(self, hit: ProbeResult) -> None:
        """Hand over an open port; wait while the queue is full."""
        if not self._workers:
            self._workers = [asyncio.ensure_future(self._work()) for _ in range(self._size)]
        await self._room.acquire()
        self._stats.waiting += 1
        self._queue.put_nowait((hit, True))

    async def drain(self) -> None:
        """Wait until every port handed over is finished; report what was held back.

        Every port handed over is reported: one whose finishing raised
        anything at all is reported with the exception as its evidence
        (``finishing failed (LookupError)``), and its worker carries on.
        """
        await self._queue.join()
        for address in list(self._addresses):
            state = self._addresses.pop(address)
            for finding in state.held:
                self._emit(finding)

    async def close(self) -> None:
        """Stop the workers (whatever they were doing); close the connections kept."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._queue.empty():
            _drop(self._queue.get_nowait()[0])
        for state in self._addresses.values():
            for parked in state.parked:
                _drop(parked)
            state.parked.clear()

    async def _work(self) -> None:
        queue = self._queue
        while True:
            hit, from_sweep = await queue.get()
            if from_sweep:
                self._room.release()
                self._stats.waiting -= 1
            try:
                await self._take(hit, from_sweep)
            except Exception as exc:  # a bug must cost neither the port nor a worker
                self._emit(_failed(hit, exc))
            finally:
                queue.task_done()

    async def _take(self, hit: ProbeResult, from_sweep: bool) -> None:
        """Finish one port, or set it aside, or drop it (its address is silent)."""
        address = hit.address
        if address in self._silent:
            _drop(hit)  # reported once already
            return
        state = None
        if address not in self._answered:
            state = self._addresses.setdefault(address, _Address())
            if from_sweep:
                state.accepted += 1
            if state.running >= SILENT_PORTS:
                state.parked.append(hit)
                return
            state.running += 1
        self._stats.fingerprinting += 1
        try:
            finding, silent = await self._finish(hit)
        finally:
            self._stats.fingerprinting -= 1
            if state is not None:
                state.running -= 1
        if address in self._silent:  # folded meanwhile: only an answer is news
            if not silent:
                self._emit(finding)
        elif state is None or address in self._answered:
            self._emit(finding)
        elif silent:
            self._silent_port(address, state, finding)
        else:
            self._answer(address, state, finding)

    def _answer(self, address: str, state: _Address, finding: Finding) -> None:
        """The address answered: report it and what was held, let its other ports go."""
        self._addresses.pop(address, None)
        self._answered.add(address)
        for held in state.held:
            self._emit(held)
        self._emit(finding)
        for parked in state.parked:
            self._queue.put_nowait((parked, False))

    def _silent_port(self, address: str, state: _Address, finding: Finding) -> None:
        """One more silent port: fold the address once enough are, else try the next port."""
        state.silent += 1
        state.held.append(finding)
        if state.silent < SILENT_PORTS or state.accepted < self._ports:
            # Not folded. While a running port may still complete the fold,
            # ask no other; once the fold is out of reach, up to SILENT_PORTS.
            more = SILENT_PORTS - state.running if state.silent >= SILENT_PORTS else 0
            for _ in range(min(len(state.parked), max(more, 0 if state.running else 1))):
                self._queue.put_nowait((state.parked.pop(0), False))
            return
        self._addresses.pop(address, None)
        self._silent.add(address)
        self._stats.silent_hosts += 1
        for parked in state.parked:
            _drop(parked)
        self._emit(dataclasses.replace(state.held[0], evidence=SILENT_EVIDENCE))


def _failed(hit: ProbeResult, exc: Exception) -> Finding:
    """The finding of a port whose finishing raised: the exception is its evidence."""
    _log.warning("finishing %s:%d failed: %r", hit.address, hit.port, exc)
    _drop(hit)
    return Finding(
        address=hit.address,
        port=hit.port,
        evidence=f"finishing failed ({type(exc).__name__})",
        latency_ms=hit.latency * 1000.0,
    )


def _drop(hit: ProbeResult) -> None:
    """Forget an open port that will not be fingerprinted: close its kept connection."""
    if hit.connection is not None:
        hit.connection.close()
