"""The command line's run loop: signals, the live display, output, exit status.

:func:`run_scan` runs :func:`xendiscover.scan` to its end in a fresh event
loop and returns a :class:`RunResult`; :func:`finish` delivers the output
and says the exit status. Signals are handled here, once: SIGTERM from the
first instruction of the command (:func:`handle_termination`), SIGINT as
Python does; either ends the run as 143 or 130 after everything found so
far was collected and printed. On a terminal a progress bar runs on stderr
and each Xen machine is shown as it is found; every line built from what a
peer sent is shown as plain text (no markup, every non-printable character
escaped), so a hostile name or banner cannot steer the terminal.

``-o FILE`` is reserved before the first packet and replaced only by a
complete result: a run a signal or a failure cut short leaves ``FILE`` as
it was and writes what it found to ``FILE.partial``. Output that cannot be
written (a full disk, a closed pipe, a closed stdout) is one line on stderr
and exit status 4.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from xendiscover._errors import TargetError, XenDiscoverError
from xendiscover._model import XEN_VERDICTS, Finding
from xendiscover._output import (
    OutputFile,
    View,
    format_end_line,
    format_jsonl_line,
    format_run_json,
    format_run_line,
    listed,
    printable,
)
from xendiscover._pipeline import scan
from xendiscover._plan import LOCAL_NETWORKS, ScanOptions, Targets, _LocalNetworks
from xendiscover._run import RunInfo, now
from xendiscover._sweep import ScanStats
from xendiscover._version import __version__

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "EXIT_FAILED",
    "EXIT_NONE_FOUND",
    "EXIT_OUTPUT",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "OutputError",
    "RunResult",
    "Terminated",
    "check_stdout",
    "deliver",
    "deliver_run_file",
    "exit_code",
    "handle_termination",
    "interrupted_note",
    "report",
    "reserve",
    "run_scan",
    "setup_logging",
    "summary",
    "write_stdout",
]

#: Exit statuses (0: a machine was listed; see :func:`exit_code`).
EXIT_NONE_FOUND = 1
EXIT_FAILED = 3
EXIT_OUTPUT = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(BaseException):
    """SIGTERM arrived while no event loop was running (raised by the handler)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def handle_termination() -> None:
    """Make SIGTERM raise :class:`Terminated`: call first thing, and after each event loop.

    A SIGTERM during start-up or while the output is written then ends the
    command like one during the scan (status 143, a line on stderr), not
    silently with the default action.
    """
    signal.signal(signal.SIGTERM, _raise_terminated)


class OutputError(XenDiscoverError):
    """The output could not be written (a full disk, a closed pipe or stdout)."""


@dataclass
class RunResult:
    """What one run of the command came to.

    Attributes:
        findings: Every open port found, in the order found.
        stats: The sweep's counters.
        seconds: Wall time of the run.
        stopped: 0, or the exit status of the signal that ended it early.
        error: One line, when the scan failed (a probe process died).
        output_error: One line, when streamed output could not be written.
        run: What the run swept and how it ended (the outputs' run metadata).
    """

    findings: list[Finding] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    seconds: float = 0.0
    stopped: int = 0
    error: str | None = None
    output_error: str | None = None
    run: RunInfo | None = None

    @property
    def complete(self) -> bool:
        """Whether the scan ran to its end (no signal, no failure)."""
        return not self.stopped and self.error is None and self.output_error is None

    @property
    def stop_reason(self) -> str | None:
        """What cut the run short, as the run metadata says it, or ``None``."""
        if self.stopped:
            return "SIGTERM" if self.stopped == EXIT_SIGTERM else "SIGINT"
        return None if self.complete else "error"


def setup_logging(verbose: bool) -> None:
    """Send the library's warnings (and, verbose, its notes) to stderr, one line each."""
    logging.basicConfig(
        stream=sys.stderr,
        format="xendiscover: %(message)s",
        level=logging.INFO if verbose else logging.WARNING,
    )
    # asyncio's own notes (its child watcher's "Unknown child process pid",
    # seen about once in ten runs whose probe process died at once) are not
    # the user's business; its errors still are.
    logging.getLogger("asyncio").setLevel(logging.ERROR)


class _Display:
    """The live view on stderr: a progress bar and a line per open port shown."""

    def __init__(self, stats: ScanStats, shown: Callable[[Finding], bool]) -> None:
        self._stats = stats
        self._shown = shown
        self._bar: Progress | None = None

    @contextlib.contextmanager
    def running(self, live: bool) -> Iterator[None]:
        if not live:
            yield
            return
        with _progress() as bar:
            self._bar = bar
            try:
                yield
            finally:
                self._bar = None

    def found(self, host: Finding) -> None:
        if self._bar is None or not self._shown(host):
            return
        from rich.text import Text

        name = host.hostname if host.hostname_source == "ptr" else host.address
        line = f"found {name}:{host.port} {host.service or '-'} {host.verdict}"
        self._bar.console.print(Text(printable(line)), highlight=False, markup=False)

    async def tick(self) -> None:
        if self._bar is None:
            return
        stats, bar = self._stats, self._bar
        task = bar.add_task("sweeping", total=stats.total or None, rate="", eta="")
        started = time.monotonic()
        rate = 0.0
        while True:
            await asyncio.sleep(0.1)
            elapsed = max(time.monotonic() - started, 1e-6)
            # The rate and the ETA follow an exponentially smoothed rate, so a
            # burst of retries after a timeout does not make them jump.
            rate = 0.9 * rate + 0.1 * (stats.done / elapsed) if rate else stats.done / elapsed
            left = max(0, stats.total - stats.done)
            bar.update(
                task,
                completed=stats.done,
                total=stats.total or None,
                description=f"sweeping, {_plural(stats.open, 'open port')}",
                rate=f"{rate:,.0f}/s",
                eta=f"ETA {_clock(left / rate)}" if rate > 0 and left else "",
            )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    return Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[rate]}",
        "{task.fields[eta]}",
        transient=True,
        console=Console(stderr=True),
    )


async def _collect(
    targets: Targets,
    options: ScanOptions,
    result: RunResult,
    on_found: Callable[[Finding], None],
    display: _Display,
) -> None:
    task = asyncio.current_task()
    assert task is not None

    def terminate() -> None:
        if not result.stopped:  # a second SIGTERM must not cut the clean-up short
            result.stopped = EXIT_SIGTERM
            task.cancel()

    # A Python-level handler that hands over to the loop, not the loop's own
    # add_signal_handler: closing the loop would put SIGTERM back to its
    # default (death with no output) for as long as the clean-up takes.
    loop = asyncio.get_running_loop()
    signal.signal(signal.SIGTERM, lambda *_: loop.call_soon_threadsafe(terminate))
    ticker = asyncio.ensure_future(display.tick())
    try:
        findings = scan(targets or LOCAL_NETWORKS, **options)
        async with contextlib.aclosing(findings):
            async for finding in findings:
                result.findings.append(finding)
                on_found(finding)
                display.found(finding)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        handle_termination()  # from here on, SIGTERM raises Terminated again


def _run_info(
    targets: Targets, options: ScanOptions, stats: ScanStats, started: str, listing: View
) -> RunInfo:
    return RunInfo(
        version=__version__,
        started=started,
        targets=() if isinstance(targets, _LocalNetworks) else tuple(targets),
        local_networks=isinstance(targets, _LocalNetworks) or not targets,
        resolved=stats.networks,
        exclude=tuple(options.get("exclude", ())),
        ports=stats.ports,
        shard=options.get("shard") or (1, 1),
        listing=listing,
    )


def _stream(result: RunResult, host: Finding, run_info: Callable[[], RunInfo]) -> None:
    """Write one port's jsonl line, after the ``run`` line if it is the first."""
    if result.run is None:  # the plan is known once the first port is found
        result.run = run_info()
        write_stdout(format_run_line(result.run))
    write_stdout(format_jsonl_line(host))


def _ended(result: RunResult, run_info: Callable[[], RunInfo]) -> RunInfo:
    """The run metadata, ended now (made now if no port was streamed)."""
    run = result.run if result.run is not None else run_info()
    return run.finished(stopped=result.stop_reason)


def run_scan(
    targets: Targets,
    options: ScanOptions,
    *,
    view: View,
    stream_jsonl: bool,
    live: bool,
    out: OutputFile | None = None,
    listing: View = "xen",
) -> RunResult:
    """Run a scan to its end (or to a signal) and return what it came to.

    Args:
        targets: The targets (none: the local networks, as the command promises).
        options: The scan's options; ``stats`` is filled in here.
        view: Which hosts the live display shows as they are found.
        stream_jsonl: Write each host to stdout as a JSON line as it is found.
        live: Show the progress bar and the hosts found on stderr.
        out: The reserved ``-o`` file, given up if an input is invalid.
        listing: Which machines the output lists, for the run metadata.

    Raises:
        TargetError: An input is invalid (nothing was sent).
    """
    result = RunResult()
    options = ScanOptions(**options, stats=result.stats)
    display = _Display(result.stats, lambda host: bool(listed([host], view)))
    run_info = functools.partial(_run_info, targets, options, result.stats, now(), listing)

    def on_found(host: Finding) -> None:
        if stream_jsonl:
            _stream(result, host, run_info)

    started = time.monotonic()
    try:
        with display.running(live):
            asyncio.run(_collect(targets, options, result, on_found, display))
    except TargetError:
        if out is not None:
            out.discard()
        raise
    except OutputError as exc:
        result.output_error = str(exc)
    except XenDiscoverError as exc:  # the scan itself failed (a probe process died)
        result.error = str(exc)
    except KeyboardInterrupt:
        result.stopped = EXIT_SIGINT
    except Terminated:
        result.stopped = EXIT_SIGTERM
    except asyncio.CancelledError:
        result.stopped = result.stopped or EXIT_SIGINT
    finally:
        handle_termination()  # the loop put SIGTERM back to its default
    result.seconds = time.monotonic() - started
    result.run = _ended(result, run_info)
    return result


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def check_stdout() -> None:
    """Refuse to scan when stdout is closed: the result would be lost.

    Raises:
        OutputError: stdout is not open.
    """
    try:
        os.fstat(1)
    except OSError:
        raise OutputError("stdout is closed; name a file with -o") from None
    if sys.stdout is None:
        raise OutputError("stdout is closed; name a file with -o")


def write_stdout(text: str) -> None:
    """Write and flush to stdout.

    Raises:
        OutputError: It could not be written (full disk, closed pipe).
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        _silence_stdout()
        raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None


def reserve(path: Path | None) -> OutputFile | None:
    """Reserve ``-o FILE`` before the scan; without ``-o``, check that stdout is open.

    Raises:
        OutputError: The file's directory cannot be written, or stdout is closed.
    """
    if path is None:
        check_stdout()
        return None
    out = OutputFile(path)
    try:
        out.open()
    except OSError as exc:
        why = exc.strerror or str(exc)
        where = Path(exc.filename).parent if exc.filename else path.parent
        raise OutputError(f"cannot write {path}: cannot create a file in {where}: {why}") from None
    return out


def deliver(result: RunResult, text: str | None, out: OutputFile | None) -> None:
    """Write the rendered output: stdout, or ``-o FILE`` (whole, or ``FILE.partial``).

    ``text`` is ``None`` when the output was streamed: then only its first
    (``run``, if no port came) and last (``end``) lines are written here.
    Records an output failure in ``result.output_error``.
    """
    if text is None:
        _end_stream(result)
        return
    try:
        if out is None:
            write_stdout(text)
        elif result.complete:
            out.commit(text)
        else:
            partial = out.keep_partial(text)
            _note(f"{out.path} left as it was; what was found is in {partial}")
    except OutputError as exc:
        result.output_error = str(exc)
    except OSError as exc:
        result.output_error = f"cannot write {out.path if out else 'the output'}: {exc.strerror}"
        if out is not None:
            out.discard()


def _end_stream(result: RunResult) -> None:
    if result.run is None or result.output_error is not None:
        return
    try:
        if not result.findings:
            write_stdout(format_run_line(result.run))
        write_stdout(format_end_line(result.run, len(result.findings)))
    except OutputError as exc:
        result.output_error = str(exc)


def deliver_run_file(result: RunResult, out: OutputFile | None) -> None:
    """Write ``FILE.run.json`` (the run metadata) beside a ``csv`` file ``-o`` wrote.

    Beside ``FILE.partial`` when the run was cut short. Nothing without ``-o``.
    """
    if out is None or result.run is None or result.output_error is not None:
        return
    target = out.path if result.complete else out.partial_path
    side = target.with_name(target.name + ".run.json")
    try:
        OutputFile(side).commit(format_run_json(result.run))
    except OSError as exc:
        result.output_error = f"cannot write {side}: {exc.strerror}"


def _note(line: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"xendiscover: {printable(line)}\n")
        sys.stderr.flush()


def report(result: RunResult, *, summary_line: str | None) -> None:
    """The stderr lines of a run: its failure, its interruption, its summary."""
    if result.error is not None:
        _note(f"error: {result.error}")
    if result.output_error is not None:
        _note(f"error: {result.output_error}")
    if (note := interrupted_note(result)) is not None:
        _note(note)
    if summary_line is not None:
        with contextlib.suppress(OSError):
            sys.stderr.write(summary_line + "\n")


def exit_code(result: RunResult, view: View) -> int:
    """The exit status of a run, the same for every output format.

    0 when a machine is listed (a Xen machine; with ``--no-fingerprint``,
    any machine with an open port), 1 when none is, 3 when the scan failed,
    4 when the output could not be written, 130/143 when a signal ended it
    (the signal first: the caller asked to stop).
    """
    if result.stopped:
        return result.stopped
    if result.output_error is not None:
        return EXIT_OUTPUT
    if result.error is not None:
        return EXIT_FAILED
    return 0 if listed(result.findings, "open" if view == "open" else "xen") else EXIT_NONE_FOUND


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def summary(result: RunResult, *, as_json: bool) -> str:
    """The closing summary line (JSON for the JSON formats)."""
    stats = result.stats
    if as_json:
        return json.dumps({"summary": {**stats.as_dict(), "seconds": round(result.seconds, 3)}})
    machines = listed(result.findings, "all")
    xen = [m for m in machines if m.verdict in XEN_VERDICTS]
    return (
        f"xendiscover: {stats.done:,} of {_plural(stats.total, 'probe')} in "
        f"{result.seconds:.1f} s: {_plural(len(xen), 'Xen machine')}, "
        f"{_plural(len(machines), 'machine')} with "
        f"{_plural(len(result.findings), 'open port')}; "
        f"{_plural(stats.retries, 'retry')} after timeout, {_plural(stats.backoffs, 'back-off')}"
    ).replace("retrys", "retries")


def interrupted_note(result: RunResult) -> str | None:
    """The one stderr line for a run a signal ended, or ``None``."""
    if not result.stopped:
        return None
    name = "SIGTERM" if result.stopped == EXIT_SIGTERM else "SIGINT"
    count = len(listed(result.findings, "all"))
    return f"interrupted ({name}): {_plural(count, 'machine')} found so far"
