"""A userspace delay router over two TUN devices: a far link without ``netem``.

This kernel has no ``sch_netem``, so the far-site lab (``tests/farlab.py``)
builds its long, lossy link here: one TUN device in the namespace this
process starts in, one in another namespace (entered with ``setns``), and a
loop that forwards every IP packet from one to the other after a random
one-way delay, dropping a share of them each way::

    gw namespace                       far namespace
    dly0 (TUN) ── this process ──────► dly1 (TUN)
          ◄─── delay 300-400 ms, 2 % loss, each way ───

Packets keep their order in each direction (a packet never overtakes the
one before it), as on a real long link. Run as root, inside the first
namespace (``ip netns exec NS python tests/delay_router.py ...``); it prints
``ready`` once both devices exist, and exits on SIGTERM, SIGINT or the end
of its standard input. The devices vanish with the process.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import heapq
import os
import random
import select
import signal
import struct
import sys
import time
from collections.abc import Sequence

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_CLONE_NEWNET = 0x40000000
#: The largest packet read from a TUN device (its MTU is the default 1500).
_MTU = 65535


def open_tun(name: str) -> int:
    """Create TUN device ``name`` in this process's namespace; return its descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return fd


def enter_namespace(path: str) -> None:
    """Move this thread into the network namespace at ``path`` (``/run/netns/NAME``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Link:
    """One direction of the link: packets waiting for their delivery time."""

    def __init__(self, out: int, delay: tuple[float, float], loss: float, rng: random.Random):
        self.out = out
        self._delay = delay
        self._loss = loss
        self._rng = rng
        self._last = 0.0
        self.queue: list[tuple[float, int, bytes]] = []
        self._order = 0
        self.forwarded = 0
        self.dropped = 0

    def take(self, packet: bytes, now: float) -> None:
        """Queue ``packet`` for delivery, or drop it."""
        if self._rng.random() < self._loss:
            self.dropped += 1
            return
        due = max(now + self._rng.uniform(*self._delay), self._last)
        self._last = due
        self._order += 1
        heapq.heappush(self.queue, (due, self._order, packet))

    def deliver(self, now: float) -> None:
        """Write every packet that is due."""
        while self.queue and self.queue[0][0] <= now:
            _, _, packet = heapq.heappop(self.queue)
            try:
                os.write(self.out, packet)
                self.forwarded += 1
            except OSError:  # the device is down or its queue full: lost, as on a wire
                self.dropped += 1

    def next_due(self) -> float | None:
        """When the next packet is due, if any."""
        return self.queue[0][0] if self.queue else None


def route(a: int, b: int, delay: tuple[float, float], loss: float, seed: int | None) -> None:
    """Forward between TUN descriptors ``a`` and ``b`` until told to stop."""
    rng = random.Random(seed)
    links = {a: Link(b, delay, loss, rng), b: Link(a, delay, loss, rng)}
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watched = [a, b, sys.stdin.fileno()]
    while not stop:
        now = time.monotonic()
        dues = [d for link in links.values() if (d := link.next_due()) is not None]
        wait = max(0.0, min(dues) - now) if dues else 1.0
        try:
            readable, _, _ = select.select(watched, [], [], wait)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in readable:
            if fd not in links:
                if not os.read(fd, 4096):
                    stop = True
                continue
            for _ in range(64):  # drain what is there, a bounded batch at a time
                try:
                    packet = os.read(fd, _MTU)
                except BlockingIOError:
                    break
                links[fd].take(packet, now)
        for link in links.values():
            link.deliver(now)
    stats = {fd: (link.forwarded, link.dropped) for fd, link in links.items()}
    print(f"forwarded/dropped per direction: {list(stats.values())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Create the two devices, print ``ready``, and route until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--near", default="dly0", help="the TUN device made here")
    parser.add_argument("--far", default="dly1", help="the TUN device made in --far-netns")
    parser.add_argument("--far-netns", required=True, help="/run/netns/NAME of the far end")
    parser.add_argument("--delay", nargs=2, type=float, default=(0.3, 0.4), metavar=("MIN", "MAX"))
    parser.add_argument("--loss", type=float, default=0.02, help="the share dropped each way")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    near = open_tun(args.near)
    enter_namespace(args.far_netns)
    far = open_tun(args.far)
    print("ready", flush=True)
    route(near, far, (args.delay[0], args.delay[1]), args.loss, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
