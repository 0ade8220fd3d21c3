"""How big a sweep's window is, and how many probe processes it uses."""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "MAX_WORKERS",
    "WORKER_THRESHOLD",
    "auto_workers",
    "default_window",
    "raise_open_file_limit",
]

#: Sweeps of fewer probes than this stay in one process: starting a probe
#: process costs about 0.1 s, which a smaller sweep would not win back.
WORKER_THRESHOLD = 32_768

#: The most probe processes a scan starts, whatever the core count.
MAX_WORKERS = 8

#: The largest default window, and the descriptors kept back for everything
#: else a scan opens (DNS, fingerprint connections, the event loop). Pending
#: connects to dark addresses are what a window holds; on the W5 lab (seven
#: ports, half of 4,346 addresses dark) 16,384 of them swept in 3.1 s where
#: 4,096 took 5.6 s (docs/performance.md). Beyond it each pending connect
#: still costs a socket in the kernel and the sweep is bound by CPU, not
#: by waiting.
WINDOW_CAP = 16_384
WINDOW_HEADROOM = 128


def auto_workers(total: int) -> int:
    """How many probe processes suit a sweep of ``total`` probes on this machine."""
    if total < WORKER_THRESHOLD:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def _nofile() -> tuple[int, int] | None:
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)
    return None


def default_window(cap: int = WINDOW_CAP, headroom: int = WINDOW_HEADROOM) -> int:
    """The default connect window, sized from the soft open-file limit as it is now.

    Keeps ``headroom`` descriptors (at most half the limit) for everything
    else. Changes no limit: a program that wants a larger window calls
    :func:`raise_open_file_limit` first (the command line does).
    """
    limits = _nofile()
    if limits is None:
        return 256
    import resource

    soft = limits[0]
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(1, min(cap, soft - min(headroom, soft // 2)))


def raise_open_file_limit(wanted: int = WINDOW_CAP + WINDOW_HEADROOM) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` toward the hard limit; return it.

    Only a program that owns its process should call this (the command line
    does; the library never does: an application that still uses
    ``select()`` must not be handed descriptors above 1024 behind its back).
    """
    limits = _nofile()
    if limits is None:
        return 0
    import resource

    soft, hard = limits
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft
