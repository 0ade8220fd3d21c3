"""A "SYN proxy" range (issue 22): every port of a /20 accepts and never answers.

An ``nft`` rule sends every TCP port of every address to one listener that
accepts and stays silent. The whole job at the defaults must stay small in
memory, end in bounded time, and report each address once ("accepts every
port; silent") instead of fingerprinting 28,672 ports one by one. The
figures for the closing note come from ``python tests/farlab.py synproxy``.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import farlab  # noqa: E402
import netlab  # noqa: E402

from xendiscover._handoff import SILENT_EVIDENCE  # noqa: E402

pytestmark = [pytest.mark.netns]

#: The issue's bounds: 100 MB of peak RSS; 60 s for the job, here with room
#: for a loaded machine (the measured time is in the closing note).
RSS_LIMIT_MIB = 100
JOB_LIMIT_S = 90


def test_a_syn_proxy_range_is_bounded_and_reported_once(lab_available: None) -> None:
    netlab.cleanup_stale()
    lab = farlab.SynProxyLab()
    with lab:
        result = lab.job([farlab.TRAP_NET, "--no-resolve", "--all", "--format", "jsonl"])
    assert result["status"] in (0, 1), result["stderr"]
    records = [json.loads(line) for line in result["stdout"].splitlines() if line.strip()]
    ports = [r for r in records if "address" in r and "port" in r]
    addresses = [r["address"] for r in ports]
    every = {str(a) for a in ipaddress.ip_network(farlab.TRAP_NET)}
    assert sorted(addresses) == sorted(every)  # each address once, none missing
    assert {r["evidence"] for r in ports} == {SILENT_EVIDENCE}
    assert result["rss_kib"] / 1024 <= RSS_LIMIT_MIB
    assert result["seconds"] < JOB_LIMIT_S
