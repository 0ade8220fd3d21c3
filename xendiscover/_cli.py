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
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from xendiscover import _console
from xendiscover._errors import XenDiscoverError
from xendiscover._model import Finding
from xendiscover._output import FORMATS, View, render
from xendiscover._pipeline import scan
from xendiscover._plan import DEFAULT_PORTS, DEFAULT_RETRIES, DEFAULT_TIMEOUT, ScanOptions
from xendiscover._resolve import parse_nameserver
from xendiscover._sweep import raise_open_file_limit
from xendiscover._targets import DEFAULT_MAX_HOSTS
from xendiscover._version import __version__

__all__ = ["app", "demo_app", "main"]

_TARGETS = "Targets"
_PROBING = "Probing"
_OUTPUT = "Output"

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


@app.command(
    epilog=(
        "Examples: xendiscover -p 8002 (sweep the local networks for xend); "
        "xendiscover 10.0.0.0/24 10.0.1.5-40 xen1.example.org; "
        "xendiscover -iL hosts.txt --format ansible -o inventory.json; "
        "xendiscover --shard 2/4 10.0.0.0/16; xendiscover demo (fake Xen on loopback)"
    )
)
def scan_command(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
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
            help="Read targets from a file ('-' for stdin); '#' starts a comment.",
            rich_help_panel=_TARGETS,
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Targets to leave out; repeatable.", rich_help_panel=_TARGETS),
    ] = None,
    exclude_file: Annotated[
        list[str] | None,
        typer.Option(help="Read targets to leave out from a file.", rich_help_panel=_TARGETS),
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            "-i",
            help="With no targets, sweep only this interface's networks; repeatable.",
            rich_help_panel=_TARGETS,
            show_default=False,
        ),
    ] = None,
    max_hosts: Annotated[
        int,
        typer.Option(
            min=1, help="Refuse sweeps of more addresses than this.", rich_help_panel=_TARGETS
        ),
    ] = DEFAULT_MAX_HOSTS,
    shard: Annotated[
        str | None,
        typer.Option(
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
            callback=_positive,
            envvar="XENDISCOVER_TIMEOUT",
            help="Seconds a connect attempt may wait: the last attempt's deadline, and "
            "every attempt's until round-trip times are known (then it adapts, >= 0.25 s).",
            rich_help_panel=_PROBING,
        ),
    ] = DEFAULT_TIMEOUT,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            envvar="XENDISCOVER_RETRIES",
            help="Extra attempts after a timeout.",
            rich_help_panel=_PROBING,
        ),
    ] = DEFAULT_RETRIES,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
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
            help="Probe processes. Default: one per core for sweeps of 32,768 probes or more.",
            rich_help_panel=_PROBING,
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
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
            help="List every open port with its verdict, not only Xen hosts.",
            rich_help_panel=_OUTPUT,
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the output to this file (replaced whole, never half-written).",
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
    try:
        out = _console.reserve(output)  # before the first packet
        result = _console.run_scan(
            specs, options, view=view, stream_jsonl=streaming, live=live, out=out
        )
    except _console.OutputError as exc:
        typer.echo(f"xendiscover: error: {exc}", err=True)
        raise typer.Exit(_console.EXIT_OUTPUT) from None
    except XenDiscoverError as exc:
        raise _UsageError(str(exc)) from None
    _console.deliver(result, None if streaming else render(result.hosts, fmt, view=view), out)
    summary = _console.summary(result, as_json=fmt in ("json", "jsonl"))
    _console.report(result, summary_line=summary if live or verbose else None)
    raise typer.Exit(_console.exit_code(result, view))


def _read_files(paths: list[str] | None) -> list[str]:
    return [spec for path in paths or [] for spec in read_target_file(path)]


demo_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
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


def _main(args: list[str]) -> None:
    command = typer.main.get_command(app)
    name = "xendiscover"
    if args[:1] == ["demo"]:
        command, args, name = typer.main.get_command(demo_app), args[1:], "xendiscover demo"
    try:
        code = command.main(args, prog_name=name, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: one line, no traceback
        sys.stderr.write(f"{name}: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    if code == _console.EXIT_SIGINT:  # typer's own Ctrl-C handling, while parsing
        sys.stderr.write("xendiscover: interrupted (SIGINT)\n")
    sys.exit(code if isinstance(code, int) else 0)
