"""The 2007 design, for reference: one thread per address, a blocking connect.

Each address gets its own thread that does a blocking ``connect`` with a
timeout and reports the address if the port accepted. No retries, no name
lookups (the reverse lookup the 2007 tool did is skipped, as xendiscover runs
with ``--no-resolve``). Linux caps the number of live threads (``pid_max``,
``threads-max``), so at most ``--max-threads`` run at once; a new one starts
as soon as one ends::

    python benchmarks/threads_baseline.py --port 8002 --timeout 1 127.9.0.0/16

Prints one open address per line.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
from collections.abc import Sequence


def sweep(targets: Sequence[str], port: int, timeout: float, max_threads: int) -> list[str]:
    """Connect to ``port`` on every address of ``targets``; return the open ones."""
    found: list[str] = []
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(max_threads)

    def probe(address: str) -> None:
        try:
            with socket.create_connection((address, port), timeout=timeout), lock:
                found.append(address)
        except OSError:
            pass
        finally:
            slots.release()

    threading.stack_size(256 * 1024)
    threads: list[threading.Thread] = []
    for target in targets:
        for address in ipaddress.ip_network(target, strict=False):
            slots.acquire()
            thread = threading.Thread(target=probe, args=(str(address),), daemon=True)
            thread.start()
            threads.append(thread)
    for thread in threads:
        thread.join()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, sweep, print what answered."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--max-threads", type=int, default=8192)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    for address in sweep(args.targets, args.port, args.timeout, args.max_threads):
        sys.stdout.write(address + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
