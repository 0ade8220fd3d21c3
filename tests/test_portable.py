"""The portable path (issue 22): no epoll, no SOCK_NONBLOCK, no Linux-only feature.

macOS and the BSDs have ``selectors`` (kqueue) and non-blocking sockets,
but neither ``select.epoll`` nor ``socket.SOCK_NONBLOCK``, nor
``IP_RECVERR``, ``PR_SET_PDEATHSIG`` or Linux's ``SIOCGIFFLAGS``. Here they
are taken away on Linux (``XENDISCOVER_PORTABLE=1``, and the two names
deleted before anything imports them), and the package must still import,
sweep, fingerprint over TLS, hand connections over from probe processes,
and pass its FakeBackend tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import hosts_of

from xendiscover import _platform
from xendiscover._networks import interface_flags, interface_is_up

ROOT = Path(__file__).resolve().parents[1]
#: Run first in every child: as on macOS, neither name exists (``socket``
#: imports ``selectors``, which must then choose again).
WITHOUT_LINUX = (
    "import importlib, select, selectors, socket\n"
    "del select.epoll, socket.SOCK_NONBLOCK\n"
    "importlib.reload(selectors)\n"
)


def _run(code: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XENDISCOVER_PORTABLE="1")
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_LINUX + code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_the_portable_switch_turns_every_feature_off() -> None:
    assert _platform.detect({"XENDISCOVER_PORTABLE": "1"}) == _platform.Features()
    linux = _platform.detect({})
    assert linux.recverr == sys.platform.startswith("linux")


def test_without_siocgifflags_every_interface_counts_as_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_platform, "FEATURES", _platform.Features())
    assert interface_is_up("no-such-interface0")
    assert interface_flags("no-such-interface0") == 1


def test_a_portable_sweep_finds_and_fingerprints_on_loopback(loopback_net: str) -> None:
    # Real sockets on the portable reactor (selectors' poll here: epoll is
    # gone), probe processes included, and TLS through memory buffers.
    code = textwrap.dedent(
        """
        import asyncio, sys, selectors
        assert selectors.DefaultSelector is not getattr(selectors, "EpollSelector", None)
        import xendiscover
        from xendiscover import _platform
        from xendiscover._fingerprint import fingerprint_port
        from xendiscover.testing import FakeXapi, FakeXendRelocation
        assert _platform.FEATURES == _platform.Features()

        async def main(net, xend, xapi):
            async with FakeXendRelocation(xend, 8002) as fake, FakeXapi(xapi, 0, tls=True) as tls:
                found = [f async for f in xendiscover.scan(
                    [net], port=[8002, 8000], resolve=False, workers=2)]
                assert [(f.address, f.port, f.verdict) for f in found] == [
                    (xend, 8002, "confirmed")], found
                assert fake.connections == 1  # connect once, through a probe process
                seen = await fingerprint_port(tls.host, tls.port, plan_port=443)
                assert (seen.service, seen.verdict) == ("xapi", "confirmed"), seen
            print("ok")

        asyncio.run(main(*sys.argv[1:]))
        """
    )
    xend, xapi = hosts_of(loopback_net, 519, 777)
    done = _run(code, loopback_net, xend, xapi)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_the_fakebackend_tests_pass_on_the_portable_path() -> None:
    code = "import pytest, sys\nsys.exit(pytest.main(sys.argv[1:]))\n"
    tests = ["tests/test_handoff.py", "tests/test_far_timing.py", "tests/test_pipeline.py"]
    done = _run(code, "-q", "-p", "no:cacheprovider", *tests, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
