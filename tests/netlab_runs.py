"""A third namespace lab: one /24 whose hosts change between two sweeps (issue 25).

Built like :mod:`netlab` (same helpers, names ``xdl-<pid>-<hex4>-<role>``, torn
down whatever happens); nothing touches the machine's own interfaces::

    scn (the scanner)  up0 10.79.1.1/24  ->  hst eth0 10.79.1.2/24
    hst                owns 10.79.1.128/25 on lo: the Xen fakes of a scene

A *scene* is a set of fake services (``xendiscover.testing``) that one process
serves in ``hst`` until :meth:`RunsLab.stop_scene` or teardown: a sweep, a
change of scene, a second sweep, and ``diff`` must say exactly what changed.
Run as a script inside ``hst`` (``netlab_runs.py serve SPEC...``), it serves
the scene: ``xapi:ADDR:UUID:NAME`` (XAPI over TLS on 443, its certificates
naming that host), ``xend:ADDR`` (relocation on 8002), ``xend-reject:ADDR``
(relocation, the client outside hosts-allow), ``xend-http:ADDR`` (8000).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import netlab

#: The ports the scenes serve on, and the sweeps try.
PORTS = (443, 8000, 8002)


class RunsLab(netlab.Lab):
    """The changing /24; a context manager like :class:`netlab.Lab`."""

    ROLES = ("scn", "hst")
    NET = "10.79.1.0/24"
    SCANNER = "10.79.1.1"

    def __init__(self, *, python: str | None = None) -> None:
        super().__init__(loss_percent=0, python=python)
        self.ns = {role: f"{self.tag}-{role}" for role in self.ROLES}
        self.scanner = self.admin = self.ns["scn"]
        self.namespaces = tuple(self.ns.values())
        self._scene: subprocess.Popen[bytes] | None = None

    def describe(self) -> str:
        """One line: where the scanner runs."""
        return f"runs lab {self.tag}: scanner namespace {self.scanner}"

    def _build(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        for ns in self.namespaces:
            netlab._run([netlab._ip(), "netns", "add", ns])
            self._ipn(ns, "link", "set", "lo", "up")
        scn, hst = self.ns["scn"], self.ns["hst"]
        self._veth(scn, "up0", hst, "eth0")
        self._ipn(scn, "addr", "add", f"{self.SCANNER}/24", "dev", "up0")
        self._ipn(scn, "link", "set", "up0", "up")
        self._ipn(hst, "addr", "add", "10.79.1.2/24", "dev", "eth0")
        self._ipn(hst, "link", "set", "eth0", "up")
        self._ipn(hst, "route", "add", "local", "10.79.1.128/25", "dev", "lo")

    def scene(self, *specs: str) -> None:
        """Serve these fakes in ``hst`` (see the module docstring), instead of the last scene."""
        self.stop_scene()
        assert self.workdir is not None
        argv = [self.python, str(Path(__file__).resolve()), "serve", *specs]
        with open(self.workdir / "serve-hst.log", "ab") as log:
            proc = subprocess.Popen(
                self.exec_argv(self.ns["hst"], argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self.env(),
                cwd=netlab.REPO_ROOT,
                start_new_session=True,
            )
        self._scene = proc
        try:
            self._wait_ready(proc, self.ns["hst"], time.monotonic() + netlab.READY_TIMEOUT * 3)
        except BaseException:
            self.stop_scene()
            raise

    def stop_scene(self) -> None:
        """Stop the fakes of the current scene, if any, and close its pipe."""
        proc, self._scene = self._scene, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=netlab.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=netlab.STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()

    def down(self) -> None:
        """Stop the scene, then tear the lab down (see :meth:`netlab.Lab.down`)."""
        self.stop_scene()
        super().down()


def _fake(spec: str) -> contextlib.AbstractAsyncContextManager[object]:
    from xendiscover.testing import (
        FakeXapi,
        FakeXendHttp,
        FakeXendRelocation,
        XapiIdentity,
    )

    kind, _, rest = spec.partition(":")
    if kind == "xapi":
        address, uuid, name = rest.split(":")
        identity = XapiIdentity(name, uuid=uuid)
        return FakeXapi(address, 443, tls=True, identity=identity)
    if kind == "xend-http":
        return FakeXendHttp(rest, 8000)
    if kind in ("xend", "xend-reject"):
        return FakeXendRelocation(rest, 8002, hosts_allow=kind == "xend")
    raise SystemExit(f"unknown fake {spec!r}")


async def _serve(specs: Sequence[str]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for spec in specs:
            await stack.enter_async_context(_fake(spec))
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        raise SystemExit("usage: netlab_runs.py serve SPEC...")
    asyncio.run(_serve(sys.argv[2:]))
