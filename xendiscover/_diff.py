"""What changed between two results: machines matched by identity, not by address.

nmap's ``ndiff`` keys a host by its first address and name, so a host that
was renumbered shows as one gone and one new. Here a machine of OLD and one
of NEW are the same machine when they share the strongest identity both
carry, in this order:

1. ``key_fingerprint``: the SHA-256 of the key of a certificate xapi
   generated for that host (its pool certificate or its self-signed
   default; never a CA-signed one, which several hosts may share);
2. ``host_uuid``: the XAPI host UUID (a claim; skipped when the run saw
   another machine claim it too, ``uuid_conflict``);
3. ``name``: a forward-confirmed name (never one a reverse zone or a
   certificate chose without confirmation);
4. ``address``: an address both list.

A matched machine whose addresses differ has ``moved``. A machine only in
OLD is ``removed`` only when NEW completed and its sweep covered every
address OLD had it at; otherwise it is ``not-checked`` (NEW could not have
seen it). :func:`diff` returns :class:`Change` values in a stable order;
:func:`format_diff_text` shows them to people, :func:`format_diff_jsonl`
to tools (:func:`~xendiscover._output.diff_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from xendiscover._model import VERDICT_RANK, XEN_VERDICTS, Host, PortFinding
from xendiscover._output import printable
from xendiscover._results import ScanResult

__all__ = [
    "CHANGE_EVENTS",
    "Change",
    "ChangeEvent",
    "MatchedBy",
    "changed",
    "diff",
    "format_diff_jsonl",
    "format_diff_text",
]

#: What changed (see the module docstring): one per :class:`Change`.
ChangeEvent = Literal[
    "added",
    "removed",
    "not-checked",
    "moved",
    "service-added",
    "service-removed",
    "verdict-changed",
    "product-changed",
    "name-changed",
]

#: Events that are a change (``not-checked`` says only that NEW did not look).
CHANGE_EVENTS: Final = frozenset(get_args(ChangeEvent)) - {"not-checked"}

#: The identity that made a machine of OLD and one of NEW the same machine.
MatchedBy = Literal["key_fingerprint", "host_uuid", "name", "address"]

_Side = str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two results.

    Attributes:
        event: What changed (:data:`ChangeEvent`).
        machine: The machine's key (a confirmed name, else its address) in
            NEW, or in OLD for a machine NEW does not have.
        matched_by: The identity that matched it (``None`` for a machine in one result).
        addresses: Its addresses in NEW, or in OLD for a machine NEW does not have.
        port: The port of a service event, else ``None``.
        old: What OLD said: addresses (``moved``), a name, a verdict, a
            service; ``None`` when OLD had nothing.
        new: What NEW says, the same way.
    """

    event: ChangeEvent
    machine: str
    matched_by: MatchedBy | None
    addresses: tuple[str, ...]
    port: int | None = None
    old: _Side = None
    new: _Side = None

    def as_dict(self) -> dict[str, object]:
        """The change as a JSON-ready dictionary (one line of ``diff --format jsonl``)."""
        return {
            "record": "diff",
            "event": self.event,
            "machine": self.machine,
            "matched_by": self.matched_by,
            "addresses": list(self.addresses),
            "port": self.port,
            "old": list(self.old) if isinstance(self.old, tuple) else self.old,
            "new": list(self.new) if isinstance(self.new, tuple) else self.new,
        }


# -- identities --------------------------------------------------------------------


def _fingerprints(host: Host) -> list[str]:
    return list(host.key_fingerprints)


def _uuid(host: Host) -> list[str]:
    if not host.host_uuid or host.uuid_conflict:
        return []
    return [host.host_uuid.lower()]


def _name(host: Host) -> list[str]:
    return [host.key.lower()] if host.key != host.address else []


def _addresses(host: Host) -> list[str]:
    return list(host.addresses)


#: The identities, strongest first, and how to read each off a machine.
_IDENTITIES: Final[tuple[tuple[MatchedBy, Callable[[Host], list[str]]], ...]] = (
    ("key_fingerprint", _fingerprints),
    ("host_uuid", _uuid),
    ("name", _name),
    ("address", _addresses),
)

_Pair = tuple[Host, Host, MatchedBy]


def _match(old: Sequence[Host], new: Sequence[Host]) -> tuple[list[_Pair], list[Host], list[Host]]:
    """Pair OLD's machines with NEW's, strongest identity first; the rest unmatched."""
    pairs: list[_Pair] = []
    taken_old: set[int] = set()
    taken_new: set[int] = set()
    for kind, identity in _IDENTITIES:
        index: dict[str, int] = {}
        for number, host in enumerate(new):
            if number not in taken_new:
                for value in identity(host):
                    index.setdefault(value, number)
        for number, host in enumerate(old):
            if number in taken_old:
                continue
            other = next((index[v] for v in identity(host) if v in index), None)
            if other is None or other in taken_new:
                continue
            pairs.append((host, new[other], kind))
            taken_old.add(number)
            taken_new.add(other)
    gone = [h for n, h in enumerate(old) if n not in taken_old]
    came = [h for n, h in enumerate(new) if n not in taken_new]
    return pairs, gone, came


# -- what changed on one machine -----------------------------------------------------


def _by_port(host: Host) -> dict[int, PortFinding]:
    """A machine's service on each port: the surest, where several addresses have one."""
    ports: dict[int, PortFinding] = {}
    for service in host.services:
        held = ports.get(service.port)
        if held is None or VERDICT_RANK[service.verdict] < VERDICT_RANK[held.verdict]:
            ports[service.port] = service
    return ports


def _product(service: PortFinding) -> str:
    """What a service is, as the events show it: service, then product and version if known."""
    product = service.product
    parts = (service.service or "-", *((product.name, product.version) if product else ()))
    return " ".join(part for part in parts if part)


def _product_changed(was: PortFinding, now: PortFinding) -> bool:
    """Another service, or another product or version where both sweeps could tell.

    A product one sweep could not tell (a xend outside hosts-allow says
    nothing) is less knowledge, not a change: its verdict says the rest.
    """
    if was.service != now.service:
        return True
    before, after = was.product, now.product
    if before is None or after is None:
        return False
    if before.name != after.name:
        return True
    return None not in (before.version, after.version) and before.version != after.version


def _service_changes(old: Host, new: Host, make: Callable[..., Change]) -> list[Change]:
    before, after = _by_port(old), _by_port(new)
    changes = []
    for port in sorted(before.keys() | after.keys()):
        was, now = before.get(port), after.get(port)
        if was is None and now is not None:
            changes.append(make("service-added", port=port, new=_product(now)))
        elif now is None and was is not None:
            changes.append(make("service-removed", port=port, old=_product(was)))
        elif was is not None and now is not None:
            if _product_changed(was, now):
                changes.append(
                    make("product-changed", port=port, old=_product(was), new=_product(now))
                )
            if was.verdict != now.verdict:
                changes.append(make("verdict-changed", port=port, old=was.verdict, new=now.verdict))
    return changes


def _machine_changes(
    old: Host, new: Host, matched_by: MatchedBy, *, certificates: bool
) -> list[Change]:
    def make(event: ChangeEvent, **values: object) -> Change:
        return Change(event, new.key, matched_by, new.addresses, **values)  # type: ignore[arg-type]

    changes = []
    if set(old.addresses) != set(new.addresses):
        changes.append(make("moved", old=old.addresses, new=new.addresses))
    was, now = _named(old, certificates), _named(new, certificates)
    if was != now:
        changes.append(make("name-changed", old=was, new=now))
    return changes + _service_changes(old, new, make)


def _named(host: Host, certificates: bool) -> str | None:
    """A machine's name as ``name-changed`` compares it: with its source.

    A ``jsonl`` result carries no certificate names (a port record has only
    its address's PTR name): when one side is one, certificate names are
    left out of the comparison rather than reported as a change.
    """
    if host.hostname is None or (host.hostname_source == "certificate" and not certificates):
        return None
    return f"{host.hostname} ({host.hostname_source})"


# -- the whole diff --------------------------------------------------------------------


def _checked(host: Host, new: ScanResult) -> bool:
    """Whether NEW would have seen ``host``: it completed and swept all its old addresses."""
    run = new.run
    return run is not None and run.completed and all(run.covers(a) for a in host.addresses)


def _listing(result: ScanResult) -> str:
    """Which machines a result lists; a file without run metadata: per port, or Xen only."""
    if result.run is not None:
        return result.run.listing
    return "all" if result.findings is not None else "xen"


def diff(old: ScanResult, new: ScanResult) -> list[Change]:
    """What changed from OLD to NEW: machines matched by identity (see the module doc).

    When either result lists only the Xen machines (the default ``json``),
    only Xen machines are compared, so a listing choice is not a change.

    Returns:
        The changes, machine by machine (by NEW's address, then OLD's), in
        a stable order; empty when nothing changed.
    """
    olds, news = list(old.machines), list(new.machines)
    if "xen" in (_listing(old), _listing(new)):
        olds = [h for h in olds if h.verdict in XEN_VERDICTS]
        news = [h for h in news if h.verdict in XEN_VERDICTS]
    pairs, gone, came = _match(olds, news)
    certificates = old.findings is None and new.findings is None
    keyed: list[tuple[tuple[int, int], list[Change]]] = []
    for was, now, matched_by in pairs:
        changes = _machine_changes(was, now, matched_by, certificates=certificates)
        keyed.append((now.sort_key, changes))
    for host in came:
        change = Change("added", host.key, None, host.addresses, new=host.verdict)
        keyed.append((host.sort_key, [change]))
    for host in gone:
        event: ChangeEvent = "removed" if _checked(host, new) else "not-checked"
        keyed.append(
            (host.sort_key, [Change(event, host.key, None, host.addresses, old=host.verdict)])
        )
    keyed.sort(key=lambda item: item[0])
    return [change for _, changes in keyed for change in changes]


def changed(changes: Iterable[Change]) -> bool:
    """Whether any of the changes is one (``not-checked`` is not)."""
    return any(c.event in CHANGE_EVENTS for c in changes)


_MARK: Final = {"added": "+", "removed": "-", "not-checked": "?"}


def _side(value: _Side) -> str:
    if value is None:
        return "-"
    return ",".join(value) if isinstance(value, tuple) else value


def _text_line(change: Change) -> str:
    mark = _MARK.get(change.event, "~")
    port = f" port {change.port}" if change.port is not None else ""
    what = f"{_side(change.old)} -> {_side(change.new)}"
    if change.event in ("added", "service-added"):
        what = _side(change.new)
    elif change.event in ("removed", "not-checked", "service-removed"):
        what = _side(change.old)
    by = f" (matched by {change.matched_by})" if change.matched_by not in (None, "address") else ""
    where = ",".join(change.addresses)
    return printable(f"{mark} {change.machine} [{where}] {change.event}{port}: {what}{by}")


def format_diff_text(changes: Sequence[Change]) -> str:
    """The changes for people: one line each, ``+`` added, ``-`` removed, ``~`` changed.

    ``?`` marks a machine NEW did not look for (not-checked). Every line is
    escaped (names and banners came from peers).
    """
    return "".join(_text_line(c) + "\n" for c in changes)


def format_diff_jsonl(changes: Sequence[Change]) -> str:
    """The changes for tools: one JSON object per line (``Change.as_dict()``)."""
    return "".join(json.dumps(c.as_dict()) + "\n" for c in changes)
