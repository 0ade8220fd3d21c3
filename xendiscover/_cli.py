"""The ``xendiscover`` command: a thin layer over :func:`xendiscover.scan`.

Every option is checked before the first packet is sent; bad input ends in
one line on stderr and exit status 2. Exit status: 0 when a host was found,
1 when the scan finished and found none, 2 on bad usage, 130 on Ctrl-C and
143 on SIGTERM (after printing what was found so far).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from xendiscover._errors import XenDiscoverError
from xendiscover._model import Host
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
    from rich.console import Console

__all__ = ["app", "main"]

_log = logging.getLogger("xendiscover")

#: Verdicts that make a host a Xen host in the default output.
_XEN_VERDICTS = frozenset({"confirmed", "likely"})

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xendiscover {__version__}")
        raise typer.Exit()


@app.command(
    epilog=(
        "Examples: xendiscover --port 8002 (sweep the local networks); "
        "xendiscover 10.0.0.0/24 10.0.1.5-10.0.1.40 db1.example.org; "
        "xendiscover --json --all 192.168.7.0/24; xendiscover demo"
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
    port: Annotated[
        list[int] | None,
        typer.Option(
            "--port",
            "-p",
            min=1,
            max=65535,
            help="TCP port to probe; repeat for several. "
            f"Default: {', '.join(map(str, DEFAULT_PORTS))}.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            callback=_positive,
            help="Seconds a connect attempt may wait: every retry's deadline, and the "
            "first attempt's until round-trip times are known (it then adapts, >= 0.25 s).",
        ),
    ] = DEFAULT_TIMEOUT,
    retries: Annotated[
        int, typer.Option(min=0, help="Extra attempts after a timeout.")
    ] = DEFAULT_RETRIES,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Most connects in flight. Default: from the open-file limit.",
            show_default=False,
        ),
    ] = None,
    max_hosts: Annotated[
        int, typer.Option(min=1, help="Refuse sweeps of more addresses than this.")
    ] = DEFAULT_MAX_HOSTS,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Targets to leave out; repeatable.", show_default=False),
    ] = None,
    interface: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            "-i",
            help="Sweep only this interface's networks (no targets); repeatable.",
            show_default=False,
        ),
    ] = None,
    nameserver: Annotated[
        list[str] | None,
        typer.Option(
            callback=_nameservers,
            help="DNS server for names, IP[:PORT]; repeatable. Default: the system's.",
            show_default=False,
        ),
    ] = None,
    no_resolve: Annotated[bool, typer.Option("--no-resolve", help="Do not look up names.")] = False,
    no_fingerprint: Annotated[
        bool,
        typer.Option("--no-fingerprint", help="Only connect; list every open port."),
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="List every open port with its verdict.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every record as a JSON array.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Say more on stderr (summary, back-offs).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find the Xen hosts on your networks and name them."""
    logging.basicConfig(
        stream=sys.stderr,
        format="xendiscover: %(message)s",
        level=logging.INFO if verbose else logging.WARNING,
    )
    try:
        checked = plan(
            targets,
            port=port,
            exclude=exclude or (),
            interfaces=interface,
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
            max_hosts=max_hosts,
            resolve=not no_resolve,
            nameservers=nameserver or (),
            fingerprint=not no_fingerprint,
        )
    except XenDiscoverError as exc:
        raise _UsageError(str(exc)) from None
    progress = sys.stderr.isatty() and not quiet
    found: list[Host] = []
    stats = ScanStats()
    started = time.monotonic()
    code = _run(checked, found, stats, progress=progress)
    _print(found, as_json=as_json, show_all=show_all, xen_only=not no_fingerprint)
    if verbose:
        _log.info(
            "%d probes in %.2f s: %d open, %d retries after timeout, %d back-offs",
            stats.done,
            time.monotonic() - started,
            stats.open,
            stats.retries,
            stats.backoffs,
        )
    if code:
        raise typer.Exit(code)
    xen_only = not (show_all or no_fingerprint)
    listed = [h for h in found if h.verdict in _XEN_VERDICTS] if xen_only else found
    raise typer.Exit(0 if listed else 1)


def _run(checked: ScanPlan, found: list[Host], stats: ScanStats, *, progress: bool) -> int:
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
        shown = asyncio.ensure_future(_show_progress(stats)) if progress else None
        try:
            async with contextlib.aclosing(run_plan(checked, stats=stats)) as hosts:
                async for host in hosts:
                    found.append(host)
        finally:
            if shown is not None:
                shown.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await shown

    try:
        asyncio.run(collect())
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        return stopped_by[0] if stopped_by else 130
    return 0


async def _show_progress(stats: ScanStats) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("sweeping", total=stats.total or None)
        while True:
            bar.update(
                task,
                completed=stats.done,
                total=stats.total or None,
                description=f"sweeping, {stats.open} open",
            )
            await asyncio.sleep(0.1)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _print(found: Sequence[Host], *, as_json: bool, show_all: bool, xen_only: bool) -> None:
    hosts = sorted(found, key=lambda h: h.sort_key)
    if as_json:
        typer.echo(json.dumps([h.as_dict() for h in hosts], indent=2))
        return
    if show_all:
        for h in hosts:
            typer.echo(f"{h.display_name}\t{h.port}\t{h.service or '-'}\t{h.verdict}\t{h.evidence}")
        return
    seen: set[str] = set()
    for h in hosts:
        if (h.verdict in _XEN_VERDICTS or not xen_only) and h.address not in seen:
            seen.add(h.address)
            typer.echo(h.display_name)


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
            typer.echo(
                f"\nScanning: xendiscover --all --no-resolve "
                f"{' '.join(f'-p {p}' for p in ports)} {addresses[0]}-{addresses[-1]}\n"
            )
            checked = plan([f"{addresses[0]}-{addresses[-1]}"], port=ports, resolve=False)
            async with contextlib.aclosing(run_plan(checked)) as hosts:
                return [host async for host in hosts]

    found = asyncio.run(run())
    _print(found, as_json=False, show_all=True, xen_only=False)
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
