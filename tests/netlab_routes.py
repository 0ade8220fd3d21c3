"""A second namespace lab: subnets behind a router, and an IPv6 segment (issue 24).

Built like :mod:`netlab` (same helpers, names ``xdl-<pid>-<hex4>-<role>``, torn
down whatever happens); nothing touches the machine's own interfaces::

    scn (the scanner)
      up0   10.78.1.1/24, 2001:db8:78::1/64, fd78::1/64  -> sw (bridge br0)
      rt0   10.78.2.1/30                                 -> rtr eth0 10.78.2.2
      vpn0  10.8.0.2 peer 10.8.0.1 (tun: point-to-point, no reader)
      routes: 10.78.64.0/24 and 10.78.80.0/20 via 10.78.2.2   (swept with --routes)
              default via 10.78.2.2                           (ignored)
              0.0.0.0/1, 128.0.0.0/1 dev vpn0; 10.78.72.0/24 via 10.8.0.1 (VPN: ignored)
              blackhole 10.78.96.0/24                         (ignored)
              10.78.112.0/24 via 10.78.2.2, but a rule sends it to table 100's
              blackhole (policy routing: ignored)
    rtr  eth0 10.78.2.2/30, eth1 10.78.3.1/30 -> far; forwards
    far  owns 10.78.64.0/24, 10.78.80.0/20 and 10.78.200.0/24 (reached only by
         the scanner's default route: a trap) on lo; Xen fakes in each
    sw   bridge br0: the scanner's up0 and three IPv6 hosts
    hg   2001:db8:78::10 (global) + link-local, 10.78.1.250/24; Xen fakes on both
    hu   fd78::20 (ULA only) + link-local; a Xen fake on the ULA
    hl   link-local only (with on-link routes to the segment's /64s, as a router
         advertisement without autoconfiguration leaves); answers echo, serves nothing

Every namespace has IPv6 duplicate address detection off, so link-local
addresses are usable at once. ``ping_group_range`` is set in the scanner by
the tests (:meth:`RouteLab.ping_groups`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import netlab


@dataclass(frozen=True)
class RouteTopology:
    """The addresses of :class:`RouteLab` (the same in every run)."""

    port: int = 8002
    local_net: str = "10.78.1.0/24"
    routed24: str = "10.78.64.0/24"
    routed20: str = "10.78.80.0/20"
    default_only_net: str = "10.78.200.0/24"
    blackhole_net: str = "10.78.96.0/24"
    vpn_net: str = "10.78.72.0/24"
    policy_net: str = "10.78.112.0/24"
    routed_xen: tuple[str, ...] = ("10.78.64.10", "10.78.64.200", "10.78.85.5", "10.78.95.254")
    trap_xen: tuple[str, ...] = ("10.78.200.10",)
    v6_global: str = "2001:db8:78::10"
    v6_ula: str = "fd78::20"
    scanner_v6: tuple[str, ...] = ("2001:db8:78::1", "fd78::1")
    local_xen: str = "10.78.1.250"


class RouteLab(netlab.Lab):
    """The routed-subnets and IPv6 lab; a context manager like :class:`netlab.Lab`."""

    ROLES = ("scn", "rtr", "far", "sw", "hg", "hu", "hl")

    def __init__(self, *, python: str | None = None) -> None:
        super().__init__(loss_percent=0, python=python)
        self.rtopo = RouteTopology()
        self.ns = {role: f"{self.tag}-{role}" for role in self.ROLES}
        self.scanner = self.ns["scn"]
        self.admin = self.scanner
        self.namespaces = tuple(self.ns.values())

    def describe(self) -> str:
        """One line: where the scanner runs."""
        return f"route lab {self.tag}: scanner namespace {self.scanner}"

    def ping_groups(self, low: int, high: int) -> None:
        """Set the scanner's ``net.ipv4.ping_group_range`` (per namespace; IPv6 too)."""
        self._sysctl(self.scanner, "net.ipv4.ping_group_range", f"'{low} {high}'")

    def flush_neighbours(self) -> None:
        """Empty the scanner's neighbour tables (IPv4 and IPv6)."""
        for family in ("-4", "-6"):
            netlab._run([netlab._ip(), "-n", self.scanner, family, "neigh", "flush", "all"])

    def _commands(self, ns: str, lines: Sequence[str]) -> None:
        for line in lines:
            self._ipn(ns, *line.split())

    def _build(self) -> None:
        t = self.rtopo
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        for ns in self.namespaces:
            netlab._run([netlab._ip(), "netns", "add", ns])
            self._sysctl(ns, "net.ipv6.conf.default.accept_dad", "0")
            self._sysctl(ns, "net.ipv6.conf.all.accept_dad", "0")
            self._ipn(ns, "link", "set", "lo", "up")
        n = self.ns
        self._veth(n["scn"], "up0", n["sw"], "s0")
        self._veth(n["scn"], "rt0", n["rtr"], "eth0")
        self._veth(n["rtr"], "eth1", n["far"], "eth0")
        for host, port in (("hg", "s1"), ("hu", "s2"), ("hl", "s3")):
            self._veth(n[host], "eth0", n["sw"], port)
        self._commands(
            n["sw"],
            [
                "link add br0 type bridge",
                *(f"link set {p} master br0" for p in ("s0", "s1", "s2", "s3")),
                *(f"link set {p} up" for p in ("br0", "s0", "s1", "s2", "s3")),
            ],
        )
        self._commands(
            n["scn"],
            [
                "addr add 10.78.1.1/24 dev up0",
                *(f"addr add {a}/64 dev up0 nodad" for a in t.scanner_v6),
                "addr add 10.78.2.1/30 dev rt0",
                "tuntap add dev vpn0 mode tun",
                "addr add 10.8.0.2 peer 10.8.0.1 dev vpn0",
                "link set up0 up",
                "link set rt0 up",
                "link set vpn0 up",
                f"route add {t.routed24} via 10.78.2.2",
                f"route add {t.routed20} via 10.78.2.2",
                "route add default via 10.78.2.2",
                "route add 0.0.0.0/1 dev vpn0",
                "route add 128.0.0.0/1 dev vpn0",
                f"route add {t.vpn_net} via 10.8.0.1 dev vpn0 onlink",
                f"route add blackhole {t.blackhole_net}",
                f"route add {t.policy_net} via 10.78.2.2",
                f"route add blackhole {t.policy_net} table 100",
                f"rule add to {t.policy_net} lookup 100",
            ],
        )
        self._commands(
            n["rtr"],
            [
                "addr add 10.78.2.2/30 dev eth0",
                "addr add 10.78.3.1/30 dev eth1",
                "link set eth0 up",
                "link set eth1 up",
                *(
                    f"route add {net} via 10.78.3.2"
                    for net in (t.routed24, t.routed20, t.default_only_net, t.blackhole_net)
                ),
            ],
        )
        self._sysctl(n["rtr"], "net.ipv4.ip_forward", "1")
        self._commands(
            n["far"],
            [
                "addr add 10.78.3.2/30 dev eth0",
                "link set eth0 up",
                "route add default via 10.78.3.1",
                *(
                    f"route add local {net} dev lo"
                    for net in (t.routed24, t.routed20, t.default_only_net, t.blackhole_net)
                ),
            ],
        )
        self._commands(
            n["hg"],
            [
                f"addr add {t.v6_global}/64 dev eth0 nodad",
                f"addr add {t.local_xen}/24 dev eth0",
                "link set eth0 up",
            ],
        )
        self._commands(n["hu"], [f"addr add {t.v6_ula}/64 dev eth0 nodad", "link set eth0 up"])
        self._commands(
            n["hl"],
            [
                "link set eth0 up",
                "route add 2001:db8:78::/64 dev eth0",  # on-link prefixes (as from an RA),
                "route add fd78::/64 dev eth0",  # so it can answer the scanner's echo
            ],
        )
        servers = [
            self._start_serve(n["far"], xen=[*t.routed_xen, *t.trap_xen], http=[]),
            self._start_serve(n["hg"], xen=[t.v6_global, t.local_xen], http=[]),
            self._start_serve(n["hu"], xen=[t.v6_ula], http=[]),
        ]
        deadline = time.monotonic() + netlab.READY_TIMEOUT
        for proc, ns in servers:
            self._wait_ready(proc, ns, deadline)
        self._sysctl(n["scn"], "net.ipv4.ping_group_range", "'0 2147483647'")
        self.wait_ipv6_echo(n["scn"], "up0", t.scanner_v6[0], t.v6_global)


if __name__ == "__main__":
    with RouteLab() as the_lab:
        print(the_lab.describe(), flush=True)
        argv = [the_lab.python, "-m", "xendiscover", *sys.argv[1:]]
        proc = the_lab.run(the_lab.scanner, argv, timeout=300)
        print(proc.stdout, proc.stderr, sep="\n")
