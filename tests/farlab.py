"""Two more labs for the engine (issue 22): a far site, and a "SYN proxy" range.

Both are built from network namespaces this module creates and deletes
(names ``xdl-<pid>-<hex4>-<role>``, cleaned up like :mod:`netlab`'s), and
nothing in them is connected to the machine's own interfaces.

The far site (:class:`FarLab`): a LAN next to the scanner, and a /24 behind
a long, lossy link made by ``tests/delay_router.py`` (no ``netem`` here)::

    adm ── lan0 10.78.1.1/24 ──── lan: xend 10.78.1.131:8002, xapi 10.78.1.132:443,80
     │                                  (.20 dark: nobody answers ARP)
     └──── gw0 10.78.2.1/30 ──── gw ── dly0 ═ delay router ═ dly1 ── far
                                        300-400 ms each way, 2 % loss each way
           far: 10.78.64.0/24; xapi 10.78.64.5:443,80; xend 10.78.64.6:8002;
                .20 and .21 dark (dropped); every other address refuses.

The SYN-proxy range (:class:`SynProxyLab`): a /20 in which an ``nft`` rule
sends every TCP port of every address to one listener that accepts and never
answers (a tarpit farm, or a SYN proxy before its real servers)::

    adm ── veth 10.79.0.1/30 ── trap: 10.79.16.0/20, every port -> one silent listener

Command line (as root)::

    python tests/farlab.py far --runs 20 [--site far|both]   # the far-site figures
    python tests/farlab.py synproxy                          # the SYN-proxy figures
    python tests/farlab.py serve ...                         # (used by the labs)
    python tests/farlab.py scan TARGET...                    # (used by the labs)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TESTS_DIR = Path(__file__).resolve().parent
if str(_TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTS_DIR))

import netlab  # noqa: E402

ROUTER_SCRIPT = _TESTS_DIR / "delay_router.py"
THIS_SCRIPT = Path(__file__).resolve()

#: The far site's services, and the LAN's: ``(address, port, service)``.
FAR_SERVICES = (
    ("10.78.64.5", 443, "xapi"),
    ("10.78.64.5", 80, "xapi"),
    ("10.78.64.6", 8002, "xend-relocation"),
)
LAN_SERVICES = (
    ("10.78.1.131", 8002, "xend-relocation"),
    ("10.78.1.132", 443, "xapi"),
    ("10.78.1.132", 80, "xapi"),
)
FAR_TARGETS = ("10.78.64.0/27",)
LAN_TARGETS = ("10.78.1.128/27", "10.78.1.16/29")
FAR_DARK = ("10.78.64.20", "10.78.64.21")
#: The SYN-proxy range and its one listener.
TRAP_NET = "10.79.16.0/20"
TRAP_LISTENER_PORT = 9


class _Lab(netlab.Lab):
    """What the labs here share: a scan, and a measured job, in the admin namespace."""

    def scan(
        self, targets: Sequence[str], *, ports: Sequence[int] = (), timeout: float = 300.0
    ) -> dict[str, Any]:
        """Scan ``targets`` from the admin namespace at the defaults; the result as a dict."""
        argv = [self.python, str(THIS_SCRIPT), "scan", *targets]
        argv += [f"--port={port}" for port in ports]
        proc = self.run(self.admin, argv, timeout=timeout)
        if proc.returncode != 0:
            raise netlab.LabError(f"scan failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def job(self, argv: Sequence[str], *, timeout: float = 180.0) -> dict[str, Any]:
        """Run ``python -m xendiscover ARGV`` in the admin namespace, measured.

        Returns its exit status, wall time, peak RSS summed over its
        processes (the scanner and any probe processes: ``RUSAGE_CHILDREN``
        of a wrapper that only waits), and its standard output.
        """
        code = (
            "import resource, subprocess, sys, time\n"
            "t = time.monotonic()\n"
            "p = subprocess.run([sys.executable, '-m', 'xendiscover', *sys.argv[1:]],"
            " capture_output=True, text=True)\n"
            "import json\n"
            "print(json.dumps({'status': p.returncode, 'seconds': time.monotonic() - t,"
            " 'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
            " 'stdout': p.stdout, 'stderr': p.stderr[-4000:]}))\n"
        )
        proc = self.python_run(self.admin, code, *argv, timeout=timeout)
        if proc.returncode != 0:
            raise netlab.LabError(f"job wrapper failed: {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(proc.stdout)
        return result


class FarLab(_Lab):
    """The far-site lab (see the module docstring); ``up()`` / ``down()`` as :class:`netlab.Lab`.

    Args:
        delay: The one-way delay range of the far link, in seconds.
        loss: The share of packets dropped each way on the far link.
    """

    def __init__(self, *, delay: tuple[float, float] = (0.3, 0.4), loss: float = 0.02) -> None:
        super().__init__(loss_percent=0)
        self.delay = delay
        self.loss = loss
        self.namespaces = (self.admin, self.lan, self.gw, self.far)

    def _serve(self, ns: str, argv: list[str], log: str) -> None:
        proc = self._spawn(ns, [self.python, str(THIS_SCRIPT), "serve", *argv], log)
        self._wait_ready(proc, ns, time.monotonic() + netlab.READY_TIMEOUT)

    def _build(self) -> None:
        missing = netlab.missing_tools()
        if missing:
            raise netlab.LabError("missing: " + ", ".join(missing))
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        adm, lan, gw, far = self.namespaces
        for ns in self.namespaces:
            netlab._run([netlab._ip(), "netns", "add", ns])
            self._ipn(ns, "link", "set", "lo", "up")
        self._veth(adm, "lan0", lan, "eth0")
        self._veth(adm, "gw0", gw, "eth0")
        self._ipn(adm, "addr", "add", "10.78.1.1/24", "dev", "lan0")
        self._ipn(adm, "addr", "add", "10.78.2.1/30", "dev", "gw0")
        for dev in ("lan0", "gw0"):
            self._ipn(adm, "link", "set", dev, "up")
        self._ipn(adm, "route", "add", "10.78.64.0/24", "via", "10.78.2.2", "dev", "gw0")
        self._ipn(lan, "addr", "add", "10.78.1.2/24", "dev", "eth0")
        self._ipn(lan, "link", "set", "eth0", "up")
        for address in ("10.78.1.131", "10.78.1.132"):
            self._ipn(lan, "addr", "add", f"{address}/32", "dev", "lo")
        self._ipn(gw, "addr", "add", "10.78.2.2/30", "dev", "eth0")
        self._ipn(gw, "link", "set", "eth0", "up")
        self._sysctl(gw, "net.ipv4.ip_forward", "1")
        for ns in (gw, far):
            self._sysctl(ns, "net.ipv4.conf.all.rp_filter", "0")
            self._sysctl(ns, "net.ipv4.conf.default.rp_filter", "0")
        router = [self.python, str(ROUTER_SCRIPT), "--far-netns", f"/run/netns/{far}"]
        router += ["--delay", str(self.delay[0]), str(self.delay[1]), "--loss", str(self.loss)]
        proc = self._spawn(gw, router, "router")
        self._wait_ready(proc, gw, time.monotonic() + netlab.READY_TIMEOUT)
        self._ipn(gw, "link", "set", "dly0", "up")
        self._ipn(gw, "route", "add", "10.78.64.0/24", "dev", "dly0")
        self._ipn(far, "link", "set", "dly1", "up")
        self._ipn(far, "route", "add", "default", "dev", "dly1")
        self._ipn(far, "route", "add", "local", "10.78.64.0/24", "dev", "lo")
        for address in ("10.78.64.5", "10.78.64.6"):
            self._ipn(far, "addr", "add", f"{address}/32", "dev", "lo")
        dark = ", ".join(FAR_DARK)
        self._nft(
            far,
            "table inet xdl {\n  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            f"    ip daddr {{ {dark} }} drop\n  }}\n}}\n",
        )
        self._serve(lan, ["--xend", "10.78.1.131", "--xapi", "10.78.1.132"], "serve-lan")
        self._serve(far, ["--xend", "10.78.64.6", "--xapi", "10.78.64.5"], "serve-far")


class SynProxyLab(_Lab):
    """A /20 whose every port accepts and stays silent (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(loss_percent=0)
        self.namespaces = (self.admin, self.wan)

    def _pair(self) -> tuple[str, str]:
        """The admin namespace and the other, linked, with TRAP_NET routed there."""
        missing = netlab.missing_tools()
        if missing:
            raise netlab.LabError("missing: " + ", ".join(missing))
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        adm, trap = self.namespaces
        for ns in self.namespaces:
            netlab._run([netlab._ip(), "netns", "add", ns])
            self._ipn(ns, "link", "set", "lo", "up")
        self._veth(adm, "trap0", trap, "eth0")
        self._ipn(adm, "addr", "add", "10.79.0.1/30", "dev", "trap0")
        self._ipn(adm, "link", "set", "trap0", "up")
        self._ipn(adm, "route", "add", TRAP_NET, "via", "10.79.0.2", "dev", "trap0")
        self._ipn(trap, "addr", "add", "10.79.0.2/30", "dev", "eth0")
        self._ipn(trap, "link", "set", "eth0", "up")
        self._ipn(trap, "route", "add", "local", TRAP_NET, "dev", "lo")
        return adm, trap

    def _build(self) -> None:
        _, trap = self._pair()
        # Every TCP port of every address in the /20 goes to one listener,
        # which accepts and never says a word. The counter shows the SYNs.
        self._nft(
            trap,
            "table ip xdl {\n  counter syns {}\n  chain pre {\n"
            "    type nat hook prerouting priority dstnat; policy accept;\n"
            f"    ip daddr {TRAP_NET} tcp flags syn counter name syns\n"
            f"    ip daddr {TRAP_NET} tcp dport != {TRAP_LISTENER_PORT}"
            f" redirect to :{TRAP_LISTENER_PORT}\n  }}\n}}\n",
        )
        proc = self._spawn(
            trap, [self.python, str(THIS_SCRIPT), "serve", "--silent", "0.0.0.0"], "serve-trap"
        )
        self._wait_ready(proc, trap, time.monotonic() + netlab.READY_TIMEOUT)


class SerialXendLab(SynProxyLab):
    """One address whose 8002 is a fake of xend's serial accept loop, with a stall.

    xend 4.4 runs ``socket.getfqdn(peer)`` in its one accept thread before
    it accepts the next connection; with a resolver that does not answer,
    that is glibc's default stall (10 s) per connection. An ``nft`` counter
    counts the SYNs that reach 8002: one per handshake.
    """

    address = "10.79.16.9"

    def __init__(self, stall: float = 10.0) -> None:
        super().__init__()
        self.stall = stall

    def _build(self) -> None:
        _, trap = self._pair()
        self._nft(
            trap,
            "table ip xdl {\n  counter syns {}\n  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            "    tcp dport 8002 tcp flags & (syn | ack) == syn counter name syns\n  }\n}\n",
        )
        argv = [self.python, str(THIS_SCRIPT), "serve", "--serial", self.address]
        proc = self._spawn(trap, [*argv, "--stall", str(self.stall)], "serve-serial")
        self._wait_ready(proc, trap, time.monotonic() + netlab.READY_TIMEOUT)

    def syns(self) -> int:
        """How many SYNs reached 8002 so far (the nft counter)."""
        nft = netlab.which("nft") or "nft"
        out = self.run(self.wan, [nft, "-j", "list", "counter", "ip", "xdl", "syns"]).stdout
        for entry in json.loads(out)["nftables"]:
            if "counter" in entry:
                return int(entry["counter"]["packets"])
        raise netlab.LabError(f"no counter in {out!r}")


# ------------------------------------------------------------------ in-namespace helpers


async def _serial(address: str, stall: float, stop: asyncio.Event) -> None:
    """xend's accept loop: accept one, stall (its reverse lookup), close without a byte."""
    import socket

    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, 8002))
    listener.listen(16)
    listener.setblocking(False)
    try:
        while not stop.is_set():
            conn, _ = await loop.sock_accept(listener)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), stall)
            conn.close()
    finally:
        listener.close()


async def _serve(
    xend: Sequence[str],
    xapi: Sequence[str],
    silent: Sequence[str],
    serial: Sequence[str] = (),
    stall: float = 10.0,
) -> None:
    from xendiscover.testing import FakeXapi, FakeXendRelocation

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def on_stdin() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, on_stdin)
    async with contextlib.AsyncExitStack() as stack:
        for address in xend:
            await stack.enter_async_context(FakeXendRelocation(address, 8002))
        for address in xapi:
            await stack.enter_async_context(FakeXapi(address, 443, tls=True))
            await stack.enter_async_context(FakeXapi(address, 80))
        for address in silent:
            # A tarpit with a deep accept queue (FakeTarpit's asyncio server
            # keeps 100): a SYN proxy accepts whatever comes.
            server = await loop.create_server(
                asyncio.Protocol, address, TRAP_LISTENER_PORT, backlog=4096
            )
            stack.callback(server.close)
        for address in serial:
            task = asyncio.ensure_future(_serial(address, stall, stop))
            stack.callback(task.cancel)
        print("ready", flush=True)
        await stop.wait()


async def _scan(targets: Sequence[str], ports: Sequence[int]) -> dict[str, Any]:
    import xendiscover

    started = time.monotonic()
    if ports:
        found = xendiscover.scan(list(targets), resolve=False, port=list(ports))
    else:
        found = xendiscover.scan(list(targets), resolve=False)
    rows = []
    async with contextlib.aclosing(found):
        async for f in found:
            rows.append([f.address, f.port, f.service, f.verdict, f.evidence[:80]])
    return {
        "seconds": time.monotonic() - started,
        "findings": rows,
        "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def found_services(result: dict[str, Any]) -> set[tuple[str, int, str]]:
    """The ``(address, port, service)`` of every finding with a Xen verdict."""
    return {
        (a, p, s)
        for a, p, s, verdict, _ in result["findings"]
        if verdict in ("confirmed", "likely")
    }


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def far_figures(runs: int, site: str) -> dict[str, Any]:
    """Scan the far site (or the LAN and the far site) ``runs`` times; tabulate."""
    targets = list(FAR_TARGETS) + (list(LAN_TARGETS) if site == "both" else [])
    want = set(FAR_SERVICES) | (set(LAN_SERVICES) if site == "both" else set())
    netlab.cleanup_stale()
    lab = FarLab()
    complete, seconds, missed = 0, [], []
    with lab:
        for n in range(runs):
            result = lab.scan(targets)
            got = found_services(result)
            seconds.append(result["seconds"])
            complete += got >= want
            missed += [f"run {n + 1}: {sorted(want - got)}"] if not got >= want else []
            print(f"run {n + 1}: {len(got & want)}/{len(want)} in {result['seconds']:.1f} s")
    return {
        "site": site,
        "runs": runs,
        "complete": complete,
        "seconds_median": _median(seconds),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "missed": missed,
    }


def synproxy_figures() -> dict[str, Any]:
    """Sweep the SYN-proxy /20 at the defaults, measured."""
    netlab.cleanup_stale()
    lab = SynProxyLab()
    with lab:
        result = lab.job([TRAP_NET, "--no-resolve", "--all", "--format", "jsonl"])
    lines = [json.loads(line) for line in result["stdout"].splitlines() if line.strip()]
    ports = [r for r in lines if "port" in r and "address" in r]
    addresses = {r["address"] for r in ports}
    return {
        "status": result["status"],
        "seconds": result["seconds"],
        "rss_mib": result["rss_kib"] / 1024,
        "records": len(ports),
        "addresses": len(addresses),
        "stderr": result["stderr"][-400:],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    far = sub.add_parser("far")
    far.add_argument("--runs", type=int, default=20)
    far.add_argument("--site", choices=["far", "both"], default="far")
    sub.add_parser("synproxy")
    serve = sub.add_parser("serve")
    serve.add_argument("--xend", action="append", default=[])
    serve.add_argument("--xapi", action="append", default=[])
    serve.add_argument("--silent", action="append", default=[])
    serve.add_argument("--serial", action="append", default=[])
    serve.add_argument("--stall", type=float, default=10.0)
    scan = sub.add_parser("scan")
    scan.add_argument("targets", nargs="+")
    scan.add_argument("--port", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(_serve(args.xend, args.xapi, args.silent, args.serial, args.stall))
    elif args.command == "scan":
        print(json.dumps(asyncio.run(_scan(args.targets, args.port))))
    elif args.command == "far":
        print(json.dumps(far_figures(args.runs, args.site), indent=1))
    else:
        print(json.dumps(synproxy_figures(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
