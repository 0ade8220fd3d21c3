"""A two-namespace lab for the routed workloads (W2 dark space, W3 lossy /16).

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
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fakes import fake_servers

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
