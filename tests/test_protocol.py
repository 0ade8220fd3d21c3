"""The probe-process protocol, by behaviour: what one end writes the other reads.

No test here pins the bytes of a line: the two ends are one build. What
matters is that every message and every job comes back as it went, in
chunks of any size; that a line is bounded; and that anything else (garbage,
another version, a process that died mid-line) is a one-line error, never a
traceback and never a lost part (``test_sweep_workers`` shows the scan
failing with :class:`WorkerError`).
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xendiscover._backend import Outcome
from xendiscover._sweep import ScanStats
from xendiscover._sweep._protocol import (
    MAX_LINE,
    MAX_REASON,
    Failed,
    Job,
    Message,
    OpenPort,
    Progress,
    Reader,
    WireError,
    decode_job,
    encode,
    encode_job,
)
from xendiscover._sweep._worker import run_encoded_job
from xendiscover._targets import TargetSpace
from xendiscover.testing import FakeBackend

counts = st.integers(0, 2**63 - 1)


@st.composite
def stats(draw: st.DrawFn) -> ScanStats:
    counted = ScanStats(outcomes=draw(st.dictionaries(st.sampled_from(list(Outcome)), counts)))
    for name in ScanStats.COUNTED:
        setattr(counted, name, draw(counts))
    return counted


messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(
        OpenPort,
        st.ip_addresses().map(str),
        st.integers(1, 65535),
        st.floats(min_value=0.0, allow_infinity=False),
        st.integers(1, 2**63 - 1),
    ),
    st.builds(Progress, stats()),
    st.builds(Failed.of, st.text(min_size=1)),
)


def read_all(data: bytes, cuts: list[int]) -> list[Message]:
    reader = Reader()
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    found = [m for a, b in itertools.pairwise(bounds) for m in reader.feed(data[a:b])]
    reader.end()
    return found


@given(st.lists(messages.filter(lambda m: not isinstance(m, Failed)), max_size=8), messages)
def test_any_stream_reads_back_the_same_in_any_chunks(body: list[Message], last: Message) -> None:
    final = last if isinstance(last, Failed) else Progress(ScanStats(), final=True)
    sent = [*body, final]
    data = b"".join(encode(m) for m in sent)
    assert all(len(encode(m)) <= MAX_LINE for m in sent)
    assert read_all(data, []) == sent
    assert read_all(data, list(range(0, len(data), 7))) == sent  # a few bytes at a time


@st.composite
def spaces(draw: st.DrawFn) -> TargetSpace:
    v4 = st.builds("{}/{}".format, st.ip_addresses(v=4), st.integers(16, 32))
    v6 = st.builds("{}/{}".format, st.ip_addresses(v=6), st.integers(100, 128))
    specs = draw(st.lists(v4 | v6, min_size=1, max_size=5))
    count = draw(st.integers(1, 50))
    return TargetSpace.from_specs(specs).sharded(draw(st.integers(1, count)), count)


jobs = st.builds(
    Job,
    space=spaces(),
    ports=st.lists(st.integers(1, 65535), min_size=1, max_size=20).map(tuple),
    timeout=st.floats(min_value=0.001, max_value=1e6),
    retries=st.integers(0, 100),
    window=st.integers(1, 10**6),
    rate=st.none() | st.floats(min_value=0.001, max_value=1e9),
)


@given(jobs)
def test_any_job_crosses_as_it_is(job: Job) -> None:
    assert decode_job(encode_job(job)) == job


#: Jobs that must not be run: each breaks one rule of a good job.
GOOD = json.loads(encode_job(Job(TargetSpace.from_specs(["10.0.0.0/30"]), (22,), 1.0, 2, 10)))
BAD_FIELDS = [
    {"v": 1},
    {"ports": []},
    {"ports": [0]},
    {"ports": [65536]},
    {"ports": ["22"]},
    {"timeout": 0},
    {"timeout": -1.0},
    {"timeout": True},
    {"retries": -1},
    {"window": 0},
    {"rate": 0},
    {"shard": [2, 1]},
    {"shard": [1]},
    {"intervals": [[5, []]]},
    {"intervals": [[6, []], [4, []]]},
    {"intervals": [[4, [[5, 3]]]]},
    {"intervals": [[4, [[0, 9], [5, 12]]]]},
    {"intervals": [[4, [[0, 2**32]]]]},
    {"intervals": "10.0.0.0/8"},
]


@pytest.mark.parametrize("change", BAD_FIELDS, ids=[str(c) for c in BAD_FIELDS])
async def test_a_bad_job_is_answered_failed_in_one_line_and_sweeps_nothing(
    change: dict[str, object],
) -> None:
    job = json.dumps({**GOOD, **change}).encode() + b"\n"
    with pytest.raises(WireError) as caught:
        decode_job(job)
    assert "\n" not in str(caught.value)
    backend = FakeBackend(default="open")
    lines: list[bytes] = []
    await run_encoded_job(job, backend, lines.append)
    assert backend.attempts == []  # nothing was sent
    reader = Reader()
    assert [m for line in lines for m in reader.feed(line)] == [reader.end()]
    assert isinstance(reader.final, Failed)
    assert reader.final.reason.startswith("bad job")


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4))
def test_any_bytes_give_messages_or_a_one_line_wire_error(data: bytes, cuts: list[int]) -> None:
    try:
        read_all(data, cuts)
    except WireError as exc:
        text = str(exc)
        assert text.isprintable()
        assert len(text) < 300


@given(st.binary(max_size=300))
def test_any_bytes_as_a_job_give_a_job_or_a_one_line_wire_error(data: bytes) -> None:
    try:
        decode_job(data)
    except WireError as exc:
        assert str(exc).isprintable()


def test_a_line_is_bounded_even_when_it_never_ends() -> None:
    reader = Reader()
    with pytest.raises(WireError, match="longer than"):  # noqa: PT012
        for _ in range(100):
            reader.feed(b"x" * 1000)  # no LF: a runaway process, not a message


def test_a_process_that_died_mid_line_or_before_its_end_is_an_error() -> None:
    line = encode(OpenPort("10.0.0.1", 22, 0.01, 1))
    reader = Reader()
    assert reader.feed(line + line[:9]) == [OpenPort("10.0.0.1", 22, 0.01, 1)]
    with pytest.raises(WireError, match="inside a line"):
        reader.end()
    whole = Reader()
    whole.feed(line)
    with pytest.raises(WireError, match="before its last message"):
        whole.end()


@pytest.mark.parametrize(
    "line",
    [
        b'{"v":2,"open":["10.0.0.1",22,0.01,1],"failed":"x"}',  # two messages in one
        b'{"v":2,"open":["10.0.0.1%eth0",22,0.01,1]}',
        b'{"v":2,"open":["10.0.0.1",22,NaN,1]}',
        b'{"v":2,"open":["10.0.0.1",22,0.01,0]}',
        b'{"v":2,"progress":{"done":-1,"open":0,"attempts":0,"retries":0,"backoffs":0}}',
        b'{"v":2,"progress":{"done":1,"open":0,"attempts":0,"retries":0,"backoffs":0,'
        b'"outcomes":{"maybe":1}}}',
        b'{"v":2,"failed":""}',
        b'{"v":3,"failed":"from a newer build"}',
        b"[2]",
    ],
)
def test_a_line_with_a_bad_field_is_refused(line: bytes) -> None:
    with pytest.raises(WireError):
        Reader().feed(line + b"\n")


def test_nothing_is_read_after_the_last_message() -> None:
    end = encode(Progress(ScanStats(), final=True))
    with pytest.raises(WireError, match="after the last"):
        Reader().feed(end + encode(OpenPort("10.0.0.1", 22, 0.01, 1)))


@given(st.text())
def test_any_reason_becomes_one_bounded_printable_line(text: str) -> None:
    reason = Failed.of(text or "x").reason
    assert len(reason) <= MAX_REASON
    assert reason.isascii()
    assert reason.isprintable()


async def test_the_counters_a_probe_process_reports_add_up_in_the_scan() -> None:
    """Progress lines carry totals so far: the scan adds what grew, once."""
    backend = FakeBackend({"10.3.0.1": "open", "10.3.0.2": "closed"}, default="dark")
    job = Job(TargetSpace.from_specs(["10.3.0.0/29"]), (22, 80), 0.5, 1, 8)
    lines: list[bytes] = []
    await run_encoded_job(encode_job(job), backend, lines.append)
    reader = Reader()
    received = [m for line in lines for m in reader.feed(line)]
    final = reader.end()
    assert isinstance(final, Progress)
    assert final.stats.done == job.total
    assert final.stats.outcomes[Outcome.OPEN] == 2
    assert final.stats.outcomes[Outcome.CLOSED] == 2
    assert {m.address for m in received if isinstance(m, OpenPort)} == {"10.3.0.1"}
    merged = ScanStats()
    before = ScanStats()
    for message in received:
        if isinstance(message, Progress):
            merged.add_growth(message.stats, before)
            before = message.stats
    assert merged.counts() == final.stats.counts()


def test_a_job_of_many_scattered_targets_crosses_whole() -> None:
    """A job line is not bounded like a message line: -iL lists may be long."""
    specs = [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(5000)]
    job = Job(TargetSpace.from_specs(specs), (443,), 1.0, 1, 64)
    line = encode_job(job)
    assert len(line) > MAX_LINE
    assert decode_job(line) == job
