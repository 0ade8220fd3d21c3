"""Ctrl-C and SIGTERM: print what was found so far, exit 130 / 143."""

import signal
import socket
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_scan_prints_hosts_so_far(sig: signal.Signals, code: int) -> None:
    # A loopback /12 takes seconds: long enough to interrupt, and the one
    # listener sits at its start so it is found before the signal.
    base = 16 * (2 + int(time.time()) % 5)
    with socket.socket() as listener:  # closed even if the bind fails
        listener.bind((f"127.{base}.0.5", 8002))
        listener.listen()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xendiscover",
                "-p",
                "8002",
                "--no-resolve",
                "--no-fingerprint",
                "--max-hosts",
                "2000000",
                f"127.{base}.0.0/12",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert out.split() == [f"127.{base}.0.5"]
    assert "Traceback" not in err
