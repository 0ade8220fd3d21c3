"""Issue 13: output failures, a group-wide SIGTERM, a pending connect's late callback.

Each scan here runs the real command on loopback, against addresses the
test bound or nothing at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Listen, hosts_of

from xendiscover._backend._socket import _Connects

CLI = [sys.executable, "-m", "xendiscover", "--no-resolve", "-p", "8002"]


def test_an_unwritable_output_file_is_refused_before_the_first_packet(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [*CLI, "--max-hosts", "2000000", "-o", str(tmp_path / "no" / "x.json"), "127.16.0.0/12"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert time.monotonic() - started < 5  # a /12 sweep takes longer: nothing was swept
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1
    assert "cannot create a file in" in proc.stderr
    assert "No such file or directory" in proc.stderr


def test_a_full_disk_is_one_line_and_status_4(loopback_net: str, listeners: Listen) -> None:
    listeners(hosts_of(loopback_net, 9), 8002)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*CLI, "--no-fingerprint", loopback_net], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 4
    assert proc.stderr == "xendiscover: error: cannot write the output: No space left on device\n"


def test_a_closed_stdout_is_refused_up_front(loopback_net: str) -> None:
    proc = subprocess.run(
        [*CLI, loopback_net], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=60, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert proc.returncode == 4
    assert proc.stderr == "xendiscover: error: stdout is closed; name a file with -o\n"


def test_a_closed_pipe_while_streaming_ends_the_scan_quietly(
    loopback_net: str, listeners: Listen
) -> None:
    listeners(hosts_of(loopback_net, *range(1, 400, 7)), 8002)
    reader, writer = os.pipe()
    os.close(reader)  # nobody reads: the first write gets EPIPE
    proc = subprocess.run(
        [*CLI, "--no-fingerprint", "-f", "jsonl", loopback_net], stdout=writer,
        stderr=subprocess.PIPE, text=True, timeout=60,
    )  # fmt: skip
    os.close(writer)
    assert proc.returncode == 141  # as a filter SIGPIPE ends (issue 21): no message
    assert proc.stderr == ""


@pytest.mark.parametrize("value", ["inf", "1e308", "61", "nan"])
def test_unbounded_timeouts_are_refused(value: str) -> None:
    proc = subprocess.run([*CLI, "--timeout", value, "127.0.0.1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "timeout" in proc.stderr


def test_sigterm_to_the_whole_process_group_is_143_not_3(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_text("previous\n")
    proc = subprocess.Popen(
        [*CLI, "--workers", "2", "--max-hosts", "2000000", "-f", "json", "-o", str(out),
         "127.16.0.0/12"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    time.sleep(1.5)  # mid-sweep, probe processes running
    os.killpg(proc.pid, signal.SIGTERM)  # as a terminal, a service manager or timeout(1) does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err
    assert out.read_text() == "previous\n"
    assert Path(f"{out}.partial").exists()


async def test_a_writer_callback_after_cancellation_touches_nothing() -> None:
    # The race of issue 13: the socket became writable (its callback queued)
    # and then the caller cancelled. The late callback must neither set a
    # result on the cancelled future nor release the descriptor twice.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    connects = _Connects(asyncio.get_running_loop())
    pending = connects.watch(sock, time.perf_counter(), 10.0)
    pending.future.cancel()
    await asyncio.sleep(0)  # the done-callback releases the socket
    assert sock.fileno() == -1
    pending.writable()  # the queued writer callback, run late
    pending.expired()  # and the timer, had it fired
    assert pending.future.cancelled()
    connects.close()


async def test_a_pending_connect_settles_once_whichever_comes_first(listeners: Listen) -> None:
    (server,) = listeners(["127.0.0.1"], 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    sock.connect_ex(server.getsockname())
    connects = _Connects(asyncio.get_running_loop())
    pending = connects.watch(sock, time.perf_counter(), 10.0)
    result = await asyncio.wait_for(pending.future, 5)
    pending.expired()  # the timer firing after the answer changes nothing
    assert pending.future.result() is result
    assert sock.fileno() == -1
    connects.close()
