"""A virtual LAN built from network namespaces: "the lab" (issue #4).

Everything lives inside namespaces this module creates and deletes; nothing is
connected to the machine's own interfaces, and no route leaves the lab.

Topology (every run gets its own namespace names ``xdl-<pid>-<hex4>-<role>``;
the addresses are the same in every run, which is safe since namespaces are
isolated)::

                        +--------------------------- adm (the scanner runs here) ----+
                        | lan0   10.77.1.1/24, fd77:1::1/64      (up)                 |
                        | lossy0 10.77.16.1/20                   (up, lossy peer)     |
                        | gw0    10.77.2.1/30                    (up)                 |
                        | down0  10.77.3.1/24                    (DOWN)               |
                        | routes: 10.77.64.0/24 via 10.77.2.2 (the gateway)           |
                        |         10.77.3.0/24  via 10.77.1.2 (trap for down0)        |
                        +-------+--------------------+------------------+-------------+
                                |                    |                  |
       lan: eth0 10.77.1.2/24 (+ dnsmasq :53)   wan: eth0          gw: eth0 10.77.2.2/30
         owns 10.77.1.128/25 (lo)                 owns 10.77.16.0/20    eth1 10.77.65.1/30
         owns 10.77.3.0/24 (lo, trap)             nft: N% loss both      route 10.77.64.0/24
         fd77:1::2, fd77:1::10 (trap)             ways + dark drops        via far
         nft: firewalled drops                                         far: owns 10.77.64.0/24

- On the /24, ``.3``-``.127`` are owned by nobody: no ARP answer, the realistic dark.
  ``.128``-``.254`` answer ARP; nothing listening means RST; ``nft`` drops the
  firewalled ones.
- The /20 is reached through one neighbour (``10.77.31.254``): the admin's address
  is added with ``noprefixroute`` and the /20 routed via the peer, so a sweep does
  not fill the kernel's (machine-wide) ARP table with 4096 entries.  Most of it
  answers RST; a few addresses are dropped (dark); ``numgen random`` drops N%.
- The down interface's subnet and the ULA /64 hold a listening fake each ("traps"):
  a scanner that swept them would report them.
- dnsmasq in ``lan`` serves PTR records for some hosts; ``/etc/netns/<adm>/``
  carries a ``resolv.conf`` pointing at it (plus ``hosts`` and ``nsswitch.conf``).

Command line (as root)::

    python tests/netlab.py up [--hold SECONDS]  # bring up, print names, hold until ^C
    python tests/netlab.py run -- --port 8002   # xendiscover inside the admin namespace
    python tests/netlab.py probe ADDR PORT      # one TCP connect (use inside a namespace)
    python tests/netlab.py describe             # the topology as JSON
    python tests/netlab.py cleanup              # remove labs whose owner process is gone

From a noxfile: ``sys.path.insert(0, "tests"); import netlab;
netlab.run_in_lab(session.posargs, python=...)``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Self

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
SERVE_SCRIPT = TESTS_DIR / "netlab_serve.py"
NETNS_ETC = Path("/etc/netns")
NETNS_RUN = Path("/run/netns")

NAME_PREFIX = "xdl"
NAME_RE = re.compile(r"^xdl-(\d+)-([0-9a-f]{4})-([a-z]+)$")
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

#: Bounds on everything the lab waits for.
CMD_TIMEOUT = 15.0
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
DEFAULT_RUN_TIMEOUT = 900.0

ROLES = ("adm", "lan", "wan", "gw", "far")


class LabError(RuntimeError):
    """The lab could not be built or torn down."""


def which(name: str) -> str | None:
    """``shutil.which`` that also looks in the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN_DIRS])
    return shutil.which(name, path=path)


def _ptr_defaults() -> Mapping[str, str]:
    return MappingProxyType(
        {
            "10.77.1.131": "xen1.lab.test",
            "10.77.1.132": "xen2.lab.test",
            "10.77.1.140": "www.lab.test",
            "10.77.20.5": "lossy-xen1.lab.test",
            "10.77.64.130": "routed-xen1.lab.test",
        }
    )


@dataclass(frozen=True)
class Topology:
    """The lab's addresses and what each one is (the same in every run)."""

    port: int = 8002

    # The admin's /24 (lan0 <-> lan namespace).
    lan_net: str = "10.77.1.0/24"
    admin_lan: str = "10.77.1.1"
    lan_peer: str = "10.77.1.2"
    lan_owned: str = "10.77.1.128/25"
    lan_xen: tuple[str, ...] = ("10.77.1.131", "10.77.1.132", "10.77.1.133")
    lan_decoy: tuple[str, ...] = ("10.77.1.140",)
    lan_closed: tuple[str, ...] = ("10.77.1.160", "10.77.1.200")
    lan_firewalled: tuple[str, ...] = ("10.77.1.150",)
    lan_dark: tuple[str, ...] = ("10.77.1.20", "10.77.1.99")

    # The lossy /20 (lossy0 <-> wan namespace).
    lossy_net: str = "10.77.16.0/20"
    admin_lossy: str = "10.77.16.1"
    lossy_peer: str = "10.77.31.254"
    lossy_xen: tuple[str, ...] = ("10.77.20.5", "10.77.24.77", "10.77.30.200")
    lossy_closed: tuple[str, ...] = ("10.77.18.18", "10.77.27.1")
    lossy_dark: tuple[str, ...] = ("10.77.17.17", "10.77.29.9")

    # The subnet behind a gateway (gw0 <-> gw namespace <-> far namespace).
    gw_link: str = "10.77.2.0/30"
    admin_gw: str = "10.77.2.1"
    gateway: str = "10.77.2.2"
    far_link: str = "10.77.65.0/30"
    far_link_gw: str = "10.77.65.1"
    far_link_far: str = "10.77.65.2"
    routed_net: str = "10.77.64.0/24"
    routed_xen: tuple[str, ...] = ("10.77.64.130", "10.77.64.131")

    # The interface that is down, and a trap behind it.
    down_iface: str = "down0"
    down_net: str = "10.77.3.0/24"
    admin_down: str = "10.77.3.1"
    down_trap_xen: tuple[str, ...] = ("10.77.3.10",)

    # The ULA /64 on lan0, and a Xen fake in it. Never walked (a /64 cannot be);
    # since issue 24 an automatic run finds it all the same: the lan namespace
    # answers the echo to ff02::1 from it (its newest ULA address).
    v6_net: str = "fd77:1::/64"
    admin_v6: str = "fd77:1::1"
    lan_v6: str = "fd77:1::2"
    v6_trap_xen: tuple[str, ...] = ("fd77:1::10",)

    # DNS.
    dns_server: str = "10.77.1.2"
    ptr: Mapping[str, str] = field(default_factory=_ptr_defaults)

    @property
    def auto_xen(self) -> frozenset[str]:
        """The Xen hosts a sweep of the up interfaces must report (IPv6 on-link ones too)."""
        return frozenset(self.lan_xen + self.lossy_xen + self.v6_trap_xen)

    @property
    def auto_open(self) -> frozenset[str]:
        """Every address a sweep of the up interfaces finds open (Xen + decoys)."""
        return self.auto_xen | frozenset(self.lan_decoy)

    @property
    def dark(self) -> tuple[str, ...]:
        """Addresses that never answer (no ARP on the /24, dropped on the /20)."""
        return self.lan_dark + self.lossy_dark

    @property
    def firewalled(self) -> tuple[str, ...]:
        """Addresses whose SYNs ``nft`` drops (ARP answers)."""
        return self.lan_firewalled

    @property
    def closed(self) -> tuple[str, ...]:
        """Addresses that answer RST."""
        return self.lan_closed + self.lossy_closed

    @property
    def traps(self) -> tuple[str, ...]:
        """Listening fakes that a correct default scan must NOT report."""
        return self.down_trap_xen + self.routed_xen

    @property
    def all_xen(self) -> frozenset[str]:
        """Every listening Xen fake anywhere in the lab."""
        return self.auto_xen | frozenset(self.traps)

    def hostname(self, address: str) -> str | None:
        """The PTR name dnsmasq serves for ``address``, or ``None``."""
        return self.ptr.get(address)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = dict(value) if isinstance(value, Mapping) else value
        out["auto_xen"] = sorted(self.auto_xen)
        out["auto_open"] = sorted(self.auto_open)
        return out


@dataclass(frozen=True)
class ProbeResult:
    """What one TCP connect from inside a namespace saw."""

    result: str  # "open" | "refused" | "timeout" | "unreachable" | "error:<errno>"
    seconds: float
    reply: str | None = None


# --------------------------------------------------------------------------- helpers


def _run(argv: Sequence[str], *, timeout: float = CMD_TIMEOUT, input: str | None = None) -> str:
    """Run a setup command; raise :class:`LabError` with its stderr if it fails."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _ip() -> str:
    ip = which("ip")
    if ip is None:
        raise LabError("iproute2's `ip` is not installed")
    return ip


def list_namespaces() -> list[str]:
    """The names of all named network namespaces (``ip netns list``)."""
    out = _run([_ip(), "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def namespace_pids(ns: str) -> list[int]:
    """The processes living in namespace ``ns`` (``ip netns pids``)."""
    try:
        out = _run([_ip(), "netns", "pids", ns], timeout=5)
    except LabError:
        return []
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL every process in ``ns`` (all of them were started by the lab)."""
    for _ in range(3):
        pids = [pid for pid in namespace_pids(ns) if pid != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
            time.sleep(0.02)


def delete_namespace(ns: str) -> None:
    """Kill what runs in ``ns``, delete it, remove ``/etc/netns/<ns>``. Never raises."""
    if not NAME_RE.match(ns):  # only ever touch our own names
        return
    with contextlib.suppress(LabError, OSError):
        if (NETNS_RUN / ns).exists():
            _kill_namespace_processes(ns)
            for _ in range(5):
                try:
                    _run([_ip(), "netns", "del", ns], timeout=5)
                    break
                except LabError:
                    time.sleep(0.1)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Delete lab namespaces whose owning process no longer exists; return their names."""
    removed: list[str] = []
    names = set(list_namespaces())
    if NETNS_ETC.is_dir():
        names.update(p.name for p in NETNS_ETC.iterdir())
    for ns in sorted(names):
        m = NAME_RE.match(ns)
        if m and not _pid_alive(int(m.group(1))):
            delete_namespace(ns)
            removed.append(ns)
    # Work directories (dnsmasq/listener logs) of dead owners: <tmp>/xdl-<pid>-<hex4>-*.
    for path in Path(tempfile.gettempdir()).glob(f"{NAME_PREFIX}-*-*-*"):
        m = re.match(r"^xdl-(\d+)-[0-9a-f]{4}-", path.name)
        if m and path.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def unavailable_reason() -> str | None:
    """Why this machine cannot host the lab at all (no root, no namespaces), or None."""
    if sys.platform != "linux":
        return "the namespace lab needs Linux"
    if os.geteuid() != 0:
        return "the namespace lab needs root (ip netns add)"
    if which("ip") is None:
        return "the namespace lab needs iproute2's `ip`"
    probe = f"{NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(2)}-chk"
    proc = subprocess.run(
        [_ip(), "netns", "add", probe], capture_output=True, text=True, timeout=10, check=False
    )
    if proc.returncode != 0:
        return f"network namespaces are unavailable: {proc.stderr.strip()}"
    delete_namespace(probe)
    return None


def missing_tools() -> list[str]:
    """Debian packages the lab needs that are not installed."""
    missing = []
    if which("nft") is None:
        missing.append("nftables (nft)")
    if which("dnsmasq") is None:
        missing.append("dnsmasq (dnsmasq-base)")
    return missing


def probe(address: str, port: int, *, timeout: float = 1.0, send: str | None = None) -> ProbeResult:
    """One TCP connect from the current namespace; optionally send, then read the reply.

    ``send`` gets a newline appended unless it ends with one.  The reply is read
    until EOF, ``timeout``, or the end of a one-line SXP reply.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    start = time.monotonic()
    try:
        try:
            sock.connect((address, port))
        except TimeoutError:
            return ProbeResult("timeout", time.monotonic() - start)
        except ConnectionRefusedError:
            return ProbeResult("refused", time.monotonic() - start)
        except OSError as exc:
            elapsed = time.monotonic() - start
            if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                return ProbeResult("unreachable", elapsed)
            return ProbeResult(f"error:{errno.errorcode.get(exc.errno or 0, exc.errno)}", elapsed)
        elapsed = time.monotonic() - start
        reply: str | None = None
        if send is not None:
            chunks: list[bytes] = []
            with contextlib.suppress(OSError):
                sock.sendall(send.encode() if send.endswith("\n") else send.encode() + b"\n")
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    sock.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    data = b"".join(chunks)
                    if data.startswith(b"(") and data.endswith(b"\n"):
                        break  # one SXP reply line: xend may keep the connection open
            reply = b"".join(chunks).decode(errors="replace")
        return ProbeResult("open", elapsed, reply)
    finally:
        sock.close()


# --------------------------------------------------------------------------- the lab


class Lab:
    """The virtual LAN.  Use as a context manager, or call :meth:`up` / :meth:`down`.

    Attributes:
        topo: The addresses and what they are.
        tag: This run's unique prefix, ``xdl-<pid>-<hex4>``.
        admin, lan, wan, gw, far: The namespace names (see the module docstring).
        loss_percent: The random loss on the lossy link, each direction.
        python: The interpreter run inside the namespaces.
    """

    def __init__(
        self,
        *,
        loss_percent: int = 5,
        topology: Topology | None = None,
        python: str | None = None,
        serve_impl: str = "auto",
    ) -> None:
        if not 0 <= loss_percent < 100:
            raise ValueError("loss_percent must be in [0, 100)")
        self.topo = topology or Topology()
        self.loss_percent = loss_percent
        self.python = python or sys.executable
        self.serve_impl = serve_impl
        self.tag = f"{NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(2)}"
        self.admin = f"{self.tag}-adm"
        self.lan = f"{self.tag}-lan"
        self.wan = f"{self.tag}-wan"
        self.gw = f"{self.tag}-gw"
        self.far = f"{self.tag}-far"
        self.namespaces: tuple[str, ...] = (self.admin, self.lan, self.wan, self.gw, self.far)
        self.pids: list[int] = []
        self.workdir: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._made_netns_etc = False
        self._is_up = False

    # ----------------------------------------------------------------- context manager

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # ----------------------------------------------------------------- running things

    @property
    def is_up(self) -> bool:
        return self._is_up

    def exec_argv(self, ns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside namespace ``ns``."""
        return [_ip(), "netns", "exec", ns, *argv]

    def env(self) -> dict[str, str]:
        """An environment in which ``python -m xendiscover`` imports this checkout."""
        env = dict(os.environ)
        parts = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(
        self, ns: str, argv: Sequence[str], *, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``ns``, capture its output (text); bounded by ``timeout``."""
        return subprocess.run(
            self.exec_argv(ns, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            cwd=REPO_ROOT,
            check=False,
        )

    def python_run(
        self, ns: str, code: str, *args: str, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code args...`` in ``ns``."""
        return self.run(ns, [self.python, "-c", code, *args], timeout=timeout)

    def probe(
        self,
        address: str,
        port: int | None = None,
        *,
        timeout: float = 1.0,
        ns: str | None = None,
        send: str | None = None,
    ) -> ProbeResult:
        """One TCP connect to ``address:port`` from ``ns`` (default: the admin namespace)."""
        argv = [self.python, str(Path(__file__).resolve()), "probe", address]
        argv += [str(port or self.topo.port), "--timeout", str(timeout)]
        if send is not None:
            argv += ["--send", send]
        proc = self.run(ns or self.admin, argv, timeout=timeout * 2 + 20)
        if proc.returncode != 0:
            raise LabError(f"probe failed: {proc.stderr.strip()}")
        data = json.loads(proc.stdout)
        return ProbeResult(data["result"], data["seconds"], data.get("reply"))

    def describe(self) -> str:
        """A human-readable summary: names and topology."""
        t = self.topo
        lines = [
            f"lab {self.tag}: admin namespace {self.admin}",
            f"  run inside it: ip netns exec {self.admin} <command>",
            f"  {t.lan_net} on lan0: xen {', '.join(t.lan_xen)}; decoy {', '.join(t.lan_decoy)};"
            f" closed {', '.join(t.lan_closed)}; firewalled {', '.join(t.lan_firewalled)};"
            f" dark {', '.join(t.lan_dark)} (all of .3-.127)",
            f"  {t.lossy_net} on lossy0 ({self.loss_percent}% loss each way):"
            f" xen {', '.join(t.lossy_xen)}; dark {', '.join(t.lossy_dark)}; the rest RST",
            f"  {t.routed_net} via gateway {t.gateway} (targets only):"
            f" xen {', '.join(t.routed_xen)}",
            f"  {t.down_iface} {t.admin_down}/24 is DOWN; {t.v6_net} on lan0 (not walked;"
            f" {', '.join(t.v6_trap_xen)} answers the echo to ff02::1)",
            f"  DNS {t.dns_server} (dnsmasq) PTR: "
            + ", ".join(f"{a}={n}" for a, n in t.ptr.items()),
            f"  port {t.port}",
        ]
        return "\n".join(lines)

    # ----------------------------------------------------------------- bring-up

    def _ipn(self, ns: str, *args: str) -> None:
        _run([_ip(), "-n", ns, *args])

    def _veth(self, ns: str, name: str, peer_ns: str, peer_name: str) -> None:
        self._ipn(
            ns, "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", peer_ns
        )

    def _nft(self, ns: str, ruleset: str) -> None:
        nft = which("nft")
        if nft is None:
            raise LabError("nftables (`nft`) is not installed")
        _run(self.exec_argv(ns, [nft, "-f", "-"]), input=ruleset)

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        _run(self.exec_argv(ns, ["sh", "-c", f"echo {value} > {path}"]))

    def up(self) -> None:
        """Build the lab; on any failure, tear down what was built and raise."""
        if self._is_up:
            return
        atexit.register(self.down)
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        self._is_up = True

    def _build(self) -> None:
        t = self.topo
        reason = missing_tools()
        if reason:
            raise LabError("missing: " + ", ".join(reason))
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))

        for ns in self.namespaces:
            _run([_ip(), "netns", "add", ns])
            # No duplicate address detection: link-local addresses are usable at
            # once, so an echo to ff02::1 right after the build is answered.
            self._sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
            self._ipn(ns, "link", "set", "lo", "up")

        adm, lan, wan, gw, far = self.namespaces
        # Links: created directly inside the namespaces, never in the root namespace.
        self._veth(adm, "lan0", lan, "eth0")
        self._veth(adm, "lossy0", wan, "eth0")
        self._veth(adm, "gw0", gw, "eth0")
        self._veth(gw, "eth1", far, "eth0")
        self._veth(adm, t.down_iface, adm, "down0p")  # both ends stay down

        # admin
        self._ipn(adm, "addr", "add", f"{t.admin_lan}/24", "dev", "lan0")
        self._ipn(adm, "addr", "add", f"{t.admin_v6}/64", "dev", "lan0", "nodad")
        self._ipn(adm, "addr", "add", f"{t.admin_lossy}/20", "dev", "lossy0", "noprefixroute")
        self._ipn(adm, "addr", "add", f"{t.admin_gw}/30", "dev", "gw0")
        self._ipn(adm, "addr", "add", f"{t.admin_down}/24", "dev", t.down_iface)
        for dev in ("lan0", "lossy0", "gw0"):
            self._ipn(adm, "link", "set", dev, "up")
        self._ipn(adm, "route", "add", f"{t.lossy_peer}/32", "dev", "lossy0", "scope", "link")
        self._ipn(adm, "route", "add", t.lossy_net, "via", t.lossy_peer, "dev", "lossy0")
        self._ipn(adm, "route", "add", t.routed_net, "via", t.gateway, "dev", "gw0")
        self._ipn(adm, "route", "add", t.down_net, "via", t.lan_peer, "dev", "lan0")

        # lan: the admin's /24 (+ the down-interface trap, the v6 trap, DNS)
        self._ipn(lan, "addr", "add", f"{t.lan_peer}/24", "dev", "eth0")
        self._ipn(lan, "addr", "add", f"{t.lan_v6}/64", "dev", "eth0", "nodad")
        for addr in t.v6_trap_xen:
            self._ipn(lan, "addr", "add", f"{addr}/64", "dev", "eth0", "nodad")
        self._ipn(lan, "link", "set", "eth0", "up")
        self._ipn(lan, "route", "add", "local", t.lan_owned, "dev", "lo")
        self._ipn(lan, "route", "add", "local", t.down_net, "dev", "lo")
        self._nft(
            lan,
            "table inet xdl {\n"
            "  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            f"    ip daddr {{ {', '.join(t.lan_firewalled)} }} meta l4proto tcp drop\n"
            "  }\n"
            "}\n",
        )

        # wan: the lossy /20
        self._ipn(wan, "addr", "add", f"{t.lossy_peer}/32", "dev", "eth0")
        self._ipn(wan, "link", "set", "eth0", "up")
        self._ipn(wan, "route", "add", "local", t.lossy_net, "dev", "lo")
        self._ipn(wan, "route", "add", f"{t.admin_lossy}/32", "dev", "eth0", "table", "local")
        n = self.loss_percent
        loss = [f"numgen random mod 100 < {n} drop"] if n else []
        rules = [
            "table inet xdl {",
            "  chain input {",
            "    type filter hook input priority filter; policy accept;",
            *(f'    iifname "eth0" {rule}' for rule in loss),
            f"    ip daddr {{ {', '.join(t.lossy_dark)} }} drop",
            "  }",
            "  chain output {",
            "    type filter hook output priority filter; policy accept;",
            *(f'    oifname "eth0" {rule}' for rule in loss),
            "  }",
            "}",
        ]
        self._nft(wan, "\n".join(rules) + "\n")

        # gw: a router between the admin and the far subnet
        self._ipn(gw, "addr", "add", f"{t.gateway}/30", "dev", "eth0")
        self._ipn(gw, "addr", "add", f"{t.far_link_gw}/30", "dev", "eth1")
        self._ipn(gw, "link", "set", "eth0", "up")
        self._ipn(gw, "link", "set", "eth1", "up")
        self._ipn(gw, "route", "add", t.routed_net, "via", t.far_link_far, "dev", "eth1")
        self._sysctl(gw, "net.ipv4.ip_forward", "1")

        # far: owns the routed subnet
        self._ipn(far, "addr", "add", f"{t.far_link_far}/30", "dev", "eth0")
        self._ipn(far, "link", "set", "eth0", "up")
        self._ipn(far, "route", "add", "default", "via", t.far_link_gw, "dev", "eth0")
        self._ipn(far, "route", "add", "local", t.routed_net, "dev", "lo")

        # The admin's resolver: ip netns exec bind-mounts these over /etc/*.
        etc = NETNS_ETC / adm
        if not NETNS_ETC.exists():
            self._made_netns_etc = True
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(
            f"nameserver {t.dns_server}\noptions timeout:1 attempts:2\n"
        )
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        (etc / "nsswitch.conf").write_text(
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
            "networks: files\nprotocols: files\nservices: files\n"
        )

        dns = self._start_dnsmasq()
        servers = [
            self._start_serve(
                lan,
                xen=[*t.lan_xen, *t.down_trap_xen, *t.v6_trap_xen],
                http=list(t.lan_decoy),
            ),
            self._start_serve(wan, xen=list(t.lossy_xen), http=[]),
            self._start_serve(far, xen=list(t.routed_xen), http=[]),
        ]
        deadline = time.monotonic() + READY_TIMEOUT
        for proc, ns in servers:
            self._wait_ready(proc, ns, deadline)
        self._wait_dnsmasq(dns, deadline)
        self.wait_ipv6_echo(adm, "lan0", t.admin_v6, t.v6_trap_xen[0])

    def wait_ipv6_echo(self, ns: str, interface: str, source: str, host: str) -> None:
        """Wait (bounded) until ``host`` answers an echo to ff02::1 sent from ``ns``.

        A link made a moment ago does not answer multicast echo at once (seen:
        the first echo after the build went unanswered, the next ones were
        answered); a machine's links have been up for long. Raises
        :class:`LabError` after :data:`READY_TIMEOUT`.
        """
        code = (
            "import sys\n"
            "from xendiscover._sources import system_echo\n"
            "answers, _ = system_echo([(sys.argv[1], sys.argv[2])])\n"
            "print(' '.join(str(a.address) for a in answers))\n"
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            done = self.python_run(ns, code, interface, source)
            if host in done.stdout.split():
                return
        raise LabError(f"{host} does not answer an echo to ff02::1 on {interface}")

    def _log(self, name: str) -> IO[bytes]:
        assert self.workdir is not None
        fh = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in down()
        self._logs.append(fh)
        return fh

    def _spawn(self, ns: str, argv: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.exec_argv(ns, argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log(log),
            env=self.env(),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self._procs.append(proc)
        self.pids.append(proc.pid)
        return proc

    def _read_log(self, name: str) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _start_dnsmasq(self) -> subprocess.Popen[bytes]:
        t = self.topo
        dnsmasq = which("dnsmasq")
        if dnsmasq is None:
            raise LabError("dnsmasq is not installed")
        argv = [
            dnsmasq,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            f"--listen-address={t.dns_server}",
            "--port=53",
            "--bogus-priv",
            "--domain-needed",
            "--local=/lab.test/",
            "--pid-file=",
            "--user=root",
            "--log-facility=-",
            "--log-queries",
        ]
        argv += [f"--host-record={name},{addr}" for addr, name in t.ptr.items()]
        return self._spawn(self.lan, argv, "dnsmasq")

    def _wait_dnsmasq(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        # dnsmasq is exec'd by `ip netns exec`, so its pid is ours to look at: its
        # /proc/<pid>/net/udp shows the lan namespace's sockets, no traffic needed.
        want = socket.inet_aton(self.topo.dns_server)[::-1].hex().upper() + ":0035"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"dnsmasq exited ({proc.returncode}): {self._read_log('dnsmasq')}")
            with contextlib.suppress(OSError):
                udp = Path(f"/proc/{proc.pid}/net/udp").read_text()
                if any(line.split()[1:2] == [want] for line in udp.splitlines()[1:]):
                    return
            time.sleep(0.02)
        raise LabError(f"dnsmasq not listening after {READY_TIMEOUT}s")

    def _start_serve(
        self, ns: str, *, xen: Sequence[str], http: Sequence[str]
    ) -> tuple[subprocess.Popen[bytes], str]:
        def ep(addr: str) -> str:
            ip = ipaddress.ip_address(addr)
            return f"[{ip}]:{self.topo.port}" if ip.version == 6 else f"{ip}:{self.topo.port}"

        argv = [self.python, str(SERVE_SCRIPT), "--exit-on-stdin-eof", "--impl", self.serve_impl]
        for addr in xen:
            argv += ["--xen", ep(addr)]
        for addr in http:
            argv += ["--http", ep(addr)]
        return self._spawn(ns, argv, f"serve-{ns.rsplit('-', 1)[-1]}"), ns

    def _wait_ready(self, proc: subprocess.Popen[bytes], ns: str, deadline: float) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = b""
        while b"ready\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"listeners in {ns} not ready after {READY_TIMEOUT}s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait(timeout=STOP_TIMEOUT)
                log = self._read_log(f"serve-{ns.rsplit('-', 1)[-1]}")
                raise LabError(f"listeners in {ns} exited ({proc.returncode}): {log}")
            buf += chunk

    # ----------------------------------------------------------------- teardown

    def down(self) -> None:
        """Tear everything down: processes, namespaces, /etc/netns dirs. Idempotent."""
        self._is_up = False
        self._stop_processes()
        for ns in reversed(self.namespaces):
            delete_namespace(ns)
        if self._made_netns_etc:
            with contextlib.suppress(OSError):
                NETNS_ETC.rmdir()  # only if empty: another lab may be using it
            self._made_netns_etc = False
        for fh in self._logs:
            fh.close()
        self._logs.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.down)

    def _stop_processes(self) -> None:
        """Terminate every process of the lab (kill what ignores it) and close its pipes."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_TIMEOUT)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self._procs.clear()

    def leftovers(self) -> list[str]:
        """Anything of this lab that still exists (for teardown tests)."""
        left: list[str] = []
        existing = set(list_namespaces())
        left += [f"namespace {ns}" for ns in self.namespaces if ns in existing]
        left += [f"file {NETNS_ETC / ns}" for ns in self.namespaces if (NETNS_ETC / ns).exists()]
        left += [f"file {NETNS_RUN / ns}" for ns in self.namespaces if (NETNS_RUN / ns).exists()]
        left += [f"pid {pid}" for pid in self.pids if _pid_alive(pid)]
        return left


@contextlib.contextmanager
def lab(**kwargs: Any) -> Iterator[Lab]:
    """``with netlab.lab() as lab:`` — a :class:`Lab` that is always torn down."""
    with Lab(**kwargs) as the_lab:
        yield the_lab


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``with Lab()`` tears down (main thread only)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_in_lab(
    argv: Sequence[str],
    *,
    python: str | None = None,
    loss_percent: int = 5,
    timeout: float = DEFAULT_RUN_TIMEOUT,
) -> int:
    """Bring the lab up, run ``python -m xendiscover ARGV`` in its admin namespace.

    The scanner's output streams to this process's stdout/stderr; the lab is torn
    down afterwards whatever happens.  Returns the scanner's exit code (124 on
    timeout, 130 on Ctrl-C).
    """
    with _sigterm_exits(), Lab(loss_percent=loss_percent, python=python) as the_lab:
        print(the_lab.describe(), file=sys.stderr, flush=True)
        cmd = the_lab.exec_argv(the_lab.admin, [the_lab.python, "-m", "xendiscover", *argv])
        print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=the_lab.env(), cwd=REPO_ROOT)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = 124
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code = 130
        wall = time.monotonic() - start
        print(f"xendiscover exited {code} after {wall:.2f}s", file=sys.stderr, flush=True)
        return code


# --------------------------------------------------------------------------- CLI


def _cmd_up(args: argparse.Namespace) -> int:
    with _sigterm_exits(), Lab(loss_percent=args.loss) as the_lab:
        print(the_lab.describe(), flush=True)
        print(f"holding for up to {args.hold:.0f}s; Ctrl-C to tear down", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.hold)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The xendiscover namespace lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="bring the lab up and hold it until Ctrl-C")
    p_up.add_argument("--hold", type=float, default=3600.0)
    p_up.add_argument("--loss", type=int, default=5)
    p_run = sub.add_parser("run", help="run python -m xendiscover ARGS in the admin namespace")
    p_run.add_argument("--loss", type=int, default=5)
    p_run.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT)
    p_run.add_argument("args", nargs=argparse.REMAINDER)
    p_probe = sub.add_parser("probe", help="one TCP connect; prints JSON")
    p_probe.add_argument("address")
    p_probe.add_argument("port", type=int)
    p_probe.add_argument("--timeout", type=float, default=1.0)
    p_probe.add_argument("--send")
    sub.add_parser("describe", help="print the topology as JSON")
    sub.add_parser("cleanup", help="remove labs whose owning process is gone")
    args = parser.parse_args(argv)

    if args.cmd == "probe":
        res = probe(args.address, args.port, timeout=args.timeout, send=args.send)
        print(json.dumps({"result": res.result, "seconds": res.seconds, "reply": res.reply}))
        return 0
    if args.cmd == "describe":
        print(json.dumps(Topology().as_dict(), indent=2))
        return 0
    if args.cmd == "cleanup":
        for ns in cleanup_stale():
            print(f"removed {ns}")
        return 0
    if args.cmd == "up":
        return _cmd_up(args)
    rest = list(args.args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return run_in_lab(rest, loss_percent=args.loss, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
