"""Output formats: pure functions from found hosts to text, and one safe file writer.

Every ``format_*`` function takes the hosts a scan found (any order, one
:class:`~xendiscover._model.Host` per open port) and returns the whole text to
print, newline-terminated; nothing here does I/O except :func:`atomic_writer`
and :func:`write_atomically`. :func:`render` picks a format by name
(:data:`FORMATS`), and :func:`format_jsonl_line` formats one host so a caller
can stream JSON Lines as hosts are found.

Which hosts each format lists:

=========  =================================================================
Format     Lists
=========  =================================================================
text       Xen hosts (verdict confirmed/likely), one name per address
list       the same names, as one Python list literal (the 2007 tool's line)
json       every record (one per open port), as a JSON array
jsonl      every record, one JSON object per line
csv        every record, with a header row
ansible    Xen hosts and libvirt hosts, grouped per service family
=========  =================================================================

The :data:`View` decides what ``text`` and ``list`` show: ``xen`` (the
default) names Xen hosts; ``open`` names every address with an open port
(for scans run without fingerprinting, where every verdict is ``unknown``);
``all`` is the ``--all`` view, every open port with its service, verdict and
evidence (:func:`format_all`). :func:`listed` is the one definition of which
hosts a view lists, used for the exit status too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any, Final, Literal, get_args

from xendiscover._model import Host, Service, Verdict

__all__ = [
    "CSV_FIELDS",
    "FORMATS",
    "SCHEMA_ID",
    "SERVICE_GROUPS",
    "VIEWS",
    "XEN_VERDICTS",
    "OutputFormat",
    "View",
    "ansible_inventory",
    "atomic_writer",
    "format_all",
    "format_ansible",
    "format_csv",
    "format_json",
    "format_jsonl",
    "format_jsonl_line",
    "format_list",
    "format_text",
    "host_schema",
    "listed",
    "printable",
    "render",
    "sort_hosts",
    "write_atomically",
    "xen_names",
]

#: The name of an output format (``--format``).
OutputFormat = Literal["text", "json", "jsonl", "csv", "ansible", "list"]

#: Every output format, the default (``text``) first.
FORMATS: Final[tuple[OutputFormat, ...]] = get_args(OutputFormat)

#: What the ``text`` and ``list`` formats show: Xen hosts (``xen``), every
#: open port with its verdict (``all``), or every address with an open port
#: (``open``, for scans without fingerprints).
View = Literal["xen", "all", "open"]

#: Every view, the default (``xen``) first.
VIEWS: Final[tuple[View, ...]] = get_args(View)

#: Verdicts that make a host a Xen host.
XEN_VERDICTS: Final[frozenset[Verdict]] = frozenset({"confirmed", "likely"})

#: The columns of the ``csv`` format, in order: the keys of ``Host.as_dict()``.
CSV_FIELDS: Final[tuple[str, ...]] = (
    "address",
    "port",
    "hostname",
    "service",
    "verdict",
    "evidence",
    "latency_ms",
)

#: The Ansible group of each service: one group per service family.
SERVICE_GROUPS: Final[Mapping[Service, str]] = {
    "xapi": "xapi",
    "xend-relocation": "xend",
    "xend-http": "xend",
    "xend-xmlrpc": "xend",
    "libvirt": "libvirt",
}

#: The ``$id`` of the JSON Schema of one record (see :func:`host_schema`).
SCHEMA_ID: Final = "https://xendiscover.invalid/schema/host/1.json"

_SCHEMA_FILE = "schema/host.schema.json"
_GROUPS = ("xapi", "xend", "libvirt")
_VERDICT_RANK: Mapping[Verdict, int] = {"confirmed": 0, "likely": 1, "unknown": 2, "not-xen": 3}


def sort_hosts(hosts: Iterable[Host]) -> list[Host]:
    """Return the hosts ordered by address (IPv4 first), then port."""
    return sorted(hosts, key=lambda h: h.sort_key)


def listed(hosts: Iterable[Host], view: View) -> list[Host]:
    """The hosts a view lists: Xen verdicts for ``xen``, every one otherwise."""
    if view == "xen":
        return [h for h in hosts if h.verdict in XEN_VERDICTS]
    return list(hosts)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})


def printable(text: str) -> str:
    r"""Escape control characters (C0, DEL, C1) so ``text`` cannot steer a terminal.

    ``"a\x1b[2Jb"`` becomes ``"a\\x1b[2Jb"``: visible, inert, one line.
    """
    return text.translate(_CONTROL)


def xen_names(hosts: Iterable[Host], *, xen_only: bool = True) -> list[str]:
    """Return one display name per address, in address order.

    Args:
        hosts: The hosts found, one per open port, in any order.
        xen_only: Name only addresses with a Xen verdict (confirmed or
            likely) on some port; ``False`` names every address.

    Returns:
        The hostname, or else the address, of each address listed once, however
        many of its ports are open.
    """
    names: list[str] = []
    seen: set[str] = set()
    for host in sort_hosts(hosts):
        if host.address in seen or (xen_only and host.verdict not in XEN_VERDICTS):
            continue
        seen.add(host.address)
        names.append(host.display_name)
    return names


def format_text(hosts: Sequence[Host], *, xen_only: bool = True) -> str:
    """Format the default output: one name per line (see :func:`xen_names`)."""
    return "".join(f"{name}\n" for name in xen_names(hosts, xen_only=xen_only))


def _cell(text: str) -> str:
    """Keep a tab-separated field on its line and in its column."""
    return " ".join(text.split()) if any(c in text for c in "\t\r\n") else text


def format_all(hosts: Sequence[Host]) -> str:
    """Format the ``--all`` view: every open port, one tab-separated line each.

    The columns are the display name, the port, the service (``-`` if none
    was recognised), the verdict and the evidence, sorted by address then port.
    """
    lines = (
        "\t".join(
            (
                _cell(h.display_name),
                str(h.port),
                h.service or "-",
                h.verdict,
                _cell(h.evidence),
            )
        )
        + "\n"
        for h in sort_hosts(hosts)
    )
    return "".join(lines)


def format_json(hosts: Sequence[Host]) -> str:
    """Format every record as one JSON array (``Host.as_dict()``), sorted, indented."""
    return json.dumps([h.as_dict() for h in sort_hosts(hosts)], indent=2) + "\n"


def format_jsonl_line(host: Host) -> str:
    """Format one record as one line of JSON Lines, ending in a newline.

    Meant for streaming: write each line as its host is found (and flush) so
    ``| jq`` sees it at once. The record is ``Host.as_dict()``.
    """
    return json.dumps(host.as_dict()) + "\n"


def format_jsonl(hosts: Sequence[Host]) -> str:
    """Format every record as JSON Lines, sorted by address then port."""
    return "".join(format_jsonl_line(h) for h in sort_hosts(hosts))


def format_csv(hosts: Sequence[Host]) -> str:
    """Format every record as CSV: a header row (:data:`CSV_FIELDS`), then one row each.

    ``None`` (no hostname, no service) is an empty cell. The dialect is RFC 4180's
    (the csv module's default): lines end in CRLF, and a field is quoted when it
    holds a comma, a quote or a line break.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for host in sort_hosts(hosts):
        writer.writerow({k: "" if v is None else v for k, v in host.as_dict().items()})
    return buffer.getvalue()


def _inventory_rank(host: Host) -> tuple[int, int, int]:
    """Which of an address's ports describes it in hostvars: surest, Xen first."""
    group = SERVICE_GROUPS[host.service] if host.service is not None else "libvirt"
    return (_VERDICT_RANK[host.verdict], _GROUPS.index(group), host.port)


def _in_inventory(host: Host) -> bool:
    if host.service is None or host.verdict == "not-xen":
        return False
    return host.verdict in XEN_VERDICTS or SERVICE_GROUPS[host.service] == "libvirt"


def ansible_inventory(hosts: Sequence[Host]) -> dict[str, Any]:
    """Build an Ansible dynamic inventory of the Xen and libvirt hosts found.

    The shape is the one Ansible documents for inventory scripts (``--list``):
    groups ``xapi``, ``xend`` and ``libvirt``, each with a ``hosts`` list,
    children of ``all``; and ``_meta.hostvars`` with, for every host listed,
    ``ansible_host`` (its address), ``xen_service``, ``xen_port`` and
    ``xen_verdict`` (of its surest port) and ``xen_ports`` (all its listed
    ports). A host is named by its hostname, or else its address; it is listed
    if a port of it is a confirmed or likely Xen service, or libvirt (which
    cannot tell Xen from KVM).

    Args:
        hosts: The hosts found, one per open port, in any order.

    Returns:
        The inventory as a JSON-ready dictionary.
    """
    by_address: dict[str, list[Host]] = {}
    for host in sort_hosts(hosts):
        if _in_inventory(host):
            by_address.setdefault(host.address, []).append(host)
    groups: dict[str, list[str]] = {group: [] for group in _GROUPS}
    hostvars: dict[str, dict[str, object]] = {}
    for address, ports in by_address.items():
        name = ports[0].display_name
        if name in hostvars:  # two addresses share a PTR name: keep both apart
            name = address
        best = min(ports, key=_inventory_rank)
        hostvars[name] = {
            "ansible_host": address,
            "xen_service": best.service,
            "xen_port": best.port,
            "xen_verdict": best.verdict,
            "xen_ports": sorted({h.port for h in ports}),
        }
        for group in dict.fromkeys(SERVICE_GROUPS[h.service] for h in ports if h.service):
            groups[group].append(name)
    inventory: dict[str, Any] = {"all": {"children": list(_GROUPS)}}
    inventory.update({group: {"hosts": names} for group, names in groups.items()})
    inventory["_meta"] = {"hostvars": hostvars}
    return inventory


def format_ansible(hosts: Sequence[Host]) -> str:
    """Format :func:`ansible_inventory` as indented JSON."""
    return json.dumps(ansible_inventory(hosts), indent=2) + "\n"


def format_list(hosts: Sequence[Host], *, xen_only: bool = True) -> str:
    """Format the 2007 tool's line: a Python list of names, e.g. ``['polar', 'carbono']``.

    The names are those of :func:`format_text`; ``ast.literal_eval`` reads
    the line back.
    """
    return repr(xen_names(hosts, xen_only=xen_only)) + "\n"


def render(hosts: Sequence[Host], fmt: str, *, view: View = "xen") -> str:
    """Format the hosts in the named format (one of :data:`FORMATS`).

    Args:
        hosts: The hosts found, one per open port, in any order.
        fmt: The format's name.
        view: For ``text`` and ``list``: what to show (see :data:`View`);
            the other formats list every record whatever the view.

    Raises:
        ValueError: ``fmt`` is not a format.
    """
    xen_only = view == "xen"
    formatters: dict[str, Callable[[Sequence[Host]], str]] = {
        "text": format_all if view == "all" else lambda h: format_text(h, xen_only=xen_only),
        "json": format_json,
        "jsonl": format_jsonl,
        "csv": format_csv,
        "ansible": format_ansible,
        "list": lambda h: format_list(h, xen_only=xen_only),
    }
    try:
        formatter = formatters[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}") from None
    return formatter(hosts)


def host_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of one record, as shipped in the package.

    The record is ``Host.as_dict()``: one element of the ``json`` array, one
    line of ``jsonl``. The schema's ``$id`` is :data:`SCHEMA_ID`; its
    ``x-schema-version`` grows when the record changes.
    """
    text = resources.files("xendiscover").joinpath(_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create a new, empty temp file beside the target (mode from the umask)."""
    for _ in range(16):
        temp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        return fd, temp
    raise FileExistsError(f"cannot create a temporary file in {directory}")


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable, where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a text file that replaces ``path`` only when the block ends cleanly.

    Writes go to a temporary file in the same directory; on a clean exit it is
    flushed, ``fsync``-ed and renamed over ``path`` (:func:`os.replace`, atomic
    on POSIX). If the block raises (``KeyboardInterrupt`` included), the
    temporary file is removed and ``path`` keeps its old content, or stays
    absent. An existing file keeps its permission bits; a symbolic link is
    followed, so the file it points to is replaced. Text is UTF-8, written
    as given (no newline translation).

    Yields:
        The open temporary file.
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    directory = target.parent
    fd, temp = _create_temp(directory, target.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(handle.fileno(), os.stat(target).st_mode & 0o7777)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8), all or nothing.

    Never leaves a half-written file, even on Ctrl-C: see :func:`atomic_writer`.

    Raises:
        OSError: The directory cannot be written; ``path`` is unchanged.
    """
    with atomic_writer(path) as handle:
        handle.write(text)
