"""The ``xendiscover`` command: a thin layer over :func:`xendiscover.scan`.

Every option is checked before the first packet is sent; bad input ends in
one line on stderr and exit status 2. The exit statuses are
:data:`xendiscover._console.EXIT_STATUSES` (``--help`` lists them). Only
typer's public API is used (``typer``, ``typer.core``), so every typer from
the floor in pyproject.toml up works (``nox -s lowest`` checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import ipaddress
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from typer.core import TyperArgument, TyperCommand

from xendiscover import _console, _signals
from xendiscover._errors import ResultError, XenDiscoverError
from xendiscover._model import Finding
from xendiscover._output import FORMATS, View, format_run_json, render, write_atomically
from xendiscover._pipeline import scan
from xendiscover._plan import (
    DEFAULT_PORTS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    IPV6_NEIGHBOURS,
    LOCAL_NETWORKS,
    ROUTED_NETWORKS,
    ScanOptions,
    Targets,
    _LocalNetworks,
)
from xendiscover._resolve import parse_nameserver
from xendiscover._sweep import raise_open_file_limit
from xendiscover._targets import DEFAULT_MAX_HOSTS, DEFAULT_MAX_PROBES, host_name_of, parse_ports
from xendiscover._version import __version__

__all__ = ["app", "demo_app", "diff_app", "main", "merge_app"]

_TARGETS = "Targets"
_PROBING = "Probing"
_OUTPUT = "Output"

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help as a Unix tool prints it: no boxes, no type names
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)

#: The examples at the end of ``--help``: a command, and what it does.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("xendiscover -p 8002", "sweep the local networks for xend's relocation port"),
    ("xendiscover 10.0.0.0/24 10.0.1.5-40", "explicit targets, every Xen port"),
    ("xendiscover --all --json 10.0.0.0/24", "every machine with an open port, as JSON"),
    ("xendiscover -iL hosts.txt -f ansible -o xen.json", "an Ansible inventory file"),
    ("xendiscover --shard 2/4 10.0.0.0/16", "the second of four jobs sweeping one range"),
    ("xendiscover diff old.json new.json", "what changed since the last scan (exit 1 if any)"),
    ("xendiscover merge -f json s1.json s2.json", "the shards of one scan, as one result"),
    ("xendiscover demo", "fake Xen services on loopback, scanned: nothing leaves"),
)

#: The option groups of ``--help``, in order.
_GROUPS = ("Arguments", "Targets", "Probing", "Output", "Options")


class _Formatter(Protocol):
    """What ``--help`` uses of click's help formatter (typer exports no name for it)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None: ...
    def write_dl(self, rows: Sequence[tuple[str, str]]) -> None: ...
    def write_text(self, text: str) -> None: ...
    def section(self, name: str) -> contextlib.AbstractContextManager[None]: ...
    def indentation(self) -> contextlib.AbstractContextManager[None]: ...


def _click_class(name: str) -> type[Exception]:
    """A base class of typer's parsing errors, found through the public ``typer.BadParameter``.

    Typer re-exports click's exceptions, but not their bases; the click
    behind it is click itself before typer 0.22 and a copy inside typer
    after. Only the public API is imported either way.
    """
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


#: Every error typer (click) raises while parsing the command line.
_PARSE_ERROR = _click_class("ClickException")


def _unescaped(record: tuple[str, str]) -> tuple[str, str]:
    """A help record as typed: older typers (0.15 to 0.19 at least) escape "[" for rich."""
    return record[0], record[1].replace("\\[", "[")


class _Command(TyperCommand):
    """``--help`` as a Unix tool writes it: usage lines, grouped options, examples last."""

    # ``ctx`` is click's Context, which typer re-exports only as a subclass.
    def format_usage(self, ctx: Any, formatter: _Formatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [TARGET]...")
        formatter.write_usage(ctx.command_path, "demo", prefix="       ")
        formatter.write_usage(ctx.command_path, "diff OLD NEW", prefix="       ")
        formatter.write_usage(ctx.command_path, "merge FILE...", prefix="       ")

    def format_options(self, ctx: Any, formatter: _Formatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, TyperArgument):
                group, record = "Arguments", ("TARGET...", str(param.help or ""))
            else:
                group = getattr(param, "rich_help_panel", None) or "Options"
            if record is not None:
                groups.setdefault(group, []).append(_unescaped(record))
        for group in _GROUPS:
            if group in groups:
                with formatter.section(group):
                    formatter.write_dl(groups[group])

    def format_epilog(self, ctx: Any, formatter: _Formatter) -> None:
        with formatter.section("Examples"):
            for command, what in EXAMPLES:
                formatter.write_text(command)
                with formatter.indentation():
                    formatter.write_text(what)
        with formatter.section("Exit status"):
            formatter.write_dl([(str(code), what) for code, what in _console.EXIT_STATUSES])


class _UsageError(Exception):
    """Bad input found after parsing (a target, a size): exit status 2."""

    exit_code = 2

    def format_message(self) -> str:
        """The one line shown after ``xendiscover: error:``."""
        return str(self)


#: The scan this process ran, once it has reported how it ended (one line
#: for an interruption: typer's own Ctrl-C status 130 must not add another).
_RAN: list[_console.RunResult] = []


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value} is not more than 0")
    return value


def _nameservers(values: list[str] | None) -> list[str]:
    try:
        return [parse_nameserver(v) for v in values or []]
    except XenDiscoverError as exc:
        raise typer.BadParameter(str(exc)) from None


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, slash, count = value.partition("/")
    if not (slash and index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise _UsageError(f"invalid --shard {value!r}: not I/N with 1 <= I <= N")
    return int(index), int(count)


def _format(value: str) -> str:
    if value.lower() not in FORMATS:
        raise _UsageError(f"invalid --format {value!r}: choose from {', '.join(FORMATS)}")
    return value.lower()


def _given(ctx: Any, name: str) -> bool:
    """Whether the option ``name`` was typed on the command line (not a default or env)."""
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", None) == "COMMANDLINE"


def _check_conflicts(ctx: Any, *, as_json: bool, quiet: bool, verbose: bool) -> None:
    """Refuse options that contradict each other (exit status 2)."""
    fmt = ctx.params.get("output_format")
    if as_json and fmt != "json" and _given(ctx, "output_format"):
        raise _UsageError(f"--json and --format {fmt} contradict each other; give one")
    if quiet and verbose:
        raise _UsageError("--quiet and --verbose contradict each other; give one")


def _port_list(values: list[str] | None) -> list[int] | None:
    """The ports of every ``-p`` (and ``XENDISCOVER_PORT``), in nmap's syntax."""
    if not values:
        return None
    try:
        return [port for value in values for port in parse_ports(value)]
    except XenDiscoverError as exc:
        raise _UsageError(f"--port: {exc}") from None


def _split_commas(values: list[str] | None) -> list[str]:
    """``--exclude a,b`` is two targets, as nmap reads it."""
    return [part for value in values or [] for part in value.split(",") if part.strip()]


#: The letters of nmap's output options: ``-oN FILE`` reads here as ``-o N``.
_NMAP_OUTPUT = {
    "N": "normal",
    "X": "XML",
    "G": "grepable",
    "A": "all formats",
    "S": "script kiddie",
}


def _output_path(output: str | None, targets: list[str]) -> Path | None:
    """``-o``'s file (``None``: stdout), checked before anything is sent.

    Raises:
        _UsageError: ``-oN`` (nmap's) was meant, or the path names something
            that is not a regular file (a device, a FIFO, a socket, a directory).
    """
    if output is None or output == "-":
        return None
    if output in _NMAP_OUTPUT:
        where = f" {targets[0]}" if targets else " FILE"
        raise _UsageError(
            f"-o{output} is nmap's {_NMAP_OUTPUT[output]} output; here write "
            f"-o{where} (and choose the format with -f)"
        )
    path = Path(output)
    try:
        kind = path.stat().st_mode  # follows links: what would be written
    except OSError:
        return path  # absent (or unreachable: reserve() says why)
    if not stat.S_ISREG(kind):
        raise _UsageError(
            f"cannot write {output!r}: it is {_kind(kind)}; -o writes regular files only "
            "(-o - for stdout)"
        )
    return path


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_typos(targets: list[str]) -> None:
    """Refuse a target that is a subcommand's typo, before any DNS lookup.

    Raises:
        _UsageError: The target is (nearly) a subcommand's name.
    """
    for spec in targets:
        if host_name_of(spec) is None or "." in spec:
            continue
        # _SUBCOMMANDS (below): a target close to one is a typo, not a host name.
        close = difflib.get_close_matches(spec.lower(), list(_SUBCOMMANDS), 1, SUGGEST_CUTOFF)
        if close:
            raise _UsageError(
                f"{spec!r} is not a target: did you mean 'xendiscover {close[0]}'? "
                "(a subcommand comes first)"
            )


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xendiscover {__version__}")
        raise typer.Exit()


def read_target_file(path: str) -> list[str]:
    """The targets in a file (``-`` for stdin): whitespace-separated, ``#`` comments.

    Raises:
        _UsageError: The file cannot be read or names no target
            (a usage error: exit status 2).
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise _UsageError(f"cannot read targets file {path!r}: {why}") from None
    specs = [spec for line in text.splitlines() for spec in line.split("#", 1)[0].split()]
    if not specs:
        # An empty list must never fall back to sweeping the local networks.
        raise _UsageError(f"targets file {path!r} names no target")
    return specs


@app.command(cls=_Command)
def scan_command(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TARGET]...",
            help="Networks, addresses, host names, and nmap's ranges: 10.0.0.5-40, "
            "10.0.0.1-40,50, 10.0.0-3.*. With none, the networks of the up interfaces "
            "are swept.",
            show_default=False,
        ),
    ] = None,
    targets_file: Annotated[
        list[str] | None,
        typer.Option(
            "--targets-file",
            "-iL",
            metavar="FILE",
            help="Read targets from a file ('-' for stdin); '#' starts a comment.",
            rich_help_panel=_TARGETS,
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TARGET[,TARGET]",
            help="Targets to leave out, comma-separated (as nmap); repeatable.",
            rich_help_panel=_TARGETS,
        ),
    ] = None,
    exclude_file: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FILE", help="Read targets to leave out from a file.", rich_help_panel=_TARGETS
        ),
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            "-i",
            metavar="NAME",
            help="With no targets, sweep only this interface's networks; repeatable.",
            rich_help_panel=_TARGETS,
            show_default=False,
        ),
    ] = None,
    routes: Annotated[
        bool,
        typer.Option(
            "--routes",
            help="With no targets, also sweep the IPv4 networks behind gateways of the "
            "main routing table (not default, VPN, blackhole or host routes).",
            rich_help_panel=_TARGETS,
        ),
    ] = False,
    no_ipv6: Annotated[
        bool,
        typer.Option(
            "--no-ipv6",
            help="With no targets, look for no IPv6 hosts (no echo to ff02::1, no "
            "neighbour table).",
            rich_help_panel=_TARGETS,
        ),
    ] = False,
    list_targets: Annotated[
        bool,
        typer.Option(
            "--list-targets",
            "-sL",
            help="Print what would be swept (sources, counts) and what is left out and "
            "why; send nothing.",
            rich_help_panel=_TARGETS,
        ),
    ] = False,
    max_hosts: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            help="Refuse sweeps of more addresses than this.",
            rich_help_panel=_TARGETS,
        ),
    ] = DEFAULT_MAX_HOSTS,
    max_probes: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            help="Refuse sweeps of more probes (addresses × ports) than this.",
            rich_help_panel=_TARGETS,
        ),
    ] = DEFAULT_MAX_PROBES,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="I/N",
            help="Sweep only shard I of N (e.g. 2/4): N jobs with 1/N..N/N cover it once.",
            rich_help_panel=_TARGETS,
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORTS",
            envvar="XENDISCOVER_PORT",
            help="TCP ports to probe, as nmap takes them: 80,443, 8000-8010, -p- for all; "
            f"repeatable. Default: {', '.join(map(str, DEFAULT_PORTS))}.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            callback=_positive,
            envvar="XENDISCOVER_TIMEOUT",
            help="Seconds a connect attempt may wait: first attempts' deadline until "
            "round-trip times are known (then it adapts, >= 0.25 s), and the last attempt's "
            "at an address silent on every port.",
            rich_help_panel=_PROBING,
        ),
    ] = DEFAULT_TIMEOUT,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            envvar="XENDISCOVER_RETRIES",
            help="Extra attempts after a timeout. An address silent on every port "
            "spreads them over its ports (at least one each).",
            rich_help_panel=_PROBING,
        ),
    ] = DEFAULT_RETRIES,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            envvar="XENDISCOVER_CONCURRENCY",
            help="Most connects in flight. Default: from the open-file limit.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Probe processes. Default: one per core for sweeps of 32,768 probes or more.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
            metavar="PER_SECOND",
            help="Most new connections per second. Default: no limit.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    no_fingerprint: Annotated[
        bool,
        typer.Option(
            "--no-fingerprint",
            help="Only connect (as the 2007 tool did); list every open port.",
            rich_help_panel=_PROBING,
        ),
    ] = False,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            metavar="IP[:PORT]",
            callback=_nameservers,
            envvar="XENDISCOVER_NAMESERVER",
            help="DNS server for names, IP[:PORT]; repeatable. Default: the system's.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    no_resolve: Annotated[
        bool,
        typer.Option("--no-resolve", "-n", help="Do not look up names.", rich_help_panel=_PROBING),
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            callback=_format,
            envvar="XENDISCOVER_FORMAT",
            help=f"Output format: {', '.join(FORMATS)} (any case).",
            rich_help_panel=_OUTPUT,
        ),
    ] = "text",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Shorthand for --format json.", rich_help_panel=_OUTPUT),
    ] = False,
    show_all: Annotated[
        bool,
        typer.Option(
            "--all",
            "-a",
            help="List every machine with an open port, with its services and their "
            "verdicts, not only the Xen machines.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the output to FILE ('-': stdout), a regular file replaced whole; "
            "a run cut short leaves FILE as it was and writes FILE.partial.",
            rich_help_panel=_OUTPUT,
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="No progress on stderr.", rich_help_panel=_OUTPUT),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="A summary (retries, back-offs) and warnings on stderr, terminal or not; "
            "with --format json or jsonl the summary is a JSON line.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find the Xen hosts on your networks, tell what they run, and name them."""
    _check_conflicts(ctx, as_json=as_json, quiet=quiet, verbose=verbose)
    path = _output_path(output, targets or [])
    _check_typos(targets or [])
    _console.setup_logging(verbose)
    options = ScanOptions(
        port=_port_list(port),
        exclude=[*_split_commas(exclude), *_read_files(exclude_file)],
        interfaces=interface,
        timeout=timeout,
        retries=retries,
        concurrency=concurrency,
        max_hosts=max_hosts,
        max_probes=max_probes,
        resolve=not no_resolve,
        nameservers=nameserver or (),
        fingerprint=not no_fingerprint,
        shard=_shard(shard),
        rate=rate,
        workers=workers,
    )
    fmt = "json" if as_json else output_format
    view: View = "all" if show_all else "open" if no_fingerprint else "xen"
    streaming = fmt == "jsonl" and path is None
    # Streamed records on a terminal are the progress: no bar between them.
    live = sys.stderr.isatty() and not quiet and not (streaming and sys.stdout.isatty())
    specs = [*(targets or []), *_file_targets(targets_file, nameserver or [])]
    auto = _automatic(specs, routes=routes, no_ipv6=no_ipv6)
    if list_targets:
        _list_targets(specs or auto, options, as_json=fmt in ("json", "jsonl"), path=path)
    raise_open_file_limit()  # the process is ours: allow the widest window
    try:
        out = _console.reserve(path)  # before the first packet
        result = _console.run_scan(
            specs or auto,
            options,
            view=view,
            stream_jsonl=streaming,
            live=live,
            out=out,
            listing=view if fmt not in ("jsonl", "csv") else "open" if no_fingerprint else "all",
        )
    except _console.OutputError as exc:
        typer.echo(f"xendiscover: error: {exc}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None
    except XenDiscoverError as exc:
        raise _UsageError(str(exc)) from None
    text = None if streaming else render(result.findings, fmt, view=view, run=result.run)
    _console.deliver(result, text, out)
    if fmt == "csv":
        _console.deliver_run_file(result, out)
    summary = _console.summary(result, as_json=fmt in ("json", "jsonl"))
    _console.report(
        result, summary_line=summary if live or verbose else None, view=view, hint=not quiet
    )
    _RAN.append(result)  # its interruption, if any, is reported: by the run, once
    raise typer.Exit(_console.exit_code(result, view))


def _automatic(specs: list[str], *, routes: bool, no_ipv6: bool) -> _LocalNetworks:
    """What a run without targets sweeps; ``--routes``/``--no-ipv6`` with targets are refused."""
    for given, flag in ((routes, "--routes"), (no_ipv6, "--no-ipv6")):
        if given and specs:
            raise _UsageError(f"{flag} chooses what to discover: give it without targets")
    auto = LOCAL_NETWORKS if no_ipv6 else LOCAL_NETWORKS | IPV6_NEIGHBOURS
    return auto | ROUTED_NETWORKS if routes else auto


def _list_targets(
    targets: Targets, options: ScanOptions, *, as_json: bool, path: Path | None
) -> None:
    """Print what a scan of ``targets`` would sweep (``--list-targets``) and exit 0.

    To stdout, or to ``-o FILE`` (replaced whole, as a scan's output is).
    """
    from xendiscover._listing import listing
    from xendiscover._pipeline import _resolve_targets

    out = None
    try:
        out = _console.reserve(path)
        resolved = asyncio.run(_resolve_targets(targets, options))
        text = listing(targets, options, resolved=resolved, as_json=as_json)
        _console.write_output(text, out)
    except _console.PipeClosed:
        raise typer.Exit(_console.EXIT_PIPE) from None
    except _console.OutputError as exc:
        typer.echo(f"xendiscover: error: {exc}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None
    except XenDiscoverError as exc:
        if out is not None:
            out.discard()
        raise _UsageError(str(exc)) from None
    raise typer.Exit(0)


def _read_files(paths: list[str] | None) -> list[str]:
    return [spec for path in paths or [] for spec in read_target_file(path)]


def _file_targets(paths: list[str] | None, nameservers: list[str]) -> list[str]:
    """The targets of ``-iL`` files, each host name looked up now.

    A name that does not resolve is a warning naming it, and the scan goes
    on with the rest (as nmap's ``-iL``); a name that resolves is replaced by
    its address, so it is looked up once.

    Raises:
        _UsageError: Nothing is left to scan.
    """
    specs = _read_files(paths)
    names = sorted({name for spec in specs if (name := host_name_of(spec)) is not None})
    if not names:
        return specs
    found = asyncio.run(_lookup(names, nameservers))
    for name in names:
        if name not in found:
            _console.warn(f"warning: cannot resolve host name {name!r} (from -iL); skipped")
    kept = [found.get(n, "") if (n := host_name_of(spec)) else spec for spec in specs]
    if not any(kept):
        raise _UsageError(f"no target left in {', '.join(paths or [])}: no name resolved")
    return [spec for spec in kept if spec]


async def _lookup(names: list[str], nameservers: list[str]) -> dict[str, str]:
    """Each name's first address (A before AAAA), through the scan's nameservers."""
    from xendiscover._resolve import DNSNameResolver

    dns = DNSNameResolver(nameservers)
    try:
        answers = await asyncio.gather(*(dns.forward(name) for name in names))
    finally:
        await dns.aclose()
    return {name: found[0] for name, found in zip(names, answers, strict=True) if found}


demo_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@demo_app.command()
def demo_command() -> None:
    """Start fake Xen services on loopback (127.77.0.x), scan them, show the result.

    Nothing leaves this machine: the fakes and the scan stay on loopback, and
    no name is looked up.
    """
    from xendiscover._demo import start_demo_fakes

    async def run() -> list[Finding]:
        async with contextlib.AsyncExitStack() as stack:
            fakes = await start_demo_fakes(stack)
            typer.echo("Fake services started on loopback:")
            for address, port, description in fakes:
                typer.echo(f"  {address}:{port}\t{description}")
            addresses = sorted({a for a, _, _ in fakes}, key=ipaddress.ip_address)
            ports = sorted({p for _, p, _ in fakes})
            target = f"{addresses[0]}-{addresses[-1]}"
            typer.echo(
                f"\nScanning: xendiscover --all --no-resolve "
                f"{' '.join(f'-p {p}' for p in ports)} {target}\n"
            )
            findings = scan([target], port=ports, resolve=False)
            async with contextlib.aclosing(findings):
                return [finding async for finding in findings]

    found = asyncio.run(run())
    typer.echo(render(found, "text", view="all"), nl=False)
    raise typer.Exit(0 if found else 1)


class _SubCommand(TyperCommand):
    """A subcommand's ``--help`` as the main command's: metavars, no type names."""

    # ``ctx`` is click's Context, which typer re-exports only as a subclass.
    def _arguments(self, ctx: Any) -> list[TyperArgument]:
        return [p for p in self.get_params(ctx) if isinstance(p, TyperArgument)]

    def format_usage(self, ctx: Any, formatter: _Formatter) -> None:
        names = " ".join(str(p.metavar) for p in self._arguments(ctx))
        formatter.write_usage(ctx.command_path, f"[OPTIONS] {names}")

    def format_options(self, ctx: Any, formatter: _Formatter) -> None:
        with formatter.section("Arguments"):
            formatter.write_dl([(str(p.metavar), str(p.help or "")) for p in self._arguments(ctx)])
        options = [
            _unescaped(record)
            for param in self.get_params(ctx)
            if not isinstance(param, TyperArgument)
            and (record := param.get_help_record(ctx)) is not None
        ]
        with formatter.section("Options"):
            formatter.write_dl(options)


def _sub_app() -> typer.Typer:
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
    )


diff_app = _sub_app()
merge_app = _sub_app()

_DIFF_FORMATS = ("text", "jsonl")


def _diff_format(value: str) -> str:
    if value not in _DIFF_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_DIFF_FORMATS)}")
    return value


def _emit(text: str, output: Path | None, run_file: str | None = None) -> None:
    """Write a subcommand's output: stdout, or ``-o FILE`` replaced whole (and its run file)."""
    try:
        if output is None:
            _console.write_stdout(text)
            return
        write_atomically(output, text)
        if run_file is not None:
            write_atomically(output.with_name(output.name + ".run.json"), run_file)
    except _console.OutputError as exc:
        typer.echo(f"xendiscover: error: {exc}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None
    except OSError as exc:
        typer.echo(f"xendiscover: error: cannot write {output}: {exc.strerror}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None


_OUTPUT_OPTION = typer.Option(
    "--output", "-o", metavar="FILE", help="Write to FILE (replaced whole).", show_default=False
)


@diff_app.command(cls=_SubCommand)
def diff_command(
    old: Annotated[str, typer.Argument(metavar="OLD", help="An earlier json or jsonl result.")],
    new: Annotated[str, typer.Argument(metavar="NEW", help="A later json or jsonl result.")],
    output_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", metavar="FORMAT", callback=_diff_format, help="text or jsonl."
        ),
    ] = "text",
    output: Annotated[Path | None, _OUTPUT_OPTION] = None,
) -> None:
    """Show what changed between two results of xendiscover (json or jsonl).

    Machines are matched by the strongest identity both results share (a
    xapi certificate's key, the host UUID, a confirmed name, an address), so
    a renumbered host is 'moved'. Exit status: 0 nothing changed, 1 something
    did, 2 an error.
    """
    from xendiscover._diff import changed, diff, format_diff_jsonl, format_diff_text
    from xendiscover._results import load_result

    try:
        changes = diff(load_result(old), load_result(new))
    except ResultError as exc:
        raise _UsageError(str(exc)) from None
    render_diff = format_diff_jsonl if output_format == "jsonl" else format_diff_text
    _emit(render_diff(changes), output)
    raise typer.Exit(1 if changed(changes) else 0)


@merge_app.command(cls=_SubCommand)
def merge_command(
    files: Annotated[
        list[str], typer.Argument(metavar="FILE...", help="The json or jsonl result of each shard.")
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            callback=_format,
            help=f"Output format: {', '.join(FORMATS)}.",
        ),
    ] = "text",
    as_json: Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")] = False,
    output: Annotated[Path | None, _OUTPUT_OPTION] = None,
    partial: Annotated[
        bool,
        typer.Option("--partial", help="Merge even when a shard is missing or incomplete."),
    ] = False,
) -> None:
    """Merge the results of the shards of one scan (--shard 1/N .. N/N) into one.

    The shards must share targets, exclusions, ports and version; a missing
    or incomplete shard is named, and refused unless --partial. Machines are
    regrouped as one scan groups them.
    """
    from xendiscover._results import load_result, merge

    try:
        merged = merge([load_result(f) for f in files], partial=partial)
    except ResultError as exc:
        raise _UsageError(str(exc)) from None
    fmt = "json" if as_json else output_format
    assert merged.run is not None
    view: View = merged.run.listing
    text = render(list(merged.open_ports()), fmt, view=view, run=merged.run)
    _emit(text, output, format_run_json(merged.run) if fmt == "csv" else None)
    if not merged.run.completed:
        typer.echo("xendiscover: warning: the merged result is not complete", err=True)


#: The subcommands, by their first argument.
_SUBCOMMANDS = {"demo": demo_app, "diff": diff_app, "merge": merge_app}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``xendiscover`` and ``python -m xendiscover``)."""
    _signals.command()
    try:
        _main(list(sys.argv[1:] if argv is None else argv))
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C before or after the scan
        _signals.stop(_signals.EXIT_SIGINT)
    except _signals.Terminated:
        _signals.stop(_signals.EXIT_SIGTERM)


#: How alike an unknown option and a real one must be for "did you mean" (difflib's
#: ratio): ``--timout`` (0.93) gets ``--timeout``, ``--bogus`` (0.5) nothing.
SUGGEST_CUTOFF = 0.75


def _message(exc: Exception) -> str:
    """The one-line message of a parsing error; for an unknown option, only a close match."""
    option = getattr(exc, "option_name", None)
    if type(exc).__name__ != "NoSuchOption" or not isinstance(option, str):
        return str(getattr(exc, "format_message", exc.__str__)())
    possibilities = list(getattr(exc, "possibilities", None) or [])
    close = difflib.get_close_matches(option, possibilities, 1, SUGGEST_CUTOFF)
    hint = f"; did you mean {close[0]}?" if close else "; see --help"
    return f"no such option: {option}{hint}"


def _main(args: list[str]) -> None:
    command = typer.main.get_command(app)
    name = "xendiscover"
    if args[:1] and args[0] in _SUBCOMMANDS:
        sub = args[0]
        command, args = typer.main.get_command(_SUBCOMMANDS[sub]), args[1:]
        name = f"xendiscover {sub}"
    try:
        code = command.main(args, prog_name=name, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _UsageError as exc:
        sys.stderr.write(f"{name}: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except _PARSE_ERROR as exc:  # usage errors: one line, no traceback
        sys.stderr.write(f"{name}: error: {_message(exc)}\n")
        sys.exit(int(getattr(exc, "exit_code", 2)))
    if code == _signals.EXIT_SIGINT and not _RAN:  # typer's own Ctrl-C, while parsing
        _signals.stop(_signals.EXIT_SIGINT)
    sys.exit(code if isinstance(code, int) else 0)
