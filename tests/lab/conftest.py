"""The namespace lab as a pytest fixture (issue #4).

``lab`` (session-scoped) is a running :class:`netlab.Lab`; it is torn down at the
end of the session whatever happened.  Tests that need it are skipped, with the
reason, where the machine has no root or no network namespaces.  Missing Debian
tools (nftables, dnsmasq) skip too, except under CI (``CI`` or
``XDL_LAB_REQUIRED`` set), where they fail: CI is expected to install them.

``XDL_LAB_LOSS`` sets the lossy link's loss percentage (default 5).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import netlab  # noqa: E402
import netlab_routes  # noqa: E402


def _required() -> bool:
    return any(
        os.environ.get(var, "") not in ("", "0", "false") for var in ("CI", "XDL_LAB_REQUIRED")
    )


@pytest.fixture(scope="session")
def lab_available() -> None:
    """Skip (or, for missing tools under CI, fail) where the lab cannot run."""
    reason = netlab.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    missing = netlab.missing_tools()
    if missing:
        message = "the namespace lab needs " + ", ".join(missing)
        if _required():
            pytest.fail(message + " (CI must install them)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def lab(lab_available: None) -> Iterator[netlab.Lab]:
    """The running lab, shared by the whole session."""
    netlab.cleanup_stale()
    the_lab = netlab.Lab(loss_percent=int(os.environ.get("XDL_LAB_LOSS", "5")))
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture(scope="session")
def route_lab(lab_available: None) -> Iterator[netlab_routes.RouteLab]:
    """The routed-subnets and IPv6 lab of issue 24 (``tests/netlab_routes.py``)."""
    the_lab = netlab_routes.RouteLab()
    try:
        the_lab.up()
        yield the_lab
    finally:
        the_lab.down()
