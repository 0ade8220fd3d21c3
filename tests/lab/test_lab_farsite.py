"""The far site (issue 22): 600-800 ms round trips, 2 % loss each way, at the defaults.

A userspace delay router (``tests/delay_router.py``) stands in for ``netem``,
which this kernel lacks. The full figures (20 runs of each) come from
``python tests/farlab.py far --runs 20 --site far|both``; here a few runs
check that every service is found, every time. Generous bounds only: a
scan's wall time is not asserted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parents[1])
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import farlab  # noqa: E402
import netlab  # noqa: E402

pytestmark = [pytest.mark.netns]


@pytest.fixture(scope="module")
def far_lab(lab_available: None) -> Iterator[farlab.FarLab]:
    """A running far-site lab, for this module."""
    netlab.cleanup_stale()
    lab = farlab.FarLab()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.mark.parametrize("run", range(2))
def test_the_far_site_alone_is_found_at_defaults(far_lab: farlab.FarLab, run: int) -> None:
    result = far_lab.scan(farlab.FAR_TARGETS)
    assert farlab.found_services(result) == set(farlab.FAR_SERVICES)


def test_a_lan_and_the_far_site_in_one_run(far_lab: farlab.FarLab) -> None:
    result = far_lab.scan([*farlab.FAR_TARGETS, *farlab.LAN_TARGETS])
    want = {*farlab.FAR_SERVICES, *farlab.LAN_SERVICES}
    assert farlab.found_services(result) == want
    # The dark far addresses are not reported: no open port there.
    assert not {row[0] for row in result["findings"]} & set(farlab.FAR_DARK)
