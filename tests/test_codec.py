"""The parent/probe-process wire codec: round trips, byte-level reading, rejection.

Reader tests follow h11's: the same bytes split at every boundary give the
same messages, and every malformed input is a WireError, never anything else.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xendiscover._backend import Outcome
from xendiscover._errors import XenDiscoverError
from xendiscover._sweep._codec import (
    JOB_MAGIC,
    MAX_COUNT,
    MAX_LINE,
    MAX_REASON,
    OUTCOMES,
    WIRE_VERSION,
    Counters,
    Failed,
    Finished,
    Hello,
    Job,
    Message,
    MessageReader,
    OpenPort,
    Progress,
    WireError,
    decode,
    decode_job,
    encode,
    encode_job,
)
from xendiscover._targets import TargetSpace

COUNTERS = Counters(
    done=10, open=2, attempts=13, retries=3, backoffs=1, outcomes={"open": 2, "closed": 5}
)
LATER = Counters(
    done=12, open=2, attempts=15, retries=3, backoffs=1, outcomes={"open": 2, "closed": 7}
)
HELLO = b"h 1\n"

#: Every message kind with the exact line it is on the wire.
LINES: list[tuple[Message, bytes]] = [
    (Hello(), b"h 1\n"),
    (Hello(7), b"h 7\n"),
    (OpenPort("10.0.0.7", 443, 0.012345, 1), b"o 10.0.0.7 443 0.012345 1\n"),
    (OpenPort("fd00::7", 65535, 1e-05, 3), b"o fd00::7 65535 1e-05 3\n"),
    (OpenPort("::ffff:10.0.0.1", 1, 0.0, 1), b"o ::ffff:10.0.0.1 1 0.0 1\n"),
    (Progress(Counters()), b"s 0 0 0 0 0\n"),
    (Progress(COUNTERS), b"s 10 2 13 3 1 open=2 closed=5\n"),
    (
        Finished(Counters(1, 0, 1, 0, 0, {name: 1 for name in reversed(OUTCOMES)})),
        b"e 1 0 1 0 0 open=1 closed=1 unreachable=1 timeout=1 resource=1 error=1\n",
    ),
    (Finished(Counters(MAX_COUNT)), b"e 18446744073709551615 0 0 0 0\n"),
    (Failed("cannot read the job: port 0"), b"f cannot read the job: port 0\n"),
    (Failed(" ~!\\ spaced  "), b"f  ~!\\ spaced  \n"),
]

#: A whole stream: hello, reports, and the final message.
MESSAGES: list[Message] = [
    Hello(),
    OpenPort("10.0.0.7", 443, 0.012345, 1),
    Progress(COUNTERS),
    OpenPort("fd00::7", 22, 0.5, 2),
    Progress(LATER),
    Finished(LATER),
]
STREAM = b"".join(encode(m) for m in MESSAGES)


def read_all(*chunks: bytes | bytearray | memoryview) -> list[Message]:
    """Feed ``chunks`` to a fresh reader, end the stream, return every message."""
    reader = MessageReader()
    messages = [m for chunk in chunks for m in reader.feed(chunk)]
    reader.end()
    return messages


def assert_one_line(error: WireError) -> None:
    text = str(error)
    assert text
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) <= 400


# ---------------------------------------------------------------- round trips


def test_outcome_names_are_the_probes() -> None:
    assert set(OUTCOMES) == {outcome.value for outcome in Outcome}
    assert len(OUTCOMES) == len(set(OUTCOMES))


def test_wire_error_is_a_xendiscover_error() -> None:
    assert issubclass(WireError, XenDiscoverError)
    assert WIRE_VERSION == 1


@pytest.mark.parametrize(("message", "line"), LINES)
def test_each_message_has_one_exact_line(message: Message, line: bytes) -> None:
    assert encode(message) == line
    assert decode(line) == message
    assert type(decode(line)) is type(message)


def test_counters_keep_outcomes_read_only_and_in_wire_order() -> None:
    counters = Counters(outcomes={"timeout": 1, "open": 2, "closed": 0})
    assert list(counters.outcomes) == ["open", "closed", "timeout"]
    assert encode(Progress(counters)) == b"s 0 0 0 0 0 open=2 closed=0 timeout=1\n"
    with pytest.raises(TypeError):
        counters.outcomes["open"] = 5  # type: ignore[index]
    assert hash(counters) == hash(Counters(outcomes={"open": 2, "closed": 0, "timeout": 1}))
    assert counters != Counters(outcomes={"open": 2, "timeout": 1})


def test_latency_keeps_every_bit() -> None:
    latency = 0.1 + 0.2  # 0.30000000000000004
    decoded = decode(encode(OpenPort("127.0.0.1", 80, latency, 1)))
    assert isinstance(decoded, OpenPort)
    assert decoded.latency == latency
    assert decoded.latency != 0.3


def test_an_int_latency_is_stored_as_a_float() -> None:
    message = OpenPort("127.0.0.1", 80, 2, 1)
    assert isinstance(message.latency, float)
    assert encode(message) == b"o 127.0.0.1 80 2.0 1\n"


# ------------------------------------------------------------ reading streams


def test_a_whole_stream_reads_back() -> None:
    reader = MessageReader()
    assert reader.feed(STREAM) == MESSAGES
    assert reader.final == Finished(LATER)
    reader.end()


def test_a_stream_split_at_every_byte_boundary_reads_the_same() -> None:
    for cut in range(len(STREAM) + 1):
        assert read_all(STREAM[:cut], STREAM[cut:]) == MESSAGES, cut


def test_a_stream_split_at_every_two_boundaries_reads_the_same() -> None:
    for first in range(0, len(STREAM) + 1, 3):
        for second in range(first, len(STREAM) + 1):
            chunks = (STREAM[:first], STREAM[first:second], STREAM[second:])
            assert read_all(*chunks) == MESSAGES, (first, second)


def test_a_stream_fed_byte_by_byte_reads_the_same() -> None:
    reader = MessageReader()
    messages: list[Message] = []
    for index in range(len(STREAM)):
        got = reader.feed(STREAM[index : index + 1])
        # A message completes exactly when its LF arrives.
        assert len(got) == (1 if STREAM[index : index + 1] == b"\n" else 0)
        messages.extend(got)
    reader.end()
    assert messages == MESSAGES


def test_a_failed_stream_reads_back() -> None:
    stream: list[Message] = [
        Hello(),
        OpenPort("10.0.0.1", 80, 0.25, 1),
        Failed("out of file descriptors"),
    ]
    reader = MessageReader()
    assert reader.feed(b"".join(encode(m) for m in stream)) == stream
    assert reader.final == Failed("out of file descriptors")
    reader.end()


def test_final_is_none_until_the_final_message() -> None:
    reader = MessageReader()
    reader.feed(STREAM[: STREAM.rindex(b"e ")])
    assert reader.final is None


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert read_all(bytearray(STREAM)) == MESSAGES
    assert read_all(memoryview(STREAM)) == MESSAGES


# ------------------------------------------------------------ malformed lines

MALFORMED = [
    pytest.param(b"x 1\n", id="unknown kind"),
    pytest.param(b"O 10.0.0.1 80 0.1 1\n", id="kind in upper case"),
    pytest.param(b"\n", id="empty line"),
    pytest.param(b"o\n", id="open without fields"),
    pytest.param(b"o 10.0.0.1 80 0.1\n", id="missing field"),
    pytest.param(b"o 10.0.0.1 80 0.1 1 9\n", id="extra field"),
    pytest.param(b"o 10.0.0.1 80 0.1 1 \n", id="trailing space"),
    pytest.param(b"o 10.0.0.1  80 0.1 1\n", id="double space"),
    pytest.param(b"o 10.0.0.1\t80 0.1 1\n", id="tab"),
    pytest.param(b"o 10.0.0.1 80 0.1 1\r\n", id="CR LF"),
    pytest.param(b"o 10.0.0.1 80\r0.1 1\n", id="embedded CR"),
    pytest.param(b"o 10.0.0.1 http 0.1 1\n", id="non-numeric port"),
    pytest.param(b"o 10.0.0.1 0 0.1 1\n", id="port 0"),
    pytest.param(b"o 10.0.0.1 65536 0.1 1\n", id="port 65536"),
    pytest.param(b"o 10.0.0.1 -80 0.1 1\n", id="negative port"),
    pytest.param(b"o 10.0.0.1 +80 0.1 1\n", id="port with a sign"),
    pytest.param(b"o 10.0.0.1 080 0.1 1\n", id="port with a leading zero"),
    pytest.param(b"o 10.0.0.1 8_0 0.1 1\n", id="port with an underscore"),
    pytest.param(b"o 10.0.0.1 80 fast 1\n", id="non-numeric latency"),
    pytest.param(b"o 10.0.0.1 80 -0.1 1\n", id="negative latency"),
    pytest.param(b"o 10.0.0.1 80 -0.0 1\n", id="negative zero latency"),
    pytest.param(b"o 10.0.0.1 80 nan 1\n", id="NaN latency"),
    pytest.param(b"o 10.0.0.1 80 inf 1\n", id="infinite latency"),
    pytest.param(b"o 10.0.0.1 80 -inf 1\n", id="minus infinite latency"),
    pytest.param(b"o 10.0.0.1 80 1e-3 1\n", id="latency not as repr writes it"),
    pytest.param(b"o 10.0.0.1 80 1 1\n", id="integer latency"),
    pytest.param(b"o 10.0.0.1 80 0.10 1\n", id="latency with a trailing zero"),
    pytest.param(b"o 10.0.0.1 80 0.1 0\n", id="zero attempts"),
    pytest.param(b"o 10.0.0.1 80 0.1 one\n", id="non-numeric attempts"),
    pytest.param(b"o 10.0.0.256 80 0.1 1\n", id="bad IPv4 address"),
    pytest.param(b"o 10.0.0 80 0.1 1\n", id="short IPv4 address"),
    pytest.param(b"o 010.0.0.1 80 0.1 1\n", id="IPv4 with a leading zero"),
    pytest.param(b"o fd00::7::1 80 0.1 1\n", id="bad IPv6 address"),
    pytest.param(b"o fe80::1%eth0 80 0.1 1\n", id="scoped IPv6 address"),
    pytest.param(b"o db.example.org 80 0.1 1\n", id="host name"),
    pytest.param(b"o 10.0.0.0/24 80 0.1 1\n", id="network"),
    pytest.param(b"s 1 2 3 4\n", id="too few counters"),
    pytest.param(b"s 1 2 3 4 5 6\n", id="a count without a name"),
    pytest.param(b"s\n", id="progress without counters"),
    pytest.param(b"e\n", id="finished without counters"),
    pytest.param(b"s -1 0 0 0 0\n", id="negative counter"),
    pytest.param(b"s 1 2 3 4 x\n", id="non-numeric counter"),
    pytest.param(b"s 0 0 0 0 18446744073709551616\n", id="counter of 2**64"),
    pytest.param(b"s 0 0 0 0 123456789012345678901\n", id="counter of 21 digits"),
    pytest.param(b"s 1 0 1 0 0 refused=1\n", id="unknown outcome"),
    pytest.param(b"s 2 0 2 0 0 open=1 open=1\n", id="repeated outcome"),
    pytest.param(b"s 2 0 2 0 0 timeout=1 open=1\n", id="outcomes out of order"),
    pytest.param(b"s 1 0 1 0 0 open=\n", id="outcome without a count"),
    pytest.param(b"s 1 0 1 0 0 open\n", id="outcome without ="),
    pytest.param(b"s 1 0 1 0 0 open=-1\n", id="negative outcome count"),
    pytest.param(b"s 1 0 1 0 0 open=1=1\n", id="outcome with two ="),
    pytest.param(b"f\n", id="failed without a reason"),
    pytest.param(b"f \n", id="empty reason"),
    pytest.param(b"f " + b"x" * (MAX_REASON + 1) + b"\n", id="reason too long"),
    pytest.param(b"f caf\xc3\xa9\n", id="non-ASCII UTF-8"),
    pytest.param(b"f \xff\xfe\n", id="invalid UTF-8"),
    pytest.param(b"f a\x00b\n", id="NUL"),
    pytest.param(b"f a\x7fb\n", id="DEL"),
    pytest.param(b"f a\x1bb\n", id="escape"),
    pytest.param(HELLO, id="second hello"),
]


@pytest.mark.parametrize("line", MALFORMED)
def test_a_malformed_line_is_a_wire_error(line: bytes) -> None:
    reader = MessageReader()
    assert reader.feed(HELLO) == [Hello()]
    with pytest.raises(WireError) as caught:
        reader.feed(line)
    assert_one_line(caught.value)


@pytest.mark.parametrize("line", [p for p in MALFORMED if p.id != "second hello"])
def test_decode_rejects_the_same_lines(line: bytes) -> None:
    with pytest.raises(WireError):
        decode(line)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"h 1", id="no LF"),
        pytest.param(b"h 1\nh 1\n", id="two lines"),
        pytest.param(b"", id="empty"),
    ],
)
def test_decode_takes_exactly_one_line(data: bytes) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_errors_show_at_most_60_bytes_of_the_input() -> None:
    reader = MessageReader()
    reader.feed(HELLO)
    with pytest.raises(WireError) as caught:
        reader.feed(b"o " + b"A" * 1000 + b" 80 0.1 1\n")
    assert_one_line(caught.value)
    assert "A" * 58 in str(caught.value)  # it does show the start
    assert "A" * 59 not in str(caught.value)  # 60 bytes, "o " included
    assert "A'..." in str(caught.value)  # and says there was more


def test_errors_escape_what_they_show() -> None:
    reader = MessageReader()
    reader.feed(HELLO)
    with pytest.raises(WireError) as caught:
        reader.feed(b"f \x1b[2Jgone\xff\n")
    assert_one_line(caught.value)
    assert "\x1b" not in str(caught.value)
    assert "\\x1b[2Jgone\\xff" in str(caught.value)


@pytest.mark.parametrize(
    "line",
    [b"f caf\xc3\xa9\n", b"f \xff\n", b"f a\x00b\n", b"f a\rb\n", b"f a\tb\n", b"f a\x7fb\n"],
)
def test_a_line_outside_printable_ascii_is_reported_as_such(line: bytes) -> None:
    with pytest.raises(WireError, match="not printable ASCII"):
        decode(line)


def test_counters_going_backwards_is_a_wire_error() -> None:
    reader = MessageReader()
    reader.feed(HELLO + encode(Progress(LATER)))
    with pytest.raises(WireError, match="backwards"):
        reader.feed(encode(Progress(COUNTERS)))


def test_an_outcome_count_going_backwards_is_a_wire_error() -> None:
    reader = MessageReader()
    reader.feed(HELLO + b"s 1 0 1 0 0 timeout=1\n")
    with pytest.raises(WireError, match="backwards"):
        reader.feed(b"e 1 0 1 0 0 closed=1\n")


def test_equal_counters_are_not_going_backwards() -> None:
    assert read_all(HELLO, encode(Progress(LATER)), encode(Finished(LATER)))[-1] == Finished(LATER)


# ------------------------------------------------------- the stream as a whole


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"o 10.0.0.1 80 0.1 1\n", id="open port first"),
        pytest.param(b"e 0 0 0 0 0\n", id="finished first"),
        pytest.param(b"f could not start\n", id="failed first"),
        pytest.param(b"h 2\n", id="version 2"),
        pytest.param(b"h 0\n", id="version 0"),
        pytest.param(b"h 01\n", id="version with a leading zero"),
        pytest.param(b"h 2 with more fields\n", id="a later version's longer hello"),
        pytest.param(b"h\n", id="hello without a version"),
        pytest.param(b"h one\n", id="non-numeric version"),
        pytest.param(b"xendiscover-sweep 1 {}\n", id="a job instead of a stream"),
    ],
)
def test_a_stream_must_start_with_hello_of_this_version(stream: bytes) -> None:
    with pytest.raises(WireError) as caught:
        MessageReader().feed(stream)
    assert_one_line(caught.value)


def test_a_version_mismatch_names_both_versions() -> None:
    with pytest.raises(WireError, match=r"version 2\b.*speaks 1"):
        MessageReader().feed(b"h 2 and whatever version 2 adds\n")


def test_a_truncated_final_line_is_a_wire_error_at_end() -> None:
    reader = MessageReader()
    assert reader.feed(STREAM[:-1]) == MESSAGES[:-1]
    with pytest.raises(WireError, match="truncated"):
        reader.end()


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"h", id="part of hello"),
        pytest.param(HELLO, id="hello only"),
        pytest.param(STREAM[: STREAM.rindex(b"e ")], id="no final message"),
    ],
)
def test_a_stream_ending_early_is_a_wire_error_at_end(stream: bytes) -> None:
    reader = MessageReader()
    reader.feed(stream)
    with pytest.raises(WireError) as caught:
        reader.end()
    assert_one_line(caught.value)


def test_a_line_longer_than_the_cap_fails_before_its_lf() -> None:
    reader = MessageReader()
    reader.feed(HELLO)
    assert reader.feed(b"f " + b"x" * (MAX_LINE - 3)) == []  # MAX_LINE - 1 bytes: may still end
    with pytest.raises(WireError, match="longer than"):
        reader.feed(b"x")  # MAX_LINE bytes and no LF: too long whatever follows


def test_a_complete_line_longer_than_the_cap_is_a_wire_error() -> None:
    reader = MessageReader()
    with pytest.raises(WireError, match="longer than"):
        reader.feed(HELLO + b"f " + b"x" * MAX_LINE + b"\n" + encode(Finished(COUNTERS)))


def test_an_endless_line_fed_byte_by_byte_keeps_memory_bounded() -> None:
    reader = MessageReader()
    reader.feed(HELLO)
    with pytest.raises(WireError, match="longer than"):  # noqa: PT012
        for count in range(1, 10 * MAX_LINE):
            reader.feed(b"x")
            assert count < MAX_LINE


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(encode(OpenPort("10.0.0.1", 80, 0.1, 1)), id="open port"),
        pytest.param(encode(Progress(LATER)), id="progress"),
        pytest.param(encode(Finished(LATER)), id="finished again"),
        pytest.param(encode(Failed("late")), id="failed"),
        pytest.param(HELLO, id="hello"),
        pytest.param(b"o", id="one byte"),
        pytest.param(b"\n", id="an empty line"),
    ],
)
@pytest.mark.parametrize("final", [Finished(LATER), Failed("gave up")], ids=["finished", "failed"])
def test_anything_after_the_final_message_is_a_wire_error(
    final: Finished | Failed, after: bytes
) -> None:
    head = HELLO + encode(final)
    with pytest.raises(WireError, match="after the final"):
        MessageReader().feed(head + after)  # in the same chunk
    reader = MessageReader()
    assert reader.feed(head) == [Hello(), final]
    with pytest.raises(WireError, match="after the final"):
        reader.feed(after)  # in a later chunk


def test_an_empty_feed_after_the_final_message_is_fine() -> None:
    reader = MessageReader()
    reader.feed(STREAM)
    assert reader.feed(b"") == []
    reader.end()


def test_feed_after_end_is_a_wire_error_and_end_twice_is_not() -> None:
    reader = MessageReader()
    reader.feed(STREAM)
    reader.end()
    reader.end()
    with pytest.raises(WireError, match="after end"):
        reader.feed(b"")


def test_a_reader_stays_broken_after_an_error() -> None:
    reader = MessageReader()
    with pytest.raises(WireError):
        reader.feed(b"nonsense\n")
    with pytest.raises(WireError, match="already failed"):
        reader.feed(STREAM)
    with pytest.raises(WireError, match="already failed"):
        reader.end()


def test_the_wrong_types_are_wire_errors_too() -> None:
    text: Any = STREAM.decode()
    with pytest.raises(WireError, match="expected bytes"):
        MessageReader().feed(text)
    with pytest.raises(WireError, match="expected bytes"):
        decode(text)
    with pytest.raises(WireError, match="expected bytes"):
        decode_job(text)
    not_a_message: Any = object()
    with pytest.raises(WireError, match="cannot encode"):
        encode(not_a_message)
    with pytest.raises(WireError, match="cannot encode"):
        encode_job(not_a_message)


# ----------------------------------------------------------- building messages

BAD_MESSAGES: list[tuple[Any, tuple[Any, ...]]] = [
    (Hello, (0,)),
    (Hello, (True,)),
    (OpenPort, ("10.0.0.1", 0, 0.1, 1)),
    (OpenPort, ("10.0.0.1", 65536, 0.1, 1)),
    (OpenPort, ("10.0.0.1", "80", 0.1, 1)),
    (OpenPort, ("10.0.0.1", 80, float("nan"), 1)),
    (OpenPort, ("10.0.0.1", 80, float("inf"), 1)),
    (OpenPort, ("10.0.0.1", 80, -1.0, 1)),
    (OpenPort, ("10.0.0.1", 80, "0.1", 1)),
    (OpenPort, ("10.0.0.1", 80, 10**400, 1)),
    (OpenPort, ("10.0.0.1", 80, 0.1, 0)),
    (OpenPort, ("10.0.0.1", 80, 0.1, MAX_COUNT + 1)),
    (OpenPort, ("10.0.0.1 ", 80, 0.1, 1)),
    (OpenPort, ("fe80::1%eth 0", 80, 0.1, 1)),
    (OpenPort, ("١٠.0.0.1", 80, 0.1, 1)),
    (OpenPort, (167772161, 80, 0.1, 1)),
    (OpenPort, (ipaddress.ip_address("10.0.0.1"), 80, 0.1, 1)),
    (Counters, (-1,)),
    (Counters, (0, 0, 0, 0, MAX_COUNT + 1)),
    (Counters, (0, 0, 0, 0, 0, {"refused": 1})),
    (Counters, (0, 0, 0, 0, 0, {"open": -1})),
    (Counters, (0, 0, 0, 0, 0, {"open": 1.0})),
    (Counters, (0, 0, 0, 0, 0, [("open", 1)])),
    (Counters, (1.0,)),
    (Progress, ({"done": 1},)),
    (Finished, (None,)),
    (Failed, ("",)),
    (Failed, ("two\nlines",)),
    (Failed, ("carriage\rreturn",)),
    (Failed, ("café",)),
    (Failed, ("x" * (MAX_REASON + 1),)),
    (Failed, (ValueError("not text"),)),
]


@pytest.mark.parametrize(("kind", "args"), BAD_MESSAGES)
def test_a_message_that_cannot_cross_the_wire_cannot_be_built(
    kind: Any, args: tuple[Any, ...]
) -> None:
    with pytest.raises(WireError) as caught:
        kind(*args)
    assert_one_line(caught.value)


def test_a_reason_of_the_maximum_length_is_fine() -> None:
    failed = Failed("x" * MAX_REASON)
    assert decode(encode(failed)) == failed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Traceback (most recent call last):\n  File ...\nOSError: [Errno 24]",
        "café \x00 \x7f \u2028 \udcff",
        "é" * 500,
        "x" * 10_000,
    ],
)
def test_sanitized_makes_any_text_a_valid_reason(text: str) -> None:
    failed = Failed.sanitized(text)
    assert 0 < len(failed.reason) <= MAX_REASON
    assert decode(encode(failed)) == failed


def test_sanitized_keeps_what_it_can() -> None:
    assert Failed.sanitized("too many\n open\tfiles") == Failed("too many open files")
    assert Failed.sanitized("café") == Failed("caf\\xe9")
    long = Failed.sanitized("y" * 1000).reason
    assert long == "y" * (MAX_REASON - 3) + "..."


# ------------------------------------------------------------------------ jobs


def space(*families: Any, shard: tuple[int, int] = (1, 1)) -> TargetSpace:
    return TargetSpace(tuple(families), shard=shard)


JOBS = [
    Job(space((4, ((167772161, 167772414),))), (443,), 1.0, 1, 512, None),
    Job(
        space(
            (4, ((0, 0), (10, 20), (2**32 - 1, 2**32 - 1))),
            (6, ((2**127, 2**127 + 2**64), (2**128 - 1, 2**128 - 1))),
            shard=(3, 8),
        ),
        (22, 80, 443, 8443),
        0.25,
        0,
        1,
        1234.5,
    ),
    Job(space((6, ((1, 1),))), (65535, 1), 1e-05, 3, 4096, 0.1 + 0.2),
    Job(space((4, ()), (6, ())), (80,), 2.0, 0, 1, None),
    Job(space(), (80,), 2.0, 0, 1, None),
    Job(TargetSpace.from_specs(["10.0.0.0/30", "fd00::/126"]).split(3)[2], (80,), 3, 1, 2, 5),
]


@pytest.mark.parametrize("job", JOBS)
def test_a_job_round_trips(job: Job) -> None:
    data = encode_job(job)
    assert data.startswith(JOB_MAGIC + b" 1 {")
    assert data.endswith(b"}\n")
    assert data.count(b"\n") == 1
    assert data.isascii()
    assert decode_job(data) == job


def test_a_job_line_is_pinned() -> None:
    job = Job(space((4, ((1, 2),)), (6, ((3, 3),)), shard=(2, 5)), (80, 443), 1.0, 2, 64, None)
    assert encode_job(job) == (
        b'xendiscover-sweep 1 {"intervals":[[4,[[1,2]]],[6,[[3,3]]]],"shard":[2,5],'
        b'"ports":[80,443],"timeout":1.0,"retries":2,"window":64,"rate":null}\n'
    )


def test_an_int_timeout_and_rate_are_stored_as_floats() -> None:
    job = Job(space(), (80,), 3, 0, 1, 5)
    assert isinstance(job.timeout, float)
    assert isinstance(job.rate, float)
    assert b'"timeout":3.0' in encode_job(job)
    assert b'"rate":5.0' in encode_job(job)


GOOD_PAYLOAD: dict[str, Any] = {
    "intervals": [[4, [[1, 2], [10, 20]]], [6, [[3, 3]]]],
    "shard": [1, 2],
    "ports": [80],
    "timeout": 1.0,
    "retries": 0,
    "window": 1,
    "rate": None,
}


def job_line(**changes: Any) -> bytes:
    """A job line whose payload is GOOD_PAYLOAD with ``changes`` (a value of ... drops the key)."""
    payload = {**GOOD_PAYLOAD, **changes}
    payload = {key: value for key, value in payload.items() if value is not ...}
    return b"xendiscover-sweep 1 " + json.dumps(payload).encode() + b"\n"


def test_the_good_payload_is_good() -> None:
    job = decode_job(job_line())
    assert job.space.intervals == ((4, ((1, 2), (10, 20))), (6, ((3, 3),)))
    assert job.space.shard == (1, 2)


BAD_JOBS = [
    pytest.param(b"", id="empty"),
    pytest.param(job_line()[:-1], id="no LF (truncated)"),
    pytest.param(job_line()[:40], id="truncated in the JSON"),
    pytest.param(job_line() + job_line(), id="two lines"),
    pytest.param(job_line().replace(b"xendiscover-sweep", b"xendiscover-probe"), id="bad magic"),
    pytest.param(job_line().replace(b"sweep 1 ", b"sweep 2 "), id="version 2"),
    pytest.param(job_line().replace(b"sweep 1 ", b"sweep 01 "), id="version 01"),
    pytest.param(job_line().replace(b"sweep 1 ", b"sweep  1 "), id="double space"),
    pytest.param(job_line().replace(b"sweep 1 ", b"sweep 1\n"), id="LF after version"),
    pytest.param(b"xendiscover-sweep 1 {\xff}\n", id="invalid UTF-8"),
    pytest.param(b'xendiscover-sweep 1 {"\xc3\xa9":1}\n', id="non-ASCII"),
    pytest.param(b"xendiscover-sweep 1 {nope}\n", id="not JSON"),
    pytest.param(b"xendiscover-sweep 1 [1, 2]\n", id="an array"),
    pytest.param(b"xendiscover-sweep 1 " + b"[" * 100_000 + b"\n", id="deep nesting"),
    pytest.param(job_line().replace(b'"rate": null', b'"rate": NaN'), id="NaN"),
    pytest.param(job_line().replace(b'"rate": null', b'"rate": Infinity'), id="Infinity"),
    pytest.param(job_line().replace(b'"timeout": 1.0', b'"timeout": 1e999'), id="huge float"),
    pytest.param(
        job_line().replace(b'"retries": 0', b'"retries": 1' + b"0" * 5000), id="5000 digits"
    ),
    pytest.param(
        job_line().replace(b'"retries": 0', b'"retries": 0, "retries": 1'), id="repeated key"
    ),
    pytest.param(job_line(rate=...), id="missing key"),
    pytest.param(job_line(workers=2), id="extra key"),
    pytest.param(job_line(ports=[]), id="no ports"),
    pytest.param(job_line(ports=80), id="ports not a list"),
    pytest.param(job_line(ports=[0]), id="port 0"),
    pytest.param(job_line(ports=[65536]), id="port 65536"),
    pytest.param(job_line(ports=["80"]), id="port as text"),
    pytest.param(job_line(ports=[80.0]), id="port as float"),
    pytest.param(job_line(ports=[True]), id="port as boolean"),
    pytest.param(job_line(timeout=0), id="zero timeout"),
    pytest.param(job_line(timeout=-1.0), id="negative timeout"),
    pytest.param(job_line(timeout="1"), id="timeout as text"),
    pytest.param(job_line(timeout=None), id="timeout null"),
    pytest.param(job_line(retries=-1), id="negative retries"),
    pytest.param(job_line(retries=1.5), id="fractional retries"),
    pytest.param(job_line(window=0), id="zero window"),
    pytest.param(job_line(rate=0), id="zero rate"),
    pytest.param(job_line(rate=-5.0), id="negative rate"),
    pytest.param(job_line(rate="fast"), id="rate as text"),
    pytest.param(job_line(shard=[0, 1]), id="shard 0"),
    pytest.param(job_line(shard=[3, 2]), id="shard beyond count"),
    pytest.param(job_line(shard=[1]), id="shard of one number"),
    pytest.param(job_line(shard=[1, 2, 3]), id="shard of three numbers"),
    pytest.param(job_line(shard="1/2"), id="shard as text"),
    pytest.param(job_line(intervals={"4": []}), id="intervals an object"),
    pytest.param(job_line(intervals=[[5, []]]), id="version 5"),
    pytest.param(job_line(intervals=[["4", []]]), id="version as text"),
    pytest.param(job_line(intervals=[[6, []], [4, []]]), id="6 before 4"),
    pytest.param(job_line(intervals=[[4, []], [4, []]]), id="4 twice"),
    pytest.param(job_line(intervals=[[4]]), id="version without spans"),
    pytest.param(job_line(intervals=[[4, [[2, 1]]]]), id="span ends before it starts"),
    pytest.param(job_line(intervals=[[4, [[-1, 1]]]]), id="negative address"),
    pytest.param(job_line(intervals=[[4, [[0, 2**32]]]]), id="beyond IPv4"),
    pytest.param(job_line(intervals=[[6, [[0, 2**128]]]]), id="beyond IPv6"),
    pytest.param(job_line(intervals=[[4, [[1, 5], [5, 9]]]]), id="overlapping spans"),
    pytest.param(job_line(intervals=[[4, [[10, 20], [1, 5]]]]), id="unsorted spans"),
    pytest.param(job_line(intervals=[[4, [[1, 2, 3]]]]), id="span of three"),
    pytest.param(job_line(intervals=[[4, [[1.0, 2]]]]), id="float address"),
    pytest.param(job_line(intervals=[[4, [1, 2]]]), id="span not nested"),
]


@pytest.mark.parametrize("data", BAD_JOBS)
def test_a_malformed_job_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError) as caught:
        decode_job(data)
    assert_one_line(caught.value)


def test_a_job_for_another_version_says_so() -> None:
    with pytest.raises(WireError, match=r"version 2\b.*speaks 1"):
        decode_job(job_line().replace(b"sweep 1 ", b"sweep 2 "))


BAD_JOB_FIELDS: list[dict[str, Any]] = [
    {"space": "10.0.0.0/24"},
    {"space": space((4, [(1, 2)]))},  # spans must be tuples, as TargetSpace builds them
    {"space": space((4, ((1, 2),)), shard=(2, 1))},
    {"ports": [80]},
    {"ports": ()},
    {"ports": (80, 0)},
    {"timeout": float("nan")},
    {"timeout": float("inf")},
    {"timeout": 0.0},
    {"timeout": True},
    {"retries": -1},
    {"retries": MAX_COUNT + 1},
    {"window": 0},
    {"rate": float("nan")},
    {"rate": 0.0},
    {"rate": -0.0},
]


@pytest.mark.parametrize("changes", BAD_JOB_FIELDS)
def test_a_job_that_cannot_cross_the_wire_cannot_be_built(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "space": space((4, ((1, 2),))),
        "ports": (80,),
        "timeout": 1.0,
        "retries": 0,
        "window": 1,
        "rate": None,
        **changes,
    }
    with pytest.raises(WireError) as caught:
        Job(**fields)
    assert_one_line(caught.value)


# ------------------------------------------------------------------ properties


@st.composite
def spans(draw: st.DrawFn, top: int) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint inclusive spans within 0..top, as TargetSpace holds them."""
    bounds = sorted(draw(st.sets(st.integers(0, top), max_size=8)))
    result: list[tuple[int, int]] = []
    floor = 0
    for bound in bounds:
        if bound < floor:
            continue
        first = draw(st.integers(floor, bound))
        result.append((first, bound))
        floor = bound + 1
    return tuple(result)


@st.composite
def target_spaces(draw: st.DrawFn) -> TargetSpace:
    versions = draw(st.sampled_from([(), (4,), (6,), (4, 6)]))
    families = tuple(
        (version, draw(spans(2**32 - 1 if version == 4 else 2**128 - 1))) for version in versions
    )
    count = draw(st.integers(1, 10_000))
    index = draw(st.integers(1, count))
    return TargetSpace(families, shard=(index, count))


positive_floats = st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
jobs = st.builds(
    Job,
    space=target_spaces(),
    ports=st.lists(st.integers(1, 65535), min_size=1, max_size=20).map(tuple),
    timeout=positive_floats | st.integers(1, 10**6),
    retries=st.integers(0, MAX_COUNT),
    window=st.integers(1, MAX_COUNT),
    rate=st.none() | positive_floats,
)


@given(jobs)
def test_any_job_round_trips(job: Job) -> None:
    assert decode_job(encode_job(job)) == job


counts = st.integers(0, MAX_COUNT)
counters = st.builds(
    Counters,
    done=counts,
    open=counts,
    attempts=counts,
    retries=counts,
    backoffs=counts,
    outcomes=st.dictionaries(st.sampled_from(OUTCOMES), counts),
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, st.integers(1, MAX_COUNT)),
    st.builds(
        OpenPort,
        st.ip_addresses().map(str),
        st.integers(1, 65535),
        st.floats(min_value=0.0, allow_infinity=False),
        st.integers(1, MAX_COUNT),
    ),
    st.builds(Progress, counters),
    st.builds(Finished, counters),
    st.builds(Failed, st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1)),
    st.builds(Failed.sanitized, st.text()),
)


@given(messages)
def test_any_message_round_trips_as_one_line(message: Message) -> None:
    line = encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert len(line) <= MAX_LINE
    assert decode(line) == message


@given(
    st.lists(
        st.builds(
            OpenPort, st.ip_addresses().map(str), st.integers(1, 65535), st.just(0.5), st.just(1)
        )
    ),
    counters,
    st.lists(st.integers(0, 1000)),
)
def test_any_stream_reads_back_in_any_chunks(
    reports: list[OpenPort], final: Counters, cuts: list[int]
) -> None:
    sent: list[Message] = [Hello(), *reports, Finished(final)]
    data = b"".join(encode(m) for m in sent)
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert read_all(*chunks) == sent


TOKENS = [
    "0", "1", "01", "80", "65535", "65536", "18446744073709551615", "18446744073709551616",
    "0.0", "-0.0", "0.5", "1e-05", "1.0", "1", "nan", "inf", "0.10",
    "10.0.0.1", "::1", "fe80::1%lo", "::ffff:10.0.0.1", "1.2.3",
    "open=1", "closed=0", "timeout=2", "open=01", "error=3", "bogus=1", "open", "=", "",
]  # fmt: skip


@given(
    st.sampled_from("hoseffx"),
    st.lists(st.sampled_from(TOKENS), max_size=12),
)
def test_every_accepted_line_has_one_spelling(kind: str, tokens: list[str]) -> None:
    line = " ".join([kind, *tokens]).encode() + b"\n"
    try:
        message = decode(line)
    except WireError as exc:
        assert_one_line(exc)
    else:
        assert encode(message) == line


#: Bytes that look like the wire format, to get past the first checks.
wire_like = st.lists(
    st.sampled_from([HELLO, *(line for _, line in LINES), b"\n", b" ", b"h 2", b"\r", b"\xff"])
    | st.binary(max_size=12),
    max_size=12,
).map(b"".join)


@given(st.binary(max_size=200) | wire_like, st.lists(st.integers(0, 200)))
def test_any_bytes_in_any_chunks_give_messages_or_a_wire_error(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({min(cut, len(data)) for cut in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    try:
        chunked: list[Message] | str = read_all(*chunks)
    except WireError as exc:
        assert_one_line(exc)
        chunked = "error"
    else:
        assert isinstance(chunked[0], Hello)
        assert isinstance(chunked[-1], Finished | Failed)
    # How the bytes were cut never matters.
    try:
        whole: list[Message] | str = read_all(data)
    except WireError:
        whole = "error"
    assert chunked == whole


@given(st.binary(max_size=300) | wire_like.map(lambda b: b"xendiscover-sweep 1 " + b))
def test_any_bytes_as_a_job_give_a_job_or_a_wire_error(data: bytes) -> None:
    try:
        job = decode_job(data)
    except WireError as exc:
        assert_one_line(exc)
    else:
        assert decode_job(encode_job(job)) == job
