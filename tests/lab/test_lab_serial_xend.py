"""xend's serial accept loop, at full size (issue 22).

xend 4.4 runs ``socket.getfqdn(peer)`` in its one accept thread, for every
connection, before it accepts the next; a dom0 whose resolver does not
answer stalls each connection by glibc's default timeout, 10 s. The sweep's
connection is kept for the first fingerprint probe, which therefore waits
one stall, not two, inside the relocation wait (12 s): ``likely``. An
``nft`` counter shows one handshake for the sweep and the first probe
together, and one more for the TLS check that follows a silent close.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import farlab  # noqa: E402
import netlab  # noqa: E402

pytestmark = [pytest.mark.netns]


def test_a_ten_second_stall_per_connection_is_likely_xend(lab_available: None) -> None:
    netlab.cleanup_stale()
    lab = farlab.SerialXendLab(stall=10.0)
    with lab:
        result = lab.scan([lab.address], ports=[8002], timeout=120)
        syns = lab.syns()
    rows = [(port, verdict) for _, port, _, verdict, _ in result["findings"]]
    assert rows == [(8002, "likely")]
    # The sweep's handshake (the first probe ran on it) and the TLS check's.
    assert syns == 2
