"""Probe processes: the same answer as one process, loud failures, nothing left behind."""

import asyncio
import contextlib
import os
import subprocess
import sys

import pytest
from support import Listen, hosts_of, open_ports

import xendiscover
from xendiscover import Connection, TargetSpace, WorkerError, WorkerProcess
from xendiscover._sweep._protocol import Failed, OpenPort, encode
from xendiscover._sweep._sizing import MAX_WORKERS, WORKER_THRESHOLD, auto_workers
from xendiscover.testing import FakeBackend


def children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[1] == me:
                found.add(int(pid))
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("workers", [2, 3])
async def test_workers_find_exactly_what_one_process_finds(
    loopback_net: str, listeners: Listen, workers: int
) -> None:
    expected = hosts_of(loopback_net, 1, 2, 3, 1000, 2049, 4094)
    listeners(expected, 8002)
    listeners(hosts_of(loopback_net, 7), 8000)
    stats = xendiscover.ScanStats()
    hosts = await open_ports(
        [loopback_net], port=[8002, 8000], resolve=False, fingerprint=False,
        workers=workers, stats=stats,
    )  # fmt: skip
    assert [(h.address, h.port) for h in hosts] == sorted(
        [(a, 8002) for a in expected] + [(hosts_of(loopback_net, 7)[0], 8000)],
        key=lambda pair: (tuple(map(int, pair[0].split("."))), pair[1]),
    )
    assert stats.total == stats.done == 2 * 4096  # every worker's count arrived
    assert stats.open == len(hosts)


def test_split_parts_are_disjoint_cover_and_compose_with_shards() -> None:
    space = TargetSpace.from_specs(["10.0.0.0/25", "fd00::1-fd00::9"]).sharded(2, 3)
    parts = space.split(4)
    walked = [[a for _, a in part] for part in parts]
    together = [a for part in walked for a in part]
    assert sorted(together) == sorted(a for _, a in space)
    assert len(set(together)) == len(together) == space.size
    assert sum(p.size for p in parts) == space.size


def test_small_sweeps_stay_in_one_process() -> None:
    cores = len(os.sched_getaffinity(0))
    assert auto_workers(WORKER_THRESHOLD - 1) == 1
    assert auto_workers(WORKER_THRESHOLD) == min(cores, MAX_WORKERS)


@pytest.mark.parametrize("workers", [1, 2, 5])
async def test_a_fake_backend_drives_the_probe_process_path(workers: int) -> None:
    open_hosts = {f"10.1.{i // 256}.{i % 256}": "open" for i in range(3, 1024, 97)}
    backend = FakeBackend(open_hosts, default="dark", pending=True)  # type: ignore[arg-type]
    stats = xendiscover.ScanStats()
    hosts = await open_ports(
        ["10.1.0.0/22"], port=[8002, 8000], resolve=False, fingerprint=False,
        workers=workers, backend=backend, stats=stats,
    )  # fmt: skip
    assert backend.workers == workers - 1
    assert sorted({h.address for h in hosts}) == sorted(open_hosts)
    assert len(hosts) == 2 * len(open_hosts)
    assert stats.total == stats.done == 2 * 1024  # every process's counters arrived
    assert stats.open == len(hosts)
    assert stats.outcomes[xendiscover.Outcome.TIMEOUT] == 2 * (1024 - len(open_hosts))


class ScriptedProcess:
    """A probe process that writes the given chunks, then exits with ``code``."""

    def __init__(self, chunks: list[bytes], code: int) -> None:
        self._chunks = list(chunks)
        self._code = code
        self.killed = False

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        return self._chunks.pop(0) if self._chunks else b""

    async def wait(self) -> int:
        return self._code

    def kill(self) -> None:
        self.killed = True

    def connection(self, address: str, port: int) -> Connection | None:
        return None


class ScriptedBackend(FakeBackend):
    """A fake network whose probe processes say what the test wants."""

    def __init__(self, chunks: list[bytes], code: int = 0) -> None:
        super().__init__({"10.2.0.1": "open"})
        self.chunks, self.code = chunks, code
        self.spawned: list[ScriptedProcess] = []

    async def spawn_worker(self, job: bytes, *, connections: bool = False) -> WorkerProcess:
        self.spawned.append(ScriptedProcess(self.chunks, self.code))
        return self.spawned[-1]


FOUND = encode(OpenPort("10.2.0.2", 8002, 0.001, 1))


@pytest.mark.parametrize(
    ("chunks", "code", "message"),
    [
        ([FOUND, b"garbage\n"], 0, "bad message"),
        ([FOUND, FOUND[:7]], 1, r"ended early \(exit status 1\)"),  # died mid-line
        ([FOUND, FOUND[:7]], 0, "inside a line"),  # cut off, then exit 0
        ([FOUND.replace(b'"v":2', b'"v":1')], 0, "protocol version 1"),  # another build
        ([FOUND], 0, "before its last message"),  # exit 0, but never said finished
        ([FOUND], -9, "ended early"),  # killed
        ([encode(Failed("no memory"))], 1, "no memory"),
    ],
    ids=["garbage", "died-mid-line", "truncated", "other-version", "no-finish", "killed", "failed"],
)
async def test_a_broken_probe_process_fails_the_scan_loudly(
    chunks: list[bytes], code: int, message: str
) -> None:
    backend = ScriptedBackend(chunks, code)
    with pytest.raises(WorkerError, match=message):
        await xendiscover.discover(
            ["10.2.0.0/30"], port=8002, resolve=False, fingerprint=False, workers=2,
            backend=backend,
        )  # fmt: skip
    assert len(backend.spawned) == 1


def test_the_command_exits_3_with_one_line_when_a_probe_process_sends_garbage(
    loopback_net: str,
) -> None:
    code = (
        "import sys, xendiscover._backend._socket as s;"
        "s.WORKER_MODULE = 'platform';"  # prints a line that is not the wire format
        "from xendiscover._cli import main; main(sys.argv[1:])"
    )
    argv = [sys.executable, "-c", code, "--no-resolve", "-p", "8002", "--workers", "2"]
    run = subprocess.run([*argv, loopback_net], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3
    assert run.stderr.count("\n") == 1
    assert "probe process" in run.stderr
    assert "Traceback" not in run.stderr


async def test_cancelling_a_worker_scan_leaves_no_process_and_no_fd(loopback_net: str) -> None:
    # No probe process (nor zombie), fd or task may outlive the test: the
    # autouse check of tests/hygiene.py asserts that after it.
    for delay in (0.0, 0.05, 0.2):
        task = asyncio.ensure_future(
            xendiscover.discover(
                [loopback_net.replace("/20", "/12")],
                port=8002,
                resolve=False,
                fingerprint=False,
                workers=2,
                max_hosts=2_000_000,
            )
        )
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_dead_worker_fails_the_scan_loudly(
    loopback_net: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("xendiscover._backend._socket.sys.executable", "/bin/false")
    with pytest.raises(WorkerError, match=r"probe process ended early \(exit status 1\)"):
        await xendiscover.discover(
            [loopback_net], port=8002, resolve=False, fingerprint=False, workers=2
        )
