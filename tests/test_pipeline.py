"""The pipeline with fake I/O: no socket, no DNS."""

import asyncio
import contextlib

import pytest
from support import open_ports

import xendiscover
from xendiscover import Finding, TargetError
from xendiscover._backend import Outcome
from xendiscover._fingerprint._probes import RELOCATION_WAIT
from xendiscover.testing import FakeBackend, FakeResolver, FakeService

#: What a Xen 3.3-4.4 relocation server answers to ``(help)``.
HELP = b"(ok (help quit receive sslreceive))\n"


def xend_at(*addresses: str) -> dict[tuple[str, int], FakeService]:
    return {(a, 8002): FakeService(HELP) for a in addresses}


async def test_discover_returns_hits_sorted_by_address_with_names() -> None:
    connector = FakeBackend(
        {"10.0.0.20": "open", "10.0.0.3": "open", "10.0.0.9": "dark"},
        services=xend_at("10.0.0.20", "10.0.0.3"),
    )
    resolver = FakeResolver({"10.0.0.3": "polar.inf.example"})
    hosts = await xendiscover.discover(
        ["10.0.0.0/27"],
        port=8002,
        backend=connector,
        resolver=resolver,
    )
    assert [(h.address, h.hostname, h.hostname_source) for h in hosts] == [
        ("10.0.0.3", "polar.inf.example", "ptr"),
        ("10.0.0.20", None, None),
    ]
    assert [h.key for h in hosts] == ["polar.inf.example", "10.0.0.20"]
    assert [(s.port, s.service, s.verdict) for s in hosts[0].services] == [
        (8002, "xend-relocation", "confirmed")
    ]
    assert sorted(resolver.lookups) == ["10.0.0.20", "10.0.0.3"]  # hits only


async def test_names_are_looked_up_once_per_address() -> None:
    connector = FakeBackend({"10.0.0.1": "open"}, services=xend_at("10.0.0.1"))
    resolver = FakeResolver({"10.0.0.1": "xen1"})
    hosts = await xendiscover.discover(
        ["10.0.0.1"],
        port=[8002, 8000, 443],
        backend=connector,
        resolver=resolver,
    )
    (host,) = hosts
    assert [s.port for s in host.services] == [443, 8000, 8002]
    assert resolver.lookups == ["10.0.0.1"]


async def test_scan_streams_hosts_as_found() -> None:
    connector = FakeBackend({"10.0.0.1": "open", "10.0.0.2": "open"}, pending=True)
    seen = []
    async with contextlib.aclosing(
        xendiscover.scan(
            ["10.0.0.0/29"], port=8002, backend=connector, resolve=False, fingerprint=False
        )
    ) as hosts:
        async for host in hosts:
            seen.append(host)
    assert {h.address for h in seen} == {"10.0.0.1", "10.0.0.2"}
    assert all(isinstance(h, Finding) and h.verdict == "unknown" for h in seen)


async def test_no_resolve_skips_names() -> None:
    resolver = FakeResolver({"10.0.0.1": "xen1"})
    hosts = await open_ports(
        ["10.0.0.1"],
        port=8002,
        backend=FakeBackend({"10.0.0.1": "open"}),
        resolver=resolver,
        resolve=False,
        fingerprint=False,
    )
    assert hosts[0].hostname is None
    assert resolver.lookups == []


async def test_default_ports_are_the_xen_management_ports() -> None:
    connector = FakeBackend()
    await xendiscover.discover(["10.0.0.1"], backend=connector, resolve=False)
    assert {p for _, p in connector.attempts} >= {443, 80, 8002, 8000, 8006, 9363, 16509}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "invalid port"),
        ({"port": [8002, 70000]}, "invalid port"),
        ({"timeout": 0}, "invalid timeout"),
        ({"timeout": -1.5}, "invalid timeout"),
        ({"timeout": float("inf")}, "invalid timeout"),
        ({"timeout": 1e308}, "invalid timeout"),
        ({"timeout": 60.5}, "at most 60 seconds"),
        ({"rate": float("nan")}, "invalid rate"),
        ({"workers": 0}, "invalid workers"),
        ({"retries": -1}, "invalid retries"),
        ({"concurrency": 0}, "invalid concurrency"),
        ({"nameservers": ["dns.example"]}, "invalid nameserver"),
        ({"max_hosts": 100}, "refusing to sweep 256 addresses"),
        ({"interfaces": ["eth0"]}, "without targets"),
    ],
)
async def test_bad_input_is_refused_before_any_connect(
    kwargs: dict[str, object], message: str
) -> None:
    connector = FakeBackend()
    with pytest.raises(TargetError, match=message):
        await xendiscover.discover(["10.0.0.0/24"], backend=connector, **kwargs)  # type: ignore[arg-type]
    assert connector.attempts == []


async def test_cancelling_a_scan_stops_it_and_closes_the_resolver() -> None:
    connector = FakeBackend(default="dark", pending=True)
    resolver = FakeResolver()
    task = asyncio.ensure_future(
        xendiscover.discover(["10.0.0.0/16"], port=8002, backend=connector, resolver=resolver)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    tried = len(connector.attempts)
    await asyncio.sleep(0.05)
    assert len(connector.attempts) == tried  # nothing runs on after the cancel
    assert tried < 2 * 65536


async def test_stats_follow_the_sweep() -> None:
    stats = xendiscover.ScanStats()
    await xendiscover.discover(
        ["10.0.0.0/28"],
        port=8002,
        backend=FakeBackend({"10.0.0.4": "open"}),
        resolve=False,
        fingerprint=False,
        stats=stats,
    )
    assert stats.total == 16
    assert stats.done == 16
    assert stats.open == 1


async def test_fingerprints_run_on_the_fake_clock() -> None:
    # A tarpit costs its full deadline, on the virtual clock: no real waiting.
    backend = FakeBackend(
        {"10.0.0.1": "open", "10.0.0.2": "open"},
        services={("10.0.0.2", 8002): FakeService(HELP, delay=1.5)},
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    hosts = await open_ports(["10.0.0.0/30"], port=8002, backend=backend, resolve=False)
    assert loop.time() - started < 1.0
    # xend's long hosts-allow wait on 8002 passed, virtually (RELOCATION_WAIT).
    assert backend.time() >= RELOCATION_WAIT
    by_address = {h.address: h for h in hosts}
    assert by_address["10.0.0.1"].verdict == "unknown"
    assert f"no reply within {RELOCATION_WAIT:g} s" in by_address["10.0.0.1"].evidence
    assert by_address["10.0.0.2"].verdict == "confirmed"  # slow, but within the deadline
    assert not backend.open_streams  # every stream was closed


class BrokenResolver(FakeResolver):
    async def reverse(self, address: str) -> str | None:
        raise RuntimeError("resolver bug")


async def test_a_failing_fingerprint_or_name_never_loses_the_host() -> None:
    def explode(received: bytes) -> bytes:
        raise RuntimeError("a bug in a peer script")

    backend = FakeBackend(
        {"10.0.0.1": "open", "10.0.0.2": "open"},
        services={("10.0.0.1", 8002): FakeService(explode), **xend_at("10.0.0.2")},
    )
    hosts = await open_ports(["10.0.0.0/30"], port=8002, backend=backend, resolver=BrokenResolver())
    assert [(h.address, h.hostname) for h in hosts] == [("10.0.0.1", None), ("10.0.0.2", None)]
    assert hosts[0].verdict == "unknown"
    assert hosts[0].evidence == "fingerprint failed (RuntimeError)"
    assert hosts[1].verdict == "confirmed"


def test_planning_changes_no_process_limit() -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    xendiscover.plan(["10.0.0.0/24"])
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


async def test_discover_returns_xen_machines_and_include_open_returns_all() -> None:
    backend = FakeBackend(
        {"10.0.0.1": "open", "10.0.0.2": "open"},
        services={
            **xend_at("10.0.0.1"),
            ("10.0.0.2", 8002): FakeService(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n"),
        },
    )
    xen = await xendiscover.discover(["10.0.0.0/30"], port=8002, backend=backend, resolve=False)
    assert [(h.address, h.verdict) for h in xen] == [("10.0.0.1", "confirmed")]
    every = await xendiscover.discover(
        ["10.0.0.0/30"], port=8002, backend=backend, resolve=False, include="open"
    )
    assert [(h.address, h.verdict) for h in every] == [
        ("10.0.0.1", "confirmed"),
        ("10.0.0.2", "not-xen"),
    ]


@pytest.mark.parametrize("targets", [None, [], "10.0.0.1"])
async def test_the_library_never_sweeps_local_networks_by_surprise(targets: object) -> None:
    backend = FakeBackend()
    with pytest.raises(TargetError, match=r"LOCAL_NETWORKS|list of strings"):
        await xendiscover.discover(targets, port=8002, backend=backend)  # type: ignore[arg-type]
    assert backend.attempts == []


async def test_local_networks_is_an_explicit_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    # The OS replaced by test data: this machine's own interfaces are never read.
    import ifaddr

    from xendiscover._sources import StaticSystem

    lab0 = ifaddr.Adapter("lab0", "lab0", [ifaddr.IP("10.9.8.1", 29, "lab0")])
    system = StaticSystem([lab0], {"lab0": 1})
    monkeypatch.setattr("xendiscover._plan.system_state", lambda: system)
    backend = FakeBackend({"10.9.8.3": "open"}, services=xend_at("10.9.8.3"))
    hosts = await xendiscover.discover(
        xendiscover.LOCAL_NETWORKS, port=8002, backend=backend, resolve=False
    )
    assert [h.address for h in hosts] == ["10.9.8.3"]
    assert {a for a, _ in backend.attempts} == {f"10.9.8.{i}" for i in (2, 3, 4, 5, 6)}


async def test_names_are_forward_confirmed() -> None:
    backend = FakeBackend({a: "open" for a in ("10.0.0.1", "10.0.0.2", "10.0.0.3")})
    resolver = FakeResolver(
        {"10.0.0.1": "good.example", "10.0.0.2": "spoof.example", "10.0.0.3": "a[/x].\x1b[31m"},
        forward={"good.example": ["10.0.0.1"], "spoof.example": ["192.0.2.7"]},
    )
    found = await open_ports(["10.0.0.0/30"], port=8002, backend=backend, resolver=resolver)
    assert [(f.hostname, f.hostname_source) for f in found] == [
        ("good.example", "ptr"),
        ("spoof.example", "ptr-unconfirmed"),
        ("a\\x5b\\x2fx\\x5d.\\x1b\\x5b31m", "ptr-unconfirmed"),  # escaped, never looked up
    ]
    assert resolver.forward_lookups == ["good.example", "spoof.example"]


def test_named_link_local_targets_are_probed_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checked = xendiscover.plan(["169.254.3.0/30", "10.0.0.1"])
    assert checked.space.size == 5  # probed, all of them: nothing skipped silently
    assert "link-local addresses (169.254.0.0/16); they are probed" in caplog.text
    caplog.clear()
    xendiscover.plan(["10.0.0.0/30"])
    assert caplog.text == ""


def test_draining_an_idle_finisher_ends() -> None:
    # Draining spun once on a finished task (Python 3.12, in CI); the
    # hand-off now drains by its queue. A drain with nothing handed over, and
    # one after a port was, must both end. A spin never yields, so no asyncio
    # timeout could end it: it runs in a thread of its own, done within 2 s.
    import threading

    from xendiscover._pipeline import _Finisher
    from xendiscover._sweep import ProbeResult

    async def drain_twice() -> None:
        checked = xendiscover.plan(["10.0.0.1"], port=8002, resolve=False)
        finisher = _Finisher(checked, FakeBackend({"10.0.0.1": "open"}), None)
        await finisher.drain()
        await finisher.submit(ProbeResult("10.0.0.1", 8002, Outcome.OPEN, 0.001, 1))
        await finisher.drain()
        assert finisher.out.qsize() == 1
        await finisher.cancel()

    worker = threading.Thread(target=asyncio.run, args=(drain_twice(),))
    worker.daemon = True
    worker.start()
    worker.join(2)
    assert not worker.is_alive(), "drain() did not end"


async def test_an_exception_anywhere_in_finishing_a_port_is_that_ports_evidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outside the fingerprint's and the name's own guards too: never a lost port.

    More ports fail than the hand-off has workers, so a failure must not
    cost a worker either (the scan would wait for ever).
    """
    import xendiscover._pipeline as pipeline

    def bug(found: object) -> bool:
        raise LookupError("a bug after the fingerprint")

    monkeypatch.setattr(pipeline, "is_silent", bug)
    count = 600  # more than the hand-off's workers
    addresses = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(count)]
    backend = FakeBackend(dict.fromkeys(addresses, "open"), services=xend_at(*addresses))
    found = await asyncio.wait_for(
        open_ports(addresses, port=8002, backend=backend, resolve=False), timeout=60
    )
    assert sorted(h.address for h in found) == sorted(addresses)
    assert {h.evidence for h in found} == {"finishing failed (LookupError)"}
    assert {h.verdict for h in found} == {"unknown"}
