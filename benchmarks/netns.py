"""Namespace labs: two namespaces for W2 (dark /21) and W3 (lossy /16), three for W5.

Nothing here touches the machine's own interfaces: both namespaces are new,
joined only to each other by one veth pair, and deleted on exit::

    scanner ns  xdb-<pid>-<hex>-s            peer ns  xdb-<pid>-<hex>-p
      veth 10.200.0.1/30  <--------------->  veth 10.200.0.2/30
      route 10.201.0.0/21 via .2               nft: drop everything to 10.201.0.0/21
      route 10.202.0.0/16 via .2               local route 10.202.0.0/16 dev lo (RST)
                                               nft: drop 5% of what enters for 10.202/16
                                               xend fakes on a few 10.202 addresses

The dark /21 is dropped in the peer's prerouting hook, so no SYN is answered
and no ICMP comes back: every probe there ends in a timeout.

W5's lab (:func:`auto_lab`) is what a user's machine looks like to a sweep
with no targets: the admin namespace has two up interfaces and nothing else,
so xendiscover's interface auto-discovery finds exactly these networks::

    admin ns  xdb-<pid>-<hex>-a
      lan0   10.79.1.1/24   <--> lan ns:  10.79.1.2/24 (dnsmasq :53, PTR records)
                                          local route 10.79.1.128/25 dev lo (RST)
                                          .3-.127 owned by nobody: no ARP reply, dark
      lossy0 10.79.16.1/20 noprefixroute, 10.79.16.0/20 via 10.79.31.254
                            <--> wan ns:  10.79.31.254/32, local route 10.79.16.0/20
                                          nft: drop 5% each way; drop 10.79.16.0/21 (dark)

Fakes of xapi, xend, libvirt, two decoys and a tarpit listen on known
addresses and ports of both networks (:data:`AUTO_SERVICES`); the admin
namespace's ``resolv.conf`` (``/etc/netns/<admin>/``) names the lab's
dnsmasq. 4,346 addresses are swept (253 + 4,093), half of each network
dark: with the seven default ports, 30,422 probes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fakes import Spec, fake_servers, fake_services

#: The dark network (W2) and the lossy, all-present network (W3).
DARK_NET = "10.201.0.0/21"
LOSSY_NET = "10.202.0.0/16"
LOSS_PERCENT = 5

_CMD_TIMEOUT = 15.0
_READY_TIMEOUT = 15.0


def _run(argv: Sequence[str], *, stdin: str | None = None) -> None:
    subprocess.run(
        list(argv), check=True, timeout=_CMD_TIMEOUT, input=stdin, text=True, capture_output=True
    )


def available() -> str | None:
    """Why the namespace workloads cannot run here, or ``None`` if they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nft"):
        if not any(Path(d, tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")):
            return f"needs {tool!r}"
    return None


@dataclass(frozen=True)
class Lab:
    """A running lab: where to run the scanner, and what listens.

    Attributes:
        scanner: The namespace the measured tools run in.
        peer: The namespace that owns (or drops) the target networks.
        fakes: The xend fake addresses in :data:`LOSSY_NET`.
        kind: Which fakes serve (``FakeXendRelocation`` or ``plain``).
    """

    scanner: str
    peer: str
    fakes: tuple[str, ...]
    kind: str

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the scanner namespace."""
        return ["ip", "netns", "exec", self.scanner, *argv]


def _ruleset(veth: str) -> str:
    return f"""
table inet xdbench {{
    chain pre {{
        type filter hook prerouting priority -300; policy accept;
        ip daddr {DARK_NET} drop
        iifname "{veth}" ip daddr {LOSSY_NET} numgen random mod 100 < {LOSS_PERCENT} drop
    }}
}}
"""


@contextlib.contextmanager
def lab(fakes: Sequence[str], port: int) -> Iterator[Lab]:
    """Build the lab, start the fakes in the peer, yield it, then tear it all down."""
    tag = f"{os.getpid()}-{secrets.token_hex(2)}"
    scanner, peer = f"xdb-{tag}-s", f"xdb-{tag}-p"
    short = secrets.token_hex(3)
    veth_s, veth_p = f"xdbs{short}", f"xdbp{short}"  # at most 15 characters
    made: list[str] = []
    try:
        for ns in (scanner, peer):
            _run(["ip", "netns", "add", ns])
            made.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # Both ends are born inside the lab: nothing ever sits in this namespace.
        _run(
            [
                *("ip", "link", "add", veth_s, "netns", scanner, "type", "veth"),
                *("peer", "name", veth_p, "netns", peer),
            ]
        )
        _run(["ip", "-n", scanner, "addr", "add", "10.200.0.1/30", "dev", veth_s])
        _run(["ip", "-n", peer, "addr", "add", "10.200.0.2/30", "dev", veth_p])
        _run(["ip", "-n", scanner, "link", "set", veth_s, "up"])
        _run(["ip", "-n", peer, "link", "set", veth_p, "up"])
        for net in (DARK_NET, LOSSY_NET):
            _run(["ip", "-n", scanner, "route", "add", net, "via", "10.200.0.2"])
        _run(["ip", "-n", peer, "route", "add", "local", LOSSY_NET, "dev", "lo"])
        _run(["ip", "netns", "exec", peer, "nft", "-f", "-"], stdin=_ruleset(veth_p))
        with fake_servers(fakes, port, prefix=["ip", "netns", "exec", peer]) as kind:
            yield Lab(scanner, peer, tuple(fakes), kind)
    finally:
        for ns in reversed(made):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _run(["ip", "netns", "del", ns])


# --------------------------------------------------------------------------- W5

#: The seven ports xendiscover probes by default, in its order.
DEFAULT_PORTS = (443, 80, 8002, 8000, 8006, 9363, 16509)

AUTO_LAN = "10.79.1.0/24"
AUTO_LAN_ADMIN = "10.79.1.1"
AUTO_LAN_PEER = "10.79.1.2"  # also the lab's DNS server
AUTO_LAN_LIT = "10.79.1.128/25"
AUTO_WAN = "10.79.16.0/20"
AUTO_WAN_ADMIN = "10.79.16.1"
AUTO_WAN_PEER = "10.79.31.254"
AUTO_WAN_DARK = "10.79.16.0/21"
AUTO_DNS = AUTO_LAN_PEER

#: What listens in the W5 lab: (kind, address, port), kinds of ``fakes.KINDS``.
AUTO_SERVICES: tuple[Spec, ...] = (
    # On the /24 (on-link, no loss).
    ("xapi-tls", "10.79.1.131", 443),  # XenServer: xapi behind stunnel and in the clear
    ("xapi", "10.79.1.131", 80),
    ("xend-http", "10.79.1.132", 8000),  # a xend host with all three services
    ("xend-relocation", "10.79.1.132", 8002),
    ("xend-xmlrpc", "10.79.1.132", 8006),
    ("xend-relocation-denied", "10.79.1.133", 8002),  # we are not in its hosts-allow
    ("libvirt", "10.79.1.134", 16509),
    ("http", "10.79.1.140", 80),  # a web server: a decoy
    ("http-tls", "10.79.1.140", 443),
    ("tarpit", "10.79.1.150", 8002),  # accepts, never says a word
    # On the lossy /20 (routed, 5% loss each way), in its lit half.
    ("xend-relocation", "10.79.24.77", 8002),
    ("xend-http", "10.79.24.77", 8000),
    ("xapi-tls", "10.79.27.5", 443),
    ("xapi", "10.79.27.5", 80),
    ("xend-xmlrpc", "10.79.30.200", 9363),  # xend's Xen-API server
    ("libvirt", "10.79.29.9", 16509),
)

#: The PTR names the lab's dnsmasq serves.
AUTO_PTR = {
    "10.79.1.131": "xapi1.lab.test",
    "10.79.1.132": "xend1.lab.test",
    "10.79.24.77": "xend2.lab.test",
    "10.79.27.5": "xapi2.lab.test",
}


@dataclass(frozen=True)
class AutoLab:
    """The running W5 lab.

    Attributes:
        admin: The namespace the measured tools run in (its interfaces are
            the networks auto-discovery finds).
        networks: Those networks, as explicit targets for tools that need them.
        own: The admin's own addresses in them (never probed).
        edges: Network and broadcast addresses, which auto-discovery skips too.
        open_ports: Every ``ADDRESS:PORT`` that listens.
        dns: The lab's DNS server (dnsmasq).
        kind: Which fakes serve (``xendiscover.testing`` or ``plain``).
    """

    admin: str
    networks: tuple[str, ...] = (AUTO_LAN, AUTO_WAN)
    own: tuple[str, ...] = (AUTO_LAN_ADMIN, AUTO_WAN_ADMIN)
    edges: tuple[str, ...] = ("10.79.1.0", "10.79.1.255", "10.79.16.0", "10.79.31.255")
    open_ports: frozenset[str] = field(
        default_factory=lambda: frozenset(f"{a}:{p}" for _, a, p in AUTO_SERVICES)
    )
    dns: str = AUTO_DNS
    kind: str = "?"

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the admin namespace."""
        return ["ip", "netns", "exec", self.admin, *argv]


def _sbin(tool: str) -> str:
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        if Path(directory, tool).exists():
            return str(Path(directory, tool))
    raise RuntimeError(f"{tool} is not installed")


def auto_available() -> str | None:
    """Why W5's lab cannot run here, or ``None`` if it can."""
    reason = available()
    if reason is None and not any(
        Path(d, "dnsmasq").exists() for d in ("/usr/sbin", "/sbin", "/usr/bin")
    ):
        return "needs dnsmasq (Debian's dnsmasq-base)"
    return reason


def _wan_ruleset() -> str:
    loss = f"numgen random mod 100 < {LOSS_PERCENT} drop"
    return f"""
table inet xdbench {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "eth0" {loss}
        iifname "eth0" ip daddr {AUTO_WAN_DARK} drop
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        oifname "eth0" {loss}
    }}
}}
"""


def _dnsmasq_argv() -> list[str]:
    argv = [
        _sbin("dnsmasq"),
        *("--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts"),
        *("--no-poll", "--bind-interfaces", f"--listen-address={AUTO_DNS}", "--port=53"),
        *("--bogus-priv", "--domain-needed", "--local=/lab.test/", "--pid-file="),
        "--user=root",
    ]
    return argv + [f"--host-record={name},{addr}" for addr, name in AUTO_PTR.items()]


def _wait_udp53(pid: int, deadline: float) -> None:
    """Wait until ``pid`` (dnsmasq, in the lan namespace) listens on UDP 53."""
    want = "".join(f"{int(x):02X}" for x in reversed(AUTO_DNS.split("."))) + ":0035"
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            udp = Path(f"/proc/{pid}/net/udp").read_text()
            if any(line.split()[1:2] == [want] for line in udp.splitlines()[1:]):
                return
        time.sleep(0.02)
    raise RuntimeError("dnsmasq did not listen in time")


@contextlib.contextmanager
def auto_lab() -> Iterator[AutoLab]:
    """Build W5's lab, start its fakes and DNS, yield it, then tear it all down."""
    tag = f"{os.getpid()}-{secrets.token_hex(2)}"
    admin, lan, wan = f"xdb-{tag}-a", f"xdb-{tag}-l", f"xdb-{tag}-w"
    etc = Path("/etc/netns") / admin
    made: list[str] = []
    dns: subprocess.Popen[bytes] | None = None
    try:
        for ns in (admin, lan, wan):
            _run(["ip", "netns", "add", ns])
            made.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # Every link is born inside the lab: nothing ever sits in this namespace.
        for mine, peer in (("lan0", lan), ("lossy0", wan)):
            veth = ("type", "veth", "peer", "name", "eth0", "netns", peer)
            _run(["ip", "-n", admin, "link", "add", mine, *veth])
        ipa, ipl, ipw = ("ip", "-n", admin), ("ip", "-n", lan), ("ip", "-n", wan)
        _run([*ipa, "addr", "add", f"{AUTO_LAN_ADMIN}/24", "dev", "lan0"])
        _run([*ipa, "addr", "add", f"{AUTO_WAN_ADMIN}/20", "dev", "lossy0", "noprefixroute"])
        for dev in ("lan0", "lossy0"):
            _run([*ipa, "link", "set", dev, "up"])
        # The /20 is routed via one neighbour: no ARP entry per swept address.
        _run([*ipa, "route", "add", f"{AUTO_WAN_PEER}/32", "dev", "lossy0", "scope", "link"])
        _run([*ipa, "route", "add", AUTO_WAN, "via", AUTO_WAN_PEER, "dev", "lossy0"])
        _run([*ipl, "addr", "add", f"{AUTO_LAN_PEER}/24", "dev", "eth0"])
        _run([*ipl, "link", "set", "eth0", "up"])
        _run([*ipl, "route", "add", "local", AUTO_LAN_LIT, "dev", "lo"])
        _run([*ipw, "addr", "add", f"{AUTO_WAN_PEER}/32", "dev", "eth0"])
        _run([*ipw, "link", "set", "eth0", "up"])
        _run([*ipw, "route", "add", "local", AUTO_WAN, "dev", "lo"])
        _run([*ipw, "route", "add", f"{AUTO_WAN_ADMIN}/32", "dev", "eth0", "table", "local"])
        _run(["ip", "netns", "exec", wan, "nft", "-f", "-"], stdin=_wan_ruleset())
        # `ip netns exec ADMIN` bind-mounts these over /etc: names come from the lab.
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {AUTO_DNS}\noptions timeout:1 attempts:2\n")
        (etc / "hosts").write_text("127.0.0.1\tlocalhost\n")
        dns = subprocess.Popen(
            ["ip", "netns", "exec", lan, *_dnsmasq_argv()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_udp53(dns.pid, time.monotonic() + _READY_TIMEOUT)
        lan_specs = [s for s in AUTO_SERVICES if s[1].startswith("10.79.1.")]
        wan_specs = [s for s in AUTO_SERVICES if not s[1].startswith("10.79.1.")]
        with (
            fake_services(lan_specs, prefix=["ip", "netns", "exec", lan]) as kind,
            fake_services(wan_specs, prefix=["ip", "netns", "exec", wan]),
        ):
            yield AutoLab(admin, kind=kind)
    finally:
        if dns is not None:
            dns.terminate()
            try:
                dns.wait(timeout=3)
            except subprocess.TimeoutExpired:
                dns.kill()
                dns.wait(timeout=3)
        for ns in reversed(made):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _run(["ip", "netns", "del", ns])
        with contextlib.suppress(OSError):
            for leftover in etc.iterdir():
                leftover.unlink()
            etc.rmdir()
