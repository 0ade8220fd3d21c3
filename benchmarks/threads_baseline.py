"""The 2007 seed's algorithm: one thread per address, a blocking connect each.

What the seed did, and what this does the same way:

1. **A thread for every address.** It walked the network and started one
   thread per address, all of them before waiting for any; so does this.
2. **One blocking connect with a timeout, to the literal address.** Each
   thread made a socket, set its timeout, and called ``connect((ip, port))``
   with the IP as a string: CPython parses a numeric address itself, so there
   is no ``getaddrinfo`` (no name service) per address. No retries: a SYN or
   SYN-ACK that is lost is a host missed, as it was then.
3. **Hits collected, threads joined.** Each thread appends its hit to a list
   under a lock; the main thread joins the threads and then prints the hits.
4. **Then names.** The seed reverse-resolved the hits after the join. The
   benchmark compares against xendiscover ``--no-resolve``, so that step is
   left out here (it would only add the resolver's time to both sides).

Where it has to differ, and why that does not favour xendiscover:

- Linux bounds live threads (``kernel.pid_max``, 32,768 on many machines,
  shared with every other process). A /16 cannot have 65,536 threads at
  once, so at most ``--max-threads`` (8,192) are alive; the next starts as
  soon as one ends, which is what the seed's loop would have done had
  ``Thread.start`` waited instead of failing. On every workload smaller than
  that (the dark /21, the W5 lab) the bound never binds: all threads run at
  once, exactly as in 2007.
- Finished threads are joined as the sweep goes and dropped, so the list of
  ``Thread`` objects never holds more than twice the live bound: joining is
  the seed's, keeping 65,536 dead objects around was not part of its design
  (it ran on /24s).
- The seed probed one port. Given several (``--port`` repeated), each
  address's thread tries them in turn, each with its own timeout: still one
  thread per address. A dark address then costs one timeout per port.
- Thread stacks are 256 KiB (virtual): it changes no resident memory, only
  the address space reserved.

Run::

    python benchmarks/threads_baseline.py --port 8002 --timeout 1 127.9.0.0/16

Prints one ``ADDRESS PORT`` line per open port.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator, Sequence


def addresses(targets: Sequence[str], exclude: Sequence[str] = ()) -> Iterator[str]:
    """Every address of ``targets`` (networks' usable hosts), minus ``exclude``."""
    skip = {ipaddress.ip_address(a) for a in exclude}
    for target in targets:
        network = ipaddress.ip_network(target, strict=False)
        for address in network.hosts() if network.num_addresses > 2 else network:
            if address not in skip:
                yield str(address)


def probe(address: str, ports: Sequence[int], timeout: float) -> list[int]:
    """Blocking connects to each of ``ports`` on ``address``; the ports that accepted."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    open_ports: list[int] = []
    for port in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))  # a literal IP: no getaddrinfo
        except OSError:
            continue
        else:
            open_ports.append(port)
        finally:
            sock.close()
    return open_ports


def sweep(
    targets: Sequence[str],
    ports: Sequence[int],
    timeout: float,
    max_threads: int,
    exclude: Sequence[str] = (),
) -> list[tuple[str, int]]:
    """One thread per address of ``targets``; return the open ``(address, port)`` pairs."""
    found: list[tuple[str, int]] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(max_threads)

    def run(address: str) -> None:
        try:
            hits = probe(address, ports, timeout)
            if hits:
                with lock:
                    found.extend((address, port) for port in hits)
        finally:
            slots.release()

    threading.stack_size(256 * 1024)
    started: collections.deque[threading.Thread] = collections.deque()
    for address in addresses(targets, exclude):
        slots.acquire()
        thread = threading.Thread(target=run, args=(address,), daemon=True)
        thread.start()
        started.append(thread)
        while started and not started[0].is_alive():
            started.popleft().join()
        if len(started) >= 2 * max_threads:  # one slow thread at the head: compact
            for done in [t for t in started if not t.is_alive()]:
                done.join()
            started = collections.deque(t for t in started if t.is_alive())
    for thread in started:
        thread.join()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, sweep, print what answered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--max-threads", type=int, default=8192)
    parser.add_argument("--exclude", action="append", default=[], help="an address to skip")
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    hits = sweep(args.targets, args.port, args.timeout, args.max_threads, args.exclude)
    sys.stdout.write("".join(f"{address} {port}\n" for address, port in hits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
