"""Fake I/O for the pipeline: connects and names without a network.

These implement the :class:`~xendiscover._probe.Connector` and
:class:`~xendiscover._resolve.NameResolver` interfaces that :func:`scan`
takes, so code built on xendiscover can be tested with no socket at all.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from xendiscover._probe import ConnectResult, Outcome, Started

__all__ = ["Behaviour", "FakeConnector", "FakeResolver"]

#: How a fake address answers one connect attempt.
#:
#: ``open`` accepts, ``closed`` resets, ``dark`` never answers (the attempt
#: times out), ``unreachable`` gets an ICMP error, ``emfile`` / ``enobufs`` /
#: ``eaddrnotavail`` are local resource errors.
Behaviour = Literal["open", "closed", "dark", "unreachable", "emfile", "enobufs", "eaddrnotavail"]

_RESULTS: dict[str, ConnectResult] = {
    "open": ConnectResult(Outcome.OPEN, 0.001, 0),
    "closed": ConnectResult(Outcome.CLOSED, 0.001, errno.ECONNREFUSED),
    "unreachable": ConnectResult(Outcome.UNREACHABLE, 0.001, errno.EHOSTUNREACH),
    "emfile": ConnectResult(Outcome.RESOURCE, 0.0, errno.EMFILE),
    "enobufs": ConnectResult(Outcome.RESOURCE, 0.0, errno.ENOBUFS),
    "eaddrnotavail": ConnectResult(Outcome.RESOURCE, 0.0, errno.EADDRNOTAVAIL),
}


class FakeConnector:
    """A scripted :class:`~xendiscover._probe.Connector`.

    Args:
        hosts: For each ``address`` or ``(address, port)``, how it answers:
            one :data:`Behaviour` for every attempt, or a sequence consumed
            one attempt at a time (the last entry repeats), e.g.
            ``["dark", "open"]`` for a host whose first SYN is lost.
        default: How every other address answers.
        pending: If true, answers come later through the event loop (as on
            a real network); if false, at once (as on loopback).
        capacity: The most connects that may be pending at once; beyond it
            a connect fails with ``EMFILE``, like a process at its file limit.

    Attributes:
        attempts: Every ``(address, port)`` tried, in order.
        sleeps: Every back-off the prober asked for, in seconds.
        timeouts: The deadline each attempt was given.
        max_in_flight: The most connects that were pending at once.
    """

    def __init__(
        self,
        hosts: Mapping[str | tuple[str, int], Behaviour | Sequence[Behaviour]] | None = None,
        *,
        default: Behaviour = "closed",
        pending: bool = False,
        capacity: int | None = None,
    ) -> None:
        self._hosts = dict(hosts or {})
        self._default: Behaviour = default
        self._pending = pending
        self._capacity = capacity
        self._seen: dict[tuple[str, int], int] = {}
        self._in_flight = 0
        self.attempts: list[tuple[str, int]] = []
        self.sleeps: list[float] = []
        self.timeouts: list[float] = []
        self.max_in_flight = 0

    def _behaviour(self, address: str, port: int) -> Behaviour:
        script = self._hosts.get((address, port), self._hosts.get(address, self._default))
        if isinstance(script, str):
            return script
        count = self._seen.get((address, port), 0)
        self._seen[(address, port)] = count + 1
        return script[min(count, len(script) - 1)]

    def connect(
        self, family: socket.AddressFamily, address: str, port: int, timeout: float
    ) -> Started:
        """Answer a connect as scripted; see ``Connector.connect``."""
        self.attempts.append((address, port))
        self.timeouts.append(timeout)
        if self._capacity is not None and self._in_flight >= self._capacity:
            return _RESULTS["emfile"]
        behaviour = self._behaviour(address, port)
        if behaviour == "dark":
            return self._later(ConnectResult(Outcome.TIMEOUT, timeout, errno.ETIMEDOUT))
        result = _RESULTS[behaviour]
        if self._pending and result.outcome is not Outcome.RESOURCE:
            return self._later(result)
        return result

    def _later(self, result: ConnectResult) -> asyncio.Future[ConnectResult]:
        # Virtual time: the answer (or the deadline) comes on the next turn.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ConnectResult] = loop.create_future()
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)

        def answer() -> None:
            if not future.done():
                future.set_result(result)

        def release(_: asyncio.Future[ConnectResult]) -> None:
            self._in_flight -= 1

        future.add_done_callback(release)
        loop.call_soon(answer)
        return future

    async def sleep(self, seconds: float) -> None:
        """Record a back-off without waiting for it."""
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


class FakeResolver:
    """A :class:`~xendiscover._resolve.NameResolver` answering from a table.

    Args:
        names: The PTR name of each address that has one.

    Attributes:
        lookups: Every address asked about, in order.
        closed: Whether :meth:`aclose` was called.
    """

    def __init__(self, names: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._names = dict(names)
        self.lookups: list[str] = []
        self.closed = False

    async def reverse(self, address: str) -> str | None:
        """The name in the table, or ``None``."""
        self.lookups.append(address)
        await asyncio.sleep(0)
        return self._names.get(address)

    async def aclose(self) -> None:
        """Mark the resolver closed."""
        self.closed = True
