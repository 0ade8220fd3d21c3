"""The one signal policy: the command's and its probe processes'.

**The command.** From its first instruction (:func:`command`) SIGTERM raises
:class:`Terminated` wherever Python is, as Ctrl-C raises
``KeyboardInterrupt``. While a scan's event loop runs (:func:`during_loop`)
SIGTERM instead asks the loop to stop the scan, so everything found so far
is collected and printed. Either way the command ends with status 143
(SIGTERM) or 130 (SIGINT) and one line on stderr (:func:`stop`), never a
traceback.

**A probe process** (:func:`probe_process`). The scanning process owns
termination: a probe process ignores SIGINT (it runs in its own process
group anyway), exits at once and silently on SIGTERM, and dies with its
parent: Linux sends it SIGTERM when the parent goes, and a parent that was
gone before that was asked for (or, on other systems, any time) is caught by
comparing ``getppid()`` with the PID it was given.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

from xendiscover import _platform

__all__ = [
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Terminated",
    "command",
    "during_loop",
    "exit_if_orphaned",
    "probe_process",
    "stop",
]

#: Exit statuses of a run a signal ended.
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(BaseException):
    """SIGTERM arrived while no event loop was running (raised by the handler)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def command() -> None:
    """Make SIGTERM raise :class:`Terminated`: the command's first instruction."""
    signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def during_loop(on_term: Callable[[], None]) -> Iterator[None]:
    """While the running event loop runs: SIGTERM calls ``on_term`` in the loop.

    A Python-level handler that hands over to the loop, not the loop's own
    ``add_signal_handler``: closing the loop would put SIGTERM back to its
    default (death with no output) for as long as the clean-up takes.
    Afterwards SIGTERM raises :class:`Terminated` again.
    """
    import asyncio  # the command's start-up does not load asyncio for this

    loop = asyncio.get_running_loop()
    signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(on_term))
    try:
        yield
    finally:
        command()


def stop(code: int) -> NoReturn:
    """End the command for a signal: one line on stderr, then ``code`` (130 or 143)."""
    name = "SIGTERM" if code == EXIT_SIGTERM else "SIGINT"
    sys.stderr.write(f"xendiscover: interrupted ({name})\n")
    sys.exit(code)


def probe_process(parent: int | None) -> None:
    """A probe process's policy; ``parent`` is the scanning process's PID, if given.

    Without ``PR_SET_PDEATHSIG`` (see :mod:`xendiscover._platform`), the
    probe process's progress reports call :func:`exit_if_orphaned`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(EXIT_SIGTERM))
    if parent is None:
        return
    if _platform.FEATURES.pdeathsig:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    exit_if_orphaned(parent)  # the parent may have died before prctl took effect


def exit_if_orphaned(parent: int | None) -> None:
    """In a probe process: exit at once, silently, if ``parent`` is no longer its parent."""
    if parent is not None and os.getppid() != parent:
        os._exit(EXIT_SIGTERM)
