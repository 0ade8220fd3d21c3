"""The ``xendiscover`` command: a thin layer over :func:`xendiscover.scan`.

Every option is checked before the first packet is sent; bad input ends in
one line on stderr and exit status 2. Exit status: 0 when a host was found,
1 when the scan finished and found none, 2 on bad usage, 3 when the scan
could not finish (a probe process died), 130 on Ctrl-C and 143 on SIGTERM
(after printing what was found so far).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from typer._click.core import Context
from typer._click.exceptions import NoSuchOption
from typer._click.formatting import HelpFormatter
from typer.core import TyperArgument, TyperCommand

from xendiscover import _console
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
from xendiscover._targets import DEFAULT_MAX_HOSTS
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


class _Command(TyperCommand):
    """``--help`` as a Unix tool writes it: usage lines, grouped options, examples last."""

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [TARGET]...")
        formatter.write_usage(ctx.command_path, "demo", prefix="       ")
        formatter.write_usage(ctx.command_path, "diff OLD NEW", prefix="       ")
        formatter.write_usage(ctx.command_path, "merge FILE...", prefix="       ")

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if isinstance(param, TyperArgument):
                group, record = "Arguments", ("TARGET...", str(param.help or ""))
            else:
                group = getattr(param, "rich_help_panel", None) or "Options"
            if record is not None:
                groups.setdefault(group, []).append(record)
        for group in _GROUPS:
            if group in groups:
                with formatter.section(group):
                    formatter.write_dl(groups[group])

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        with formatter.section("Examples"):
            for command, what in EXAMPLES:
                formatter.write_text(command)
                with formatter.indentation():
                    formatter.write_text(what)


class _UsageError(typer.TyperException):
    """Bad input found after parsing (a target, a size): exit status 2."""

    exit_code = 2


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
    if value not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FORMATS)}")
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xendiscover {__version__}")
        raise typer.Exit()


def read_target_file(path: str) -> list[str]:
    """The targets in a file (``-`` for stdin): whitespace-separated, ``#`` comments.

    Raises:
        typer.TyperException: The file cannot be read or names no target
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
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TARGET]...",
            help="Networks, addresses, ranges (a.b.c.d-e) or host names. "
            "With none, the networks of the up interfaces are swept.",
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
            metavar="TARGET", help="Targets to leave out; repeatable.", rich_help_panel=_TARGETS
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
        list[int] | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            min=1,
            max=65535,
            envvar="XENDISCOVER_PORT",
            help=f"TCP port to probe; repeatable. Default: {', '.join(map(str, DEFAULT_PORTS))}.",
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
        typer.Option("--no-resolve", help="Do not look up names.", rich_help_panel=_PROBING),
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            metavar="FORMAT",
            callback=_format,
            envvar="XENDISCOVER_FORMAT",
            help=f"Output format: {', '.join(FORMATS)}.",
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
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the output to FILE, replaced whole; a run cut short leaves FILE "
            "as it was and writes FILE.partial.",
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
    _console.setup_logging(verbose)
    raise_open_file_limit()  # the process is ours: allow the widest window
    options = ScanOptions(
        port=port,
        exclude=[*(exclude or []), *_read_files(exclude_file)],
        interfaces=interface,
        timeout=timeout,
        retries=retries,
        concurrency=concurrency,
        max_hosts=max_hosts,
        resolve=not no_resolve,
        nameservers=nameserver or (),
        fingerprint=not no_fingerprint,
        shard=_shard(shard),
        rate=rate,
        workers=workers,
    )
    fmt = "json" if as_json else output_format
    view: View = "all" if show_all else "open" if no_fingerprint else "xen"
    streaming = fmt == "jsonl" and output is None
    live = sys.stderr.isatty() and not quiet
    specs = [*(targets or []), *_read_files(targets_file)]
    auto = _automatic(specs, routes=routes, no_ipv6=no_ipv6)
    if list_targets:
        _list_targets(specs or auto, options, as_json=fmt in ("json", "jsonl"))
    try:
        out = _console.reserve(output)  # before the first packet
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
    _console.report(result, summary_line=summary if live or verbose else None)
    raise typer.Exit(_console.exit_code(result, view))


def _automatic(specs: list[str], *, routes: bool, no_ipv6: bool) -> _LocalNetworks:
    """What a run without targets sweeps; ``--routes``/``--no-ipv6`` with targets are refused."""
    for given, flag in ((routes, "--routes"), (no_ipv6, "--no-ipv6")):
        if given and specs:
            raise _UsageError(f"{flag} chooses what to discover: give it without targets")
    auto = LOCAL_NETWORKS if no_ipv6 else LOCAL_NETWORKS | IPV6_NEIGHBOURS
    return auto | ROUTED_NETWORKS if routes else auto


def _list_targets(targets: Targets, options: ScanOptions, *, as_json: bool) -> None:
    """Print what a scan of ``targets`` would sweep (``--list-targets``) and exit 0."""
    from xendiscover._listing import listing
    from xendiscover._pipeline import _resolve_targets

    try:
        resolved = asyncio.run(_resolve_targets(targets, options))
        text = listing(targets, options, resolved=resolved, as_json=as_json)
        _console.write_stdout(text)
    except _console.OutputError as exc:
        typer.echo(f"xendiscover: error: {exc}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None
    except XenDiscoverError as exc:
        raise _UsageError(str(exc)) from None
    raise typer.Exit(0)


def _read_files(paths: list[str] | None) -> list[str]:
    return [spec for path in paths or [] for spec in read_target_file(path)]


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

    def _arguments(self, ctx: Context) -> list[TyperArgument]:
        return [p for p in self.get_params(ctx) if isinstance(p, TyperArgument)]

    def format_usage(self, ctx: Context, formatter: HelpFormatter) -> None:
        names = " ".join(str(p.metavar) for p in self._arguments(ctx))
        formatter.write_usage(ctx.command_path, f"[OPTIONS] {names}")

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        with formatter.section("Arguments"):
            formatter.write_dl([(str(p.metavar), str(p.help or "")) for p in self._arguments(ctx)])
        options = [
            record
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
    _console.handle_termination()
    try:
        _main(list(sys.argv[1:] if argv is None else argv))
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C before or after the scan
        sys.stderr.write("xendiscover: interrupted (SIGINT)\n")
        sys.exit(_console.EXIT_SIGINT)
    except _console.Terminated:
        sys.stderr.write("xendiscover: interrupted (SIGTERM)\n")
        sys.exit(_console.EXIT_SIGTERM)


#: How alike an unknown option and a real one must be for "did you mean" (difflib's
#: ratio): ``--timout`` (0.93) gets ``--timeout``, ``--bogus`` (0.5) nothing.
SUGGEST_CUTOFF = 0.75


def _no_such_option(exc: NoSuchOption) -> str:
    """The one-line message for an unknown option, suggesting only a close match."""
    close = difflib.get_close_matches(exc.option_name, exc.possibilities or [], 1, SUGGEST_CUTOFF)
    hint = f"; did you mean {close[0]}?" if close else "; see --help"
    return f"no such option: {exc.option_name}{hint}"


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
    except NoSuchOption as exc:
        sys.stderr.write(f"{name}: error: {_no_such_option(exc)}\n")
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: one line, no traceback
        sys.stderr.write(f"{name}: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    if code == _console.EXIT_SIGINT:  # typer's own Ctrl-C handling, while parsing
        sys.stderr.write("xendiscover: interrupted (SIGINT)\n")
    sys.exit(code if isinstance(code, int) else 0)
