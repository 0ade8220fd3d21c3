"""Run the real command with stderr on a pseudo-terminal and stdout a pipe (issue 21).

What an administrator's shell does to ``xendiscover ... | wc -l``: the live
display sees a terminal, the data goes down a pipe. :func:`run_in_pty`
records both, apart, and the exit status.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class PtyRun:
    """One run: its status, what reached stdout (a pipe), what reached the terminal."""

    code: int
    stdout: str
    terminal: str


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's last writer has gone
        return b""


def run_in_pty(
    args: Sequence[str],
    *,
    prefix: Sequence[str] = (),
    timeout: float = 60.0,
    interrupt_when: str | None = None,
    columns: int = 160,
) -> PtyRun:
    """Run ``python -m xendiscover ARGS`` (behind ``prefix``, e.g. ``ip netns exec``).

    Args:
        args: The command's arguments.
        prefix: Put before the interpreter (a namespace).
        timeout: Seconds before the run is killed and this raises.
        interrupt_when: Send SIGINT once the terminal shows this text.
        columns: The terminal's width.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-m", "xendiscover", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    assert proc.stdout is not None
    out, term = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    signalled = interrupt_when is None
    open_fds = {proc.stdout.fileno(), master}
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{args} did not end in {timeout} s: {bytes(term)!r}")
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.2))
            for fd in ready:
                chunk = _read(fd)
                if not chunk:
                    open_fds.discard(fd)
                (out if fd != master else term).extend(chunk)
            if not signalled and interrupt_when is not None and interrupt_when.encode() in term:
                proc.send_signal(signal.SIGINT)
                signalled = True
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        proc.stdout.close()
    return PtyRun(code, out.decode(), term.decode(errors="replace"))
