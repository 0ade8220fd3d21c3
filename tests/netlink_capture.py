"""Record the kernel's netlink replies inside a namespace built for it (issue 24).

The bytes in ``tests/test_netlink.py`` came from ``python tests/netlink_capture.py``
(as root): it builds one namespace (``xdl-<pid>-<hex4>-cap``) with the routes
and neighbours below, asks the kernel inside it, prints each reply as hex,
and deletes the namespace. Nothing of this machine's own tables is read.

Inside the namespace (interface indexes in brackets)::

    lo [1]
    gw0 [3] 10.77.2.1/30, fd77:2::1/64        veth, peer gw0p [2] (up)
    vpn0 [4] 10.8.0.2 peer 10.8.0.1           tun, point-to-point
    routes (main): 10.77.64.0/24 via 10.77.2.2; 10.77.80.0/20 via 10.77.2.2;
                   default via 10.77.2.2; 0.0.0.0/1 and 128.0.0.0/1 dev vpn0;
                   10.77.99.9 via 10.77.2.2; blackhole 10.77.96.0/24;
                   unreachable 10.77.97.0/24; prohibit 10.77.98.0/24;
                   10.77.72.0/24 via 10.8.0.1 dev vpn0;
                   fd77:99::/48 via fd77:2::2
    table 100:     blackhole 10.77.80.0/20, chosen by: ip rule add to 10.77.80.0/20 lookup 100
    neighbours:    10.77.2.2 reachable, 10.77.2.3 stale, 10.77.2.4 failed (no lladdr),
                   fd77:2::2 reachable, fe80::2 stale (on gw0)
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SETUP = """
link set lo up
link add gw0 type veth peer name gw0p
tuntap add dev vpn0 mode tun
addr add 10.77.2.1/30 dev gw0
addr add fd77:2::1/64 dev gw0 nodad
addr add 10.8.0.2 peer 10.8.0.1 dev vpn0
link set gw0 up
link set gw0p up
link set vpn0 up
route add 10.77.64.0/24 via 10.77.2.2
route add 10.77.80.0/20 via 10.77.2.2
route add default via 10.77.2.2
route add 0.0.0.0/1 dev vpn0
route add 128.0.0.0/1 dev vpn0
route add 10.77.99.9/32 via 10.77.2.2
route add blackhole 10.77.96.0/24
route add unreachable 10.77.97.0/24
route add prohibit 10.77.98.0/24
route add 10.77.72.0/24 via 10.8.0.1 dev vpn0 onlink
route add fd77:99::/48 via fd77:2::2
route add blackhole 10.77.80.0/20 table 100
rule add to 10.77.80.0/20 lookup 100
neigh add 10.77.2.2 lladdr 02:00:00:00:02:02 dev gw0 nud reachable
neigh add 10.77.2.3 lladdr 02:00:00:00:02:03 dev gw0 nud stale
neigh add 10.77.2.4 dev gw0 nud failed
neigh add fd77:2::2 lladdr 02:00:00:00:02:02 dev gw0 nud reachable
neigh add fe80::2 lladdr 02:00:00:00:02:02 dev gw0 nud stale
"""

LOOKUPS = ("10.77.64.1", "10.77.80.1", "10.77.96.1", "10.77.72.1")


def capture() -> None:
    """Inside the namespace: print each reply as ``name hex``."""
    from xendiscover import _netlink as nl

    for family, tag in ((socket.AF_INET, "4"), (socket.AF_INET6, "6")):
        print(f"routes{tag}", nl.exchange(nl.route_dump(family)).hex())
        print(f"neigh{tag}", nl.exchange(nl.neighbour_dump(family)).hex())
    for address in LOOKUPS:
        print(f"get {address}", nl.exchange(nl.route_lookup(ipaddress.ip_address(address))).hex())


def main() -> None:
    import netlab

    ns = f"{netlab.NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(2)}-cap"
    ip = netlab.which("ip")
    assert ip is not None
    subprocess.run([ip, "netns", "add", ns], check=True)
    try:
        for line in SETUP.strip().splitlines():
            subprocess.run([ip, "-n", ns, *line.split()], check=True)
        subprocess.run(
            [ip, "netns", "exec", ns, sys.executable, __file__, "--inside"], check=True, timeout=30
        )
    finally:
        netlab.delete_namespace(ns)


if __name__ == "__main__":
    capture() if sys.argv[1:] == ["--inside"] else main()
