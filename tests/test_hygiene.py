"""The leak checks of ``hygiene.py``, run on small test files of their own.

The inner runs are separate processes: the leaks they make on purpose stay
there, and end with them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).parent

CONFTEST = """
pytest_plugins = ["hygiene"]


def pytest_configure(config):
    import hygiene

    hygiene.SETTLE_SECONDS = 0.2  # the leaks here are on purpose: no need to wait them out
"""

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers -p no:cacheprovider
"""

CLEAN = """
import asyncio
import contextlib
import os
import subprocess
import threading

import pytest


def test_files_threads_and_processes_cleaned_up(tmp_path):
    with open(tmp_path / "f", "w") as f:
        f.write("x")
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    subprocess.run(["true"], check=True)


async def test_tasks_and_subprocesses_awaited():
    task = asyncio.create_task(asyncio.sleep(3600))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()


@pytest.fixture
async def background():
    task = asyncio.create_task(asyncio.sleep(3600))
    yield task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_task_its_fixture_cancels_at_teardown(background):
    await asyncio.sleep(0)
    assert not background.done()


@pytest.fixture(scope="session")
def long_lived():
    read, write = os.pipe()
    proc = subprocess.Popen(["sleep", "60"])
    yield
    proc.kill()
    proc.wait()
    os.close(read)
    os.close(write)


def test_what_a_session_fixture_opens_is_not_the_tests(long_lived):
    pass
"""

LEAKY = """
import asyncio
import gc
import os
import socket
import subprocess
import sys
import threading

import pytest

KEPT = []
RELEASE = threading.Event()


@pytest.fixture(scope="session", autouse=True)
def _release_threads():
    yield
    RELEASE.set()


@pytest.fixture(scope="session", autouse=True)
def _no_automatic_gc():
    gc.disable()  # so that only the check's own collection finds the garbage
    yield
    gc.enable()


def test_leaks_an_fd():
    KEPT.append(open(os.devnull))


def test_leaks_a_socket_that_only_garbage_holds():
    cycle = [socket.socket()]
    cycle.append(cycle)  # unreachable after the test, closed only by the collector


async def test_leaks_a_task():
    asyncio.create_task(asyncio.sleep(3600), name="forgotten")


@pytest.fixture
async def sloppy_background():
    yield asyncio.create_task(asyncio.sleep(3600), name="never-cancelled")


async def test_leaks_a_task_through_its_fixture(sloppy_background):
    pass


def test_leaks_a_running_child():
    # It reads its stdin until this process (and so the pipe) goes away.
    code = "import sys; sys.stdin.read()"
    KEPT.append(subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE))


def test_leaks_a_zombie():
    proc = subprocess.Popen(["true"])
    KEPT.append(proc)  # never waited for: it stays a zombie
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped


def test_leaks_a_thread():
    threading.Thread(target=RELEASE.wait, name="forgotten-thread").start()


@pytest.mark.allow_leaks("kept on purpose, to show the marker")
def test_marked_may_leak():
    KEPT.append(open(os.devnull))


@pytest.mark.allow_leaks
def test_the_marker_needs_a_reason():
    pass


def test_a_failing_test_reports_its_failure_only():
    KEPT.append(open(os.devnull))
    assert False, "the test's own failure"
"""

SLOPPY_MODULE_FIXTURE = """
import subprocess

import pytest


@pytest.fixture(scope="module")
def sloppy():
    yield subprocess.Popen(["true"])  # never waited for, even at teardown


def test_uses_it(sloppy):
    pass
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))  # for "import hygiene"
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_clean_tests_pass(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_clean=CLEAN)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=4)


def test_each_kind_of_leak_fails_its_test_with_what_was_left(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_leaky=LEAKY)
    result = inner.runpytest_subprocess()
    # Each test's own outcome stands; the leak is an error at its teardown.
    result.assert_outcomes(passed=8, failed=1, errors=8)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_an_fd*",
            "test_leaky.py::test_leaks_an_fd left resources behind after its teardown:",
            "  open fd * -> /dev/null",
            "Close or await them in the test or its fixtures*allow_leaks*",
            "*ERROR at teardown of test_leaks_a_socket_that_only_garbage_holds*",
            "  closed only by the garbage collector: unclosed <socket.socket fd=*>",
            "*ERROR at teardown of test_leaks_a_task *",
            "  pending task <Task pending name='forgotten' coro=<sleep() *",
            "  (with --asyncio-debug, each task tells where it was created)",
            "*ERROR at teardown of test_leaks_a_task_through_its_fixture*",
            "  pending task <Task pending name='never-cancelled' *",
            "*ERROR at teardown of test_leaks_a_running_child*",
            "  open fd * -> pipe:*",
            "  child process * (* -c import sys; sys.stdin.read()), state *",
            "*ERROR at teardown of test_leaks_a_zombie*",
            "  child process * (true), an unreaped zombie",
            "*ERROR at teardown of test_leaks_a_thread*",
            "  non-daemon thread <Thread(forgotten-thread, started *)>",
            "*ERROR at setup of test_the_marker_needs_a_reason*",
            '@pytest.mark.allow_leaks needs a reason: allow_leaks("why")',
            "*FAILED test_leaky.py::test_a_failing_test_reports_its_failure_only*",
        ]
    )
    # The marked test and the failing one are not reported for what they left.
    result.stdout.no_fnmatch_line("*teardown of test_marked_may_leak*")
    result.stdout.no_fnmatch_line("*teardown of test_a_failing_test_reports*")


def test_a_wider_fixture_is_checked_when_it_is_finalized(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_sloppy=SLOPPY_MODULE_FIXTURE)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_uses_it*",
            "  child process * (true), an unreaped zombie (from module-scoped fixture 'sloppy')",
        ]
    )
