"""Local limits: a low open-file limit changes how fast, never what is found.

Runs in a network namespace made here, where nftables drops SYNs to most of
a loopback /23, so connects stay pending and hold descriptors, and the
process (under a low RLIMIT_NOFILE) runs out of them.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run_xendiscover

HERE = Path(__file__).parent
pytestmark = pytest.mark.netns

LISTENERS = ["127.99.0.7", "127.99.0.200", "127.99.1.33", "127.99.1.254"]
LOW_LIMIT = 48


def _reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None or shutil.which("nft") is None:
        return "needs iproute2 and nftables"
    return None


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if (reason := _reason()) is not None:
        pytest.skip(reason)
    ns = f"xdrl{os.getpid() % 100000}{random.randrange(100, 999)}"
    responder = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=10)
        allowed = ", ".join(LISTENERS)
        rules = f"""
            table inet lab {{
                chain out {{
                    type filter hook output priority 0;
                    ip daddr {{ {allowed} }} accept
                    ip daddr 127.99.0.0/23 tcp dport 8002 tcp flags syn drop
                }}
            }}
        """
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input=rules,
            text=True,
            check=True,
            timeout=10,
        )
        responder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                str(HERE / "xend_responder.py"),
                *LISTENERS,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert responder.stdout is not None
        assert responder.stdout.readline().strip() == "ready"
        yield ns
    finally:
        if responder is not None:
            responder.terminate()
            responder.communicate(timeout=5)  # reaps it and closes our end of its stdout
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def sweep(ns: str, nofile: int | None, *args: str) -> subprocess.CompletedProcess[str]:
    return run_xendiscover(
        "-p", "8002", "--no-resolve", "--no-fingerprint", "--timeout", "0.3", "--retries", "0",
        "-v", *args, "127.99.0.0/23", nofile=nofile, netns=ns, timeout=120,
    )  # fmt: skip


def backoffs(stderr: str) -> int:
    match = re.search(r"(\d+) back-offs", stderr)
    assert match, stderr
    return int(match.group(1))


def test_a_low_file_limit_finds_the_same_hosts(namespace: str) -> None:
    roomy = sweep(namespace, None, "--concurrency", "400")
    assert roomy.returncode == 0, roomy.stderr
    assert roomy.stdout.split() == LISTENERS
    assert backoffs(roomy.stderr) == 0

    cramped = sweep(namespace, LOW_LIMIT, "--concurrency", "400")
    assert cramped.returncode == 0, cramped.stderr
    assert cramped.stdout.split() == LISTENERS  # not one host lost to EMFILE
    assert backoffs(cramped.stderr) > 0  # it did run out, and backed off
    assert "Traceback" not in cramped.stderr


def test_the_default_window_fits_the_file_limit(namespace: str) -> None:
    proc = sweep(namespace, LOW_LIMIT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == LISTENERS


def test_socket_backend_settles_each_pending_connect_by_its_own_deadline(namespace: str) -> None:
    # SocketBackend watches every pending connect on one epoll set and one
    # timer: deadlines given longest first must still settle shortest first,
    # and cancelled or abandoned connects must leave no descriptor behind.
    proc = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, str(HERE / "backend_deadlines.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["order"] == ["short", "middle", "long"]
    assert report["outcomes"] == {"long": "timeout", "middle": "timeout", "short": "timeout"}
    assert report["latencies"] == {"long": 0.9, "middle": 0.5, "short": 0.2}
    # Settled at their deadlines, not at the first one armed (generous margins:
    # the point is which timer fired, not how punctually).
    settled = report["settled"]
    assert 0.2 <= settled["short"] < 0.45, settled
    assert 0.5 <= settled["middle"] < 0.85, settled
    assert settled["long"] >= 0.9, settled
    before, during, after_cancel, after_close = report["fds"]
    assert during == before + 4 + 1  # four sockets and the epoll set
    assert after_cancel == during - 1
    assert after_close == before  # the abandoned one and the epoll set are closed
    assert report["left_cancelled"] is True
