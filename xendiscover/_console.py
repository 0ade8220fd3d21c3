"""The command line's run loop: signals, the live display, output, exit status.

:func:`run_scan` runs :func:`xendiscover.scan` to its end in a fresh event
loop and returns a :class:`RunResult`; :func:`finish` delivers the output
and says the exit status. Signals follow the one policy of
:mod:`xendiscover._signals` (SIGTERM stops the scan's loop, SIGINT as
Python does); either ends the run as 143 or 130 after everything found so
far was collected and printed. On a terminal a progress bar runs on stderr
and each Xen machine is shown as it is found; every line built from what a
peer sent is shown as plain text (no markup, every non-printable character
escaped), so a hostile name or banner cannot steer the terminal.

``-o FILE`` is reserved before the first packet and replaced only by a
complete result: a run a signal or a failure cut short leaves ``FILE`` as
it was and writes what it found to ``FILE.partial``. Output that cannot be
written (a full disk, a closed stdout) is one line on stderr and exit
status 4. A pipe closed by its reader (``| head -1``) ends the run quietly,
as a Unix filter ends: no line, exit status 141 (128 + SIGPIPE, what a
shell reports for a filter SIGPIPE killed).

The live display is stderr's alone: records go to stdout whatever stdout
and stderr are, and it never redirects stdout through itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
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
    port_records,
    printable,
)
from xendiscover._pipeline import scan
from xendiscover._plan import LOCAL_NETWORKS, ScanOptions, Targets, _LocalNetworks
from xendiscover._run import RunInfo, now
from xendiscover._signals import EXIT_SIGINT, EXIT_SIGTERM, Terminated, command, during_loop
from xendiscover._sweep import ScanStats
from xendiscover._version import __version__

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "EXIT_FAILED",
    "EXIT_NONE_FOUND",
    "EXIT_OUTPUT",
    "EXIT_PIPE",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_STATUSES",
    "SILENT_AFTER",
    "OutputError",
    "PipeClosed",
    "RunResult",
    "check_stdout",
    "deliver",
    "deliver_run_file",
    "describe",
    "exit_code",
    "interrupted_note",
    "no_xen_hint",
    "report",
    "reserve",
    "run_scan",
    "setup_logging",
    "summary",
    "warn",
    "write_stdout",
]

#: Exit statuses (0: a machine was listed; see :func:`exit_code`).
EXIT_NONE_FOUND = 1
EXIT_FAILED = 3
EXIT_OUTPUT = 4
EXIT_PIPE = 141

#: Every exit status of the command and what it means (``--help`` lists them).
EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (0, "a machine was listed (a Xen machine; with --no-fingerprint, any)"),
    (EXIT_NONE_FOUND, "the scan finished and listed none"),
    (2, "bad usage: an option, a target, a file (nothing was sent)"),
    (EXIT_FAILED, "the scan could not finish (a probe process died)"),
    (EXIT_OUTPUT, "the output could not be written (a full disk, a closed stdout)"),
    (EXIT_SIGINT, "Ctrl-C (SIGINT), after printing what was found"),
    (EXIT_PIPE, "the reader of stdout went away (| head): no message"),
    (EXIT_SIGTERM, "SIGTERM, after printing what was found"),
)

#: A port waited on for this long (seconds) without an answer is "silent":
#: the live display names it.
SILENT_AFTER = 1.0


class OutputError(XenDiscoverError):
    """The output could not be written (a full disk, a closed pipe or stdout)."""


class PipeClosed(OutputError):
    """The reader of stdout closed its end (``| head -1``): stop quietly."""


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
        pipe_closed: Whether the reader of stdout went away.
        run: What the run swept and how it ended (the outputs' run metadata).
    """

    findings: list[Finding] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    seconds: float = 0.0
    stopped: int = 0
    error: str | None = None
    output_error: str | None = None
    pipe_closed: bool = False
    run: RunInfo | None = None

    @property
    def complete(self) -> bool:
        """Whether the scan ran to its end (no signal, no failure)."""
        return (
            not self.stopped
            and self.error is None
            and self.output_error is None
            and not self.pipe_closed
        )

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
            pending = stats.pending_connects
            sweeping = left > len(pending) or not pending
            bar.update(
                task,
                completed=stats.done,
                total=stats.total or None,
                description=describe(stats, time.monotonic()),
                rate=f"{rate:,.0f}/s" if left and sweeping else "",
                eta=f"ETA {_clock(left / rate)}" if rate > 0 and left and sweeping else "",
            )


def _silent(pending: dict[tuple[str, int], tuple[float, float]], now: float) -> str | None:
    """The line naming the ports waited on, when every one of them is silent."""
    if not pending or any(now - start < SILENT_AFTER for start, _ in pending.values()):
        return None
    ports = sorted(pending, key=lambda key: pending[key][1])
    shown = ", ".join(f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in ports[:3])
    more = ", ..." if len(ports) > 3 else ""
    left = max(0.0, max(end for _, end in pending.values()) - now)
    count = _plural(len(ports), "silent port")
    return f"waiting on {count} ({shown}{more}), at most {math.ceil(left)} s more"


def describe(stats: ScanStats, now: float) -> str:
    """What the scan is doing, in one line: the live display's words.

    ``sweeping, N open ports`` while probes are left to start or answer;
    ``fingerprinting N ports`` once the sweep is done; and, when all that
    is left has waited :data:`SILENT_AFTER` with no answer, ``waiting on K
    silent ports (ADDRESS:PORT, ...), at most S s more``. ``now`` is on the
    monotonic clock the scan's own deadlines use.
    """
    left = stats.total - stats.done
    if left > 0:
        pending = stats.pending_connects
        if left <= len(pending) and (line := _silent(pending, now)):
            return line
        return f"sweeping, {_plural(stats.open, 'open port')}"
    busy = stats.pending_fingerprints
    if busy or stats.waiting:
        if not stats.waiting and (line := _silent(busy, now)):
            return line
        return f"fingerprinting {_plural(len(busy) + stats.waiting, 'port')}"
    return f"swept, {_plural(stats.open, 'open port')}"


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
        redirect_stdout=False,  # records go to stdout itself, never through the display
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

    ticker = asyncio.ensure_future(display.tick())
    try:
        with during_loop(terminate):
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


class _PortStream:
    """Streamed ``jsonl``: each port's line with what its machine knows.

    A port's line is held until its address is settled: the sweep has
    finished (no port of it can still be found) and no port of it is still
    being fingerprinted. Lines are then written with every fact the
    address's ports showed (its UUID on the port-80 line too).
    """

    def __init__(self, result: RunResult, run_info: Callable[[], RunInfo]) -> None:
        self._result = result
        self._stats = result.stats
        self._run_info = run_info
        self._held: dict[str, list[Finding]] = {}
        self._sent: list[Finding] = []

    def add(self, finding: Finding) -> None:
        self._held.setdefault(finding.address, []).append(finding)
        self.flush(final=False)

    def flush(self, *, final: bool) -> None:
        if not final and self._stats.done < self._stats.total:
            return
        busy = {address for address, _ in self._stats.pending_fingerprints}
        ready = [a for a in self._held if final or a not in busy]
        findings = [f for a in ready for f in self._held.pop(a)]
        if not findings:
            return
        records = port_records(findings, known=self._sent)
        self._sent += findings
        text = "".join(format_jsonl_line(r) for r in records)
        if self._result.run is None:  # the plan is known once the first port is found
            self._result.run = self._run_info()
            text = format_run_line(self._result.run) + text
        write_stdout(text)


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
    stream = _PortStream(result, run_info) if stream_jsonl else None

    def on_found(host: Finding) -> None:
        if stream is not None:
            stream.add(host)

    started = time.monotonic()
    try:
        with display.running(live):
            _run(_collect(targets, options, result, on_found, display), result)
    except TargetError:
        if out is not None:
            out.discard()
        raise
    if stream is not None:
        _flush_stream(stream, result)
    result.seconds = time.monotonic() - started
    result.run = _ended(result, run_info)
    return result


def _run(collect: Coroutine[None, None, None], result: RunResult) -> None:
    """Run the scan's coroutine; record how it ended in ``result``.

    Raises:
        TargetError: An input is invalid (nothing was sent).
    """
    try:
        asyncio.run(collect)
    except TargetError:
        raise
    except PipeClosed:
        result.pipe_closed = True
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
        command()  # the loop may have put SIGTERM back to its default


def _flush_stream(stream: _PortStream, result: RunResult) -> None:
    """Write the lines still held (a run cut short still shows what it found)."""
    if result.pipe_closed or result.output_error is not None:
        return
    try:
        stream.flush(final=True)
    except PipeClosed:
        result.pipe_closed = True
    except OutputError as exc:
        result.output_error = str(exc)


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
        PipeClosed: The reader of the pipe went away.
        OutputError: It could not be written (full disk).
    """
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise PipeClosed("stdout's reader went away") from None
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
    if result.pipe_closed:
        return
    try:
        if out is None or result.complete:
            write_output(text, out)
        else:
            partial = out.keep_partial(text)
            _note(f"{out.path} left as it was; what was found is in {partial}")
    except PipeClosed:
        result.pipe_closed = True
    except OutputError as exc:
        result.output_error = str(exc)
    except OSError as exc:  # keep_partial
        result.output_error = f"cannot write {out.path if out else 'the output'}: {exc.strerror}"


def write_output(text: str, out: OutputFile | None) -> None:
    """Write ``text`` to stdout, or replace ``-o FILE`` with it (all or nothing).

    Raises:
        PipeClosed: Nobody reads stdout any more.
        OutputError: stdout or the file cannot be written (the file is unchanged).
    """
    if out is None:
        write_stdout(text)
        return
    try:
        out.commit(text)
    except OSError as exc:
        out.discard()
        raise OutputError(f"cannot write {out.path}: {exc.strerror or exc}") from None


def warn(line: str) -> None:
    """One line on stderr, ``xendiscover: `` first, every character printable."""
    _note(line)


def _end_stream(result: RunResult) -> None:
    if result.run is None or result.output_error is not None or result.pipe_closed:
        return
    try:
        if not result.findings:
            write_stdout(format_run_line(result.run))
        write_stdout(format_end_line(result.run, len(result.findings)))
    except PipeClosed:
        result.pipe_closed = True
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


def report(
    result: RunResult, *, summary_line: str | None, view: View = "xen", hint: bool = True
) -> None:
    """The stderr lines of a run: its failure, its interruption, a hint, its summary.

    Nothing at all when stdout's reader went away: a filter ends quietly.
    """
    if result.pipe_closed:
        return
    if result.error is not None:
        _note(f"error: {result.error}")
    if result.output_error is not None:
        _note(f"error: {result.output_error}")
    if (note := interrupted_note(result, view)) is not None:
        _note(note)
    if hint and (line := no_xen_hint(result, view)) is not None:
        _note(line)
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
    if result.pipe_closed:
        return EXIT_PIPE
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


def interrupted_note(result: RunResult, view: View = "xen") -> str | None:
    """The one stderr line for a run a signal ended, or ``None``.

    It counts the machines the output lists (the view's), so the number
    matches what was printed.
    """
    if not result.stopped:
        return None
    name = "SIGTERM" if result.stopped == EXIT_SIGTERM else "SIGINT"
    count = len(listed(result.findings, view))
    what = "Xen machine" if view == "xen" else "machine"
    return f"interrupted ({name}): {_plural(count, what)} found so far"


def no_xen_hint(result: RunResult, view: View) -> str | None:
    """A hint when the default view lists nothing but machines have open ports."""
    if view != "xen" or not result.complete or listed(result.findings, "xen"):
        return None
    machines = len(listed(result.findings, "all"))
    if not machines:
        return None
    return f"{_plural(machines, 'machine')} with open ports, none Xen; --all lists them"
