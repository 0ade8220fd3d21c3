"""Real servers a sweep meets, on loopback: never Xen; libvirtd by its real answer.

nginx, apache2 (mod_ssl) and lighttpd, in the clear and over TLS, and
OpenSSH's sshd stand on ephemeral loopback ports, probed as if they sat on
each well-known Xen port (``plan_port``): none may be ``confirmed`` or
``likely``. A real libvirtd (test driver, TCP, no TLS) is ``libvirt``:
``unknown`` under ``auth_tcp = "sasl"``, and its real type (``TEST``,
``not-xen``) under ``auth_tcp = "none"``.

Each server is started once per module from a temp config (see
``realservers.py``) and skipped, with the reason, where its Debian package
is not installed. Everything here stays on 127.89.0.0/16.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import realservers
import support
from realservers import Running

from xendiscover._fingerprint import WELL_KNOWN_PORTS, fingerprint_port
from xendiscover._fingerprint._libvirt import AUTH_LIST_REQUEST, parse_libvirt
from xendiscover._model import Fingerprint

DEADLINE = 1.0
_hosts = (f"127.89.{a}.{b}" for a, b in itertools.product(range(1, 250), range(2, 250)))

PACKAGES = {
    "nginx": "nginx",
    "apache2": "apache2",
    "lighttpd": "lighttpd",
    "sshd": "openssh-server",
    "libvirtd": "libvirt-daemon",
}

#: The TLS module each web server needs, and its Debian package.
TLS_MODULES = {
    "apache2": ("/usr/lib/apache2/modules/mod_ssl.so", "apache2-bin"),
    "lighttpd": ("/usr/lib/lighttpd/mod_openssl.so", "lighttpd-mod-openssl"),
}


def need(binary: str) -> None:
    """Skip, saying which Debian package to install, when ``binary`` is missing."""
    if realservers.which(binary) is None:
        pytest.skip(f"{binary} is not installed (Debian package {PACKAGES[binary]})")


def web_server(
    name: str, make: Callable[[Path, str, int, int], list[str]]
) -> Callable[[pytest.TempPathFactory], Iterator[Running]]:
    """A module-scoped fixture running one web server, plain and TLS."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
        need(name)
        module = TLS_MODULES.get(name)
        if module is not None and not Path(module[0]).exists():
            pytest.skip(f"{module[0]} is missing (Debian package {module[1]})")
        root = tmp_path_factory.mktemp(name)
        host = next(_hosts)
        plain, tls = realservers.free_port(host), realservers.free_port(host)
        argv = make(root, host, plain, tls)
        ports = {"plain": plain, "tls": tls}
        with realservers.start(argv, host, ports, root / "server.log") as running:
            yield running

    return fixture


nginx = web_server("nginx", realservers.nginx_argv)
apache2 = web_server("apache2", realservers.apache2_argv)
lighttpd = web_server("lighttpd", realservers.lighttpd_argv)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    need("sshd")
    root = tmp_path_factory.mktemp("sshd")
    host = next(_hosts)
    port = realservers.free_port(host)
    argv = realservers.sshd_argv(root, host, port)
    with realservers.start(argv, host, {"ssh": port}, root / "server.log") as running:
        yield running


def libvirtd(auth: str) -> Callable[[pytest.TempPathFactory], Iterator[Running]]:
    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
        need("libvirtd")
        root = tmp_path_factory.mktemp(f"libvirtd-{auth}")
        host = next(_hosts)
        port = realservers.free_port(host)
        argv, env = realservers.libvirtd_argv(root, host, port, auth)
        log = root / "server.log"
        with realservers.start(argv, host, {"tcp": port}, log, env=env) as running:
            yield running

    return fixture


libvirtd_none = libvirtd("none")
libvirtd_sasl = libvirtd("sasl")

NEVER = ("confirmed", "likely")


async def probe_everywhere(server: Running, role: str) -> dict[int, Fingerprint]:
    """Probe the server's ``role`` port as if it stood on each well-known port, at once."""
    port = server.ports[role]
    found = await asyncio.gather(
        *(
            fingerprint_port(server.host, port, timeout=DEADLINE, plan_port=plan)
            for plan in WELL_KNOWN_PORTS
        )
    )
    return dict(zip(WELL_KNOWN_PORTS, found, strict=True))


def assert_never_xen(found: dict[int, Fingerprint], what: str) -> None:
    wrong = {plan: fp for plan, fp in found.items() if fp.verdict in NEVER}
    assert not wrong, f"{what} taken for Xen: {wrong}"
    assert all(fp.evidence for fp in found.values())


# A TLS web server drops the plain "(help)" without a byte, as xend's hosts-allow
# does; only the TLS check (the driver's on_handshake) tells them apart.
@pytest.mark.parametrize("server", ["nginx", "apache2", "lighttpd"])
async def test_web_servers_in_the_clear_are_never_xen(
    server: str, request: pytest.FixtureRequest
) -> None:
    running: Running = request.getfixturevalue(server)
    found = await probe_everywhere(running, "plain")
    assert_never_xen(found, f"{server} (plain)")


@pytest.mark.parametrize("server", ["nginx", "apache2", "lighttpd"])
async def test_web_servers_over_tls_are_never_xen_off_8002(
    server: str, request: pytest.FixtureRequest
) -> None:
    running: Running = request.getfixturevalue(server)
    found = await probe_everywhere(running, "tls")
    del found[8002]  # see the next test
    assert_never_xen(found, f"{server} (TLS)")


@pytest.mark.parametrize(
    "server",
    [
        # nginx answers a plain "(help)" on its TLS port with a plain-HTTP 400
        "nginx",
        "apache2",
        "lighttpd",
    ],
)
async def test_web_servers_over_tls_on_8002_are_not_xend(
    server: str, request: pytest.FixtureRequest
) -> None:
    running: Running = request.getfixturevalue(server)
    found = await fingerprint_port(
        running.host, running.ports["tls"], timeout=DEADLINE, plan_port=8002
    )
    assert found.verdict not in NEVER, found


async def test_sshd_on_xen_ports_is_never_xen(sshd: Running) -> None:
    found = await probe_everywhere(sshd, "ssh")
    assert_never_xen(found, "sshd")
    assert all("SSH-2.0" in fp.evidence for fp in found.values() if fp.verdict == "not-xen")


def virsh(uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = realservers.which("virsh")
    if binary is None:
        pytest.skip("virsh is not installed (Debian package libvirt-clients)")
    return subprocess.run(
        [binary, "-c", uri, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


async def converse(host: str, port: int) -> tuple[Fingerprint, bytes]:
    return await support.converse(host, port, AUTH_LIST_REQUEST, parse_libvirt)


async def test_libvirtd_with_auth_none_is_reported_by_its_real_type(
    libvirtd_none: Running,
) -> None:
    host, port = libvirtd_none.host, libvirtd_none.ports["tcp"]
    check = virsh(f"test+tcp://{host}:{port}/default", "hostname")  # it answers virsh
    assert check.returncode == 0, check.stderr
    found, data = await converse(host, port)
    assert (found.service, found.verdict) == ("libvirt", "not-xen"), found
    assert found.evidence == f"libvirt type TEST on {check.stdout.strip()}"
    assert data.endswith(b"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x06\x00\x00\x00\x00")
    # The test driver's version, from CONNECT_GET_VERSION: the libvirt test driver's own.
    assert found.product is not None
    assert (found.product.name, found.product.confidence) == ("TEST", "certain")
    assert found.product.version is not None


async def test_libvirtd_with_auth_none_through_fingerprint_port(libvirtd_none: Running) -> None:
    host, port = libvirtd_none.host, libvirtd_none.ports["tcp"]
    found = await fingerprint_port(host, port, timeout=DEADLINE)
    assert (found.service, found.verdict) == ("libvirt", "not-xen"), found


async def test_libvirtd_with_auth_sasl_is_libvirt_unknown(libvirtd_sasl: Running) -> None:
    host, port = libvirtd_sasl.host, libvirtd_sasl.ports["tcp"]
    found = await fingerprint_port(host, port, timeout=DEADLINE, plan_port=16509)
    assert (found.service, found.verdict) == ("libvirt", "unknown"), found
    assert "sasl" in found.evidence
    stepped, data = await converse(host, port)
    assert stepped == found
    assert len(data) == 36  # AUTH_LIST's reply only: nothing more was asked
