"""``--list-targets`` (nmap's ``-sL``): what a run would sweep, and what it leaves out.

Sends no TCP probe and no ICMPv6 echo: an automatic run's sources come from
the interfaces, the routing table and the neighbour tables (read from the
kernel, which is no traffic); named targets are counted as given (host
names are looked up, as for a scan).
"""

from __future__ import annotations

import json
from dataclasses import replace

from xendiscover._plan import (
    ScanOptions,
    Targets,
    _LocalNetworks,
    _resolver,
    discovery_of,
    plan,
)
from xendiscover._sources import Discovery, Skipped, Source
from xendiscover._targets import TargetSpace

__all__ = ["listing"]


def _count(n: int) -> str:
    return f"{n:,} address" + ("" if n == 1 else "es")


def _source_line(source: Source) -> str:
    parts = ["sweep", source.kind, source.target, source.interface or "-"]
    parts.append(_count(source.addresses))
    return "\t".join([*parts, source.detail] if source.detail else parts)


def _skip_line(skip: Skipped) -> str:
    return "\t".join(["skip", skip.kind, skip.target, skip.interface or "-", skip.reason])


def _lines(found: Discovery, space: TargetSpace) -> list[str]:
    lines = [_source_line(s) for s in found.sources]
    alive = "known alive: probed first"
    lines += [f"first\tneighbour\t{address}\t-\t{alive}" for address in found.first]
    lines += [_skip_line(s) for s in found.skipped]
    lines += [f"note\t{note}" for note in found.notes]
    lines.append(f"total\t{_count(space.size)}")
    return lines


def _named(specs: list[str], options: ScanOptions, resolved: dict[str, str]) -> Discovery:
    lookup = _resolver(resolved)
    sources = [
        Source("target", spec, None, TargetSpace.from_specs([spec], exclude=(), **lookup).size)
        for spec in specs
    ]
    skipped = [Skipped("exclude", spec, None, "--exclude") for spec in options.get("exclude", ())]
    return Discovery(sources=tuple(sources), skipped=tuple(skipped))


def listing(
    targets: Targets, options: ScanOptions, *, resolved: dict[str, str], as_json: bool
) -> str:
    """What a scan of ``targets`` would sweep, one line each (or one JSON object).

    Lines are tab-separated: ``sweep KIND TARGET INTERFACE COUNT [DETAIL]``,
    ``first neighbour ADDRESS - REASON``, ``skip KIND TARGET INTERFACE REASON``,
    ``note TEXT``, and a last ``total COUNT``.

    Raises:
        TargetError: An input is invalid, or the sweep is larger than ``max_hosts``.
    """
    if isinstance(targets, _LocalNetworks):
        found = discovery_of(targets, options, send=False)
        space = plan(targets, discovered=replace(found, notes=()), **options).space
    else:
        specs = list(targets)
        found = _named(specs, options, resolved)
        space = plan(specs, resolved=resolved, **options).space
    if not as_json:
        return "\n".join(_lines(found, space)) + "\n"
    document = {
        "sweep": [vars(s) for s in found.sources],
        "first": list(found.first),
        "skip": [vars(s) for s in found.skipped],
        "notes": list(found.notes),
        "total": space.size,
    }
    return json.dumps(document, indent=2) + "\n"
