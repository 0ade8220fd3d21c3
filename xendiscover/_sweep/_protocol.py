"""What the scanning process and its probe processes say to each other.

Both ends are the same build, so the protocol is small: JSON lines, each an
object that carries the protocol's version ``"v"``, at most :data:`MAX_LINE`
bytes, every field checked on the way in. The scanning process writes one
:class:`Job` on the probe process's stdin (:func:`encode_job`); the probe
process answers on stdout, one line per message (:func:`encode`, read back
by a :class:`Reader`)::

    {"v": 2, "open": ["192.0.2.7", 443, 0.0123, 1]}   OpenPort: address, port,
                                                       latency (s), attempts
    {"v": 2, "progress": {counts}}                     Progress, every 0.1 s
    {"v": 2, "finished": {counts}}                     Progress(final=True): the end
    {"v": 2, "failed": "reason"}                       Failed: the end

``counts`` is :meth:`ScanStats.counts` (the one counter type): the probe
process's counters so far; the scanning process adds what grew into its own.
Whatever the input, reading raises :class:`WireError` and nothing else, with
a one-line message.

The job also names how to build its prober (:meth:`Job.prober`) and its
items (:meth:`Job.items`): the scanning process and the probe processes
sweep their parts with the same code.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from xendiscover._backend import Backend, Outcome
from xendiscover._errors import XenDiscoverError
from xendiscover._escape import escape
from xendiscover._sweep._prober import Item, Prober, ScanStats
from xendiscover._targets import TargetSpace

__all__ = [
    "MAX_JOB",
    "MAX_LINE",
    "MAX_REASON",
    "VERSION",
    "Failed",
    "Job",
    "Message",
    "OpenPort",
    "Progress",
    "Reader",
    "WireError",
    "decode_job",
    "encode",
    "encode_job",
]

#: The protocol's version; both ends must speak the same.
VERSION: Final = 2
#: The longest line either end may write, its LF included, in bytes.
MAX_LINE: Final = 4096
#: The longest job line, in bytes (its intervals may be many).
MAX_JOB: Final = 64 * 2**20
#: The longest reason a :class:`Failed` carries, in characters.
MAX_REASON: Final = 200

_MAX_COUNT = 2**63 - 1
_ADDRESS_MAX = {4: 2**32 - 1, 6: 2**128 - 1}


class WireError(XenDiscoverError):
    """Bytes that are not the protocol; the message is one line."""


def _shown(data: bytes | str) -> str:
    """A bounded, escaped excerpt of bad input, safe in a one-line message."""
    return escape(data, limit=60)


def _int(name: str, value: object, low: int = 0, high: int = _MAX_COUNT) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise WireError(f"{name} must be an integer from {low} to {high}")
    return value


def _number(name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{name} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise WireError(f"{name} must be finite and {'> 0' if positive else '>= 0'}")
    return number


def _list(name: str, value: object, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise WireError(f"{name} must be a list" + (f" of {length}" if length else ""))
    return value


# ----------------------------------------------------------------------- job


@dataclass(frozen=True, slots=True)
class Job:
    """One sweep's inputs: what to sweep, and how.

    Attributes:
        space: The addresses (a part of the scan's :class:`TargetSpace`).
        ports: The ports tried on each address (at least one, 1 to 65535).
        timeout: Seconds a connect attempt may wait (finite, > 0).
        retries: Extra attempts after a timeout (>= 0).
        window: The most connects in flight (>= 1).
        rate: The most connects started per second, or ``None``.
    """

    space: TargetSpace
    ports: tuple[int, ...]
    timeout: float
    retries: int
    window: int
    rate: float | None = None

    @property
    def total(self) -> int:
        """The number of probes: addresses × ports."""
        return self.space.size * len(self.ports)

    def split(self, parts: int) -> list[Job]:
        """Split into ``parts`` interleaved jobs that share the window and the rate."""
        spaces = self.space.split(parts)
        window = max(1, self.window // len(spaces))
        rate = self.rate / len(spaces) if self.rate else None
        return [Job(s, self.ports, self.timeout, self.retries, window, rate) for s in spaces]

    def items(self) -> Iterator[Item]:
        """The probes, address by address: ``(family, address, port)``."""
        return ((family, address, port) for family, address in self.space for port in self.ports)

    def prober(self, backend: Backend, stats: ScanStats, *, keep: bool = False) -> Prober:
        """The prober that sweeps this job (in either process); ``keep``: see :class:`Prober`."""
        return Prober(
            backend,
            timeout=self.timeout,
            retries=self.retries,
            window=self.window,
            rate=self.rate,
            stats=stats,
            ports=len(self.ports),
            keep=keep,
        )


def encode_job(job: Job) -> bytes:
    """The job as one JSON line (what a probe process reads on stdin)."""
    payload = {
        "v": VERSION,
        "intervals": [[v, [list(span) for span in spans]] for v, spans in job.space.intervals],
        "shard": list(job.space.shard),
        "ports": list(job.ports),
        "timeout": job.timeout,
        "retries": job.retries,
        "window": job.window,
        "rate": job.rate,
    }
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"


def _spans(version: object, spans: object) -> tuple[int, tuple[tuple[int, int], ...]]:
    """One family's spans, checked: sorted, disjoint, inside the family's range."""
    family = _int("interval version", version, 4, 6)
    if family not in _ADDRESS_MAX:
        raise WireError("interval versions must be 4 or 6")
    top = _ADDRESS_MAX[family]
    checked: list[tuple[int, int]] = []
    floor = 0
    for span in _list("spans", spans):
        first, last = (_int("span", n, floor, top) for n in _list("span", span, 2))
        if last < first:
            raise WireError("spans must be sorted and disjoint")
        checked.append((first, last))
        floor = last + 1
    return family, tuple(checked)


def _space(payload: dict[str, Any]) -> TargetSpace:
    entries = _list("intervals", payload.get("intervals"))
    families = [_spans(*_list("intervals entry", entry, 2)) for entry in entries]
    if [v for v, _ in families] not in ([], [4], [6], [4, 6]):
        raise WireError("interval versions must be 4 then 6, each at most once")
    index, count = _list("shard", payload.get("shard"), 2)
    count = _int("shard count", count, 1)
    return TargetSpace(tuple(families), shard=(_int("shard index", index, 1, count), count))


def decode_job(data: bytes) -> Job:
    """Read a job written by :func:`encode_job`, checking every field.

    Raises:
        WireError: ``data`` is not one job line of this :data:`VERSION`.
    """
    payload = _object(data, MAX_JOB)
    ports = tuple(_int("port", p, 1, 65535) for p in _list("ports", payload.get("ports")))
    if not ports:
        raise WireError("a job needs at least one port")
    rate = payload.get("rate")
    return Job(
        space=_space(payload),
        ports=ports,
        timeout=_number("timeout", payload.get("timeout"), positive=True),
        retries=_int("retries", payload.get("retries"), 0),
        window=_int("window", payload.get("window"), 1),
        rate=None if rate is None else _number("rate", rate, positive=True),
    )


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class OpenPort:
    """A port that accepted a connection, its latency (s) and the attempts it took."""

    address: str
    port: int
    latency: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Progress:
    """The probe process's counters so far; ``final``: it swept its whole part."""

    stats: ScanStats
    final: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    """The probe process could not do its job; ``reason`` is escaped and bounded."""

    reason: str

    @classmethod
    def of(cls, text: str) -> Failed:
        """A :class:`Failed` for any text: one line, printable ASCII, bounded."""
        shown = escape(" ".join(str(text).split()), ascii_only=True, limit=MAX_REASON)
        return cls(shown or "no reason given")


#: Anything a probe process writes.
Message: TypeAlias = OpenPort | Progress | Failed


def encode(message: Message) -> bytes:
    """One message as one JSON line."""
    body: object
    match message:
        case OpenPort():
            key, body = "open", [message.address, message.port, message.latency, message.attempts]
        case Progress():
            key, body = "finished" if message.final else "progress", message.stats.counts()
        case Failed():
            key, body = "failed", message.reason
    return json.dumps({"v": VERSION, key: body}, separators=(",", ":")).encode("ascii") + b"\n"


def _object(line: bytes, limit: int = MAX_LINE) -> dict[str, Any]:
    """The JSON object of one line of at most ``limit`` bytes, of this :data:`VERSION`."""
    if len(line) > limit:
        raise WireError(f"a line longer than {limit} bytes: {_shown(line)}")
    try:
        payload = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError too
        raise WireError(f"not a JSON line: {_shown(line)}") from None
    if not isinstance(payload, dict):
        raise WireError(f"not a JSON object: {_shown(line)}")
    if payload.get("v") != VERSION:
        raise WireError(f"protocol version {_shown(repr(payload.get('v')))}; this is {VERSION}")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: no count or latency is one


def _open_port(body: object) -> OpenPort:
    address, port, latency, attempts = _list("open", body, 4)
    try:
        ipaddress.ip_address(address if isinstance(address, str) and "%" not in address else "")
    except ValueError:
        raise WireError("open: not an IP address") from None
    return OpenPort(
        address,
        _int("port", port, 1, 65535),
        _number("latency", latency, positive=False),
        _int("attempts", attempts, 1),
    )


def _counts(body: object, final: bool) -> Progress:
    if not isinstance(body, dict):
        raise WireError("counts must be an object")
    outcomes = body.get("outcomes", {})
    if not isinstance(outcomes, dict):
        raise WireError("outcomes must be an object")
    try:
        counted = {Outcome(name): _int(name, n) for name, n in outcomes.items()}
    except ValueError:
        raise WireError("outcomes may only count outcome names") from None
    stats = ScanStats(outcomes=counted)
    for name in ScanStats.COUNTED:
        setattr(stats, name, _int(name, body.get(name)))
    return Progress(stats, final)


def _failed(body: object) -> Failed:
    if not (isinstance(body, str) and 0 < len(body) <= MAX_REASON and body.isascii()):
        raise WireError(f"failed: the reason must be 1 to {MAX_REASON} ASCII characters")
    if not body.isprintable():
        raise WireError("failed: the reason must be printable")
    return Failed(body)


def decode(line: bytes) -> Message:
    """One message from one line (its LF removed).

    Raises:
        WireError: The line is not one message of this :data:`VERSION`.
    """
    payload = _object(line)
    kinds = [k for k in ("open", "progress", "finished", "failed") if k in payload]
    if len(kinds) != 1:
        raise WireError(f"not one message: {_shown(line)}")
    body = payload[kinds[0]]
    if kinds[0] == "open":
        return _open_port(body)
    if kinds[0] == "failed":
        return _failed(body)
    return _counts(body, final=kinds[0] == "finished")


class Reader:
    """Splits what a probe process writes into messages, in chunks of any size.

    A partial line is kept for the next :meth:`feed` (at most
    :data:`MAX_LINE` bytes); :attr:`final` is the last message once one
    came (a finished :class:`Progress` or a :class:`Failed`).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.final: Progress | Failed | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        """The messages that ``chunk`` completes.

        Raises:
            WireError: A bad line, a line past :data:`MAX_LINE` bytes, or
                anything after the last message.
        """
        self._buffer += chunk
        *lines, rest = self._buffer.split(b"\n")
        if len(rest) > MAX_LINE:
            raise WireError(f"a line longer than {MAX_LINE} bytes: {_shown(bytes(rest))}")
        self._buffer = rest
        messages = []
        for line in lines:
            if self.final is not None:
                raise WireError(f"a line after the last message: {_shown(bytes(line))}")
            message = decode(bytes(line))
            if isinstance(message, Failed) or (isinstance(message, Progress) and message.final):
                self.final = message
            messages.append(message)
        return messages

    def end(self) -> Progress | Failed:
        """The last message, at the end of the stream.

        Raises:
            WireError: The stream ended inside a line, or before its last message.
        """
        if self._buffer:
            raise WireError(f"the stream ends inside a line: {_shown(bytes(self._buffer))}")
        if self.final is None:
            raise WireError("the stream ended before its last message")
        return self.final
