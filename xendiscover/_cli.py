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
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from xendiscover._errors import XenDiscoverError
from xendiscover._model import Host
from xendiscover._output import (
    FORMATS,
    XEN_VERDICTS,
    format_all,
    format_jsonl_line,
    render,
    write_atomically,
)
from xendiscover._pipeline import (
    DEFAULT_PORTS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ScanPlan,
    plan,
    run_plan,
)
from xendiscover._probe import ScanStats
from xendiscover._resolve import parse_nameserver
from xendiscover._targets import DEFAULT_MAX_HOSTS
from xendiscover._version import __version__

if TYPE_CHECKING:
    from rich.progress import Progress

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
    import logging

    logging.basicConfig(
        stream=sys.stderr,
        format="xendiscover: %(message)s",
        level=logging.INFO if verbose else logging.WARNING,
    )
    specs = list(targets or [])
    for path in targets_file or []:
        specs += read_target_file(path)
    excluded = list(exclude or [])
    for path in exclude_file or []:
        excluded += read_target_file(path)
    try:
        checked = plan(
            specs,
            port=port,
            exclude=excluded,
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
    except XenDiscoverError as exc:
        raise _UsageError(str(exc)) from None

    fmt = "json" if as_json else output_format
    xen_only = not (show_all or no_fingerprint)
    streaming = fmt == "jsonl" and output is None
    live = sys.stderr.isatty() and not quiet

    def shown(host: Host) -> None:
        if streaming:
            typer.echo(format_jsonl_line(host), nl=False)
            sys.stdout.flush()

    found: list[Host] = []
    stats = ScanStats()
    started = time.monotonic()
    code = _run(checked, found, stats, on_host=shown, live=live)
    if not streaming:
        # --all lists every open port; --no-fingerprint every open host, by name.
        text = (
            format_all(found)
            if fmt == "text" and show_all
            else render(found, fmt, xen_only=xen_only)
        )
        if output is not None:
            try:
                write_atomically(output, text)
            except OSError as exc:
                typer.echo(f"xendiscover: cannot write {output}: {exc.strerror}", err=True)
                raise typer.Exit(2) from None
        else:
            typer.echo(text, nl=False)
    if live or verbose:
        seconds = time.monotonic() - started
        if fmt in ("json", "jsonl"):  # a summary the same tools can read
            summary = {"summary": {**stats.as_dict(), "seconds": round(seconds, 3)}}
            typer.echo(json.dumps(summary), err=True)
        else:
            typer.echo(_summary(checked, stats, found, seconds), err=True)
    if code:
        raise typer.Exit(code)
    listed = [h for h in found if h.verdict in XEN_VERDICTS] if xen_only else found
    raise typer.Exit(0 if listed else 1)


def _summary(checked: ScanPlan, stats: ScanStats, found: Sequence[Host], seconds: float) -> str:
    verdicts = {v: sum(1 for h in found if h.verdict == v) for v in XEN_VERDICTS}
    others = len(found) - sum(verdicts.values())
    return (
        f"xendiscover: {stats.done:,} of {checked.total:,} probes "
        f"({checked.space.size:,} addresses x {len(checked.ports)} ports) in {seconds:.1f} s: "
        f"{verdicts['confirmed']} confirmed, {verdicts['likely']} likely, "
        f"{others} other open; {stats.retries:,} retries after timeout, "
        f"{stats.backoffs:,} back-offs"
    )


def _run(
    checked: ScanPlan,
    found: list[Host],
    stats: ScanStats,
    *,
    on_host: Callable[[Host], None],
    live: bool,
) -> int:
    """Run the scan, collecting into ``found``; the exit code of an interruption, or 0."""
    stopped_by: list[int] = []

    async def collect() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def terminate() -> None:
            stopped_by.append(143)
            task.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, terminate)
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(_progress()) if live else None
            ticker = asyncio.ensure_future(_tick(bar, stats)) if bar is not None else None
            try:
                async with contextlib.aclosing(run_plan(checked, stats=stats)) as hosts:
                    async for host in hosts:
                        found.append(host)
                        on_host(host)
                        if bar is not None:
                            bar.console.print(
                                f"found {host.display_name}:{host.port} "
                                f"{host.service or '-'} {host.verdict}",
                                highlight=False,
                            )
            finally:
                if ticker is not None:
                    ticker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ticker

    try:
        asyncio.run(collect())
    except XenDiscoverError as exc:  # the scan itself failed (a probe worker died)
        typer.echo(f"xendiscover: error: {exc}", err=True)
        return 3
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        return stopped_by[0] if stopped_by else 130
    return 0


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[rate]}",
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    )


async def _tick(bar: Progress, stats: ScanStats) -> None:
    task = bar.add_task("sweeping", total=stats.total or None, rate="")
    started = time.monotonic()
    while True:
        elapsed = max(time.monotonic() - started, 1e-6)
        bar.update(
            task,
            completed=stats.done,
            total=stats.total or None,
            description=f"sweeping, {stats.open} open",
            rate=f"{stats.done / elapsed:,.0f}/s",
        )
        await asyncio.sleep(0.1)


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

    async def run() -> list[Host]:
        async with contextlib.AsyncExitStack() as stack:
            fakes = await start_demo_fakes(stack)
            typer.echo("Fake services started on loopback:")
            for address, port, description in fakes:
                typer.echo(f"  {address}:{port}\t{description}")
            addresses = sorted(
                {a for a, _, _ in fakes}, key=lambda a: tuple(map(int, a.split(".")))
            )
            ports = sorted({p for _, p, _ in fakes})
            target = f"{addresses[0]}-{addresses[-1]}"
            typer.echo(
                f"\nScanning: xendiscover --all --no-resolve "
                f"{' '.join(f'-p {p}' for p in ports)} {target}\n"
            )
            checked = plan([target], port=ports, resolve=False)
            async with contextlib.aclosing(run_plan(checked)) as hosts:
                return [host async for host in hosts]

    found = asyncio.run(run())
    typer.echo(format_all(found), nl=False)
    raise typer.Exit(0 if found else 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``xendiscover`` and ``python -m xendiscover``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    name = "xendiscover"
    if args[:1] == ["demo"]:
        command, args, name = typer.main.get_command(demo_app), args[1:], "xendiscover demo"
    try:
        code = command.main(args, prog_name=name, standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: one line, no traceback
        sys.stderr.write(f"{name}: error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
