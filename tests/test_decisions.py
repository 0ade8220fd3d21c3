"""Verdict decisions the mutation run found untested: what the driver makes of a parser's word.

A parser that cannot read a reply, or breaks its contract by asking for more
after the peer closed, must give a safe ``unknown`` that says why, with the
bytes it saw, never a verdict and never an exception.
"""

from __future__ import annotations

from xendiscover._fingerprint._common import Continue, ReplyError
from xendiscover._fingerprint._driver import exchange
from xendiscover._model import Fingerprint
from xendiscover.testing import FakeBackend, FakeService

PEER = "10.7.0.1"


def backend_with(reply: bytes) -> FakeBackend:
    return FakeBackend({PEER: "open"}, services={(PEER, 9): FakeService(reply)})


async def test_an_unreadable_reply_is_unknown_with_the_reason_and_the_bytes() -> None:
    def parse(data: bytes, closed: bool) -> Fingerprint:
        raise ReplyError("no status line")

    result = await exchange(
        backend_with(b"\x00garbage"), PEER, 9, b"x", parse, tls=False, timeout=2.0
    )
    assert result.fingerprint.service is None
    assert result.fingerprint.verdict == "unknown"
    assert result.fingerprint.evidence.startswith("unreadable reply (no status line)")
    assert "\\x00garbage" in result.fingerprint.evidence


async def test_a_parser_asking_for_more_after_the_close_gets_unknown() -> None:
    def parse(data: bytes, closed: bool) -> Continue:
        return Continue(1, b"more")

    result = await exchange(backend_with(b"hello"), PEER, 9, b"x", parse, tls=False, timeout=2.0)
    assert result.fingerprint.service is None
    assert result.fingerprint.verdict == "unknown"
    assert result.fingerprint.evidence.startswith("asked for more after the close")
    assert "hello" in result.fingerprint.evidence
