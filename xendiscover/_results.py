"""Results read back: this tool's ``json`` and ``jsonl`` files as model values, and merged.

:func:`load_result` reads a file (:func:`parse_result` a text) into a
:class:`ScanResult`: the run's metadata (:class:`~xendiscover.RunInfo`) and
its machines (:class:`~xendiscover.Host`), and, from ``jsonl``, every open
port (:class:`~xendiscover.Finding`). A result file is input like any other:
its size, its records and every field are checked, and anything else is a
one-line :class:`~xendiscover.ResultError`. A ``json`` array or a ``jsonl``
file without a ``run`` line (written before run metadata, format 2) is read
without a run; a newer format is refused, saying so.

:func:`merge` puts the shards of one plan (``--shard i/n``) back together:
their open ports are grouped into machines by the code
:func:`~xendiscover.discover` uses (:func:`~xendiscover.group_findings`), so
a multi-homed host two shards found is one machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar, get_args

from xendiscover._errors import ResultError
from xendiscover._model import (
    CONFIDENCE_RANK,
    VERDICT_RANK,
    Confidence,
    Finding,
    Host,
    HostnameSource,
    PortFinding,
    Product,
    Service,
)
from xendiscover._output import listed
from xendiscover._run import Listing, RunInfo, describe_shards

__all__ = [
    "MAX_RESULT_BYTES",
    "ScanResult",
    "load_result",
    "merge",
    "parse_result",
]

#: The largest result file read (a /16 of open ports is a few tens of MB).
MAX_RESULT_BYTES: Final = 256 * 1024 * 1024

#: The longest text any field of a machine or port record may hold.
MAX_FIELD: Final = 2560

_SERVICES: Final = frozenset(get_args(Service))
_SOURCES: Final = frozenset(get_args(HostnameSource))
_HEX = frozenset("0123456789abcdef")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One scan's result, as a file holds it or as :func:`merge` made it.

    Attributes:
        machines: The machines the result lists, sorted by address.
        run: What the run swept and how it ended, or ``None`` when the
            result has no run metadata (an older version's file).
        findings: Every open port, from a per-port result (``jsonl``), else ``None``.
        name: Where it came from (a file name), for messages.
    """

    machines: tuple[Host, ...]
    run: RunInfo | None = None
    findings: tuple[Finding, ...] | None = None
    name: str = "result"

    def open_ports(self) -> list[Finding]:
        """Its open ports: as read from ``jsonl``, else rebuilt from its machines.

        Rebuilt from machines, each port carries its machine's name and
        identity (a ``json`` machine has one name, not one per address).
        """
        if self.findings is not None:
            return list(self.findings)
        return [_finding_of(host, service) for host in self.machines for service in host.services]


# -- one field at a time: what a record may hold -------------------------------


def _text(value: object, limit: int = MAX_FIELD) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise ValueError("not printable text of a bounded length")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _address(value: object) -> str:
    return str(ipaddress.ip_address(_text(value, 64)))


def _addresses(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("not a list of addresses")
    return tuple(_address(item) for item in value)


def _port(value: object) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise ValueError("not a port")
    return value


def _member(allowed: frozenset[Any]) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value not in allowed:
            raise ValueError(f"not one of {sorted(map(str, allowed))}")
        return value

    return check


def _latency(value: object) -> float:
    if type(value) not in (int, float):
        raise ValueError("not a duration")
    latency = float(value)  # type: ignore[arg-type]  # an int or a float, checked above
    if not (math.isfinite(latency) and latency >= 0):
        raise ValueError("not a duration")
    return latency


def _fingerprints(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    for item in value:
        if not (isinstance(item, str) and len(item) == 64 and set(item) <= _HEX):
            raise ValueError("not a lowercase hex SHA-256")
    return tuple(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not true or false")
    return value


def _any_simple(value: object) -> object:
    """A field this version does not know: plain text, a flag, a number, or a list of text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list):
        return tuple(_text(item) for item in value)
    return _text(value)


#: How each known field is checked (and made a model value).
_FIELDS: Final[Mapping[str, Callable[[object], object]]] = {
    "address": _address,
    "addresses": _addresses,
    "port": _port,
    "service": _member(_SERVICES | {None}),
    "verdict": _member(frozenset(VERDICT_RANK)),
    "evidence": _text,
    "latency_ms": _latency,
    "hostname": _optional_text,
    "hostname_source": _member(_SOURCES | {None}),
    "host_uuid": _optional_text,
    "key_fingerprints": _fingerprints,
    "uuid_conflict": _flag,
    "certificate_names": lambda v: tuple(_text(n) for n in v) if isinstance(v, list) else (),
}


def _product(record: dict[str, object], what: str) -> Product | None:
    """A service's product fields (``product``, ``version``, ...) as one value, or ``None``."""
    if record.get("product") is None:
        return None
    confidence = record.get("confidence")
    if confidence not in CONFIDENCE_RANK:
        raise ResultError(f"{what}: invalid 'confidence'")
    sure: Confidence = confidence  # type: ignore[assignment]
    try:
        return Product(
            _text(record["product"]),
            _optional_text(record.get("version")),
            sure,
            _optional_text(record.get("cpe")),
            _optional_text(record.get("product_info")),
            _text(record.get("product_evidence") or ""),
        )
    except (ValueError, TypeError) as exc:
        raise ResultError(f"{what}: invalid product: {exc}") from None


def _build(cls: type[_T], record: object, what: str) -> _T:
    """One model value from a record: each field of ``cls`` the record holds, checked."""
    if not isinstance(record, dict):
        raise ResultError(f"{what}: not a JSON object")
    values: dict[str, object] = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name not in record:
            continue
        if spec.name == "product":
            values["product"] = _product(record, what)
            continue
        check = _FIELDS.get(spec.name, _any_simple)
        try:
            values[spec.name] = check(record[spec.name])
        except (ValueError, TypeError) as exc:
            raise ResultError(f"{what}: invalid {spec.name!r}: {exc}") from None
    try:
        return cls(**values)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values]  # type: ignore[arg-type]
        raise ResultError(f"{what}: missing {', '.join(missing)}") from None


def _host(record: object, what: str) -> Host:
    if not isinstance(record, dict):
        raise ResultError(f"{what}: not a JSON object")
    services = record.get("services")
    host = _build(Host, {**record, "services": []}, what)
    if not isinstance(services, list) or not services:
        raise ResultError(f"{what}: invalid 'services'")
    built = tuple(
        _build(PortFinding, s, f"{what}, service {n + 1}") for n, s in enumerate(services)
    )
    return dataclasses.replace(host, services=built)


def _finding_of(host: Host, service: PortFinding) -> Finding:
    """One open port of a machine, as a scan would have yielded it (see ``open_ports``)."""
    values: dict[str, object] = {}
    names = {f.name for f in dataclasses.fields(Finding)}
    skip = {"addresses", "services", "verdict", "address", "hostname", "hostname_source"}
    for spec in dataclasses.fields(Host):
        if spec.name in names and spec.name not in skip:
            values[spec.name] = getattr(host, spec.name)
    for spec in dataclasses.fields(PortFinding):
        if spec.name in names:
            values[spec.name] = getattr(service, spec.name)
    if host.hostname_source == "certificate" and host.hostname:
        values["certificate_names"] = (host.hostname,)
    elif host.hostname is not None:
        values["hostname"], values["hostname_source"] = host.hostname, host.hostname_source
    return Finding(**values)  # type: ignore[arg-type]


# -- whole files -----------------------------------------------------------------


def _loads(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise ResultError(f"{what}: nested too deeply") from None


def _document(data: dict[str, Any], name: str) -> ScanResult:
    run = data.get("run")
    machines = data.get("machines")
    if not isinstance(machines, list):
        raise ResultError(f"{name}: not a result of xendiscover (no 'machines' list)")
    info = None if run is None else _run(run, name)
    hosts = tuple(_host(m, f"{name}: machine {n + 1}") for n, m in enumerate(machines))
    return ScanResult(machines=hosts, run=info, name=name)


def _run(record: object, name: str) -> RunInfo:
    if not isinstance(record, dict):
        raise ResultError(f"{name}: the run record is not a JSON object")
    try:
        return RunInfo.from_dict(record)
    except ResultError as exc:
        raise ResultError(f"{name}: {exc}") from None


def _lines(text: str, name: str) -> ScanResult:
    """A ``jsonl`` result: a ``run`` line, ``port`` lines, an ``end`` line."""
    run: RunInfo | None = None
    ended: dict[str, Any] | None = None
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        what = f"{name}: line {number}"
        try:
            record = _loads(line, what)
        except json.JSONDecodeError:
            raise ResultError(f"{what}: not JSON") from None
        kind = record.get("record", "port") if isinstance(record, dict) else None
        if ended is not None:
            raise ResultError(f"{what}: a record after the end record")
        if kind == "run" and number == 1:
            run = _run(record, name)
        elif kind == "port":
            found.append(_build(Finding, record, what))
        elif kind == "end" and run is not None:
            ended = record  # type: ignore[assignment]
        else:
            raise ResultError(f"{what}: not a record of xendiscover's jsonl")
    if run is not None:
        run = _end(run, ended)
    listing: Listing = "all" if run is None else run.listing
    machines = tuple(listed(found, "xen" if listing == "xen" else "all"))
    return ScanResult(machines=machines, run=run, findings=tuple(found), name=name)


def _end(run: RunInfo, ended: Mapping[str, Any] | None) -> RunInfo:
    """The run as its ``end`` line says it ended; cut short if there is none."""
    if ended is None:
        return dataclasses.replace(run, completed=False)
    stop = ended.get("stopped")
    record = {**run.as_dict(), "ended": ended.get("ended"), "completed": ended.get("completed")}
    return RunInfo.from_dict({**record, "stopped": stop})


def parse_result(text: str, *, name: str = "result") -> ScanResult:
    """Read a result of this tool from its text: ``json`` (either shape) or ``jsonl``.

    Args:
        text: The file's text.
        name: What to call it in messages (a file name).

    Raises:
        ResultError: It is not one, or one this version cannot read (one line).
    """
    try:
        data = _loads(text, name)
    except json.JSONDecodeError as exc:
        if not text.lstrip().startswith("{") or exc.msg != "Extra data":
            raise ResultError(f"{name}: not JSON or JSON Lines") from None
        return _lines(text, name)
    if isinstance(data, list):  # format 2: a bare array of machines, no run metadata
        hosts = tuple(_host(m, f"{name}: machine {n + 1}") for n, m in enumerate(data))
        return ScanResult(machines=hosts, name=name)
    if isinstance(data, dict) and "record" in data:
        return _lines(text, name)
    if isinstance(data, dict) and "address" in data and "port" in data:
        return _lines(text, name)  # one port line of format 2
    if isinstance(data, dict):
        return _document(data, name)
    raise ResultError(f"{name}: not a result of xendiscover")


def load_result(path: str | os.PathLike[str]) -> ScanResult:
    """Read a result file of this tool (``json`` or ``jsonl``); see :func:`parse_result`.

    Raises:
        ResultError: It cannot be read, is too large, or is not one (one line).
    """
    name = os.fspath(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_RESULT_BYTES + 1)
    except OSError as exc:
        raise ResultError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_RESULT_BYTES:
        raise ResultError(f"{name}: larger than {MAX_RESULT_BYTES // 2**20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultError(f"{name}: not UTF-8 text") from None
    return parse_result(text, name=name)


# -- merge -------------------------------------------------------------------------


def _runs(results: Sequence[ScanResult]) -> list[RunInfo]:
    runs = []
    for result in results:
        if result.run is None:
            raise ResultError(
                f"{result.name}: no run metadata (an older xendiscover?): cannot tell its shard"
            )
        runs.append(result.run)
    return runs


def _same_plan(results: Sequence[ScanResult], runs: Sequence[RunInfo]) -> None:
    first = runs[0]
    for result, run in zip(results[1:], runs[1:], strict=True):
        for what, mine, theirs in (
            ("version", first.version, run.version),
            ("targets", set(first.resolved), set(run.resolved)),
            ("exclusions", set(first.exclude), set(run.exclude)),
            ("ports", set(first.ports), set(run.ports)),
            ("shard count", first.shard[1], run.shard[1]),
        ):
            if mine != theirs:
                raise ResultError(
                    f"{result.name}: not a shard of the plan of {results[0].name} "
                    f"(its {what} differ)"
                )


def _shard_gaps(results: Sequence[ScanResult], runs: Sequence[RunInfo]) -> list[str]:
    """What keeps the shards from being the whole plan: missing and incomplete shards."""
    count = runs[0].shard[1]
    seen: dict[int, str] = {}
    for result, run in zip(results, runs, strict=True):
        if run.shard[0] in seen:
            raise ResultError(
                f"shard {run.shard[0]}/{count} given twice ({seen[run.shard[0]]}, {result.name})"
            )
        seen[run.shard[0]] = result.name
    gaps = []
    missing = [(i, count) for i in range(1, count + 1) if i not in seen]
    if missing:
        gaps.append(f"missing shard{'s' if len(missing) > 1 else ''} {describe_shards(missing)}")
    for result, run in zip(results, runs, strict=True):
        if not run.completed:
            why = f" ({run.stopped})" if run.stopped else ""
            gaps.append(f"shard {run.shard[0]}/{count} ({result.name}) incomplete{why}")
    return gaps


def merge(results: Iterable[ScanResult], *, partial: bool = False) -> ScanResult:
    """Merge the results of the shards of one plan into one result.

    The shards must share the version, the targets (as resolved), the
    exclusions, the ports and the shard count (from their run metadata);
    their open ports are grouped into machines with
    :func:`~xendiscover.group_findings`, as one unsharded run would have.

    Args:
        results: One result per shard (``--shard 1/N`` .. ``N/N``), any order.
        partial: Merge even when a shard is missing or incomplete (the
            merged run then says it did not complete).

    Raises:
        ResultError: No results; a result without run metadata; shards of
            different plans or the same shard twice; or, unless ``partial``,
            a shard missing or incomplete (each named).
    """
    given = list(results)
    if not given:
        raise ResultError("nothing to merge")
    runs = _runs(given)
    _same_plan(given, runs)
    gaps = _shard_gaps(given, runs)
    if gaps and not partial:
        raise ResultError("; ".join(gaps))
    found = sorted((f for r in given for f in r.open_ports()), key=lambda f: f.sort_key)
    listing: Listing = "xen" if any(run.listing == "xen" for run in runs) else runs[0].listing
    first = runs[0]
    run = dataclasses.replace(
        first,
        started=min(run.started for run in runs),
        ended=max((run.ended or run.started) for run in runs),
        shard=(1, 1),
        listing=listing,
        completed=not gaps,
        stopped=None,
        merged=tuple(sorted(run.shard for run in runs)),
    )
    machines = listed(found, "xen" if listing == "xen" else "all")
    return ScanResult(machines=tuple(machines), run=run, findings=tuple(found), name="merged")
