"""What a run was asked to do and how it ended: the metadata the machine-readable outputs carry.

:class:`RunInfo` is the ``run`` object of a ``json`` document, the first
(``"record": "run"``) line of ``jsonl`` and the ``FILE.run.json`` beside a
``csv`` file. It says which tool wrote the result (name, version, format),
when, what was swept (the targets as given, as resolved, the exclusions,
the ports, the shard) and whether the run completed: what ``diff`` needs to
tell a machine that went away from one that was not looked for, and what
``merge`` needs to tell the shards of one plan apart from those of another.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Literal, get_args

from xendiscover._errors import ResultError, TargetError
from xendiscover._targets import TargetSpace

__all__ = [
    "FORMAT_VERSION",
    "TOOL",
    "Listing",
    "RunInfo",
    "describe_shards",
    "now",
    "space_networks",
]

#: The ``tool`` field of every run record.
TOOL: Final = "xendiscover"

#: The version of the machine-readable documents: 3 added the run metadata
#: (``json`` became an object ``{"run": ..., "machines": [...]}``; version 2
#: was a bare array of machines). Grows when a reader must change.
FORMAT_VERSION: Final = 3

#: Which machines a result lists: the Xen machines (``xen``), or every
#: machine with an open port (``all``; ``open`` for a scan without fingerprints).
Listing = Literal["xen", "all", "open"]

_LISTINGS: Final = frozenset(get_args(Listing))
_STOPS: Final = frozenset({"SIGINT", "SIGTERM", "error"})


def now() -> str:
    """The current time as ISO 8601 text in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _ip(value: int, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def space_networks(space: TargetSpace) -> tuple[str, ...]:
    """The addresses of a target space (the whole of it, not a shard) as CIDR networks."""
    return tuple(
        str(net)
        for version, spans in space.intervals
        for start, end in spans
        for net in ipaddress.summarize_address_range(_ip(start, version), _ip(end, version))
    )


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run of the scan: what it swept, when, with what, and how it ended.

    Attributes:
        version: The version of xendiscover that ran it.
        started: When it started (ISO 8601, UTC).
        ended: When it ended, or ``None`` while it runs.
        targets: The targets as given; empty when the local networks were swept.
        local_networks: Whether the targets were this machine's local networks.
        resolved: What the targets came to, names resolved and exclusions
            taken out, as CIDR networks: the whole plan, before ``shard``.
        exclude: The exclusions as given.
        ports: The TCP ports tried on each address.
        shard: ``(i, n)``: the run swept shard i of n of ``resolved``.
        listing: Which machines the result lists (see :data:`Listing`).
        completed: Whether it ran to its end (no signal, no failure).
        stopped: What cut it short (``SIGINT``, ``SIGTERM``, ``error``), or ``None``.
        merged: For a result ``merge`` made: the shards merged, else empty.
    """

    version: str
    started: str
    ended: str | None = None
    targets: tuple[str, ...] = ()
    local_networks: bool = False
    resolved: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    shard: tuple[int, int] = (1, 1)
    listing: Listing = "xen"
    completed: bool = False
    stopped: str | None = None
    merged: tuple[tuple[int, int], ...] = ()

    def finished(self, *, stopped: str | None) -> RunInfo:
        """The run, ended now: completed unless ``stopped`` says what cut it short."""
        return replace(self, ended=now(), completed=stopped is None, stopped=stopped)

    def as_dict(self) -> dict[str, object]:
        """The run as a JSON-ready dictionary (the ``run`` object of a document)."""
        record: dict[str, object] = {
            "tool": TOOL,
            "version": self.version,
            "format": FORMAT_VERSION,
            "started": self.started,
            "ended": self.ended,
            "targets": list(self.targets),
            "local_networks": self.local_networks,
            "resolved": list(self.resolved),
            "exclude": list(self.exclude),
            "ports": list(self.ports),
            "shard": f"{self.shard[0]}/{self.shard[1]}",
            "listing": self.listing,
            "completed": self.completed,
            "stopped": self.stopped,
        }
        if self.merged:
            record["merged"] = [f"{i}/{n}" for i, n in self.merged]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, object]) -> RunInfo:
        """Read a run object back (as :meth:`as_dict` wrote it).

        Raises:
            ResultError: It is not one, or a newer format (one line each).
        """
        _check_tool(record)
        ended = record.get("ended")
        stopped = record.get("stopped")
        listing = record.get("listing")
        if listing not in _LISTINGS:
            raise ResultError(f"run record: invalid listing {listing!r}")
        if stopped is not None and stopped not in _STOPS:
            raise ResultError(f"run record: invalid stopped {stopped!r}")
        return cls(
            version=_text(record, "version"),
            started=_text(record, "started"),
            ended=None if ended is None else _text(record, "ended"),
            targets=_texts(record, "targets"),
            local_networks=_flag(record, "local_networks"),
            resolved=_networks(record),
            exclude=_texts(record, "exclude"),
            ports=_ports(record),
            shard=_shard(record.get("shard")),
            listing=listing,  # type: ignore[arg-type]  # checked above
            completed=_flag(record, "completed"),
            stopped=stopped if isinstance(stopped, str) else None,
            merged=tuple(_shard(s) for s in _list(record, "merged", required=False)),
        )

    def covers(self, address: str) -> bool:
        """Whether this run's own sweep tried ``address`` (its shard of ``resolved``)."""
        ip = ipaddress.ip_address(address)
        index = 0  # of the interval's first address, in the whole space (walking order)
        first, step = self.shard[0] - 1, self.shard[1]
        for version, spans in _target_space(self.resolved).intervals:
            for start, end in spans:
                if version == ip.version and start <= int(ip) <= end:
                    return (index + int(ip) - start) % step == first
                index += end - start + 1
        return False


@functools.lru_cache(maxsize=64)
def _target_space(resolved: tuple[str, ...]) -> TargetSpace:
    try:
        return TargetSpace.from_specs(resolved)
    except TargetError as exc:  # checked on reading; a hand-made RunInfo may not be
        raise ResultError(f"run record: {exc}") from None


def _check_tool(record: Mapping[str, object]) -> None:
    if record.get("tool") != TOOL:
        raise ResultError("not a result of xendiscover: the run record names no xendiscover")
    version = record.get("format")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError("run record: no format version")
    if version > FORMAT_VERSION:
        raise ResultError(
            f"written by a newer xendiscover ({record.get('version')!r}, format {version}); "
            f"this one ({FORMAT_VERSION}) cannot read it: upgrade xendiscover"
        )
    if version < FORMAT_VERSION:
        raise ResultError(f"run record of format {version}: not one this version reads")


#: The longest text a run record's field may hold (a target, a time).
MAX_TEXT: Final = 1024


def _text(record: Mapping[str, object], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise ResultError(f"run record: invalid {key!r}")
    return value


def _flag(record: Mapping[str, object], key: str) -> bool:
    value = record.get(key)
    if not isinstance(value, bool):
        raise ResultError(f"run record: invalid {key!r}")
    return value


def _list(record: Mapping[str, object], key: str, *, required: bool = True) -> list[object]:
    value = record.get(key, None if required else [])
    if not isinstance(value, list):
        raise ResultError(f"run record: invalid {key!r}")
    return value


def _texts(record: Mapping[str, object], key: str) -> tuple[str, ...]:
    items = _list(record, key)
    return tuple(_text({key: item}, key) for item in items)


def _networks(record: Mapping[str, object]) -> tuple[str, ...]:
    networks = _texts(record, "resolved")
    for network in networks:
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise ResultError(f"run record: invalid network {network!r}") from None
    return networks


def _ports(record: Mapping[str, object]) -> tuple[int, ...]:
    ports = _list(record, "ports")
    if not all(type(p) is int and 1 <= p <= 65535 for p in ports):
        raise ResultError("run record: invalid 'ports'")
    return tuple(p for p in ports if isinstance(p, int))


def _shard(value: object) -> tuple[int, int]:
    index, _, count = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not (index.isdigit() and count.isdigit() and len(count) < 10):
        raise ResultError(f"run record: invalid shard {value!r}")
    if not 1 <= int(index) <= int(count):
        raise ResultError(f"run record: invalid shard {value!r}")
    return int(index), int(count)


def describe_shards(shards: Iterable[tuple[int, int]]) -> str:
    """Shards as people write them: ``2/4, 3/4``."""
    return ", ".join(f"{i}/{n}" for i, n in shards)
