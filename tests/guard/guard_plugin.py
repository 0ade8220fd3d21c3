"""pytest plugin: the loopback guard for the whole session (see ``loopback_guard``).

At configure time: this directory goes on ``PYTHONPATH`` (every child Python
then installs the guard from ``sitecustomize``), the session's violation log
is created, and the guard is installed in the test process itself. Every
test then fails at teardown if a child logged a violation or the test
process raised one during it, even when the code under test swallowed the
error. A test that breaks the rule on purpose asks for ``guard_violations``
(the messages, owned by that test) or gives its children another log.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import NoReturn

import loopback_guard
import pytest

_state: dict[str, object] = {}


class _TestViolations:
    """What one test broke: the test process's refusals and the children's log lines."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.owned = False


_current: list[_TestViolations] = []


def _in_process(message: str) -> NoReturn:
    if _current:
        _current[-1].messages.append(message)
    raise loopback_guard.GuardViolation(message)


@contextlib.contextmanager
def session_environment(log_path: str) -> Iterator[None]:
    """Put the guard on ``PYTHONPATH``, name the log and the home namespace; then restore."""
    names = ("PYTHONPATH", loopback_guard.LOG_VARIABLE, loopback_guard.HOME_NETNS_VARIABLE)
    saved = {name: os.environ.get(name) for name in names}
    parts = [loopback_guard.GUARD_DIR, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, parts)))
    os.environ[loopback_guard.LOG_VARIABLE] = log_path
    home = loopback_guard.netns_inode()
    if home is not None:
        os.environ[loopback_guard.HOME_NETNS_VARIABLE] = str(home)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_configure(config: pytest.Config) -> None:
    fd, log_path = tempfile.mkstemp(prefix="xendiscover-guard-", suffix=".log")
    os.close(fd)
    stack = contextlib.ExitStack()
    stack.enter_context(session_environment(log_path))
    stack.callback(os.unlink, log_path)
    _state.update(log=log_path, offset=0, stack=stack)
    loopback_guard.install(_in_process)


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = _state.pop("stack", None)
    if isinstance(stack, contextlib.ExitStack):
        stack.close()


@pytest.fixture(autouse=True)
def _guard_children() -> Iterator[None]:
    """Fail the test if it, or any child Python, tried to leave loopback meanwhile."""
    violations = _TestViolations()
    _current.append(violations)
    try:
        yield
    finally:
        _current.remove(violations)
        # Since the last test's teardown: a line logged between tests fails this one.
        lines, _state["offset"] = loopback_guard.read_log(
            str(_state["log"]), int(str(_state["offset"]))
        )
    found = ([] if violations.owned else violations.messages) + lines
    if found:
        pytest.fail("\n".join(["the loopback guard refused:", *found]), pytrace=False)


@pytest.fixture
def guard_violations(_guard_children: None) -> list[str]:
    """The test process's guard refusals during this test, owned by the test.

    Children's refusals still fail the test: give deliberate ones another log.
    """
    violations = _current[-1]
    violations.owned = True
    return violations.messages
