"""Real servers for the fingerprint tests: started on loopback, from temp configs, stopped after.

Each server is a Debian package's own binary (nginx, apache2, lighttpd,
openssh-server, libvirt-daemon), run in the foreground as a child of the
test process, bound to one 127.x address only, with every file it writes
under a temp directory. :func:`start` waits (bounded) until its ports
accept, and the returned :class:`Running` stops it.

No server may ask the machine's DNS anything (apache2, for one, looks up
the name of its virtual host's address): each runs in its own mount
namespace (``unshare -m``) where ``/etc/nsswitch.conf`` says ``hosts:
files`` and ``/etc/resolv.conf`` names 127.0.0.1, so a lookup ends in
``/etc/hosts`` and never leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xendiscover.testing import fake_certificate_pem

#: How long a server may take to accept on its ports.
START_TIMEOUT = 15.0


@dataclass
class Running:
    """A started server: its address, its ports by role, and its log."""

    host: str
    ports: dict[str, int]
    log: Path


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def which(*names: str) -> str | None:
    """The first of ``names`` found on PATH or in /usr/sbin."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found:
            return found
    return None


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """The self-signed test certificate and key, written out: (cert, key, both)."""
    cert_pem, key_pem = fake_certificate_pem()
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    both = directory / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    both.chmod(0o600)
    return cert, key, both


def _no_dns(argv: Sequence[str], directory: Path) -> list[str]:
    """``argv`` wrapped to run where host lookups read only ``/etc/hosts``."""
    unshare = which("unshare")
    if unshare is None:
        raise RuntimeError("unshare (util-linux) is needed to keep servers off the DNS")
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    nsswitch = directory / "nsswitch.conf"
    nsswitch.write_text("hosts: files\n")
    script = (
        'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf'
        ' && shift 2 && exec "$@"'
    )
    return [unshare, "-m", "sh", "-c", script, "sh", str(resolv), str(nsswitch), *argv]


@contextlib.contextmanager
def start(
    argv: Sequence[str],
    host: str,
    ports: Mapping[str, int],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    """Run ``argv`` until the context ends; wait until every port accepts.

    Raises:
        RuntimeError: The server exited, or did not accept within
            :data:`START_TIMEOUT` (its log is in the message).
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _no_dns(argv, log.parent),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        waiting = set(ports.values())
        while waiting:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not listen in time: {log.read_text()[-2000:]}")
            waiting = {port for port in waiting if not _accepts(host, port)}
            if waiting:
                time.sleep(0.05)
        yield Running(host, dict(ports), log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def nginx_argv(root: Path, host: str, plain: int, tls: int) -> list[str]:
    """nginx, one process, a plain and a TLS server on ``host``."""
    cert, key, _ = tls_files(root)
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "index.html").write_text("<html><body>nginx test page</body></html>\n")
    temp = " ".join(
        f"{kind}_temp_path {root}/{kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = f"""
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp} uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    root {root}/www;
    server {{ listen {host}:{plain}; }}
    server {{
        listen {host}:{tls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
    }}
}}
"""
    (root / "nginx.conf").write_text(conf)
    return [which("nginx") or "nginx", "-p", str(root), "-c", str(root / "nginx.conf")]


def apache2_argv(root: Path, host: str, plain: int, tls: int) -> list[str]:
    """apache2 with mod_ssl (event MPM), a plain and a TLS virtual host on ``host``."""
    cert, key, _ = tls_files(root)
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "index.html").write_text("<html><body>apache test page</body></html>\n")
    modules = Path("/usr/lib/apache2/modules")
    loads = "\n".join(
        f"LoadModule {name}_module {modules}/mod_{name}.so"
        for name in ("mpm_event", "authz_core", "ssl", "socache_shmcb")
    )
    conf = f"""
{loads}
ServerRoot {root}
ServerName localhost
DefaultRuntimeDir {root}
PidFile {root}/apache2.pid
ErrorLog {root}/error.log
Mutex file:{root} default
User nobody
Group nogroup
DocumentRoot {root}/www
Timeout 60
Listen {host}:{plain}
Listen {host}:{tls} https
SSLSessionCache shmcb:{root}/ssl_scache(512000)
HostnameLookups Off
<VirtualHost {host}:{tls}>
    ServerName localhost
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
</VirtualHost>
"""
    (root / "apache2.conf").write_text(conf)
    os.chmod(root, 0o755)
    binary = which("apache2") or "apache2"
    return [binary, "-f", str(root / "apache2.conf"), "-DFOREGROUND"]


def lighttpd_argv(root: Path, host: str, plain: int, tls: int) -> list[str]:
    """lighttpd with mod_openssl, a plain and a TLS socket on ``host``."""
    _, _, both = tls_files(root)
    (root / "www").mkdir(exist_ok=True)
    (root / "www" / "index.html").write_text("<html><body>lighttpd test page</body></html>\n")
    conf = f"""
server.modules = ("mod_openssl")
server.document-root = "{root}/www"
server.errorlog = "{root}/error.log"
server.bind = "{host}"
server.port = {plain}
$SERVER["socket"] == "{host}:{tls}" {{
    ssl.engine = "enable"
    ssl.pemfile = "{both}"
}}
"""
    (root / "lighttpd.conf").write_text(conf)
    return [which("lighttpd") or "lighttpd", "-D", "-f", str(root / "lighttpd.conf")]


def sshd_argv(root: Path, host: str, port: int) -> list[str]:
    """OpenSSH's sshd in the foreground, a fresh host key, no PAM, one address."""
    key = root / "ssh_host_ed25519_key"
    keygen = which("ssh-keygen") or "ssh-keygen"
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    return [
        which("sshd") or "/usr/sbin/sshd",
        "-D",
        "-e",
        "-f",
        "/dev/null",
        "-o",
        f"ListenAddress={host}:{port}",
        "-o",
        f"HostKey={key}",
        "-o",
        f"PidFile={root}/sshd.pid",
        "-o",
        "UsePAM=no",
    ]


def libvirtd_argv(root: Path, host: str, port: int, auth: str) -> tuple[list[str], dict[str, str]]:
    """libvirtd listening on TCP only (``listen_tcp = 1``, ``listen_tls = 0``), test driver.

    No hypervisor driver module is loaded (``LIBVIRT_DRIVER_DIR`` points at
    an empty directory), so the daemon's default URI is the built-in test
    driver's (``LIBVIRT_DEFAULT_URI=test:///default``): a connection opened
    with an empty name reports type ``TEST``. Its sockets and pid file live
    under ``root``.
    """
    (root / "sock").mkdir(exist_ok=True)
    (root / "nodrivers").mkdir(exist_ok=True)
    conf = f"""
listen_tls = 0
listen_tcp = 1
listen_addr = "{host}"
tcp_port = "{port}"
auth_tcp = "{auth}"
unix_sock_dir = "{root}/sock"
unix_sock_admin_perms = "0700"
log_outputs = "3:stderr"
"""
    (root / "libvirtd.conf").write_text(conf)
    argv = [
        which("libvirtd") or "libvirtd",
        "--listen",
        "-f",
        str(root / "libvirtd.conf"),
        "-p",
        str(root / "libvirtd.pid"),
    ]
    env = {"LIBVIRT_DEFAULT_URI": "test:///default", "LIBVIRT_DRIVER_DIR": str(root / "nodrivers")}
    return argv, env
