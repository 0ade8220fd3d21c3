"""xendiscover against nmap's connect scan and the 2007 thread-per-address design.

Run with ``nox -s bench`` (or ``python benchmarks/bench.py`` where the package
is importable). Prints one table and writes it, with the machine, the versions
and the exact commands, to ``docs/performance.md``.

Workloads (see the issue #5 and ``docs/performance.md``):

- **W1** loopback /16, 20 xend fakes spread across it (no root needed).
- **W2** a routed, dark /21 in a namespace lab: every SYN vanishes.
- **W3** a routed /16 in the lab: every address answers RST, a few xend
  fakes listen, the link drops 5% of what reaches the targets.
- **W4** peak RSS of xendiscover on a loopback /16 and /12.

W2 and W3 need root (network namespaces); without it they are skipped and
the table says so. Every tool runs in its own process, the fakes in another;
runs alternate between the tools (the order rotates each round). Wall time
is measured around the child; peak RSS is the larger of the child's
``ru_maxrss`` (``os.wait4``) and its process tree's summed RSS, sampled.

Network safety: the root namespace only ever sees loopback targets; the
routed workloads run inside namespaces made here, joined to nothing but each
other, and deleted on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import netns
from fakes import fake_servers

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "performance.md"
PORT = 8002
THREADS = Path(__file__).resolve().with_name("threads_baseline.py")

#: W1 and W4's /16, inside W4's /12.
LOOP16 = "127.20.0.0/16"
LOOP12 = "127.16.0.0/12"

XD = "xendiscover"
XD_FP = "xendiscover (fingerprint on)"
NMAP = "nmap -sT"
THR = "thread-per-address"


@dataclass
class Run:
    """One measured run of one tool.

    Attributes:
        wall: Seconds from start to exit.
        rss_kb: The child's peak resident set, KiB.
        found: The addresses it reported open.
        code: Exit status (negative: killed by that signal).
        capped: Whether the wall-clock cap ended it.
    """

    wall: float
    rss_kb: int
    found: frozenset[str]
    code: int
    capped: bool = False


@dataclass
class Row:
    """A workload × tool cell of the table, with every run behind it."""

    workload: str
    tool: str
    command: str
    expected: frozenset[str]
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def median_wall(self) -> float:
        """The median wall time, seconds."""
        return statistics.median(r.wall for r in self.runs)

    @property
    def median_rss_mb(self) -> float:
        """The median peak RSS, MiB."""
        return statistics.median(r.rss_kb for r in self.runs) / 1024

    @property
    def all_found(self) -> bool:
        """Whether every run reported every expected host."""
        return all(self.expected <= r.found for r in self.runs)

    def found_text(self) -> str:
        """Hosts found per run, e.g. ``20/20 ×5`` or ``5,4,5 /5``."""
        counts = [len(r.found & self.expected) for r in self.runs]
        extra = max((len(r.found - self.expected) for r in self.runs), default=0)
        total = len(self.expected)
        text = (
            f"{counts[0]}/{total} ×{len(counts)}"
            if len(set(counts)) == 1
            else f"{','.join(map(str, counts))} /{total}"
        )
        return text + (f" (+{extra} unexpected)" if extra else "")


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its children (xendiscover's probe workers), KiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{each}/status").read_text()
            total += int(status.split("VmRSS:", 1)[1].split()[0])
    return total


def _sample_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.02):
        peak[0] = max(peak[0], _tree_rss_kb(pid))


def measure(argv: Sequence[str], cap: float, parse: Callable[[str], frozenset[str]]) -> Run:
    """Run ``argv`` once; its wall time, peak RSS and what it found.

    Peak RSS is the larger of the child's ``ru_maxrss`` and the resident
    memory of the child and its own children summed, sampled every 20 ms, so a
    tool that works in several processes is charged for all of them. The
    child is killed (and the run marked ``capped``) after ``cap`` seconds.
    """
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.DEVNULL, cwd=REPO)
        capped = threading.Event()

        def kill() -> None:
            capped.set()
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)

        timer = threading.Timer(cap, kill)
        timer.start()
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=_sample_rss, args=(child.pid, stop, peak), daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
            stop.set()
            sampler.join()
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # already reaped
        out.seek(0)
        found = parse(out.read())
    rss_kb = max(int(usage.ru_maxrss), peak[0])
    return Run(wall, rss_kb, found, child.returncode, capped.is_set())


_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_NMAP_OPEN = re.compile(r"^Host: (\S+) .*Ports: .*\b\d+/open/", re.MULTILINE)


def parse_lines(text: str) -> frozenset[str]:
    """Addresses printed one per line (xendiscover, the thread baseline)."""
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


def parse_nmap(text: str) -> frozenset[str]:
    """Addresses with an open port in nmap's grepable output."""
    return frozenset(_NMAP_OPEN.findall(text))


@dataclass
class Tool:
    """How to run one tool on one workload."""

    name: str
    argv: list[str]
    parse: Callable[[str], frozenset[str]]
    runs: int
    cap: float
    note: str = ""


def xd_argv(target: str, *extra: str, fingerprint: bool = False) -> list[str]:
    """The xendiscover command line for ``target``."""
    argv = [sys.executable, "-m", "xendiscover", "--no-resolve"]
    if not fingerprint:
        argv.append("--no-fingerprint")
    return [*argv, "-p", str(PORT), *extra, "--quiet", target]


def nmap_argv(target: str) -> list[str]:
    """The nmap connect scan of ``target``, open ports in grepable form."""
    return ["nmap", "-sT", "-Pn", "-n", "-p", str(PORT), "--open", "-oG", "-", target]


def thr_argv(target: str, timeout: float = 1.0) -> list[str]:
    """The thread-per-address baseline on ``target``."""
    return [sys.executable, str(THREADS), "--port", str(PORT), "--timeout", str(timeout), target]


def spread(network: str, count: int, seed: int) -> list[str]:
    """``count`` distinct addresses spread across ``network`` (a /16 or larger)."""
    base, bits = network.split("/")
    a, b = (int(x) for x in base.split(".")[:2])
    rng = random.Random(seed)
    picked: set[str] = set()
    while len(picked) < count:
        third = rng.randrange(256)
        picked.add(f"{a}.{b}.{third}.{rng.randrange(1, 255)}")
    assert bits == "16"
    return sorted(picked, key=lambda s: tuple(int(x) for x in s.split(".")))


def run_workload(
    workload: str,
    tools: Sequence[Tool],
    expected: frozenset[str],
    wrap: Callable[[list[str]], list[str]] = list,
) -> list[Row]:
    """Run every tool, alternating (order rotated each round); return one row each."""
    rows = [Row(workload, t.name, _display(t.argv), expected, note=t.note) for t in tools]
    rounds = max(t.runs for t in tools)
    for i in range(rounds):
        order = list(range(len(tools)))
        order = order[i % len(order) :] + order[: i % len(order)]
        for k in order:
            tool = tools[k]
            if len(rows[k].runs) >= tool.runs:
                continue
            run = measure(wrap(tool.argv), tool.cap, tool.parse)
            rows[k].runs.append(run)
            flag = " CAPPED" if run.capped else ""
            print(
                f"  {workload} {tool.name:<30} run {len(rows[k].runs)}/{tool.runs}: "
                f"{run.wall:7.2f} s {run.rss_kb / 1024:6.1f} MB "
                f"{len(run.found & expected)}/{len(expected)} found{flag}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _display(argv: Sequence[str]) -> str:
    shown = ["python" if a == sys.executable else a for a in argv]
    shown = ["benchmarks/threads_baseline.py" if a == str(THREADS) else a for a in shown]
    return " ".join(shown)


@dataclass
class Plan:
    """How many runs and how long a cap, from the command line."""

    runs: int
    slow_runs: int
    nmap_dark_runs: int
    nmap_dark_cap: float
    rss_runs: int
    cap: float = 300.0


def w1(plan: Plan) -> list[Row]:
    """W1: a loopback /16 with 20 xend fakes in a separate process."""
    fakes = spread(LOOP16, 20, seed=1)
    expected = frozenset(fakes)
    tools = [
        Tool(XD, xd_argv(LOOP16), parse_lines, plan.runs, plan.cap),
        Tool(NMAP, nmap_argv(LOOP16), parse_nmap, plan.runs, plan.cap),
        Tool(THR, thr_argv(LOOP16), parse_lines, plan.slow_runs, plan.cap),
        Tool(XD_FP, xd_argv(LOOP16, fingerprint=True), parse_lines, plan.runs, plan.cap),
    ]
    with fake_servers(fakes, PORT) as kind:
        rows = run_workload("W1 loopback /16", tools, expected)
    for row in rows:
        row.note = (row.note + f" fakes: {kind}").strip()
    return rows


def w2_w3(plan: Plan, chosen: set[str]) -> list[Row]:
    """W2 (dark /21) and/or W3 (lossy /16), in one namespace lab."""
    fakes = spread(netns.LOSSY_NET, 5, seed=3)
    rows: list[Row] = []
    dark = netns.DARK_NET
    lossy = netns.LOSSY_NET
    with netns.lab(fakes, PORT) as lab:
        w2_tools = [
            Tool(XD, xd_argv(dark, "--timeout", "1", "--retries", "1"), parse_lines, plan.runs, 60),
            Tool(THR, thr_argv(dark), parse_lines, plan.runs, 60),
            Tool(
                NMAP,
                nmap_argv(dark),
                parse_nmap,
                plan.nmap_dark_runs,
                plan.nmap_dark_cap,
                note=f"hard cap {plan.nmap_dark_cap:.0f} s",
            ),
        ]
        if "W2" in chosen:
            rows += run_workload("W2 dark /21", w2_tools, frozenset(), lab.wrap)
        w3_tools = [
            # Defaults (--timeout 1, --retries 3): W3 asks for every fake in
            # every run, which is what the retries are for.
            Tool(XD, xd_argv(lossy), parse_lines, plan.runs, 120),
            Tool(NMAP, nmap_argv(lossy), parse_nmap, plan.runs, plan.cap),
            Tool(THR, thr_argv(lossy), parse_lines, plan.slow_runs, plan.cap),
        ]
        if "W3" in chosen:
            rows += run_workload("W3 lossy /16", w3_tools, frozenset(fakes), lab.wrap)
        for row in rows:
            row.note = (row.note + f" fakes: {lab.kind}").strip()
    return rows


def w4(plan: Plan) -> list[Row]:
    """W4: peak RSS of xendiscover on a loopback /16 and /12 (the W1 fakes inside)."""
    fakes = spread(LOOP16, 20, seed=1)
    big = ["--max-hosts", "2000000"]
    tools = [
        Tool(f"{XD} /16", xd_argv(LOOP16), parse_lines, plan.rss_runs, plan.cap),
        Tool(f"{XD} /12", xd_argv(LOOP12, *big), parse_lines, plan.rss_runs, plan.cap),
    ]
    with fake_servers(fakes, PORT):
        return run_workload("W4 memory", tools, frozenset(fakes))


def ratio(row: Row, rows: Sequence[Row]) -> str:
    """The row's median wall over xendiscover's on the same workload."""
    ref = next((r for r in rows if r.workload == row.workload and r.tool == XD), None)
    if ref is None or not row.runs or not ref.runs:
        return "—"
    capped = any(r.capped for r in row.runs)
    return ("≥ " if capped else "") + f"{row.median_wall / ref.median_wall:.2f}×"


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| Workload | Tool | Runs | Median wall (s) | Range (s) | Peak RSS (MB) "
        "| Hosts found | vs xendiscover |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        if not row.runs:
            lines.append(f"| {row.workload} | {row.tool} | 0 | — | — | — | {row.note} | — |")
            continue
        walls = [r.wall for r in row.runs]
        capped = any(r.capped for r in row.runs)
        median = ("> " if capped else "") + f"{row.median_wall:.2f}"
        lines.append(
            f"| {row.workload} | {row.tool} | {len(row.runs)} | {median} "
            f"| {min(walls):.2f}–{max(walls):.2f} | {row.median_rss_mb:.1f} "
            f"| {row.found_text()}{' (capped)' if capped else ''} | {ratio(row, rows)} |"
        )
    return "\n".join(lines)


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's targets, each marked met or not, from these results."""

    def get(workload: str, tool: str) -> Row | None:
        return next((r for r in rows if r.workload.startswith(workload) and r.tool == tool), None)

    out: list[str] = []

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    xd1, nm1 = get("W1", XD), get("W1", NMAP)
    if xd1 and nm1 and xd1.runs and nm1.runs:
        r = xd1.median_wall / nm1.median_wall
        out.append(
            f"W1: xendiscover/nmap = {r:.2f} (≤ 1.0: {mark(r <= 1.0)}; ≤ 0.7: {mark(r <= 0.7)})"
        )
    xd2 = get("W2", XD)
    if xd2 and xd2.runs:
        w = xd2.median_wall
        out.append(f"W2: xendiscover {w:.2f} s (≤ 3.0 s: {mark(w <= 3.0)})")
    xd3, nm3 = get("W3", XD), get("W3", NMAP)
    if xd3 and nm3 and xd3.runs and nm3.runs:
        r = xd3.median_wall / nm3.median_wall
        out.append(
            f"W3: every fake found in every run: {mark(xd3.all_found)}; "
            f"xendiscover/nmap = {r:.2f} (≤ 1.0: {mark(r <= 1.0)})"
        )
    s16, s12 = get("W4", f"{XD} /16"), get("W4", f"{XD} /12")
    if s16 and s12 and s16.runs and s12.runs:
        a, b = s16.median_rss_mb, s12.median_rss_mb
        out.append(
            f"W4: /12 peak RSS {b:.1f} MB (≤ 64 MB: {mark(b <= 64)}), "
            f"/16 {a:.1f} MB, /12 is {100 * (b / a - 1):+.1f}% (within 10%: {mark(b <= a * 1.1)})"
        )
    return out


def _version(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "not available"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else "?"
    )


def machine() -> list[str]:
    """The machine and the versions, one Markdown bullet each."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return [
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; memory {mem}",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        f"- xendiscover: {_version([sys.executable, '-m', 'xendiscover', '--version'])}"
        f" (commit {commit}, working tree may differ)",
        f"- nmap: {_version(['nmap', '--version'])}",
        f"- Open-file limit (soft/hard): {_nofile()}",
    ]


def _nofile() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"{soft}/{hard}"


def commands(rows: Sequence[Row]) -> list[str]:
    """Each workload's exact commands, de-duplicated, as Markdown."""
    out: list[str] = []
    seen: set[str] = set()
    for row in rows:
        if row.workload not in seen:
            seen.add(row.workload)
            ns = row.workload.startswith(("W2", "W3"))
            where = " (inside the scanner namespace: `ip netns exec xdb-…-s …`)" if ns else ""
            out.append(f"\n**{row.workload}**{where}\n")
        out.append(f"- {row.tool}: `{row.command}`")
    return out


def write_doc(rows: Sequence[Row], argv: Sequence[str], skipped: Sequence[str]) -> None:
    """Write the table, the targets, the machine and the commands to docs/performance.md."""
    parts = [
        "# Performance",
        "",
        "xendiscover against `nmap -sT -Pn -n` (Debian's nmap, a connect scan like"
        " xendiscover's) and the 2007 design (one thread per address, a blocking connect"
        " with a timeout), on the same machine in the same run. Generated by"
        f" `nox -s bench` (`python benchmarks/{Path(__file__).name}"
        f"{' ' + ' '.join(argv) if argv else ''}`); do not edit by hand.",
        "",
        "Times are medians of alternating runs (the tools' order rotates each round)."
        " Wall time includes the interpreter's start-up. Peak RSS is the larger of the"
        " child's `ru_maxrss` (from `wait4`) and the resident memory of the child and"
        " its own children summed, sampled every 20 ms: xendiscover's probe workers"
        " count. *Hosts found* is how many of the expected xend"
        " fakes each run reported (`20/20 ×5`: all twenty in each of five runs)."
        " A capped run was killed at its wall-clock cap: its time is a lower bound.",
        "",
        table(rows),
        "",
        "## Targets (issue #5)",
        "",
        *[f"- {t}" for t in targets(rows)],
        *[f"- Skipped: {s}" for s in skipped],
        "",
        "## Workloads",
        "",
        f"- **W1**: `{LOOP16}`, 20 xend relocation fakes spread over it, served by"
        " `benchmarks/fakes.py` in its own process; everything else refuses at once.",
        f"- **W2**: `{netns.DARK_NET}`, routed from a scanner namespace over a veth to a"
        " peer namespace whose nftables drop every packet to it in prerouting:"
        " SYNs vanish, no ICMP. xendiscover with `--timeout 1 --retries 1`.",
        "- **W3** (xendiscover with its defaults, `--timeout 1 --retries 3`):"
        f" `{netns.LOSSY_NET}`, routed the same way; the peer owns the whole /16"
        " (`ip route add local … dev lo`), so every address answers RST, five xend"
        f" fakes listen in it, and nftables drop {netns.LOSS_PERCENT}% of the packets"
        " entering the peer for it (`numgen random mod 100`).",
        f"- **W4**: xendiscover's peak RSS on `{LOOP16}` and `{LOOP12}`"
        " (1,048,576 addresses, `--max-hosts 2000000`), the W1 fakes inside both.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Commands",
        *commands(rows),
        "",
        "Reproduce: `nox -s bench` (root for W2 and W3; `-- --quick` for fewer runs).",
        "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts))


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the lab's ``finally`` tears it down."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen workloads, print the table, write docs/performance.md."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description="Benchmark xendiscover (issue #5).")
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter nmap cap")
    parser.add_argument("--runs", type=int, help="runs per fast tool (default 5, quick 2)")
    parser.add_argument(
        "--workloads", default="W1,W2,W3,W4", help="comma-separated subset (default: all)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write the doc")
    args = parser.parse_args(args_list)
    runs = args.runs or (2 if args.quick else 5)
    plan = Plan(
        runs=runs,
        slow_runs=1 if args.quick else min(runs, 3),
        nmap_dark_runs=1,
        nmap_dark_cap=60.0 if args.quick else 300.0,
        rss_runs=1 if args.quick else 3,
    )
    chosen = {w.strip().upper() for w in args.workloads.split(",")}
    if shutil.which("nmap") is None:
        print("nmap is not installed: apt-get install -y nmap", file=sys.stderr)
        return 2
    rows: list[Row] = []
    skipped: list[str] = []
    started = time.monotonic()
    with _terminate_cleanly():
        if "W1" in chosen:
            rows += w1(plan)
        if chosen & {"W2", "W3"}:
            reason = netns.available()
            if reason is None:
                rows += w2_w3(plan, chosen)
            else:
                skipped.append(f"W2, W3: {reason}")
        if "W4" in chosen:
            rows += w4(plan)
    print(f"\n{table(rows)}\n")
    for line in [*targets(rows), *(f"Skipped: {s}" for s in skipped)]:
        print(line)
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")
    if not args.no_write:
        write_doc(rows, args_list, skipped)
        print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
