"""Fail any test that leaves an open fd, a pending task, a child process or a thread behind.

A pytest plugin, registered from ``conftest.py`` (``pytest_plugins``). Every
test is checked; the rare test that must leave something behind says so, with
the reason, as ``@pytest.mark.allow_leaks("why")``. A leak fails the test's
teardown with one line per thing left, and the test itself still reports its
own outcome.

What counts, and when it is looked at:

* **fds**: the entries of ``/proc/self/fd`` (number and ``readlink`` target)
  when the test's setup starts, against those after its teardown, that is
  once every fixture of the test has been finalized and pytest-asyncio has
  closed its event loop (whose epoll fd and self-pipe must be gone with it).
* **tasks**: the tasks still pending on the test's event loop just before
  pytest-asyncio closes it, after the test's async fixtures are torn down.
  pytest-asyncio cancels such leftovers when it closes the loop, so
  they must be looked at before that: see ``pytest_fixture_setup`` below.
* **child processes**: every process whose parent is this one, running or an
  unreaped zombie, known by pid and start time (so a reused pid is not taken
  for an old child).
* **threads**: a non-daemon thread started by the test and still alive.

Something found is given a moment to go (``SETTLE_SECONDS``: see there why)
after one run of the garbage collector, before it counts. What that
collection closes is reported all the same, from the ResourceWarning its
object gives ("unclosed <socket ...>"): once pytest-asyncio has closed the
loop, a transport nobody closed is mere garbage. An fd that a finalizer
closes before the check is out of its sight; ``error::ResourceWarning`` in
the pytest configuration fails those where they happen.

What a fixture wider than a test (a session-scoped lab, say) opens while it is
set up is that fixture's, not the test's: it is added to the running test's
baseline, and checked instead when the fixture is finalized. Whatever of it
is still there then fails the teardown of the test during which that
happened, naming the fixture.

A test whose setup or call already failed is not checked: its failure is the
message that matters, and a test cut short by an error rarely cleans up.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import pytest

MARKER = "allow_leaks"

#: How long fds, children and threads that a test left are given to go away by
#: themselves before they count. Some are released by another thread after the
#: test's last await returned: pycares (5+) destroys a closed c-ares channel, and
#: with it the epoll fd and pipe of its event thread, on a background thread;
#: asyncio's child watcher thread reaps a child that has exited. Anything still
#: there after this long was not on its way out. It costs nothing for a test
#: that leaves nothing.
SETTLE_SECONDS = 2.0

#: fd targets that may appear during any test and stay open for the rest of the
#: process, because something creates them once, lazily, and reuses them.
#: Compared with ``str.startswith``; keep one comment per entry saying who owns it.
#: Empty: nothing in this suite needs it. (c-ares looked like such a thing, but
#: its fds go with each channel, late: see ``SETTLE_SECONDS``; what session
#: fixtures open is theirs, see the module's docstring.)
FD_ALLOWLIST: tuple[str, ...] = ()


@dataclass(frozen=True)
class Child:
    """A child process of this one, as /proc tells it."""

    pid: int
    start: int  # clock ticks after boot: with the pid, names one process
    # Not part of its identity: both change (``ip netns exec`` execs its command).
    state: str = field(compare=False)
    argv: str = field(compare=False)

    def __str__(self) -> str:
        zombie = ", an unreaped zombie" if self.state == "Z" else f", state {self.state}"
        return f"child process {self.pid} ({self.argv}){zombie}"


@dataclass
class Snapshot:
    """What a test could leak, at one moment."""

    fds: set[tuple[int, str]] = field(default_factory=set)
    children: set[Child] = field(default_factory=set)
    threads: set[threading.Thread] = field(default_factory=set)

    @classmethod
    def take(cls) -> Snapshot:
        return cls(open_fds(), child_processes(), non_daemon_threads())

    def update(self, other: Snapshot) -> None:
        self.fds |= other.fds
        self.children |= other.children
        self.threads |= other.threads

    def common_with(self, other: Snapshot) -> Snapshot:
        # Elements from self: a child's state is the one seen now.
        return Snapshot(
            {fd for fd in self.fds if fd in other.fds},
            {child for child in self.children if child in other.children},
            {thread for thread in self.threads if thread in other.threads},
        )

    def new_since(self, baseline: Snapshot) -> Snapshot:
        return Snapshot(
            {fd for fd in self.fds - baseline.fds if not fd[1].startswith(FD_ALLOWLIST)},
            self.children - baseline.children,
            self.threads - baseline.threads,
        )

    def __bool__(self) -> bool:
        return bool(self.fds or self.children or self.threads)

    def lines(self) -> list[str]:
        lines = [f"open fd {fd} -> {target}" for fd, target in sorted(self.fds)]
        lines += [str(child) for child in sorted(self.children, key=lambda c: c.pid)]
        lines += [f"non-daemon thread {thread!r}" for thread in self.threads]
        return lines


def settled(look: Callable[[], Snapshot]) -> list[str]:
    """What ``look`` still finds after a garbage collection and ``SETTLE_SECONDS``, as lines.

    An fd that only garbage held is closed by the collection, and the
    object's ResourceWarning ("unclosed <socket ...>") is reported in its
    place: not closing it was the leak. Returns at once when ``look`` finds
    nothing, as it does for a clean test.
    """
    found = look()
    if not found:
        return []
    garbage = collect_garbage()
    deadline = time.monotonic() + SETTLE_SECONDS
    while (found := look()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found.lines() + [f"closed only by the garbage collector: {g}" for g in garbage]


def collect_garbage() -> list[str]:
    """Run the garbage collector; return the ResourceWarnings it caused."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    found = []
    for warning in caught:
        if issubclass(warning.category, ResourceWarning):
            found.append(str(warning.message))
        else:  # not ours to judge: let the test run's filters have it
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return found


def open_fds() -> set[tuple[int, str]]:
    """This process's open fds with what each points at."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            found.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
        except OSError:  # the directory listing's own fd, closed by now
            continue
    return found


def _stat(pid: str) -> tuple[str, list[str]] | None:
    """The command name and the fields after it (state, ppid, ...) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
            comm, rest = stat.read().split("(", 1)[1].rsplit(")", 1)
    except (OSError, ValueError):  # gone meanwhile
        return None
    return comm, rest.split()


def _child_pids() -> set[str]:
    """Pids whose parent is this process.

    ``/proc/self/task/*/children`` is exact and cheap but needs a kernel built
    with CONFIG_PROC_CHILDREN; without it every process's parent is read.
    """
    me = os.getpid()
    tasks = os.listdir(f"/proc/{me}/task")
    try:
        pids: set[str] = set()
        for tid in tasks:
            with open(f"/proc/{me}/task/{tid}/children") as children:
                pids.update(children.read().split())
    except FileNotFoundError:
        pids = set()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            stat = _stat(pid)
            if stat is not None and int(stat[1][1]) == me:
                pids.add(pid)
    return pids


def child_processes() -> set[Child]:
    """This process's children, running or zombie."""
    found = set()
    for pid in _child_pids():
        stat = _stat(pid)
        if stat is None:
            continue
        comm, fields = stat
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            argv = ""
        # A zombie has no command line left, only its name.
        found.add(Child(int(pid), int(fields[19]), fields[0], argv[:200] or comm))
    return found


def non_daemon_threads() -> set[threading.Thread]:
    """Alive threads that would keep the interpreter from exiting."""
    return {t for t in threading.enumerate() if not t.daemon and t.is_alive()}


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[object]]:
    """The tasks not yet done on ``loop`` (which must not be closed)."""
    return sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name())


def _check_reason(marker: pytest.Mark) -> None:
    reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
    if not isinstance(reason, str) or not reason.strip():
        pytest.fail(f'@pytest.mark.{MARKER} needs a reason: {MARKER}("why")', pytrace=False)


class Hygiene:
    """The checks; one instance per pytest run (so pytester's inner runs have their own)."""

    def __init__(self) -> None:
        self.baseline: Snapshot | None = None  # set while a test runs
        self.failed = False  # its setup or call failed
        self.tasks: list[str] = []  # pending on a loop, just before it was closed
        self.owned: dict[pytest.FixtureDef[object], Snapshot] = {}  # by wider fixtures
        self.fixture_leaks: list[str] = []  # what they left when finalized

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        self.failed, self.tasks, self.fixture_leaks = False, [], []
        self.baseline = Snapshot.take()
        yield
        marker = item.get_closest_marker(MARKER)
        if marker is not None:
            _check_reason(marker)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        wider = fixturedef.scope != "function" and self.baseline is not None
        before = Snapshot.take() if wider else None
        try:
            value = yield
        finally:
            if before is not None and self.baseline is not None:
                created = Snapshot.take().new_since(before)
                self.baseline.update(created)
                self.owned[fixturedef] = created
        if isinstance(value, asyncio.Runner):  # pytest-asyncio's loop, for a scope
            # Finalizers run last-in, first-out: this one, added after the
            # fixture's own teardown (which cancels the leftover tasks and
            # closes the loop) was registered, runs just before it. The
            # test's async fixtures are set up after the loop (pytest-asyncio
            # also hangs their teardown on this fixture), so they are torn
            # down by then.
            fixturedef.addfinalizer(functools.partial(self._record_pending, value.get_loop()))
        return value

    def _record_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        found = [] if loop.is_closed() else [f"pending task {t!r}" for t in pending_tasks(loop)]
        if found and not loop.get_debug():
            found.append("(with --asyncio-debug, each task tells where it was created)")
        self.tasks += found

    def pytest_fixture_post_finalizer(
        self, fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
    ) -> None:
        created = self.owned.pop(fixturedef, None)
        if created:
            left = settled(lambda: Snapshot.take().common_with(created))
            self.fixture_leaks += [
                f"{line} (from {fixturedef.scope}-scoped fixture {fixturedef.argname!r})"
                for line in left
            ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when in ("setup", "call") and report.failed:
            self.failed = True
        return report

    # Both ends are the outermost wrapper of their phase (tryfirst), so the
    # output capture is suspended at both and fds 1 and 2 point at the same
    # files: taken inside the capture, they would point at its temporary files.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, None, None]:
        yield  # every fixture of the test is finalized here; an error there propagates
        baseline, self.baseline = self.baseline, None
        found = self.fixture_leaks  # not the test's doing: reported whatever the test did
        if baseline is not None and not self.failed and not item.get_closest_marker(MARKER):
            found = self.tasks + settled(lambda: Snapshot.take().new_since(baseline))
            found += self.fixture_leaks
        if found:
            pytest.fail(
                "\n  ".join([f"{item.nodeid} left resources behind after its teardown:", *found])
                + f"\nClose or await them in the test or its fixtures; if one must stay, mark"
                f' the test @pytest.mark.{MARKER}("why").',
                pytrace=False,
            )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and the checks for this run."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(reason): the test may leave fds, tasks, child processes or threads "
        "behind (tests/hygiene.py); say why",
    )
    config.pluginmanager.register(Hygiene(), "hygiene-checks")
