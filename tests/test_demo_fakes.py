"""The demo network: every fake starts on loopback and answers as promised."""

from __future__ import annotations

import contextlib

import pytest
from support import set_relocation_wait

from xendiscover._demo import DEMO_FAKES, start_demo_fakes
from xendiscover._fingerprint import fingerprint_port


async def test_demo_fakes_start_and_answer_as_promised(monkeypatch: pytest.MonkeyPatch) -> None:
    set_relocation_wait(monkeypatch, 1.0)  # the demo's tarpit on 8002 would cost the full wait
    async with contextlib.AsyncExitStack() as stack:
        started = await start_demo_fakes(stack)
        assert len(started) == len(DEMO_FAKES)
        for (address, port, description), spec in zip(started, DEMO_FAKES, strict=True):
            assert address == spec.address
            assert address.startswith("127.77.0.")
            assert description
            found = await fingerprint_port(address, port, timeout=0.5, plan_port=spec.port)
            assert (found.service, found.verdict) == (spec.service, spec.verdict), description
    assert len({(address, port) for address, port, _ in started}) == len(started)
