"""The fingerprint connect is retried after a lost SYN or a local resource error."""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import Callable

import pytest

from xendiscover import ConnectFailed, Connection, Outcome, SocketBackend, Stream
from xendiscover._fingerprint import MAX_DEADLINES_PER_PORT, fingerprint_port
from xendiscover._fingerprint._driver import CONNECT_ATTEMPTS
from xendiscover.testing import (
    FakeHttpServer,
    FakeResetter,
    FakeServer,
    FakeStreamer,
    FakeTarpit,
    FakeXendRelocation,
)


class FlakyBackend(SocketBackend):
    """A real backend whose stream connects fail as listed first."""

    def __init__(self, failures: list[BaseException]) -> None:
        super().__init__()
        self.failures = failures
        self.calls: list[str] = []

    async def open_stream(
        self, address: str, port: int, *, timeout: float, connection: Connection | None = None
    ) -> Stream:
        self.calls.append(address)
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, TimeoutError):
            await asyncio.sleep(timeout)  # a SYN that gets no answer
        if failure is not None:
            raise failure
        return await super().open_stream(address, port, timeout=timeout, connection=connection)


def emfile() -> ConnectFailed:
    return ConnectFailed(Outcome.RESOURCE, errno.EMFILE, "too many open files")


@pytest.mark.parametrize(
    "failures",
    [
        [TimeoutError()],
        [TimeoutError()] * (CONNECT_ATTEMPTS - 1),
        [emfile()] * 3,
        [ConnectFailed(Outcome.RESOURCE, errno.EADDRNOTAVAIL), TimeoutError()],
    ],
)
async def test_a_lost_connect_is_retried(failures: list[BaseException]) -> None:
    host = f"127.{random.randrange(100, 250)}.9.{random.randrange(2, 250)}"
    backend = FlakyBackend(list(failures))
    async with FakeXendRelocation(host, 0) as fake:
        found = await fingerprint_port(
            fake.host, fake.port, timeout=0.3, plan_port=8002, backend=backend
        )
    assert (found.service, found.verdict) == ("xend-relocation", "confirmed")
    assert len(backend.calls) == len(failures) + 1


async def test_connect_attempts_are_bounded() -> None:
    backend = FlakyBackend([TimeoutError()] * 10)
    found = await fingerprint_port("127.0.0.1", 8002, timeout=0.1, plan_port=8002, backend=backend)
    assert found.verdict == "unknown"
    assert "connect timed out" in found.evidence
    assert len(backend.calls) == CONNECT_ATTEMPTS


@pytest.mark.parametrize(
    "make",
    [
        lambda host: FakeHttpServer(host, 0),  # answers a ClientHello with plain HTTP
        lambda host: FakeResetter(host, 0),  # resets during the handshake
        lambda host: FakeStreamer(host, 0),  # streams garbage instead of a ServerHello
        lambda host: FakeTarpit(host, 0),  # accepts and never answers the ClientHello
    ],
    ids=["plain-http", "reset", "streamer", "tarpit"],
)
async def test_a_broken_tls_handshake_costs_one_deadline_and_gives_a_verdict(
    make: Callable[[str], FakeServer],
) -> None:
    host = f"127.{random.randrange(100, 250)}.10.{random.randrange(2, 250)}"
    deadline = 0.5
    async with make(host) as fake:
        started = time.monotonic()
        found = await fingerprint_port(fake.host, fake.port, timeout=deadline, plan_port=443)
        elapsed = time.monotonic() - started
    assert found.verdict in {"unknown", "not-xen"}
    assert found.service is None
    # 443 runs the TLS probes (XML-RPC, then JSON-RPC): each costs at most
    # one deadline, and a port at most MAX_DEADLINES_PER_PORT of them.
    assert elapsed < (MAX_DEADLINES_PER_PORT + 0.5) * deadline
