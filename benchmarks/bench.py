"""xendiscover against nmap's connect scan and the 2007 thread-per-address design.

Run with ``nox -s bench`` (or ``python benchmarks/bench.py`` where the package
is importable). Prints one table and writes it, with the machine, the versions
and the exact commands, to ``docs/performance.md``.

Workloads (issues 5 and 15; ``docs/performance.md`` describes each):

- **W1** loopback /16, 20 xend fakes spread across it (no root needed).
- **W2** a routed, dark /21 in a namespace lab: every SYN vanishes.
- **W3** a routed /16 in the lab: every address answers RST, a few xend
  fakes listen, the link drops 5% of what reaches the targets.
- **W4** peak RSS of xendiscover on a loopback /16 and /12.
- **W5** the default sweep a user runs: no targets, the seven default ports,
  inside a lab namespace whose interfaces sit on a /24 (half dark) and a
  routed /20 (half dark, 5% loss each way), with xapi, xend, libvirt, decoys
  and a tarpit listening.
- **W6** a far site (issue 22): a /27 behind a userspace delay router
  (600-800 ms round trips, 2% loss each way; ``tests/farlab.py``), the
  whole job at the defaults against nmap ``-T4`` and at its default timing.

W2, W3, W5 and W6 need root (network namespaces); without it they are skipped
and the table says so. Every tool runs in its own process, the fakes in
another; runs alternate between the tools (the order rotates each round),
and every ratio is given with the range of its per-round ratios. Wall time
is measured around the child; CPU time and ``ru_maxrss`` come from
``os.wait4``; the process tree's resident memory is sampled every 20 ms,
per process and summed.

``--baseline-rev REV`` installs that git revision of xendiscover into a
virtual environment of its own and runs it as one more tool, in the same
rotation, on W1 to W5: before/after figures from one run on one machine.

Network safety: the root namespace only ever sees loopback targets; the
routed workloads and W5's auto-discovery run inside namespaces made here,
joined to nothing but each other, and deleted on exit. No tool uses the
machine's resolver: xendiscover runs with ``--no-resolve`` or with
``--nameserver`` at the lab's own dnsmasq, nmap with ``-n``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import netns
from fakes import fake_servers

from xendiscover._fingerprint._probes import RELOCATION_WAIT

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "performance.md"
PORT = 8002
THREADS = Path(__file__).resolve().with_name("threads_baseline.py")

#: W1 and W4's /16, inside W4's /12.
LOOP16 = "127.20.0.0/16"
LOOP12 = "127.16.0.0/12"

#: The nmap line issue 15 asks for on dark space: fast timing, one retry, a
#: round-trip ceiling equal to xendiscover's --timeout, large host groups.
NMAP_TUNED = ("-T4", "--max-retries", "1", "--max-rtt-timeout", "1000ms", "--min-hostgroup", "2048")
#: The same, with 2,048 probes in flight at least: on dark space nmap's
#: congestion control otherwise reads every silence as loss and slows to a
#: crawl (W2: about 200 s with NMAP_TUNED alone, about 3 s with this).
NMAP_PARALLEL = (*NMAP_TUNED, "--min-parallelism", "2048")

XD = "xendiscover"
XD_R1 = "xendiscover --retries 1"
XD_FP = "xendiscover (fingerprint on)"
XD_SWEEP = "xendiscover sweep"
XD_JOB = "xendiscover whole job"
NMAP = "nmap -sT"
NMAP_T4 = "nmap -sT -T4"
NMAP_DEFAULT = "nmap -sT (default timing)"
NMAP_TUNED_NAME = "nmap -sT tuned"
NMAP_PARALLEL_NAME = "nmap -sT tuned, parallel"
THR = "thread-per-address"


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One measured run of one tool.

    Attributes:
        wall: Seconds from start to exit.
        cpu: User + system CPU seconds of the child and the children it reaped.
        rss_kb: Peak resident memory, KiB: the larger of ``ru_maxrss`` and the
            sampled sum over the child's process tree.
        root_kb: The main process's own peak resident memory, KiB.
        worker_kb: The largest peak of any other process in its tree, KiB.
        procs: The processes in its tree that lived 0.1 s or more (the child
            and, for xendiscover, its probe processes).
        found: What it reported (addresses, or ``ADDRESS:PORT`` on W5).
        code: Exit status (negative: killed by that signal).
        capped: Whether the wall-clock cap ended it.
        round: The rotation round it ran in (pairs runs for ratios).
    """

    wall: float
    cpu: float
    rss_kb: int
    root_kb: int
    worker_kb: int
    procs: int
    found: frozenset[str]
    code: int
    capped: bool = False
    round: int = 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(status.split("VmRSS:", 1)[1].split()[0])
    return 0


#: Samples (20 ms apart) a process must be seen in to count as one of the
#: tool's processes: a helper such as ``ldconfig -p`` (ctypes looking for a
#: library at start-up) lives for a few milliseconds and is not a probe process.
LONG_LIVED_SAMPLES = 5


@dataclass
class _Sampled:
    samples: list[dict[int, int]] = field(default_factory=list)

    def long_lived(self, root: int) -> set[int]:
        """The root, and every process seen in at least ``LONG_LIVED_SAMPLES`` samples."""
        seen: dict[int, int] = {}
        for sample in self.samples:
            for pid in sample:
                seen[pid] = seen.get(pid, 0) + 1
        return {root} | {pid for pid, n in seen.items() if n >= LONG_LIVED_SAMPLES}

    def peak(self, pid: int) -> int:
        """The largest RSS ``pid`` was sampled at, KiB."""
        return max((sample.get(pid, 0) for sample in self.samples), default=0)

    def peak_sum(self, pids: set[int]) -> int:
        """The largest sampled sum of the RSS of ``pids``, KiB.

        A short-lived helper is left out, and so is a probe process's moment
        between ``fork`` and ``exec``, when it shows its parent's pages as its own.
        """
        return max(
            (sum(kb for pid, kb in sample.items() if pid in pids) for sample in self.samples),
            default=0,
        )


def _sample(root: int, stop: threading.Event, out: _Sampled) -> None:
    while not stop.wait(0.02):
        pids, queue = [], [root]
        while queue:  # the whole tree: xendiscover's probe processes are children
            pid = queue.pop()
            pids.append(pid)
            queue += _children(pid)
        sizes = {pid: _rss_kb(pid) for pid in pids}
        out.samples.append({pid: kb for pid, kb in sizes.items() if kb})


def measure(
    argv: Sequence[str],
    cap: float,
    parse: Callable[[str], frozenset[str]],
    cwd: Path = REPO,
) -> Run:
    """Run ``argv`` once; its wall and CPU time, memory, processes and what it found.

    The child is killed (and the run marked ``capped``) after ``cap`` seconds.
    """
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        child = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.DEVNULL, cwd=cwd)
        capped = threading.Event()

        def kill() -> None:
            capped.set()
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)

        timer = threading.Timer(cap, kill)
        timer.start()
        stop, sampled = threading.Event(), _Sampled()
        sampler = threading.Thread(target=_sample, args=(child.pid, stop, sampled), daemon=True)
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
    procs = sampled.long_lived(child.pid)
    root_kb = max(int(usage.ru_maxrss), sampled.peak(child.pid))
    others = [sampled.peak(pid) for pid in procs - {child.pid}]
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_kb=max(root_kb, sampled.peak_sum(procs)),
        root_kb=root_kb,
        worker_kb=max(others, default=0),
        procs=1 + len(others),
        found=found,
        code=child.returncode,
        capped=capped.is_set(),
    )


# --------------------------------------------------------------------------- parsing

_NMAP_HOST = re.compile(r"^Host: (\S+) .*Ports: (.*)$", re.MULTILINE)


def parse_lines(text: str) -> frozenset[str]:
    """Addresses printed one per line, first field (xendiscover text, the thread baseline)."""
    return frozenset(line.split()[0] for line in text.splitlines() if line.strip())


def parse_nmap(text: str) -> frozenset[str]:
    """Addresses with an open port in nmap's grepable output."""
    return frozenset(address for address, _ in _nmap_open(text))


def parse_nmap_ports(text: str) -> frozenset[str]:
    """``ADDRESS:PORT`` of every open port in nmap's grepable output."""
    return frozenset(f"{address}:{port}" for address, port in _nmap_open(text))


def _nmap_open(text: str) -> Iterator[tuple[str, str]]:
    for address, ports in _NMAP_HOST.findall(text):
        for entry in ports.split(","):
            fields = entry.strip().split("/")
            if len(fields) > 1 and fields[1] == "open":
                yield address, fields[0]


def parse_jsonl_ports(text: str) -> frozenset[str]:
    """``ADDRESS:PORT`` of every record in xendiscover's ``--format jsonl``."""
    found: set[str] = set()
    for line in text.splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(line)
            if record.get("record", "port") == "port":  # not the run and end lines
                found.add(f"{record['address']}:{record['port']}")
    return frozenset(found)


def parse_thread_ports(text: str) -> frozenset[str]:
    """``ADDRESS:PORT`` from the thread baseline's ``ADDRESS PORT`` lines."""
    return frozenset(":".join(line.split()[:2]) for line in text.splitlines() if line.strip())


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Xendiscover:
    """One build of xendiscover: how to start it and where.

    Attributes:
        label: ``xendiscover`` for this checkout, ``xendiscover @REV`` for a baseline.
        prefix: The command up to and including ``-m xendiscover``.
        cwd: The directory to run it in (a baseline's must not see this checkout).
        options: The long options its ``--help`` lists.
    """

    label: str
    prefix: tuple[str, ...]
    cwd: Path
    options: frozenset[str]

    def name(self, name: str) -> str:
        """A tool name for this build: ``xendiscover sweep`` -> ``xendiscover @REV sweep``."""
        return name.replace(XD, self.label, 1)

    def has(self, *options: str) -> bool:
        """Whether this build's CLI takes every one of ``options``."""
        return all(o in self.options for o in options)

    def argv(self, *args: str) -> list[str]:
        """The command line with ``args``."""
        return [*self.prefix, *args]


def _cli_options(prefix: Sequence[str], cwd: Path) -> frozenset[str]:
    done = subprocess.run(
        [*prefix, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    return frozenset(re.findall(r"--[a-z][a-z0-9-]+", done.stdout))


def _install(label: str, source: Path, home: Path) -> None:
    """pip-install ``source`` (not editable) into a new venv under ``home``.

    Both builds are installed this way, so both run from byte-compiled
    site-packages: an editable checkout would recompile its modules on every
    start where ``PYTHONDONTWRITEBYTECODE`` is set, which costs tens of
    milliseconds per process and would be measured as the code's.
    """
    print(f"{label}: building a venv in {home}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, timeout=300)
    done = subprocess.run(
        [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=home,
    )
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)  # pip's own notes only when it failed
        raise RuntimeError(f"{label}: pip install {source} failed ({done.returncode})")


def _installed(label: str, home: Path) -> Xendiscover:
    """The build :func:`_install` put under ``home``, checked to start."""
    # -P, in its own directory: the checkout can never shadow it on sys.path.
    prefix = (str(home / "venv" / "bin" / "python"), "-P", "-m", "xendiscover")
    build = Xendiscover(label, prefix, home, _cli_options(prefix, home))
    if not build.options:
        raise RuntimeError(f"{label} does not start: {' '.join(prefix)} --help")
    return build


def current_build() -> Xendiscover:
    """Install this checkout, as it is on disk, into a fresh venv of its own; return it."""
    home = Path(tempfile.gettempdir()) / "xdbench-current"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _install(XD, REPO, home)
    return _installed(XD, home)


def baseline_build(rev: str) -> Xendiscover:
    """Install git revision ``rev`` into a venv of its own (cached by commit); return it.

    ``git archive`` exports the revision (no worktree is touched) and
    :func:`_install` installs it, as it does this checkout.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    short = git("rev-parse", "--short", sha)
    home = Path(tempfile.gettempdir()) / f"xdbench-baseline-{sha[:12]}"
    label = f"{XD} @{short}"
    if not (home / "ok").exists():
        shutil.rmtree(home, ignore_errors=True)
        (home / "src").mkdir(parents=True)
        archive = home / "src.tar"
        git("archive", "--format=tar", "-o", str(archive), sha)
        with tarfile.open(archive) as tar:
            tar.extractall(home / "src", filter="data")
        _install(label, home / "src", home)
        (home / "ok").write_text(sha + "\n")
    return _installed(label, home)


@dataclass
class Tool:
    """How to run one tool on one workload.

    ``ref`` names the row its ratio is taken against (``None``: the
    workload's first row; ``""``: no ratio).
    """

    name: str
    argv: list[str]
    parse: Callable[[str], frozenset[str]]
    runs: int
    cap: float
    note: str = ""
    cwd: Path = REPO
    ref: str | None = None
    warm_up: bool = False


def xd_tool(
    build: Xendiscover,
    name: str,
    args: Sequence[str],
    runs: int,
    cap: float,
    parse: Callable[[str], frozenset[str]] = parse_lines,
    ref: str | None = None,
) -> Tool:
    """A xendiscover row for ``build``."""
    return Tool(
        build.name(name), build.argv(*args), parse, runs, cap, cwd=build.cwd, ref=ref, warm_up=True
    )


def xd_args(target: str, *extra: str, fingerprint: bool = False) -> list[str]:
    """Return xendiscover's arguments for a port-8002 sweep of ``target``."""
    args = ["--no-resolve"] + ([] if fingerprint else ["--no-fingerprint"])
    return [*args, "-p", str(PORT), *extra, "--quiet", target]


def nmap_argv(targets: Sequence[str], *extra: str, ports: Sequence[int] = (PORT,)) -> list[str]:
    """The nmap connect scan of ``targets``, open ports in grepable form."""
    port_list = ",".join(map(str, ports))
    return ["nmap", "-sT", "-Pn", "-n", *extra, "-p", port_list, "--open", "-oG", "-", *targets]


def thr_argv(targets: Sequence[str], ports: Sequence[int] = (PORT,), *extra: str) -> list[str]:
    """The thread-per-address baseline on ``targets``."""
    port_args = [a for p in ports for a in ("--port", str(p))]
    return [sys.executable, str(THREADS), *port_args, "--timeout", "1", *extra, *targets]


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


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    """A workload × tool cell of the table, with every run behind it."""

    workload: str
    tool: str
    command: str
    expected: frozenset[str]
    ref: str | None = None
    runs: list[Run] = field(default_factory=list)
    note: str = ""
    unit: str = "hosts"
    fakes: str = ""

    @property
    def median_wall(self) -> float:
        """The median wall time, seconds."""
        return statistics.median(r.wall for r in self.runs)

    @property
    def median_rss_mb(self) -> float:
        """The median peak RSS, summed over processes, MiB."""
        return statistics.median(r.rss_kb for r in self.runs) / 1024

    @property
    def capped(self) -> bool:
        """Whether any run hit its wall-clock cap."""
        return any(r.capped for r in self.runs)

    @property
    def all_found(self) -> bool:
        """Whether every run reported everything expected."""
        return bool(self.runs) and all(self.expected <= r.found for r in self.runs)

    def found_text(self) -> str:
        """Found per run, e.g. ``20/20 ×5`` or ``5,4,5 /5``."""
        counts = [len(r.found & self.expected) for r in self.runs]
        extra = max((len(r.found - self.expected) for r in self.runs), default=0)
        total = len(self.expected)
        text = (
            f"{counts[0]}/{total} ×{len(counts)}"
            if len(set(counts)) == 1
            else f"{','.join(map(str, counts))} /{total}"
        )
        return text + (f" (+{extra} unexpected)" if extra else "")

    def procs_text(self) -> str:
        """Processes, and resident memory per process, e.g. ``2: 37 main + 1×25 probe``."""
        procs = max(r.procs for r in self.runs)
        root = statistics.median(r.root_kb for r in self.runs) / 1024
        if procs <= 1:
            return f"1: {root:.0f}"
        worker = statistics.median(r.worker_kb for r in self.runs) / 1024
        return f"{procs}: {root:.0f} main + {procs - 1}×{worker:.0f} probe"


def run_workload(
    workload: str,
    tools: Sequence[Tool],
    expected: frozenset[str],
    wrap: Callable[[list[str]], list[str]] = list,
    unit: str = "hosts",
) -> list[Row]:
    """Run every tool, alternating (order rotated each round); return one row each."""
    first = tools[0].name
    rows = [
        Row(
            workload,
            t.name,
            _display(t.argv),
            expected,
            ref=first if t.ref is None else (t.ref or None),
            note=t.note,
            unit=unit,
        )
        for t in tools
    ]
    rows[0].ref = None
    # One unmeasured run of each xendiscover build first: its first run would
    # otherwise pay for cold caches (bytecode, pages, the lab's neighbour
    # table) that no later run pays for.
    for tool in tools:
        if tool.warm_up:
            measure(wrap(tool.argv), tool.cap, tool.parse, tool.cwd)
    rounds = max(t.runs for t in tools)
    for i in range(rounds):
        order = list(range(len(tools)))
        order = order[i % len(order) :] + order[: i % len(order)]
        for k in order:
            tool = tools[k]
            if len(rows[k].runs) >= tool.runs:
                continue
            run = measure(wrap(tool.argv), tool.cap, tool.parse, tool.cwd)
            run.round = i
            rows[k].runs.append(run)
            flag = " CAPPED" if run.capped else ""
            print(
                f"  {workload} {tool.name:<34} run {len(rows[k].runs)}/{tool.runs}: "
                f"{run.wall:7.2f} s cpu {run.cpu:6.2f} s {run.rss_kb / 1024:6.1f} MB "
                f"{run.procs} proc {len(run.found & expected)}/{len(expected)} found{flag}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def _display(argv: Sequence[str]) -> str:
    shown: list[str] = []
    for arg in argv:
        if arg == sys.executable:
            shown.append("python")
        elif arg == str(THREADS):
            shown.append("benchmarks/threads_baseline.py")
        elif arg.endswith("/venv/bin/python") and "xdbench-current" in arg:
            shown.append("python")  # this checkout, installed into its own venv
        elif arg.endswith("/venv/bin/python") and "xdbench-baseline-" in arg:
            shown.append("<baseline venv>/bin/python")
        else:
            shown.append(arg)
    return " ".join(shown)


# --------------------------------------------------------------------------- workloads


@dataclass
class Plan:
    """How many runs and how long the caps, from the command line."""

    runs: int
    slow_runs: int
    rss_runs: int
    w5_runs: int
    nmap_default_dark_cap: float
    nmap_w5_cap: float
    nmap_w5_runs: int
    quick: bool
    baseline: Xendiscover | None = None
    cap: float = 300.0


def _builds(current: Xendiscover, plan: Plan) -> list[Xendiscover]:
    return [current] + ([plan.baseline] if plan.baseline is not None else [])


def w1(plan: Plan, current: Xendiscover) -> list[Row]:
    """W1: a loopback /16 with 20 xend fakes in a separate process."""
    fakes = spread(LOOP16, 20, seed=1)
    expected = frozenset(fakes)
    tools = [xd_tool(b, XD, xd_args(LOOP16), plan.runs, plan.cap) for b in _builds(current, plan)]
    tools += [
        Tool(NMAP, nmap_argv([LOOP16]), parse_nmap, plan.runs, plan.cap),
        Tool(THR, thr_argv([LOOP16]), parse_lines, plan.slow_runs, plan.cap),
        xd_tool(current, XD_FP, xd_args(LOOP16, fingerprint=True), plan.runs, plan.cap),
    ]
    with fake_servers(fakes, PORT) as kind:
        rows = run_workload("W1 loopback /16", tools, expected)
    for row in rows:
        row.fakes = kind
    return rows


def w2_w3(plan: Plan, chosen: set[str], current: Xendiscover) -> list[Row]:
    """W2 (dark /21) and/or W3 (lossy /16), in one namespace lab."""
    fakes = spread(netns.LOSSY_NET, 5, seed=3)
    rows: list[Row] = []
    dark = netns.DARK_NET
    lossy = netns.LOSSY_NET
    builds = _builds(current, plan)
    with netns.lab(fakes, PORT) as lab:
        if "W2" in chosen:
            # Defaults first (the row the ratios are taken against), then the
            # one-retry line the page used to show alone.
            w2_tools = [xd_tool(b, XD, xd_args(dark), plan.runs, 60) for b in builds]
            w2_tools += [
                xd_tool(current, XD_R1, xd_args(dark, "--retries", "1"), plan.runs, 60),
                Tool(THR, thr_argv([dark]), parse_lines, plan.runs, 60),
                Tool(  # minutes per run: one run (its spread is not what matters)
                    NMAP_TUNED_NAME,
                    nmap_argv([dark], *NMAP_TUNED),
                    parse_nmap,
                    1,
                    plan.cap,
                ),
                Tool(
                    NMAP_PARALLEL_NAME, nmap_argv([dark], *NMAP_PARALLEL), parse_nmap, plan.runs, 60
                ),
            ]
            if plan.nmap_default_dark_cap > 0:
                cap = plan.nmap_default_dark_cap
                w2_tools.append(
                    Tool(
                        NMAP,
                        nmap_argv([dark]),
                        parse_nmap,
                        1,
                        cap,
                        note=f"nmap's defaults (T3), one run, cut at {cap:.0f} s",
                        ref="",
                    )
                )
            rows += run_workload("W2 dark /21", w2_tools, frozenset(), lab.wrap)
        if "W3" in chosen:
            # Defaults (--timeout 1, --retries 3): W3 asks for every fake in
            # every run, which is what the retries are for.
            w3_tools = [xd_tool(b, XD, xd_args(lossy), plan.runs, 120) for b in builds]
            w3_tools += [
                Tool(NMAP, nmap_argv([lossy]), parse_nmap, plan.slow_runs, plan.cap),
                Tool(NMAP_T4, nmap_argv([lossy], "-T4"), parse_nmap, plan.runs, plan.cap),
                Tool(THR, thr_argv([lossy]), parse_lines, plan.slow_runs, plan.cap),
            ]
            rows += run_workload("W3 lossy /16", w3_tools, frozenset(fakes), lab.wrap)
        for row in rows:
            row.fakes = lab.kind
    return rows


def w4(plan: Plan, current: Xendiscover) -> list[Row]:
    """W4: peak RSS of xendiscover on a loopback /16 and /12 (the W1 fakes inside)."""
    fakes = spread(LOOP16, 20, seed=1)
    big = ["--max-hosts", "2000000"]
    tools: list[Tool] = []
    for build in _builds(current, plan):
        tools += [
            xd_tool(build, f"{XD} /16", xd_args(LOOP16), plan.rss_runs, plan.cap, ref=""),
            xd_tool(build, f"{XD} /12", xd_args(LOOP12, *big), plan.rss_runs, plan.cap, ref=""),
        ]
    with fake_servers(fakes, PORT):
        return run_workload("W4 memory", tools, frozenset(fakes))


#: W5's xendiscover options: the sweep alone, and the whole job.
W5_SWEEP_ARGS = ("--no-fingerprint", "--no-resolve", "--format", "jsonl", "--quiet")


def w5_job_args(dns: str) -> tuple[str, ...]:
    """The whole job: defaults, names from the lab's dnsmasq, every record as JSON lines."""
    return ("--nameserver", dns, "--format", "jsonl", "--quiet")


def w5(plan: Plan, current: Xendiscover) -> list[Row]:
    """W5: the lab's default auto-discovery, seven ports, inside the admin namespace."""
    ports = netns.DEFAULT_PORTS
    with netns.auto_lab() as lab:
        explicit = list(lab.networks)
        skip = [*lab.own, *lab.edges]
        job = w5_job_args(lab.dns)
        tools: list[Tool] = []
        for build in _builds(current, plan):  # the first is the row the others are taken against
            if build.has(*(a for a in W5_SWEEP_ARGS if a.startswith("--"))):
                tools.append(
                    xd_tool(build, XD_SWEEP, W5_SWEEP_ARGS, plan.w5_runs, 60, parse_jsonl_ports)
                )
        tools += [
            Tool(
                NMAP_T4,
                nmap_argv(explicit, "-T4", "--exclude", ",".join(skip), ports=ports),
                parse_nmap_ports,
                plan.nmap_w5_runs,
                plan.nmap_w5_cap,
            ),
            Tool(
                NMAP_TUNED_NAME,
                nmap_argv(explicit, *NMAP_TUNED, "--exclude", ",".join(skip), ports=ports),
                parse_nmap_ports,
                plan.slow_runs,
                plan.cap,
            ),
            Tool(
                NMAP_PARALLEL_NAME,
                nmap_argv(explicit, *NMAP_PARALLEL, "--exclude", ",".join(skip), ports=ports),
                parse_nmap_ports,
                plan.runs,
                plan.cap,
            ),
            Tool(
                THR,
                thr_argv(explicit, ports, *(a for s in skip for a in ("--exclude", s))),
                parse_thread_ports,
                plan.slow_runs,
                plan.cap,
            ),
        ]
        for build in _builds(current, plan):
            # This checkout's whole job against its sweep (what fingerprints and
            # names add); a baseline's whole job against this checkout's.
            ref = XD_SWEEP if build is current else XD_JOB
            if build.has(*(a for a in job if a.startswith("--"))):
                tools.append(xd_tool(build, XD_JOB, job, plan.runs, 120, parse_jsonl_ports, ref))
        for tool in tools:  # auto-discovery only ever inside the lab's admin namespace
            assert lab.wrap(tool.argv)[:4] == ["ip", "netns", "exec", lab.admin]
        rows = run_workload("W5 lab auto", tools, lab.open_ports, lab.wrap, unit="open ports")
    for row in rows:
        row.fakes = lab.kind
    return rows


#: W6's targets and what listens there: the far site of ``tests/farlab.py``.
W6_ARGS = ("--no-resolve", "--format", "jsonl", "--quiet")


def w6(plan: Plan, current: Xendiscover) -> list[Row]:
    """W6: a far site (600-800 ms round trips, 2 % loss each way), defaults, against nmap -T4.

    The far-site lab (``tests/farlab.py``): a userspace delay router over two
    TUN devices, a /27 behind it with xapi (443, 80), xend (8002), two dark
    addresses, the rest refusing. xendiscover's whole job (fingerprints
    included) at its defaults; nmap's connect scan at ``-T4``.
    """
    sys.path.insert(0, str(REPO / "tests"))
    import farlab

    targets = list(farlab.FAR_TARGETS)
    expected = frozenset(f"{a}:{p}" for a, p, _ in farlab.FAR_SERVICES)
    lab = farlab.FarLab()
    with lab:
        tools = [
            xd_tool(current, XD_JOB, (*targets, *W6_ARGS), plan.runs, 120, parse_jsonl_ports),
            Tool(
                NMAP_T4,
                nmap_argv(targets, "-T4", ports=netns.DEFAULT_PORTS),
                parse_nmap_ports,
                plan.runs,
                plan.cap,
            ),
            # nmap at its default timing: -T4's probes give up on a 700 ms
            # round trip (filtered, no-response) where -T3's do not.
            Tool(
                NMAP_DEFAULT,
                nmap_argv(targets, ports=netns.DEFAULT_PORTS),
                parse_nmap_ports,
                plan.runs,
                plan.cap,
            ),
        ]
        rows = run_workload(
            "W6 far site",
            tools,
            expected,
            lambda argv: lab.exec_argv(lab.admin, argv),
            unit="open ports",
        )
    return rows


# --------------------------------------------------------------------------- reporting


def _ref_row(row: Row, rows: Sequence[Row]) -> Row | None:
    if row.ref is None:
        return None
    return next((r for r in rows if r.workload == row.workload and r.tool == row.ref), None)


def ratio_parts(row: Row, ref: Row) -> tuple[float, float, float] | None:
    """Ratio of medians, and the smallest and largest ratio of runs (``None``: no runs).

    When both rows ran in every round, runs are paired by round (which cancels
    slow drift on the machine). When one ran fewer rounds (a slow tool's one
    or three runs against ten), every run is set against every run of the
    other, so the range always contains the ratio of medians.
    """
    if not row.runs or not ref.runs:
        return None
    mine = {r.round: r.wall for r in row.runs}
    theirs = {r.round: r.wall for r in ref.runs}
    if mine.keys() == theirs.keys():
        ratios = [mine[k] / theirs[k] for k in mine]
    else:
        ratios = [m / t for m in mine.values() for t in theirs.values()]
    return row.median_wall / ref.median_wall, min(ratios), max(ratios)


def ratio(row: Row, rows: Sequence[Row]) -> str:
    """The row's median wall over its reference's, with the per-round range."""
    ref = _ref_row(row, rows)
    if row.capped or (ref is not None and ref.capped):
        return "capped: no ratio"
    if ref is None:
        return "—"
    parts = ratio_parts(row, ref)
    if parts is None:
        return "—"
    r, low, high = parts
    return f"{r:.2f}× ({low:.2f}–{high:.2f})"


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| Workload | Tool | Runs | Median wall (s) | Range (s) | CPU (s) "
        "| Procs: RSS each (MB) | Peak RSS, sum (MB) | Found | Ratio (range) | vs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        if not row.runs:
            lines.append(
                f"| {row.workload} | {row.tool} | 0 | — | — | — | — | — | {row.note} | — | |"
            )
            continue
        walls = [r.wall for r in row.runs]
        median = ("> " if row.capped else "") + f"{row.median_wall:.2f}"
        cpu = statistics.median(r.cpu for r in row.runs)
        found = row.found_text() + (" (capped)" if row.capped else "")
        ref = _ref_row(row, rows)
        lines.append(
            f"| {row.workload} | {row.tool} | {len(row.runs)} | {median} "
            f"| {min(walls):.2f}–{max(walls):.2f} | {cpu:.2f} | {row.procs_text()} "
            f"| {row.median_rss_mb:.1f} | {found} | {ratio(row, rows)} "
            f"| {ref.tool if ref is not None else ''} |"
        )
    return "\n".join(lines)


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _regression(row: Row | None, base: Row | None) -> str:
    """Compare this checkout with the baseline build: faster, slower, or within noise."""
    if row is None or base is None:
        return "no baseline in this run (pass --baseline-rev)"
    parts = ratio_parts(row, base)
    if parts is None:
        return "no runs"
    r, low, high = parts
    verdict = "faster" if high < 1 else "slower (a regression)" if low > 1 else "within noise (met)"
    return f"{row.tool} / {base.tool} = {r:.2f}× (rounds {low:.2f}–{high:.2f}): {verdict}"


def targets(rows: Sequence[Row], baseline: str | None, fingerprint_wait: float) -> list[str]:
    """Issue 15's targets, each marked met or not, from these results."""

    def get(workload: str, tool: str) -> Row | None:
        found = (r for r in rows if r.workload.startswith(workload) and r.tool == tool)
        return next((r for r in found if r.runs), None)

    def base(workload: str, tool: str) -> Row | None:
        return get(workload, tool.replace(XD, baseline, 1)) if baseline else None

    out: list[str] = []
    sweep = get("W5", XD_SWEEP)
    if sweep:
        runs = len(sweep.runs)
        out.append(
            f"W5 sweep: median {sweep.median_wall:.2f} s"
            f" (≤ 3.0 s: {_mark(sweep.median_wall <= 3)});"
            f" every open port in every run: {_mark(sweep.all_found)} ({sweep.found_text()};"
            f" {runs} runs, ≥ 10 asked: {_mark(runs >= 10)})"
        )
    job = get("W5", XD_JOB)
    if sweep and job:
        bound = sweep.median_wall + fingerprint_wait + 1
        out.append(
            f"W5 whole job: median {job.median_wall:.2f} s ≤ sweep {sweep.median_wall:.2f}"
            f" + longest fingerprint wait {fingerprint_wait:g} + 1 = {bound:.2f} s:"
            f" {_mark(job.median_wall <= bound)}; every open port in every run:"
            f" {_mark(job.all_found)}"
        )
    xd2 = get("W2", XD)
    if xd2:
        w = xd2.median_wall
        out.append(f"W2 with defaults: {w:.2f} s (≤ 3.0 s: {_mark(w <= 3.0)})")
    for workload in ("W1", "W3"):
        xd = get(workload, XD)
        if xd:
            found = f"; every fake in every run: {_mark(xd.all_found)}" if workload == "W3" else ""
            out.append(f"{workload} no regression: {_regression(xd, base(workload, XD))}{found}")
    s16, s12 = get("W4", f"{XD} /16"), get("W4", f"{XD} /12")
    if s16 and s12:
        a, b = s16.median_rss_mb, s12.median_rss_mb
        procs = max(r.procs for r in s12.runs)
        root = statistics.median(r.root_kb for r in s12.runs) / 1024
        worker = statistics.median(r.worker_kb for r in s12.runs) / 1024
        grows = (
            f"; {procs} processes ({root:.0f} MB main + {procs - 1} × {worker:.0f} MB probe):"
            f" on n cores about {root:.0f} + (n − 1) × {worker:.0f} MB, n capped at 8"
            f" (≈ {root + 7 * worker:.0f} MB on 8 cores or more)"
            if procs > 1
            else ""
        )
        out.append(
            f"W4: /12 peak RSS {b:.1f} MB summed over processes"
            f" (≤ 64 MB on this {_cores()}-core machine: {_mark(b <= 64)}),"
            f" /16 {a:.1f} MB{grows}"
        )
    return out


def _version(argv: Sequence[str], cwd: Path = REPO) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, check=False, cwd=cwd
        )
    except (OSError, subprocess.SubprocessError):
        return "not available"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine(current: Xendiscover, baseline: Xendiscover | None, load: Sequence[float]) -> list[str]:
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
    dirty = _version(["git", "-C", str(REPO), "status", "--porcelain", "--", "xendiscover"])
    lines = [
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; memory {mem}",
        f"- Load average (1 min) at start and end: {load[0]:.2f}, {load[1]:.2f}"
        " (other work on the machine makes the figures noisier)",
        f"- Kernel: {platform.system()} {platform.release()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
        f"- {current.label}: {_version([*current.prefix, '--version'], current.cwd)}"
        f" (commit {commit}, {'package modified' if dirty not in ('', '?') else 'clean'}),"
        f" installed (not editable) into its own venv ({current.cwd})",
    ]
    if baseline is not None:
        lines.append(
            f"- {baseline.label}: {_version([*baseline.prefix, '--version'], baseline.cwd)},"
            f" installed from `git archive` into its own venv ({baseline.cwd})"
        )
    return [
        *lines,
        f"- nmap: {_version(['nmap', '--version'])}",
        f"- Open-file limit (soft/hard): {_nofile()}",
    ]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _nofile() -> str:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"{soft}/{hard}"


def commands(rows: Sequence[Row]) -> list[str]:
    """Each workload's exact commands, de-duplicated, as Markdown."""
    out: list[str] = []
    seen: set[str] = set()
    where = {
        "W2": " (inside the scanner namespace: `ip netns exec xdb-…-s …`)",
        "W3": " (inside the scanner namespace: `ip netns exec xdb-…-s …`)",
        "W5": " (inside the lab's admin namespace: `ip netns exec xdb-…-a …`)",
        "W6": " (inside the far-site lab's admin namespace: `ip netns exec xdl-…-adm …`)",
    }
    for row in rows:
        if row.workload not in seen:
            seen.add(row.workload)
            fakes = f" Fakes: `{row.fakes}`." if row.fakes else ""
            out.append(f"\n**{row.workload}**{where.get(row.workload[:2], '')}.{fakes}\n")
        out.append(f"- {row.tool}: `{row.command}`" + (f" — {row.note}" if row.note else ""))
    return out


def workloads_text(fingerprint_wait: float) -> list[str]:
    """What each workload is, and what its rows mean."""
    services = ", ".join(f"{kind} {addr}:{port}" for kind, addr, port in netns.AUTO_SERVICES)
    return [
        f"- **W1**: `{LOOP16}`, 20 xend relocation fakes spread over it, served by"
        " `benchmarks/fakes.py` in its own process; everything else refuses at once."
        " xendiscover with `-p 8002 --no-fingerprint --no-resolve` (the 2007 tool's job).",
        f"- **W2**: `{netns.DARK_NET}`, routed from a scanner namespace over a veth to a"
        " peer namespace whose nftables drop every packet to it in prerouting:"
        " SYNs vanish, no ICMP. *xendiscover* is its defaults (`--timeout 1 --retries 3`:"
        " where nothing has answered, a probe's first and last attempts wait 1 s and"
        " the two between 0.25 s, 2.5 s in all); *--retries 1* (two 1 s attempts) is"
        " the line this page showed before. The thread baseline makes one 1 s attempt"
        " per address and stops, so on dark space it costs one timeout plus thread start-up and can"
        " beat a tool that retries; the price shows in W3, where that one attempt"
        " misses hosts behind 5% loss. *nmap tuned* is"
        f" `{' '.join(NMAP_TUNED)}` (issue 15's fair line: T4 timing, one retry, a"
        " 1 s round-trip ceiling like xendiscover's `--timeout`, host groups of 2,048);"
        " on dark space that line is still slow, because nmap's congestion control"
        " reads every unanswered probe as loss and shrinks its window, so *nmap tuned,"
        " parallel* adds `--min-parallelism 2048`, the fastest nmap line we found."
        " nmap at its defaults (T3) is run once with a wall-clock cap, shown as"
        " capped and given no ratio when it does not finish.",
        "- **W3** (xendiscover with its defaults):"
        f" `{netns.LOSSY_NET}`, routed the same way; the peer owns the whole /16"
        " (`ip route add local … dev lo`), so every address answers RST, five xend"
        f" fakes listen in it, and nftables drop {netns.LOSS_PERCENT}% of the packets"
        " entering the peer for it (`numgen random mod 100`). nmap at its defaults and"
        " at `-T4`.",
        f"- **W4**: xendiscover's peak RSS on `{LOOP16}` and `{LOOP12}`"
        " (1,048,576 addresses, `--max-hosts 2000000`), the W1 fakes inside both,"
        " summed over its processes.",
        "- **W5**: the sweep users actually run: no targets, the seven default ports"
        f" ({', '.join(map(str, netns.DEFAULT_PORTS))}), inside the admin namespace of a"
        f" lab (`benchmarks/netns.py`) whose two up interfaces sit on `{netns.AUTO_LAN}`"
        f" (on-link; `{netns.AUTO_LAN_LIT}` answers, .3–.127 are owned by nobody: no ARP"
        f" reply) and `{netns.AUTO_WAN}` (routed via one neighbour; {netns.LOSS_PERCENT}%"
        f" loss each way; `{netns.AUTO_WAN_DARK}` dropped): 4,346 addresses, 30,422"
        f" probes, half of each network dark. Listening: {services}."
        " *Found* counts these open ports per run. *xendiscover sweep* is"
        " `--no-fingerprint --no-resolve`; *xendiscover whole job* is its defaults"
        f" (fingerprints, names from the lab's dnsmasq at `{netns.AUTO_DNS}` via"
        " `--nameserver`, so no query can reach the machine's resolver); both print"
        " `--format jsonl`. nmap runs as `-T4` (issue 15's line) and as W2's two tuned"
        " lines. nmap and the thread baseline have no auto-discovery: they"
        " get the same two networks as explicit targets, minus the admin's own"
        " addresses and the network and broadcast addresses (which auto-discovery skips"
        " too). The thread baseline tries the seven ports in turn in each address's"
        " thread, one 1 s timeout each. The whole job's target allows the sweep plus"
        f" {fingerprint_wait:g} s (the longest the fingerprints wait on a silent port:"
        " on 8002, xend's late hosts-allow close, so the tarpit holds the job that long"
        " while every other host is printed as it is found) plus 1 s.",
    ]


def write_doc(
    rows: Sequence[Row],
    argv: Sequence[str],
    skipped: Sequence[str],
    baseline: str | None,
    fingerprint_wait: float,
    machine_lines: Sequence[str],
) -> None:
    """Write the table, the targets, the machine and the commands to docs/performance.md."""
    shown = " ".join(argv)
    parts = [
        "# Performance",
        "",
        "xendiscover against `nmap -sT -Pn -n` (Debian's nmap, a connect scan like"
        " xendiscover's) and the 2007 design (one thread per address, a blocking connect"
        " with a timeout: `benchmarks/threads_baseline.py` says how it follows the seed),"
        " on the same machine in the same run. Generated by"
        f" `nox -s bench` (`python benchmarks/{Path(__file__).name}"
        f"{' ' + shown if shown else ''}`); do not edit by hand.",
        "",
        "Times are medians of alternating runs (the tools' order rotates each round);"
        " each xendiscover build runs once, unmeasured, before a workload's first round."
        " Wall time includes the interpreter's start-up; CPU is user + system time of"
        " the tool and the processes it reaped. *Ratio* is this row's median wall over"
        " the median of the row named under *vs*, and in brackets the smallest and"
        " largest ratio of runs made in the same round (when one of the two ran fewer"
        " rounds, of every run against every run): a range that straddles 1.00 is"
        " noise, not a difference. A capped run was killed at its wall-clock cap: its"
        " time is a lower bound and it gets no ratio.",
        "",
        "*Procs: RSS each* is how many processes the tool ran (those that lived"
        " 0.1 s or more) and the peak resident memory of each (main + probe"
        " processes); *Peak RSS, sum* is the sampled peak of their sum (every 20 ms)"
        " or the main process's `ru_maxrss`, whichever is larger."
        " xendiscover splits sweeps of 32,768 probes or more into one part per core"
        " (at most 8): the main process sweeps one part and starts a probe process for"
        f" each other one, so on this {_cores()}-core machine W1, W3 and W4 run in"
        f" {min(_cores(), 8)} processes, while W2 (2,048 probes) and W5 (30,422) stay in"
        " one. nmap and the thread baseline are one process each. *Found* is how many"
        " of the expected xend fakes (W1–W4)"
        " or open ports (W5) each run reported (`20/20 ×5`: all twenty in each of five"
        " runs).",
        "",
        table(rows),
        "",
        "## Targets (issue 15)",
        "",
        *[f"- {t}" for t in targets(rows, baseline, fingerprint_wait)],
        *[f"- Skipped: {s}" for s in skipped],
        "",
        "## Workloads",
        "",
        *workloads_text(fingerprint_wait),
        "",
        "## Machine",
        "",
        *machine_lines,
        "",
        "## Commands",
        *commands(rows),
        "",
        "Reproduce: `nox -s bench` (root for W2, W3 and W5; `-- --quick` for fewer runs;"
        " `-- --baseline-rev REV` adds the figures of git revision REV, e.g. the commit"
        " before a restructure, from the same run).",
        "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts))


@dataclass
class Context:
    """What the page needs besides the rows: saved with them, so it can be re-rendered."""

    argv: list[str]
    skipped: list[str]
    baseline: str | None
    fingerprint_wait: float
    machine: list[str]


def save_results(path: Path, rows: Sequence[Row], context: Context) -> None:
    """Write every run of every row, and the context, as JSON."""

    def row_dict(row: Row) -> dict[str, object]:
        out = {k: v for k, v in vars(row).items() if k != "runs"}
        out["expected"] = sorted(row.expected)
        out["runs"] = [{**vars(r), "found": sorted(r.found)} for r in row.runs]
        return out

    data = {**vars(context), "rows": [row_dict(r) for r in rows]}
    path.write_text(json.dumps(data, indent=1) + "\n")


def load_results(path: Path) -> tuple[list[Row], Context]:
    """Read what :func:`save_results` wrote."""
    data = json.loads(path.read_text())
    rows: list[Row] = []
    for raw in data.pop("rows"):
        runs = [Run(**{**r, "found": frozenset(r["found"])}) for r in raw.pop("runs")]
        rows.append(Row(**{**raw, "expected": frozenset(raw["expected"]), "runs": runs}))
    return rows, Context(**data)


def report(rows: Sequence[Row], context: Context, write: bool) -> None:
    """Print the table and the targets; write the page unless told not to."""
    print(f"\n{table(rows)}\n")
    for line in [
        *targets(rows, context.baseline, context.fingerprint_wait),
        *(f"Skipped: {s}" for s in context.skipped),
    ]:
        print(line)
    if write:
        write_doc(
            rows,
            context.argv,
            context.skipped,
            context.baseline,
            context.fingerprint_wait,
            context.machine,
        )
        print(f"wrote {DOC.relative_to(REPO)}")


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the labs' ``finally`` tears them down."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_workloads(
    plan: Plan, chosen: set[str], current: Xendiscover
) -> tuple[list[Row], list[str]]:
    """Run the chosen workloads; return their rows and the reasons any were skipped."""
    rows: list[Row] = []
    skipped: list[str] = []
    steps: list[tuple[set[str], str, Callable[[], str | None] | None, Callable[[], list[Row]]]] = [
        ({"W1"}, "W1", None, lambda: w1(plan, current)),
        ({"W2", "W3"}, "W2, W3", netns.available, lambda: w2_w3(plan, chosen, current)),
        ({"W4"}, "W4", None, lambda: w4(plan, current)),
        ({"W5"}, "W5", netns.auto_available, lambda: w5(plan, current)),
        ({"W6"}, "W6", netns.available, lambda: w6(plan, current)),
    ]
    for names, label, check, run in steps:
        if not chosen & names:
            continue
        reason = check() if check is not None else None
        if reason is None:
            rows += run()
        else:
            skipped.append(f"{label}: {reason}")
    return rows, skipped


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen workloads, print the table, write docs/performance.md."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description="Benchmark xendiscover (issues 5 and 15).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer runs, caps of 60 s, no nmap at its defaults on W2",
    )
    parser.add_argument("--runs", type=int, help="runs per fast tool (default 5, quick 2)")
    parser.add_argument(
        "--workloads", default="W1,W2,W3,W4,W5,W6", help="comma-separated subset (default: all)"
    )
    parser.add_argument(
        "--baseline-rev",
        metavar="REV",
        help="also run this git revision of xendiscover (own venv), e.g. fe5ab22",
    )
    parser.add_argument(
        "--fingerprint-wait",
        type=float,
        default=RELOCATION_WAIT,
        metavar="SECONDS",
        help="the longest the fingerprints wait on a silent port, for W5's whole-job"
        f" target (default {RELOCATION_WAIT:g}: the relocation probe's wait on 8002)",
    )
    parser.add_argument(
        "--nmap-default-cap",
        type=float,
        metavar="SECONDS",
        help="cap of W2's one run of nmap at its defaults; 0 leaves it out (default 120, quick 0)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write the doc")
    parser.add_argument(
        "--results", type=Path, metavar="FILE", help="also save every run as JSON to FILE"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="FILE",
        help="run nothing: print the table and write the page from a --results FILE",
    )
    args = parser.parse_args(args_list)
    if args.render:
        saved, context = load_results(args.render)
        report(saved, context, not args.no_write)
        return 0
    runs = args.runs or (2 if args.quick else 5)
    plan = Plan(
        runs=runs,
        slow_runs=1 if args.quick else min(runs, 3),
        rss_runs=1 if args.quick else 3,
        w5_runs=2 if args.quick else max(runs, 10),
        nmap_default_dark_cap=(
            args.nmap_default_cap
            if args.nmap_default_cap is not None
            else (0.0 if args.quick else 120.0)
        ),
        nmap_w5_cap=60.0 if args.quick else 300.0,
        nmap_w5_runs=1,
        quick=args.quick,
        cap=60.0 if args.quick else 300.0,
    )
    chosen = {w.strip().upper() for w in args.workloads.split(",")}
    if shutil.which("nmap") is None:
        print("nmap is not installed: apt-get install -y nmap", file=sys.stderr)
        return 2
    current = current_build()
    if args.baseline_rev:
        plan.baseline = baseline_build(args.baseline_rev)
    started = time.monotonic()
    load = [os.getloadavg()[0]]
    with _terminate_cleanly():
        rows, skipped = run_workloads(plan, chosen, current)
    load.append(os.getloadavg()[0])
    context = Context(
        argv=args_list,
        skipped=skipped,
        baseline=plan.baseline.label if plan.baseline else None,
        fingerprint_wait=args.fingerprint_wait,
        machine=machine(current, plan.baseline, load),
    )
    if args.results:
        save_results(args.results, rows, context)
    report(rows, context, not args.no_write)
    print(f"\n(bench took {time.monotonic() - started:.0f} s; load {load[0]:.2f} → {load[1]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
