"""The loopback guard reaches child Pythons, probe processes and c-ares (issue 13).

Every child Python of the session loads ``tests/guard/sitecustomize.py``
(the guard is on ``PYTHONPATH``). Children that break the rule on purpose
here get their own log (``XENDISCOVER_TEST_GUARD_LOG``), so that only this
file's assertions read it; the session's log fails any other test.

Nothing here can send a packet off the machine even if the guard were
broken: a connect to TEST-NET-1 is shown to stop before the system call
(no ``socket.connect`` audit event, which CPython raises just before it),
and the real command is pointed at a non-loopback address only inside an
empty namespace made here, with no route out, that the guard is told to
treat as the machine's.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import aiodns
import loopback_guard
import pycares
import pytest
from loopback_guard import GuardViolation

TEST_NET = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation only

#: The preamble of a child that breaks the rule: it stops if the guard is not
#: loaded, and its own audit hook (called after the guard's) reports and
#: aborts any connect, send or lookup that got past the guard, just before
#: the system call, so that not even a broken guard lets a packet out.
PREAMBLE = textwrap.dedent(
    """
    import sys
    if "loopback_guard" not in sys.modules:
        sys.exit("the guard is not loaded")
    def _backstop(event, args):
        if event in ("socket.connect", "socket.sendto", "socket.getaddrinfo"):
            print("SYSCALL", event, args[1], flush=True)
            raise RuntimeError("stopped by the test's own audit hook")
    sys.addaudithook(_backstop)
    """
)
#: ... and a c-ares child stops unless both c-ares entry points are guarded.
C_ARES = "import aiodns, pycares\nassert aiodns.DNSResolver._loopback_guarded\n" + (
    "assert pycares.Channel._loopback_guarded\n"
)


def child(
    code: str, log: Path, *, netns: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` with the session's guard, logging to ``log``."""
    argv = [sys.executable, "-c", code]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    environ = {**os.environ, loopback_guard.LOG_VARIABLE: str(log), **(env or {})}
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=30)


def assert_refused(run: subprocess.CompletedProcess[str], log: Path, *needles: str) -> None:
    assert run.returncode == loopback_guard.VIOLATION_STATUS, run
    assert run.stderr.startswith(loopback_guard.PREFIX), run.stderr
    assert run.stderr.count("\n") == 1, run.stderr  # one line, nothing swallowed it
    for needle in needles:
        assert needle in run.stderr
    assert log.read_text() == run.stderr  # what fails the test when stderr is lost


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "guard.log"


def test_the_guard_is_on_the_session_pythonpath() -> None:
    path = os.environ["PYTHONPATH"].split(os.pathsep)
    assert loopback_guard.GUARD_DIR in path
    assert os.environ[loopback_guard.LOG_VARIABLE]


@pytest.mark.parametrize(
    "call",
    [
        f"socket.socket().connect(({TEST_NET!r}, 9))",
        f"socket.socket().connect_ex(({TEST_NET!r}, 9))",
        f"socket.socket(socket.AF_INET6).connect_ex(('::ffff:{TEST_NET}', 9))",
        f"socket.socket(type=socket.SOCK_DGRAM).sendto(b'x', ({TEST_NET!r}, 53))",
        f"_socket.socket().connect(({TEST_NET!r}, 9))",  # no Python wrapper: the audit hook
    ],
)
def test_a_child_cannot_reach_beyond_loopback(call: str, log: Path) -> None:
    code = f"{PREAMBLE}\nimport socket, _socket\n{call}\nprint('NOT STOPPED')"
    run = child(code, log)
    assert_refused(run, log, "only loopback", TEST_NET)
    assert run.stdout == ""  # neither the system call nor anything after it


def test_a_child_cannot_ask_the_machines_dns(log: Path) -> None:
    run = child(f"{PREAMBLE}\nimport socket; socket.getaddrinfo('example.org', 80)", log)
    assert_refused(run, log, "'example.org'", "DNS")
    assert run.stdout == ""
    run = child(f"{PREAMBLE}\nimport socket; socket.socket().connect(('example.org', 80))", log)
    assert run.returncode == loopback_guard.VIOLATION_STATUS
    assert "not an IP address literal" in run.stderr
    assert run.stdout == ""  # refused before the C call could resolve the name


def test_a_child_may_use_loopback(log: Path) -> None:
    code = (
        "import socket\n"
        "with socket.socket() as s:\n"
        "    s.bind(('127.0.0.1', 0)); s.listen()\n"
        "    print(socket.create_connection(s.getsockname(), timeout=5).getpeername()[0])\n"
    )
    run = child(code, log)
    assert (run.returncode, run.stdout, run.stderr) == (0, "127.0.0.1\n", "")
    assert not log.exists()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        ("aiodns.DNSResolver()", "no nameservers"),
        ("aiodns.DNSResolver(nameservers=[])", "no nameservers"),
        (f"aiodns.DNSResolver(nameservers=['{TEST_NET}'])", TEST_NET),
        (f"aiodns.DNSResolver(nameservers=['127.0.0.1:5353', '[{'2001:db8::1'}]:53'])", "2001"),
        (f"pycares.Channel(servers=['127.0.0.1,{TEST_NET}'])", TEST_NET),
        ("pycares.Channel().query('example.org', 1, callback=print)", "/etc/resolv.conf"),
        (f"pycares.Channel(servers=['::1']).__setattr__('servers', ['{TEST_NET}'])", TEST_NET),
    ],
)
def test_a_child_c_ares_needs_loopback_nameservers(make: str, needle: str, log: Path) -> None:
    code = f"{PREAMBLE}{C_ARES}import asyncio\nasync def main():\n    {make}\nasyncio.run(main())"
    assert_refused(child(code, log), log, needle)


def test_a_child_c_ares_with_loopback_nameservers_is_allowed(log: Path) -> None:
    code = (
        "import asyncio, aiodns\n"
        "async def main():\n"
        "    r = aiodns.DNSResolver(nameservers=['127.0.0.1:5353', '::1'])\n"
        "    print(r.nameservers)\n"
        "    await r.close()\n"
        "asyncio.run(main())\n"
    )
    run = child(code, log)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == "['127.0.0.1', '[::1]']\n"


def test_the_command_without_a_nameserver_is_refused(log: Path) -> None:
    # A found port is named through c-ares: without --nameserver (or
    # --no-resolve) that would ask the machine's resolver.
    address = f"127.{random.randrange(100, 250)}.{random.randrange(256)}.9"
    with socket.socket() as listener:
        listener.bind((address, 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        code = f"import sys\n{C_ARES}from xendiscover._cli import main; main(sys.argv[1:])"
        argv = [sys.executable, "-c", code, "-p", port, "--no-fingerprint", address]
        environ = {**os.environ, loopback_guard.LOG_VARIABLE: str(log)}
        run = subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=60)
    assert run.returncode == loopback_guard.VIOLATION_STATUS, run
    assert "aiodns.DNSResolver with no nameservers" in run.stderr
    assert "aiodns.DNSResolver with no nameservers" in log.read_text()


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip netns)"
    return None


@pytest.fixture
def empty_netns() -> Iterator[str]:
    """A new network namespace: loopback down, no other interface, no route."""
    if (reason := _netns_unavailable()) is not None:
        pytest.skip(reason)
    name = f"xdg{os.getpid() % 100000}{random.randrange(1000, 9999)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


@pytest.mark.netns
def test_a_child_in_a_namespace_the_tests_made_is_free(empty_netns: str, log: Path) -> None:
    code = (
        "import asyncio, errno, socket, aiodns\n"
        f"print(errno.errorcode[socket.socket().connect_ex(({TEST_NET!r}, 9))])\n"
        "async def main():\n"
        "    await aiodns.DNSResolver().close()\n"  # the namespace's own resolver
        "asyncio.run(main())\n"
        "print('resolver made')\n"
    )
    run = child(code, log, netns=empty_netns)
    # No route out of an empty namespace: the connect fails in the kernel.
    assert (run.returncode, run.stdout, run.stderr) == (0, "ENETUNREACH\nresolver made\n", "")
    assert not log.exists()


@pytest.mark.netns
def test_probe_processes_are_guarded(empty_netns: str, log: Path) -> None:
    # The guard is told the empty namespace is the machine's, so the command
    # (and its probe processes, which inherit the environment) are checked
    # as they would be outside; with no route out, nothing can leave anyway.
    # Of two addresses and two workers, this process sweeps the first
    # (loopback: allowed, and down here) and a probe process the second.
    inode = str(os.stat(f"/run/netns/{empty_netns}").st_ino)
    argv = [sys.executable, "-m", "xendiscover", "--no-resolve", "--no-fingerprint"]
    argv += ["-p", "8002", "--workers", "2", "--timeout", "1", "127.0.0.1", TEST_NET]
    environ = {
        **os.environ,
        loopback_guard.LOG_VARIABLE: str(log),
        loopback_guard.HOME_NETNS_VARIABLE: inode,
    }
    run = subprocess.run(
        ["ip", "netns", "exec", empty_netns, *argv],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )
    # The probe process's stderr goes to /dev/null: the command can only say
    # that it ended early. The log says why, and would fail any other test.
    assert run.returncode != 0, run
    assert f"exit status {loopback_guard.VIOLATION_STATUS}" in run.stderr
    (line,) = log.read_text().splitlines()
    assert f"connect to {TEST_NET} port 8002" in line
    assert "_sweep/_worker" in line  # the probe process's argv


def test_a_test_fails_when_a_child_is_refused_even_if_nothing_reports_it(
    tmp_path: Path,
) -> None:
    # A child whose stderr and exit status are both ignored (as the command
    # does with a probe process's stderr): the test still fails.
    inner = tmp_path / "test_inner.py"
    inner.write_text(
        textwrap.dedent(
            f"""
            import subprocess, sys

            def test_swallows() -> None:
                code = "import socket; socket.socket().connect_ex(({TEST_NET!r}, 9))"
                subprocess.run([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
            """
        )
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "guard_plugin", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*argv, "--rootdir", str(tmp_path), str(inner)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 1, run.stdout
    assert "the loopback guard refused:" in run.stdout
    assert f"connect to {TEST_NET} port 9" in run.stdout


async def test_the_test_process_checks_c_ares(guard_violations: list[str]) -> None:
    assert getattr(aiodns.DNSResolver, "_loopback_guarded", False)
    assert getattr(pycares.Channel, "_loopback_guarded", False)
    with pytest.raises(GuardViolation, match="no nameservers"):
        aiodns.DNSResolver()
    with pytest.raises(GuardViolation, match=TEST_NET):
        aiodns.DNSResolver(nameservers=[TEST_NET])
    with pytest.raises(GuardViolation, match=r"/etc/resolv\.conf"):
        pycares.Channel().query("example.org", 1, callback=print)
    resolver = aiodns.DNSResolver(nameservers=["127.0.0.1:5353"], loop=asyncio.get_running_loop())
    await resolver.close()
    assert len(guard_violations) == 3


def test_the_test_process_checks_datagrams(guard_violations: list[str]) -> None:
    with (
        socket.socket(type=socket.SOCK_DGRAM) as sock,
        pytest.raises(GuardViolation, match="only loopback"),
    ):
        sock.sendto(b"x", (TEST_NET, 53))
    assert guard_violations == [guard_violations[0]]
    assert TEST_NET in guard_violations[0]
    with (
        socket.socket(type=socket.SOCK_DGRAM) as sink,
        socket.socket(type=socket.SOCK_DGRAM) as sock,
    ):
        sink.bind(("127.0.0.1", 0))
        sock.sendto(b"to", sink.getsockname())
        sock.sendmsg([b"msg"], [], 0, sink.getsockname())
        sock.connect(sink.getsockname())
        sock.sendmsg([b"connected"])  # no address: the peer was checked by connect()
        assert [sink.recv(16) for _ in range(3)] == [b"to", b"msg", b"connected"]
    assert len(guard_violations) == 1
