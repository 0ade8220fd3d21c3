"""Output formats: pure functions from a scan's findings to text, and one safe file writer.

A scan yields one :class:`~xendiscover.Finding` per open port; most formats
show machines (:class:`~xendiscover.Host`, grouped by
:func:`~xendiscover.group_findings`). Nothing here does I/O except
:func:`atomic_writer` and :func:`write_atomically`. :func:`render` picks a
format by name (:data:`FORMATS`); :func:`format_jsonl_line` formats one
finding so a caller can stream JSON Lines as ports are found.

=========  ========================================================  ===========
Format     Lists                                                     Per
=========  ========================================================  ===========
text       one line per machine: its key (a confirmed name, else     machine
           its address), any other name and its source, then
           product and version where known, and a warning when
           two machines claim one UUID
list       the keys, as one Python list literal (the 2007 line)      machine
json       the run, and machines with their services (JSON Schema)  machine
ansible    a static inventory (``ansible-inventory -i FILE``)        machine
jsonl      every open port, one JSON object per line, streamed       open port
csv        every open port, with a header row                        open port
=========  ========================================================  ===========

The per-port formats carry, on every port's line, what its machine knows
(:func:`port_records`); ``csv`` lines end in a line feed, not CRLF.

The :data:`View` decides which machines the per-machine formats list:
``xen`` (the default) the Xen machines (a service confirmed or likely);
``open`` every machine with an open port (for scans without fingerprints);
``all`` every machine, and the ``text`` format then shows each machine's
services (:func:`format_all`). :func:`listed` is the one definition of which
machines a view lists; the exit status uses it too. The per-port formats
list every open port whatever the view.

Everything a peer sent is hostile: names are DNS names or escaped
(:mod:`xendiscover._names`), evidence is printable ASCII, text cells cannot
break their line or column, and CSV cells that a spreadsheet would read as
a formula are neutralised (OWASP's advice: a leading ``'``).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any, Final, Literal, get_args

from xendiscover._escape import escape
from xendiscover._model import (
    VERDICT_RANK,
    XEN_VERDICTS,
    Finding,
    Host,
    PortFinding,
    Service,
    group_findings,
)
from xendiscover._run import RunInfo

__all__ = [
    "CSV_FIELDS",
    "FORMATS",
    "MACHINE_FACTS",
    "SCHEMA_ID",
    "SERVICE_GROUPS",
    "VIEWS",
    "OutputFile",
    "OutputFormat",
    "View",
    "ansible_inventory",
    "atomic_writer",
    "diff_schema",
    "document",
    "document_schema",
    "finding_schema",
    "format_all",
    "format_ansible",
    "format_csv",
    "format_end_line",
    "format_json",
    "format_jsonl",
    "format_jsonl_line",
    "format_list",
    "format_run_json",
    "format_run_line",
    "format_text",
    "host_schema",
    "listed",
    "neutralise_cell",
    "port_records",
    "printable",
    "render",
    "run_schema",
    "write_atomically",
]

#: The name of an output format (``--format``).
OutputFormat = Literal["text", "json", "jsonl", "csv", "ansible", "list"]

#: Every output format, the default (``text``) first.
FORMATS: Final[tuple[OutputFormat, ...]] = get_args(OutputFormat)

#: Which machines the per-machine formats list (see the module docstring).
View = Literal["xen", "all", "open"]

#: Every view, the default (``xen``) first.
VIEWS: Final[tuple[View, ...]] = get_args(View)

#: The columns of the ``csv`` format, in order: the keys of ``Finding.as_dict()``.
CSV_FIELDS: Final[tuple[str, ...]] = (
    "address",
    "port",
    "service",
    "verdict",
    "evidence",
    "latency_ms",
    "hostname",
    "hostname_source",
    "host_uuid",
    "key_fingerprints",
    "product",
    "version",
    "confidence",
    "cpe",
    "product_info",
    "product_evidence",
    "machine",
    "certificate_names",
)

#: What a per-port record takes from its machine, where the machine has it:
#: every port of one machine carries the same facts, whichever port showed them.
MACHINE_FACTS: Final[tuple[str, ...]] = ("host_uuid",)

#: The Ansible group of each service: one group per service family.
SERVICE_GROUPS: Final[Mapping[Service, str]] = {
    "xapi": "xapi",
    "xend-relocation": "xend",
    "xend-http": "xend",
    "xend-xmlrpc": "xend",
    "libvirt": "libvirt",
}

#: The ``$id`` of the JSON Schema of one machine (see :func:`host_schema`).
SCHEMA_ID: Final = "https://xendiscover.invalid/schema/host/3.json"

_GROUPS = ("xapi", "xend", "libvirt")

#: First characters that make a spreadsheet read a cell as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    r"""Escape every character that is not printable, so ``text`` cannot steer a terminal.

    Controls (C0, DEL, C1), format characters (bidi overrides such as
    U+202E, zero-width joiners), separators, surrogates, private-use and
    unassigned code points all become ``\xNN``, ``\uNNNN`` or
    ``\UNNNNNNNN`` (tab, newline and CR as ``\t``, ``\n``, ``\r``):
    ``"a\x1b[2J"`` becomes ``"a\\x1b[2J"``, visible, inert, one line.
    """
    return escape(text)


def neutralise_cell(text: str) -> str:
    """Prefix a CSV cell a spreadsheet would read as a formula with ``'`` (OWASP)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def listed(findings: Iterable[Finding], view: View) -> list[Host]:
    """The machines a view lists: the Xen machines for ``xen``, every one otherwise."""
    machines = group_findings(findings)
    if view == "xen":
        return [h for h in machines if h.verdict in XEN_VERDICTS]
    return machines


def _line(host: Host) -> str:
    """A machine's text line: its key, any other name, its product, a UUID conflict."""
    line = host.key
    if host.hostname is not None and host.key != host.hostname:
        line = f"{line} ({host.hostname_source}: {host.hostname})"
    product = host.product
    if product is not None:
        line = f"{line}  {product.describe()}"
    if host.uuid_conflict:
        line = f"{line}  WARNING: another machine claims host UUID {host.host_uuid}"
    return line


def format_text(hosts: Sequence[Host]) -> str:
    """One line per machine: its key (a confirmed name, else its address), then its product.

    ``xcp-a.example  XCP-ng 8.3 (xapi >= 24.17.0)``. A machine whose host
    UUID another machine claims too ends in a warning: one of them copied it.
    """
    return "".join(f"{printable(_line(h))}\n" for h in hosts)


def _cell(text: str) -> str:
    """Keep a tab-separated field on its line and in its column, inert."""
    return printable(" ".join(text.split()))


def _service_line(service: PortFinding) -> str:
    cells = (
        f"{service.address}:{service.port}",
        service.service or "-",
        service.verdict,
        _cell(service.evidence),
    )
    return "  " + "\t".join(cells) + "\n"


def _other_name(host: Host) -> str:
    """How a machine's name is known, and the name when it is not the key."""
    if host.hostname is None or host.hostname_source is None:
        return "-"
    if host.hostname == host.key:
        return host.hostname_source
    return f"{host.hostname_source}: {host.hostname}"


def format_all(hosts: Sequence[Host]) -> str:
    """The ``--all`` view: a line per machine, then an indented line per service.

    The machine line: its key (a confirmed name, else its address: what
    ``cut -f1`` gives, one per machine), its addresses, its verdict, any
    other name with its source (``ptr-unconfirmed: NAME``; the source alone
    when the name is the key; ``-`` if none), its UUID (``-`` if none) and
    its product (``XCP-ng 8.3 (xapi >= 25.2.0)``, ``-`` if none); a service
    line: ``address:port``, service (``-`` if none), verdict, evidence. All
    tab-separated.
    """
    out = []
    for host in hosts:
        product = host.product
        cells = (
            host.key,
            ",".join(host.addresses),
            host.verdict,
            _other_name(host),
            host.host_uuid or "-",
            "-" if product is None else product.describe(),
        )
        out.append("\t".join(_cell(c) for c in cells) + "\n")
        out.extend(_service_line(s) for s in host.services)
    return "".join(out)


def document(hosts: Sequence[Host], run: RunInfo | None = None) -> dict[str, object]:
    """The ``json`` document: ``{"run": ..., "machines": [...]}`` (:func:`document_schema`).

    ``run`` is ``None`` (JSON ``null``) when the caller has no run metadata
    (a library call that formats machines it got elsewhere).
    """
    return {
        "run": None if run is None else run.as_dict(),
        "machines": [h.as_dict() for h in hosts],
    }


def format_json(hosts: Sequence[Host], run: RunInfo | None = None) -> str:
    """The run and every machine as one JSON object (:func:`document`), indented."""
    return json.dumps(document(hosts, run), indent=2) + "\n"


def port_records(
    findings: Sequence[Finding], known: Sequence[Finding] = ()
) -> list[dict[str, object]]:
    """The per-port records (``jsonl``, ``csv``) of ``findings``, sorted by address then port.

    Each is ``Finding.as_dict()`` plus what its machine knows, whichever of
    its ports showed it: ``machine`` (the machine's key, shared by all its
    lines), ``certificate_names`` (every DNS name its certificates gave) and
    the :data:`MACHINE_FACTS` (its UUID...). Machines are grouped over
    ``findings`` and ``known`` (ports already reported: a stream passes
    them, so later lines still join their machine).
    """
    everything = [*known, *findings]
    machines = group_findings(everything)
    owner = {address: host for host in machines for address in host.addresses}
    names: dict[str, list[str]] = {}
    for finding in everything:
        found = names.setdefault(owner[finding.address].address, [])
        found += [n for n in finding.certificate_names if n not in found]
    records = []
    for finding in sorted(findings, key=lambda f: f.sort_key):
        host = owner[finding.address]
        facts = host.as_dict()
        record = finding.as_dict()
        record.update({k: facts[k] for k in MACHINE_FACTS if k in facts})
        record["machine"] = host.key
        record["certificate_names"] = list(names[host.address])
        records.append(record)
    return records


def format_jsonl_line(finding: Finding | Mapping[str, object]) -> str:
    """One open port as one line of JSON Lines, ending in a newline.

    ``finding`` is a :class:`Finding` (its own ``as_dict()``) or a record
    of :func:`port_records` (with its machine's facts), written after
    ``"record": "port"``. Meant for streaming: write each line as its
    address is settled (and flush) so ``| jq`` sees it at once.
    """
    record = finding.as_dict() if isinstance(finding, Finding) else finding
    return json.dumps({"record": "port", **record}) + "\n"


def format_run_line(run: RunInfo) -> str:
    """The first line of ``jsonl``: ``{"record": "run", ...}``, the run as it started.

    Its ``ended``, ``completed`` and ``stopped`` are left for the ``end`` line
    (:func:`format_end_line`): the same whether the lines were streamed or not.
    """
    started = {**run.as_dict(), "ended": None, "completed": False, "stopped": None}
    return json.dumps({"record": "run", **started}) + "\n"


def format_end_line(run: RunInfo, ports: int) -> str:
    """The last line of ``jsonl``: how the run ended, and how many port lines it wrote."""
    record = {
        "record": "end",
        "ended": run.ended,
        "completed": run.completed,
        "stopped": run.stopped,
        "ports": ports,
    }
    return json.dumps(record) + "\n"


def format_jsonl(findings: Sequence[Finding], run: RunInfo | None = None) -> str:
    """Every open port as JSON Lines, sorted by address then port (:func:`port_records`).

    With ``run``, the lines sit between a ``run`` record and an ``end`` record.
    """
    lines = "".join(format_jsonl_line(r) for r in port_records(findings))
    if run is None:
        return lines
    return format_run_line(run) + lines + format_end_line(run, len(findings))


def format_run_json(run: RunInfo) -> str:
    """The ``FILE.run.json`` beside a ``csv`` file: ``{"run": ...}``, indented."""
    return json.dumps({"run": run.as_dict()}, indent=2) + "\n"


def _csv_cell(value: object) -> object:
    """A CSV cell: ``None`` empty, a list space-separated, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return neutralise_cell(value) if isinstance(value, str) else value


def format_csv(findings: Sequence[Finding]) -> str:
    """Every open port as CSV: a header row (:data:`CSV_FIELDS`), then a row each.

    The rows are :func:`port_records`. ``None`` is an empty cell, a list
    its items joined by spaces. Lines end in a line feed (not RFC 4180's
    CRLF, so ``cut`` and ``awk`` see no carriage return); a field is quoted when it holds
    a comma, a quote or a line break, and a cell that starts like a formula
    is prefixed with ``'``.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    # A lone CR is no line terminator any more, so the writer would not quote
    # it: a row with one is written with every field quoted.
    quoted = csv.DictWriter(
        buffer, fieldnames=CSV_FIELDS, lineterminator="\n", quoting=csv.QUOTE_ALL
    )
    writer.writeheader()
    for record in port_records(findings):
        row = {k: _csv_cell(record.get(k)) for k in CSV_FIELDS}
        cr = any(isinstance(v, str) and "\r" in v for v in row.values())
        (quoted if cr else writer).writerow(row)
    return buffer.getvalue()


def _inventory_service(host: Host) -> PortFinding | None:
    """The service that describes a machine in the inventory: surest, Xen first."""
    candidates = [
        s
        for s in host.services
        if s.service is not None
        and s.verdict != "not-xen"
        and (s.verdict in XEN_VERDICTS or SERVICE_GROUPS[s.service] == "libvirt")
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda s: (
            VERDICT_RANK[s.verdict],
            _GROUPS.index(SERVICE_GROUPS[s.service or "libvirt"]),
            s.port != 443,  # XAPI's management port, where the host serves it
            s.port,
        ),
    )


def _hostvars(host: Host, best: PortFinding) -> dict[str, object]:
    product = host.product
    return {
        "ansible_host": host.address,
        "xen_addresses": list(host.addresses),
        "xen_service": best.service,
        "xen_port": best.port,
        "xen_verdict": best.verdict,
        "xen_ports": sorted({s.port for s in host.services}),
        "xen_hostname": host.hostname,
        "xen_hostname_source": host.hostname_source,
        "xen_host_uuid": host.host_uuid,
        "xen_key_fingerprints": list(host.key_fingerprints),
        "xen_uuid_conflict": host.uuid_conflict,
        "xen_product": product.name if product is not None else None,
        "xen_version": product.version if product is not None else None,
    }


def ansible_inventory(hosts: Sequence[Host]) -> dict[str, Any]:
    """Build a static Ansible inventory (YAML/JSON form) of the Xen and libvirt machines.

    ``ansible-inventory -i FILE --list`` reads it. Groups ``xapi``, ``xend``
    and ``libvirt`` are children of ``all``; a machine is in the group of
    each service it runs that is confirmed or likely Xen, or libvirt (which
    cannot tell Xen from KVM). Its host name is its key: a forward-confirmed
    name, else its address, never a name whoever controls a reverse zone or
    a certificate chose. Its variables: ``ansible_host`` (its address), and
    ``xen_*`` facts (service, port and verdict of its surest service, all
    its ports, its addresses, name, name source, UUID, key fingerprints,
    UUID conflict, and ``xen_product`` / ``xen_version``).
    """
    groups: dict[str, dict[str, dict[str, object]]] = {group: {} for group in _GROUPS}
    used: set[str] = set()
    for host in hosts:
        best = _inventory_service(host)
        if best is None:
            continue
        name = host.key if host.key not in used else host.address
        used.add(name)
        for service in host.services:
            if service.service is not None and service.verdict != "not-xen":
                group = SERVICE_GROUPS[service.service]
                if service.verdict in XEN_VERDICTS or group == "libvirt":
                    groups[group][name] = _hostvars(host, best)
    children = {group: {"hosts": members} for group, members in groups.items()}
    return {"all": {"children": children}}


def format_ansible(hosts: Sequence[Host]) -> str:
    """Format :func:`ansible_inventory` as indented JSON (a static inventory file)."""
    return json.dumps(ansible_inventory(hosts), indent=2) + "\n"


def format_list(hosts: Sequence[Host]) -> str:
    """The 2007 tool's line: a Python list of keys, e.g. ``['polar', '10.0.0.7']``.

    ``ast.literal_eval`` reads it back; every element is a confirmed DNS name
    or an address.
    """
    return repr([h.key for h in hosts]) + "\n"


def render(
    findings: Sequence[Finding], fmt: str, *, view: View = "xen", run: RunInfo | None = None
) -> str:
    """Format a scan's findings in the named format (one of :data:`FORMATS`).

    Args:
        findings: The open ports found, in any order.
        fmt: The format's name.
        view: Which machines the per-machine formats list (see :data:`View`).
        run: The run's metadata, for the formats that carry it (``json``,
            ``jsonl``); ``csv`` carries it in a file beside (:func:`format_run_json`).

    Raises:
        ValueError: ``fmt`` is not a format.
    """
    per_port: dict[str, Callable[[Sequence[Finding]], str]] = {
        "jsonl": lambda found: format_jsonl(found, run),
        "csv": format_csv,
    }
    per_machine: dict[str, Callable[[Sequence[Host]], str]] = {
        "text": format_all if view == "all" else format_text,
        "json": lambda hosts: format_json(hosts, run),
        "ansible": format_ansible,
        "list": format_list,
    }
    if fmt in per_port:
        return per_port[fmt](findings)
    if fmt in per_machine:
        return per_machine[fmt](listed(findings, view))
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def _schema(name: str) -> dict[str, Any]:
    path = resources.files("xendiscover").joinpath(f"schema/{name}.schema.json")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def host_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one machine: one element of the ``json`` array.

    Its ``$id`` is :data:`SCHEMA_ID`; its ``x-schema-version`` (3) grows when
    the record changes.
    """
    return _schema("host")


def finding_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one open port: one line of ``jsonl``."""
    return _schema("finding")


def run_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a run's metadata (``run`` of a document)."""
    return _schema("run")


def document_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the ``json`` document (and of ``merge``'s).

    It refers to :func:`run_schema` and :func:`host_schema` by their ``$id``.
    """
    return _schema("document")


def diff_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one line of ``diff --format jsonl``."""
    return _schema("diff")


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


def _resolve_target(path: Path) -> Path:
    """The file to replace: ``path``, or where a symbolic link there points.

    A link is followed as the kernel's ``fs.protected_symlinks`` would allow:
    outside a sticky world-writable directory (``/tmp``), or when the link
    belongs to this user or to the directory's owner. Otherwise another user
    could point the link at any file this process may write (root: any file).

    Raises:
        PermissionError: The link may not be followed.
    """
    try:
        link = path.lstat()
    except FileNotFoundError:
        return path
    if not stat.S_ISLNK(link.st_mode):
        return path
    folder = path.parent.stat()
    shared = folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH
    if shared and link.st_uid not in (os.geteuid(), folder.st_uid):
        raise PermissionError(
            errno.EACCES, "a symbolic link of another user in a shared directory", str(path)
        )
    return path.resolve()


class OutputFile:
    """The file ``-o`` writes: reserved before the scan, replaced only by a whole result.

    :meth:`open` creates the temporary file beside the target at once, so a
    directory that cannot be written is reported before the first packet.
    :meth:`commit` writes, ``fsync``-s and renames it over the target (atomic
    on POSIX); :meth:`keep_partial` leaves the target as it was and writes
    the text to ``TARGET.partial`` instead (atomically too), for a run that
    did not finish. The new file gets the old one's permission bits (no
    set-user-ID, set-group-ID or sticky bit); text is UTF-8, written as given.

    Args:
        path: The file to replace (see :func:`_resolve_target` for links).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._temp: Path | None = None
        self._target = self.path

    @property
    def partial_path(self) -> Path:
        """Where :meth:`keep_partial` writes: ``TARGET.partial``."""
        return self._target.with_name(self._target.name + ".partial")

    def open(self) -> None:
        """Reserve the temporary file now.

        Raises:
            OSError: The target's directory cannot be written (or the link
                there may not be followed), or the target exists and is not
                a regular file (a device, a FIFO, a socket, a directory:
                replacing one would break it); nothing was created.
        """
        self._target = _resolve_target(self.path)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(os.stat(self._target).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self.path))
        self._fd, self._temp = _create_temp(self._target.parent, self._target.name)

    def commit(self, text: str) -> None:
        """Replace the target with ``text``, all or nothing.

        Raises:
            OSError: Writing failed (a full disk); the target is unchanged.
        """
        if self._fd is None:
            self.open()
        assert self._fd is not None
        assert self._temp is not None
        fd, temp, self._fd, self._temp = self._fd, self._temp, None, None
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(handle.fileno(), os.stat(self._target).st_mode & 0o777)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self._target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(self._target.parent)

    def keep_partial(self, text: str) -> Path:
        """Leave the target as it is; write ``text`` to :attr:`partial_path`.

        Raises:
            OSError: Writing failed; the target is unchanged either way.
        """
        self.discard()
        partial = OutputFile(self.partial_path)
        partial.commit(text)
        return partial.path

    def discard(self) -> None:
        """Remove the temporary file, if any; the target is untouched."""
        fd, temp, self._fd, self._temp = self._fd, self._temp, None, None
        if fd is not None:
            os.close(fd)
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a text file that replaces ``path`` only when the block ends cleanly.

    What is written goes to :class:`OutputFile` when the block ends; if the
    block raises (``KeyboardInterrupt`` included) ``path`` keeps its old
    content, or stays absent. See :class:`OutputFile` for links and modes.

    Yields:
        A text buffer; its content replaces ``path`` at the end.
    """
    out = OutputFile(path)
    out.open()
    buffer = io.StringIO(newline="")
    try:
        yield buffer
    except BaseException:
        out.discard()
        raise
    out.commit(buffer.getvalue())


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` (UTF-8), all or nothing.

    Never leaves a half-written file, even on Ctrl-C: see :class:`OutputFile`.

    Raises:
        OSError: The directory cannot be written; ``path`` is unchanged.
    """
    OutputFile(path).commit(text)
