"""What this operating system offers beyond portable Python, detected, never assumed.

xendiscover runs wherever Python's ``selectors`` and non-blocking sockets do
(Linux, macOS, the BSDs). A few Linux features make it better; each is
detected here, once, and its absence costs one thing, documented in
``docs/architecture.md`` ("Other systems"):

========================  ====================================================
feature                   without it
========================  ====================================================
``recverr``               An ICMP "host unreachable" cannot be told from
                          another unreachable answer: it ends only its own
                          probe, never the address's other ports (a dark LAN
                          address costs each port its ARP time-out).
``pdeathsig``             A probe process notices that its parent is gone
                          within its progress cadence (0.1 s), not at once.
``ifflags``               Interface auto-discovery cannot see which
                          interfaces are down, and sweeps every interface
                          that has an address.
``reuse_failed_socket``   A socket whose connect was refused is closed and a
                          new one made for the next probe (Linux lets it
                          connect again: a third of a refused probe's work).
``sock_nonblock``         Sockets are made, then set non-blocking: one
                          system call more per probe.
========================  ====================================================

``XENDISCOVER_PORTABLE=1`` in the environment turns all of them off (the
tests run the portable path on Linux that way); tests may also replace
:data:`FEATURES`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import sys
from dataclasses import dataclass

__all__ = ["FEATURES", "Features", "detect"]

#: The environment variable that turns every optional feature off.
PORTABLE_ENV = "XENDISCOVER_PORTABLE"


@dataclass(frozen=True, slots=True)
class Features:
    """The optional system features this process may use (see the module docstring)."""

    recverr: bool = False
    pdeathsig: bool = False
    ifflags: bool = False
    reuse_failed_socket: bool = False
    sock_nonblock: bool = False


def _has_prctl() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return False
    return hasattr(libc, "prctl")


def detect(environ: dict[str, str] | None = None) -> Features:
    """The features of this system, or none of them with ``XENDISCOVER_PORTABLE=1``."""
    env = os.environ if environ is None else environ
    if env.get(PORTABLE_ENV, "") not in ("", "0"):
        return Features()
    linux = sys.platform.startswith("linux")
    return Features(
        recverr=linux,
        pdeathsig=linux and _has_prctl(),
        ifflags=linux,
        reuse_failed_socket=linux,
        sock_nonblock=hasattr(socket, "SOCK_NONBLOCK") and hasattr(socket, "SOCK_CLOEXEC"),
    )


#: What this process uses; replace it (tests) to run another platform's path.
FEATURES = detect()
