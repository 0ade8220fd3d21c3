"""The wire codec between the scanning process and its probe processes.

Pure and sans-IO, in the style of h11: bytes go in, typed values come out.
Nothing here reads, writes, sleeps or knows about asyncio; the parent and the
probe process own their pipes and hand the bytes over.

The parent writes one :class:`Job` on the probe process's stdin
(:func:`encode_job`, :func:`decode_job`)::

    job       = magic SP version SP payload LF          ; one line, ASCII
    magic     = "xendiscover-sweep"
    version   = uint                                    ; WIRE_VERSION
    payload   = JSON object with exactly these keys (no NaN, no Infinity):
                  "intervals": [[4 / 6, [[first, last], ...]], ...]
                  "shard":     [i, n]                   ; 1 <= i <= n
                  "ports":     [port, ...]              ; at least one
                  "timeout":   number                   ; finite, > 0
                  "retries":   int                      ; >= 0
                  "window":    int                      ; >= 1
                  "rate":      number / null            ; finite, > 0

    Versions appear in increasing order, each at most once; a version's
    spans are sorted, disjoint, ``first <= last``, inside its address range.

The probe process answers on stdout with a stream of lines
(:func:`encode` writes one; a :class:`MessageReader` reads them)::

    stream    = hello *report final                     ; then EOF
    report    = open-port / progress
    final     = finished / failed

    hello     = "h" SP version LF                       ; Hello
    open-port = "o" SP address SP port SP latency SP attempts LF  ; OpenPort
    progress  = "s" SP counters LF                      ; Progress
    finished  = "e" SP counters LF                      ; Finished
    failed    = "f" SP reason LF                        ; Failed

    counters  = done SP open SP attempts SP retries SP backoffs *(SP outcome "=" uint)
    outcome   = "open" / "closed" / "unreachable" / "timeout" / "resource" / "error"
                                                        ; each at most once, in this order
    address   = an IPv4 or IPv6 address ``ipaddress`` parses, without "%scope"
    port      = uint                                    ; 1 to 65535
    latency   = float                                   ; finite, >= 0
    attempts  = uint                                    ; >= 1
    done, open, attempts, retries, backoffs = uint
    reason    = 1*200 VCHAR-or-SP

    uint      = "0" / %x31-39 *19DIGIT                  ; no sign, no leading zero, < 2**64
    float     = what ``repr()`` writes for a Python float (exact round trip)
    SP        = %x20                                    ; exactly one, never a tab
    LF        = %x0A                                    ; never CR LF
    VCHAR-or-SP = %x20-7E

A line, its LF included, is at most :data:`MAX_LINE` bytes of printable
ASCII. Every value has exactly one spelling: the decoders accept only what the
encoders write, so re-encoding a decoded line gives back the same bytes.
Counters only grow: a report whose counters are below the previous one's is
an error.

Whatever the input, the decoders raise :class:`WireError` and nothing else;
its message is one line and shows at most 60 bytes of the offending input,
escaped with ``repr``.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias, TypeGuard

from xendiscover._errors import XenDiscoverError
from xendiscover._targets import TargetSpace

__all__ = [
    "JOB_MAGIC",
    "MAX_COUNT",
    "MAX_LINE",
    "MAX_REASON",
    "OUTCOMES",
    "WIRE_VERSION",
    "Counters",
    "Failed",
    "Finished",
    "Hello",
    "Job",
    "Message",
    "MessageReader",
    "OpenPort",
    "Progress",
    "WireError",
    "decode",
    "decode_job",
    "encode",
    "encode_job",
]

#: The version of the wire format; parent and probe process must agree on it.
WIRE_VERSION: Final = 1
#: The first word of an encoded job.
JOB_MAGIC: Final = b"xendiscover-sweep"
#: The longest line a probe process may write, its LF included, in bytes.
MAX_LINE: Final = 4096
#: The longest reason a :class:`Failed` may carry, in characters.
MAX_REASON: Final = 200
#: The largest integer a message may carry (a count, a version, attempts).
MAX_COUNT: Final = 2**64 - 1
#: The outcome names a :class:`Counters` may count, in their wire order.
OUTCOMES: Final = ("open", "closed", "unreachable", "timeout", "resource", "error")

_SHOW = 60  # the most bytes of bad input an error message shows
_MAX_DIGITS = len(str(MAX_COUNT))
_MAX_FLOAT_TEXT = 32  # repr() of a float is at most 24 characters
_OUTCOME_ORDER = {name: index for index, name in enumerate(OUTCOMES)}
_COUNTER_FIELDS = ("done", "open", "attempts", "retries", "backoffs")
_ADDRESS_MAX = {4: 2**32 - 1, 6: 2**128 - 1}
_JOB_KEYS = frozenset({"intervals", "shard", "ports", "timeout", "retries", "window", "rate"})


class WireError(XenDiscoverError):
    """Bytes that are not the wire format, or a value that cannot cross it.

    The only exception this module raises. The message is one line and
    shows at most 60 bytes of the offending input, ``repr``-escaped.
    """


def _snippet(data: bytes | bytearray) -> str:
    """At most ``_SHOW`` bytes of ``data``, escaped: safe inside a one-line message."""
    shown = repr(bytes(data[:_SHOW]))
    return shown + "..." if len(data) > _SHOW else shown


def _plain_uint(token: bytes) -> bool:
    """Whether ``token`` is a uint as the grammar spells it."""
    return (
        0 < len(token) <= _MAX_DIGITS and token.isdigit() and (token == b"0" or token[:1] != b"0")
    )


def _show_version(token: bytes) -> str:
    return token.decode("ascii") if _plain_uint(token) else _snippet(token)


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise WireError(f"expected bytes, got {type(data).__name__}")


# ---------------------------------------------------------------- validation


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int = 0, high: int = MAX_COUNT) -> int:
    if not _is_int(value) or not low <= value <= high:
        raise WireError(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _check_float(name: str, value: object, *, positive: bool) -> float:
    """``value`` as a float, if it is a finite number >= 0 (> 0 if ``positive``)."""
    rule = "> 0" if positive else ">= 0"
    if not (_is_int(value) or isinstance(value, float)):
        raise WireError(f"{name} must be a finite number {rule}")
    try:
        number = float(value)
    except OverflowError:
        raise WireError(f"{name} must be a finite number {rule}") from None
    if not math.isfinite(number) or math.copysign(1.0, number) < 0 or (positive and not number):
        raise WireError(f"{name} must be a finite number {rule}")
    return number


def _check_address(address: object) -> str:
    problem = "address must be an IPv4 or IPv6 address without a scope"
    if not isinstance(address, str) or not address.isascii() or "%" in address:
        raise WireError(problem)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise WireError(problem) from None
    return address


def _check_outcomes(outcomes: object) -> Mapping[str, int]:
    """A read-only copy of ``outcomes`` in wire order, if its keys and counts are valid."""
    if not isinstance(outcomes, Mapping):
        raise WireError("outcomes must be a mapping of outcome names to counts")
    if any(name not in _OUTCOME_ORDER for name in outcomes):
        raise WireError(f"outcomes may only count {', '.join(OUTCOMES)}")
    ordered = {name: _check_int(name, outcomes[name]) for name in OUTCOMES if name in outcomes}
    return MappingProxyType(ordered)


def _check_span(version: int, span: object, floor: int) -> int:
    """Check one inclusive span, which must start at ``floor`` or later; return its end."""
    if not (isinstance(span, tuple) and len(span) == 2 and _is_int(span[0]) and _is_int(span[1])):
        raise WireError(f"IPv{version} spans must be (first, last) integer pairs")
    first, last = span
    if not floor <= first <= last <= _ADDRESS_MAX[version]:
        raise WireError(
            f"IPv{version} spans must be sorted, disjoint, first <= last, in the address range"
        )
    return int(last)


def _check_family(entry: object, previous: int) -> int:
    """Check one ``(version, spans)`` entry of the intervals; return its version."""
    if not (isinstance(entry, tuple) and len(entry) == 2):
        raise WireError("intervals must be (version, spans) pairs")
    version, spans = entry
    if not _is_int(version) or version not in _ADDRESS_MAX or version <= previous:
        raise WireError("interval versions must be 4 then 6, each at most once")
    if not isinstance(spans, tuple):
        raise WireError(f"IPv{version} spans must be a tuple")
    floor = 0
    for span in spans:
        floor = _check_span(version, span, floor) + 1
    return int(version)


def _check_space(space: object) -> None:
    if not isinstance(space, TargetSpace):
        raise WireError("space must be a TargetSpace")
    shard = space.shard
    if not (isinstance(shard, tuple) and len(shard) == 2):
        raise WireError("shard must be an (i, n) pair")
    count = _check_int("shard count", shard[1], 1)
    _check_int("shard index", shard[0], 1, count)
    if not isinstance(space.intervals, tuple):
        raise WireError("intervals must be a tuple")
    previous = 0
    for entry in space.intervals:
        previous = _check_family(entry, previous)


def _check_ports(ports: object) -> None:
    if not isinstance(ports, tuple) or not ports:
        raise WireError("ports must be a non-empty tuple")
    for port in ports:
        _check_int("port", port, 1, 65535)


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Counters:
    """A probe process's counters so far: every count a non-negative integer.

    Attributes:
        done: Probes finished, whatever their outcome.
        open: Probes that found an open port.
        attempts: Connect attempts started, retries included.
        retries: Attempts repeated after a timeout.
        backoffs: Times the window shrank after a local resource error.
        outcomes: Finished probes by outcome name (a name of
            :data:`OUTCOMES`; a missing name counts zero). Stored read-only,
            in :data:`OUTCOMES` order.

    Raises:
        WireError: A count is not an integer from 0 to :data:`MAX_COUNT`, or
            an outcome name is unknown.
    """

    done: int = 0
    open: int = 0
    attempts: int = 0
    retries: int = 0
    backoffs: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _COUNTER_FIELDS:
            _check_int(name, getattr(self, name))
        object.__setattr__(self, "outcomes", _check_outcomes(self.outcomes))

    def __hash__(self) -> int:
        counts = (self.done, self.open, self.attempts, self.retries, self.backoffs)
        return hash((counts, tuple(self.outcomes.items())))

    def _covers(self, earlier: Counters) -> bool:
        """Whether no count here is below the same count in ``earlier``."""
        return all(
            getattr(self, name) >= getattr(earlier, name) for name in _COUNTER_FIELDS
        ) and all(self.outcomes.get(name, 0) >= n for name, n in earlier.outcomes.items())


@dataclass(frozen=True, slots=True)
class Hello:
    """The first line a probe process writes: the wire version it speaks.

    Raises:
        WireError: ``version`` is not an integer from 1 to :data:`MAX_COUNT`.
    """

    version: int = WIRE_VERSION

    def __post_init__(self) -> None:
        _check_int("version", self.version, 1)


@dataclass(frozen=True, slots=True)
class OpenPort:
    """A port that accepted a connection.

    Attributes:
        address: The address probed, as text (IPv4 or IPv6, no scope).
        port: The TCP port, 1 to 65535.
        latency: Seconds the successful connect took (finite, >= 0);
            an ``int`` is stored as a ``float``.
        attempts: Connect attempts it took, at least 1.

    Raises:
        WireError: A field is out of its range.
    """

    address: str
    port: int
    latency: float
    attempts: int

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_int("port", self.port, 1, 65535)
        object.__setattr__(self, "latency", _check_float("latency", self.latency, positive=False))
        _check_int("attempts", self.attempts, 1)


@dataclass(frozen=True, slots=True)
class _Report:
    """A message that carries a probe process's counters (see its two kinds below)."""

    counters: Counters

    def __post_init__(self) -> None:
        if not isinstance(self.counters, Counters):
            raise WireError("counters must be a Counters")


@dataclass(frozen=True, slots=True)
class Progress(_Report):
    """The probe process's counters so far (written every tenth of a second).

    Raises:
        WireError: ``counters`` is not a :class:`Counters`.
    """


@dataclass(frozen=True, slots=True)
class Finished(_Report):
    """The probe process swept its whole part; its final counters. Nothing follows.

    Raises:
        WireError: ``counters`` is not a :class:`Counters`.
    """


@dataclass(frozen=True, slots=True)
class Failed:
    """The probe process could not do its job. Nothing follows.

    Attributes:
        reason: Why, in 1 to :data:`MAX_REASON` printable ASCII characters.
            Build one from arbitrary text with :meth:`sanitized`.

    Raises:
        WireError: ``reason`` is empty, too long, or not printable ASCII.
    """

    reason: str

    def __post_init__(self) -> None:
        reason = self.reason
        if not (
            isinstance(reason, str)
            and 0 < len(reason) <= MAX_REASON
            and reason.isascii()
            and reason.isprintable()
        ):
            raise WireError(f"reason must be 1 to {MAX_REASON} printable ASCII characters")

    @classmethod
    def sanitized(cls, text: str) -> Failed:
        """A :class:`Failed` for any text (an exception's message, say).

        Runs of whitespace become one space, other characters outside
        printable ASCII are backslash-escaped, and a reason longer than
        :data:`MAX_REASON` is cut and ends in ``...``.
        """
        words = " ".join(str(text).split())
        escaped = "".join(
            ch if " " <= ch <= "~" else ch.encode("unicode_escape").decode("ascii") for ch in words
        )
        if len(escaped) > MAX_REASON:
            escaped = escaped[: MAX_REASON - 3] + "..."
        return cls(escaped or "no reason given")


#: Anything a probe process writes to its parent.
Message: TypeAlias = Hello | OpenPort | Progress | Finished | Failed

_KIND_NAMES = {"h": "hello", "o": "open-port", "s": "progress", "e": "finished", "f": "failed"}


def _encode_counters(counters: Counters) -> str:
    fields = [f"{getattr(counters, name):d}" for name in _COUNTER_FIELDS]
    fields.extend(f"{name}={count:d}" for name, count in counters.outcomes.items())
    return " ".join(fields)


def encode(message: Message) -> bytes:
    """One message as one LF-terminated ASCII line (see the module doc).

    Raises:
        WireError: ``message`` is not a :data:`Message`.
    """
    match message:
        case Hello():
            text = f"h {message.version:d}"
        case OpenPort():
            text = f"o {message.address} {message.port:d} {message.latency!r} {message.attempts:d}"
        case Progress():
            text = f"s {_encode_counters(message.counters)}"
        case Finished():
            text = f"e {_encode_counters(message.counters)}"
        case Failed():
            text = f"f {message.reason}"
        case _:
            raise WireError(f"cannot encode a {type(message).__name__}")
    return text.encode("ascii") + b"\n"


# ------------------------------------------------------------------ decoding


def _parse_uint(name: str, token: str) -> int:
    if not (token.isascii() and _plain_uint(token.encode("ascii"))):
        raise WireError(f"{name} is not a plain decimal integer")
    return int(token)


def _parse_float(name: str, token: str) -> float:
    problem = f"{name} is not a float as repr() writes it"
    if len(token) > _MAX_FLOAT_TEXT:
        raise WireError(problem)
    try:
        value = float(token)
    except ValueError:
        raise WireError(problem) from None
    if repr(value) != token:
        raise WireError(problem)
    return value


def _fields(rest: str, count: int) -> list[str]:
    fields = rest.split(" ")
    if len(fields) != count:
        raise WireError(f"expected {count} fields, got {len(fields)}")
    return fields


def _decode_hello(rest: str) -> Hello:
    return Hello(_parse_uint("version", rest))


def _decode_open(rest: str) -> OpenPort:
    address, port, latency, attempts = _fields(rest, 4)
    return OpenPort(
        _check_address(address),
        _parse_uint("port", port),
        _parse_float("latency", latency),
        _parse_uint("attempts", attempts),
    )


def _decode_counters(rest: str) -> Counters:
    fields = rest.split(" ")
    if not len(_COUNTER_FIELDS) <= len(fields) <= len(_COUNTER_FIELDS) + len(OUTCOMES):
        raise WireError(f"expected 5 to 11 counter fields, got {len(fields)}")
    done, open_, attempts, retries, backoffs = (
        _parse_uint(name, token) for name, token in zip(_COUNTER_FIELDS, fields, strict=False)
    )
    outcomes: dict[str, int] = {}
    last = -1
    for token in fields[len(_COUNTER_FIELDS) :]:
        name, equals, count = token.partition("=")
        order = _OUTCOME_ORDER.get(name, -1)
        if not equals or order <= last:
            raise WireError("outcomes must be known names, each at most once, in order")
        last = order
        outcomes[name] = _parse_uint(name, count)
    return Counters(done, open_, attempts, retries, backoffs, outcomes)


def _decode_progress(rest: str) -> Progress:
    return Progress(_decode_counters(rest))


def _decode_finished(rest: str) -> Finished:
    return Finished(_decode_counters(rest))


def _decode_failed(rest: str) -> Failed:
    return Failed(rest)


_DECODERS: Final[Mapping[str, Callable[[str], Message]]] = {
    "h": _decode_hello,
    "o": _decode_open,
    "s": _decode_progress,
    "e": _decode_finished,
    "f": _decode_failed,
}


def _decode_line(line: bytes) -> Message:
    """Decode one line, its LF already removed."""
    if len(line) >= MAX_LINE:
        raise WireError(f"line longer than {MAX_LINE} bytes: {_snippet(line)}")
    if not line.isascii() or not (text := line.decode("ascii")).isprintable():
        raise WireError(f"line is not printable ASCII: {_snippet(line)}")
    kind, _, rest = text.partition(" ")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise WireError(f"unknown message kind: {_snippet(line)}")
    try:
        return decoder(rest)
    except WireError as exc:
        raise WireError(f"bad {_KIND_NAMES[kind]} line {_snippet(line)}: {exc}") from None


def decode(line: bytes | bytearray | memoryview) -> Message:
    """Decode one line as :func:`encode` writes it, its LF included.

    Stateless: it does not check that a stream starts with a matching
    :class:`Hello`; a :class:`MessageReader` does.

    Raises:
        WireError: ``line`` is not exactly one valid line.
    """
    data = _as_bytes(line)
    if not data.endswith(b"\n") or b"\n" in data[:-1]:
        raise WireError(f"expected one LF-terminated line: {_snippet(data)}")
    return _decode_line(data[:-1])


class _State(enum.Enum):
    HELLO = "waiting for hello"
    RUNNING = "reading reports"
    FINAL = "after the final message"
    ENDED = "ended"
    BROKEN = "broken"


class MessageReader:
    """An incremental decoder of what a probe process writes.

    Feed it bytes as they arrive, in chunks of any size; it returns the
    complete messages and keeps a partial line (at most :data:`MAX_LINE`
    bytes) for the next call. Call :meth:`end` at EOF.

    It checks the stream as a whole too: the first message is a
    :class:`Hello` of :data:`WIRE_VERSION`, counters never go backwards, and
    nothing follows the final :class:`Finished` or :class:`Failed`.

    A :class:`WireError` is final: messages decoded earlier in the same
    :meth:`feed` call are not returned, and any later call raises again.
    """

    __slots__ = ("_buffer", "_counters", "_final", "_state")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _State.HELLO
        self._counters = Counters()
        self._final: Finished | Failed | None = None

    @property
    def final(self) -> Finished | Failed | None:
        """The final message, once it has arrived; ``None`` before."""
        return self._final

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Take the next bytes of the stream; return the messages they complete.

        Raises:
            WireError: The stream is malformed, a line grew past
                :data:`MAX_LINE` bytes, bytes follow the final message, the
                reader already failed or :meth:`end` was called.
        """
        chunk = _as_bytes(data)
        self._check_usable("feed")
        try:
            return self._feed(chunk)
        except WireError:
            self._state = _State.BROKEN
            raise

    def end(self) -> None:
        """Say the stream has ended (EOF). Calling it again does nothing.

        Raises:
            WireError: The stream ended inside a line (truncated), before its
                :class:`Hello`, or before its :class:`Finished` or
                :class:`Failed`; or the reader already failed.
        """
        if self._state is _State.ENDED:
            return
        self._check_usable("end")
        try:
            self._check_complete()
        except WireError:
            self._state = _State.BROKEN
            raise
        self._state = _State.ENDED

    def _check_usable(self, call: str) -> None:
        if self._state is _State.BROKEN:
            raise WireError(f"{call}() on a stream that already failed to decode")
        if self._state is _State.ENDED:
            raise WireError(f"{call}() after end()")

    def _check_complete(self) -> None:
        if self._buffer:
            raise WireError(f"the stream ends in a truncated line: {_snippet(self._buffer)}")
        if self._state is _State.HELLO:
            raise WireError("the stream ended before its hello")
        if self._state is _State.RUNNING:
            raise WireError("the stream ended before its finished or failed message")

    def _feed(self, chunk: bytes) -> list[Message]:
        if self._state is _State.FINAL and chunk:
            raise WireError(f"data after the final message: {_snippet(chunk)}")
        self._buffer += chunk
        messages: list[Message] = []
        start = 0
        while (newline := self._buffer.find(b"\n", start)) != -1:
            messages.append(self._accept(bytes(self._buffer[start:newline])))
            start = newline + 1
            if self._state is _State.FINAL and start < len(self._buffer):
                raise WireError(f"data after the final message: {_snippet(self._buffer[start:])}")
        del self._buffer[:start]
        if len(self._buffer) >= MAX_LINE:
            raise WireError(f"line longer than {MAX_LINE} bytes: {_snippet(self._buffer)}")
        return messages

    def _accept(self, line: bytes) -> Message:
        if self._state is _State.HELLO:
            return self._accept_hello(line)
        message = _decode_line(line)
        if isinstance(message, Hello):
            raise WireError("a second hello")
        if isinstance(message, Progress | Finished):
            if not message.counters._covers(self._counters):
                raise WireError(f"counters went backwards: {_snippet(line)}")
            self._counters = message.counters
        if isinstance(message, Finished | Failed):
            self._state = _State.FINAL
            self._final = message
        return message

    def _accept_hello(self, line: bytes) -> Message:
        kind, _, rest = line.partition(b" ")
        version = rest.partition(b" ")[0]
        if kind == b"h" and _plain_uint(version) and int(version) != WIRE_VERSION:
            raise WireError(
                f"the probe process speaks wire version {_show_version(version)};"
                f" this one speaks {WIRE_VERSION}"
            )
        message = _decode_line(line)
        if not isinstance(message, Hello):
            raise WireError(f"the first message must be hello: {_snippet(line)}")
        self._state = _State.RUNNING
        return message


# ----------------------------------------------------------------------- job


@dataclass(frozen=True, slots=True)
class Job:
    """What one probe process sweeps, and how.

    Attributes:
        space: Its part of the target space. Its intervals must be what
            :class:`~xendiscover._targets.TargetSpace` builds: tuples, versions
            4 then 6 (each at most once), spans sorted, disjoint, inside the
            family's range; its shard ``(i, n)`` with ``1 <= i <= n``.
        ports: The ports to try on each address: a non-empty tuple, each
            1 to 65535.
        timeout: Seconds a connect attempt may wait (finite, > 0).
        retries: Extra attempts after a timeout (>= 0).
        window: The most connects in flight (>= 1).
        rate: This process's share of the connection-rate cap (finite, > 0),
            or ``None`` for no cap.

    An ``int`` timeout or rate is stored as a ``float``.

    Raises:
        WireError: A field is out of its range: such a job cannot cross the wire.
    """

    space: TargetSpace
    ports: tuple[int, ...]
    timeout: float
    retries: int
    window: int
    rate: float | None

    def __post_init__(self) -> None:
        _check_space(self.space)
        _check_ports(self.ports)
        object.__setattr__(self, "timeout", _check_float("timeout", self.timeout, positive=True))
        _check_int("retries", self.retries)
        _check_int("window", self.window, 1)
        if self.rate is not None:
            object.__setattr__(self, "rate", _check_float("rate", self.rate, positive=True))


def encode_job(job: Job) -> bytes:
    """The job as one LF-terminated ASCII line (see the module doc).

    Raises:
        WireError: ``job`` is not a :class:`Job`.
    """
    if not isinstance(job, Job):
        raise WireError(f"cannot encode a {type(job).__name__} as a job")
    payload = {
        "intervals": [[v, [list(span) for span in spans]] for v, spans in job.space.intervals],
        "shard": list(job.space.shard),
        "ports": list(job.ports),
        "timeout": job.timeout,
        "retries": job.retries,
        "window": job.window,
        "rate": job.rate,
    }
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return b"%s %d %s\n" % (JOB_MAGIC, WIRE_VERSION, body.encode("ascii"))


class _BadJSON(ValueError):
    """A JSON construct the job format forbids (NaN, Infinity, a repeated key)."""


def _reject_constant(name: str) -> Any:
    raise _BadJSON(name)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _BadJSON("repeated key")
    return result


def _job_payload(data: bytes) -> Any:
    """The JSON payload of an encoded job, after checking its frame."""
    magic, _, rest = data.partition(b" ")
    if magic != JOB_MAGIC:
        raise WireError(f"not a xendiscover sweep job: {_snippet(data)}")
    version, _, body = rest.partition(b" ")
    if version != b"%d" % WIRE_VERSION:
        raise WireError(
            f"the job is for wire version {_show_version(version)};"
            f" this probe process speaks {WIRE_VERSION}"
        )
    if not body.endswith(b"\n") or b"\n" in body[:-1]:
        raise WireError(f"the job is not one LF-terminated line (truncated?): {_snippet(data)}")
    if not body.isascii():
        raise WireError(f"the job is not ASCII: {_snippet(body)}")
    try:
        return json.loads(
            body[:-1].decode("ascii"),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError):  # json.JSONDecodeError is a ValueError
        raise WireError(f"the job is not valid JSON: {_snippet(body)}") from None


def _listed(name: str, value: object, length: int | None = None) -> tuple[Any, ...]:
    """A JSON array as a tuple, if it is one (of ``length`` items, if given)."""
    if not isinstance(value, list) or (length is not None and len(value) != length):
        shape = "an array" if length is None else f"an array of {length}"
        raise WireError(f"job {name} must be {shape}")
    return tuple(value)


def _intervals_from(value: object) -> tuple[tuple[Any, tuple[Any, ...]], ...]:
    families = []
    for entry in _listed("intervals", value):
        version, spans = _listed("intervals entry", entry, 2)
        families.append((version, tuple(_listed("span", s, 2) for s in _listed("spans", spans))))
    return tuple(families)


def decode_job(data: bytes | bytearray | memoryview) -> Job:
    """Read a job written by :func:`encode_job`, checking every field.

    Raises:
        WireError: ``data`` is not one valid job line of :data:`WIRE_VERSION`.
    """
    payload = _job_payload(_as_bytes(data))
    if not isinstance(payload, dict) or set(payload) != _JOB_KEYS:
        raise WireError(f"the job must be an object with the keys {', '.join(sorted(_JOB_KEYS))}")
    intervals = _intervals_from(payload["intervals"])
    index, count = _listed("shard", payload["shard"], 2)
    try:
        return Job(
            space=TargetSpace(intervals, shard=(index, count)),
            ports=_listed("ports", payload["ports"]),
            timeout=payload["timeout"],
            retries=payload["retries"],
            window=payload["window"],
            rate=payload["rate"],
        )
    except WireError as exc:
        raise WireError(f"bad job: {exc}") from None
