"""The tests' loopback guard, in the test process and in every Python it starts.

``tests/conftest.py`` loads this file as a pytest plugin. At configure time
it puts this directory on ``PYTHONPATH``, so every child Python of the
session (``python -m xendiscover``, the probe processes the command starts,
helper scripts, even ``ansible-inventory``) runs ``sitecustomize.py`` from
here, which calls :func:`install` before anything else runs.

What is checked, outside the test-made network namespaces:

- ``socket.socket.connect``, ``connect_ex``, ``sendto`` and ``sendmsg``:
  the address must be a loopback literal (127.0.0.0/8, ``::1``). A name is
  refused *before* the C call, which would otherwise resolve it itself.
- Name lookups (``getaddrinfo``, ``gethostbyname[_ex]``): only ``None``,
  ``localhost`` and address literals; ``gethostbyaddr`` never;
  ``getnameinfo`` only with ``NI_NUMERICHOST``.
- An audit hook (``sys.addaudithook``: it cannot be removed) repeats the
  address checks for ``socket.connect``, ``sendto``, ``sendmsg`` and the
  lookups, so a raw ``_socket.socket`` is caught too. The audit event is
  raised inside the C call just before the system call.
- c-ares, which has its own sockets: ``aiodns.DNSResolver`` and
  ``pycares.Channel`` refuse nameservers that are not loopback, and
  ``DNSResolver`` refuses "no nameservers" (c-ares would read
  ``/etc/resolv.conf``: the machine's resolver). A channel made without
  servers may not query until loopback servers are set, and every query
  checks the servers c-ares actually holds.

A process in a network namespace other than the machine's may do anything:
the lab tests run the command inside namespaces they built. "The machine's"
is the namespace of the pytest process (recorded in
:data:`HOME_NETNS_VARIABLE`), of PID 1 where it can be read (root may be
denied it in a container), and the kernel's initial one: a process in any
of them is checked.

A violation in a child prints one line on stderr, appends it to the
session's log (:data:`LOG_VARIABLE`) and ends the process at once with
status :data:`VIOLATION_STATUS` (``os._exit``: no handler can swallow it).
In the test process it raises :class:`GuardViolation` and is recorded.
Either way the test fails at teardown, even when the code under test
swallowed the error or the child's status (a probe process's stderr goes
to ``/dev/null``; the command then exits 3).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import socket
import sys
import weakref

TYPE_CHECKING = False  # every child imports this module: not even ``typing`` at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from types import ModuleType
    from typing import Any, NoReturn

    Violate = Callable[[str], NoReturn]

#: This directory: what goes on ``PYTHONPATH`` so children load ``sitecustomize``.
GUARD_DIR = os.path.dirname(os.path.abspath(__file__))
#: The file every child appends its violations to (one line each).
LOG_VARIABLE = "XENDISCOVER_TEST_GUARD_LOG"
#: ``st_ino`` of the test session's network namespace: the machine's.
HOME_NETNS_VARIABLE = "XENDISCOVER_TEST_GUARD_NETNS"
#: The exit status of a child that broke the rule.
VIOLATION_STATUS = 86
#: Every message starts with this.
PREFIX = "xendiscover test guard"
#: The inode of the kernel's initial network namespace (PROC_NET_INIT_INO).
INIT_NETNS_INO = 0xEFFFFFF9

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_V6_LOOPBACK = bytes(15) + b"\x01"
_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUP_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname"})
_CHANNEL_QUERIES = ("query", "search", "getaddrinfo", "gethostbyaddr", "getnameinfo")


class GuardViolation(AssertionError):
    """A test process tried to reach beyond loopback, or the machine's resolver."""


def netns_inode(pid: str = "self") -> int | None:
    """The inode of a process's network namespace, or ``None`` if it cannot be read."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


_namespace: list[bool] = []


def in_test_namespace() -> bool:
    """Whether this process runs in a network namespace that is not the machine's.

    Worked out once per process: Python cannot move itself to another one.
    """
    if not _namespace:
        own = netns_inode()
        home = {INIT_NETNS_INO, netns_inode("1")}
        with contextlib.suppress(ValueError):
            home.add(int(os.environ.get(HOME_NETNS_VARIABLE, "")))
        _namespace.append(own is not None and own not in home)
    return _namespace[0]


def is_loopback_literal(host: object) -> bool:
    """Whether ``host`` is an IP address literal on loopback (a scope id is ignored)."""
    if isinstance(host, bytes):
        host = host.decode("latin-1")
    if not isinstance(host, str):
        return False
    host = host.split("%", 1)[0]
    try:
        return socket.inet_pton(socket.AF_INET, host)[0] == 127
    except (OSError, ValueError):
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, host.strip("[]")) == _V6_LOOPBACK
    except (OSError, ValueError):
        return False


def is_literal(host: object) -> bool:
    """Whether ``host`` is an IP address literal (no lookup needed)."""
    if isinstance(host, bytes):
        host = host.decode("latin-1")
    if not isinstance(host, str):
        return False
    host = host.split("%", 1)[0].strip("[]")
    for family in _IP_FAMILIES:
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def server_host(server: str | bytes) -> str:
    """The host part of a c-ares server (``IP``, ``IP:PORT``, ``[IPv6]:PORT``, ``dns://``)."""
    text = server.decode("latin-1") if isinstance(server, bytes) else str(server)
    text = text.strip()
    if "://" in text:
        text = text.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    if text.startswith("[") and "]" in text:
        return text[1 : text.index("]")]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def refused_servers(servers: Iterable[str | bytes]) -> list[str]:
    """The servers in a list that are not on loopback (``a,b`` entries split)."""
    bad = []
    for entry in servers:
        text = entry.decode("latin-1") if isinstance(entry, bytes) else str(entry)
        bad += [s for s in text.split(",") if not is_loopback_literal(server_host(s))]
    return bad


class Guard:
    """The checks, reporting each refusal through ``violate`` (which never returns)."""

    def __init__(self, violate: Violate) -> None:
        self.violate = violate

    def _refuse(self, what: str) -> NoReturn:
        self.violate(
            f"{PREFIX}: {what}: only loopback (127.0.0.0/8, ::1) is allowed outside "
            "a network namespace the tests made"
        )

    def check_address(self, family: int, address: object, verb: str) -> None:
        """Refuse a connect or send to anything but a loopback literal."""
        if family not in _IP_FAMILIES or in_test_namespace():
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if is_loopback_literal(host):
            return
        if isinstance(address, tuple) and len(address) > 1 and is_literal(host):
            self._refuse(f"{verb} {host!s} port {address[1]!s}")
        self._refuse(f"{verb} {host!r}, which is not an IP address literal")

    def check_lookup(self, host: object, call: str) -> None:
        """Refuse a name lookup that would ask the machine's resolver."""
        if host is None or host in ("localhost", b"localhost") or is_literal(host):
            return
        if not in_test_namespace():
            self._refuse(f"{call}({host!r}) would ask the machine's DNS")

    def check_servers(self, servers: Iterable[str | bytes] | None, what: str) -> None:
        """Refuse c-ares servers that are not loopback, or none at all."""
        if in_test_namespace():
            return
        listed = list(servers or ())
        if not listed:
            self._refuse(f"{what} with no nameservers reads /etc/resolv.conf, the machine's DNS")
        bad = refused_servers(listed)
        if bad:
            self._refuse(f"{what} with nameservers {bad!r}")

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook: the same checks on raw sockets and C-level calls."""
        if event in _SOCKET_EVENTS:
            sock, address = args[0], args[1]
            if address is not None:  # sendmsg() without one: the peer connect() checked
                self.check_address(getattr(sock, "family", -1), address, event.split(".", 1)[1])
        elif event in _LOOKUP_EVENTS:
            self.check_lookup(args[0], event)
        elif event == "socket.gethostbyaddr" and not in_test_namespace():
            self._refuse(f"socket.gethostbyaddr({args[0]!r}) would ask the machine's DNS")


def _address_argument(args: tuple[Any, ...], position: int) -> object:
    return args[position] if len(args) > position else None


def _patch_socket(guard: Guard) -> None:
    """Check addresses in Python, before the C call can resolve a name itself."""
    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex
    real_sendto, real_sendmsg = cls.sendto, cls.sendmsg

    def connect(self: socket.socket, address: Any) -> None:
        guard.check_address(self.family, address, "connect to")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check_address(self.family, address, "connect to")
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, *args: Any) -> int:
        guard.check_address(self.family, args[-1], "send to")
        return real_sendto(self, *args)

    def sendmsg(self: socket.socket, *args: Any) -> int:
        address = _address_argument(args, 3)
        if address is not None:
            guard.check_address(self.family, address, "send to")
        return real_sendmsg(self, *args)

    cls.connect, cls.connect_ex = connect, connect_ex  # type: ignore[method-assign,assignment]
    cls.sendto, cls.sendmsg = sendto, sendmsg  # type: ignore[method-assign,assignment]
    _patch_lookups(guard)


def _patch_lookups(guard: Guard) -> None:
    """``getnameinfo``'s audit event does not carry its flags: check them here."""
    real_getnameinfo = socket.getnameinfo

    def getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
        if not flags & socket.NI_NUMERICHOST and not in_test_namespace():
            guard._refuse(f"getnameinfo({sockaddr!r}) without NI_NUMERICHOST asks DNS")
        return real_getnameinfo(sockaddr, flags)

    socket.getnameinfo = getnameinfo


class _ChannelGuard:
    """``pycares.Channel``'s checks: servers when set, and before every query.

    A query needs servers the caller set (constructor or ``servers``), and
    the servers c-ares holds at that moment must all be loopback: a
    channel made without servers holds the system's (``/etc/resolv.conf``,
    which may well be a loopback stub forwarding to the machine's DNS).
    """

    def __init__(self, guard: Guard, channel_class: Any) -> None:
        self.guard = guard
        self.chosen: weakref.WeakSet[object] = weakref.WeakSet()
        self.servers = channel_class.servers

    def new(self, cls: type, **kwargs: Any) -> object:
        if kwargs.get("servers"):
            self.guard.check_servers(kwargs["servers"], "pycares.Channel")
        return object.__new__(cls)

    def set_servers(self, channel: object, servers: Iterable[str | bytes]) -> None:
        listed = list(servers)
        self.guard.check_servers(listed, "pycares.Channel.servers")
        self.servers.fset(channel, listed)
        self.chosen.add(channel)

    def check_query(self, channel: object, name: str) -> None:
        if in_test_namespace():
            return
        if channel not in self.chosen:
            self.guard._refuse(
                f"pycares.Channel.{name} before loopback nameservers were set "
                "(c-ares would ask the machine's DNS from /etc/resolv.conf)"
            )
        self.guard.check_servers(self.servers.fget(channel), f"pycares.Channel.{name}")


def _patch_pycares(guard: Guard, pycares: ModuleType) -> None:
    """Servers checked when set; a query needs loopback servers chosen by the caller."""
    channel_class = pycares.Channel
    if getattr(channel_class, "_loopback_guarded", False):
        return
    checks = _ChannelGuard(guard, channel_class)
    real_reinit = channel_class.reinit

    def reinit(channel: object) -> Any:
        checks.chosen.discard(channel)  # c-ares re-reads the system's configuration
        return real_reinit(channel)

    def query_of(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def query(channel: object, *args: Any, **kwargs: Any) -> Any:
            checks.check_query(channel, name)
            return real(channel, *args, **kwargs)

        return query

    channel_class.__new__ = lambda cls, *args, **kwargs: checks.new(cls, **kwargs)
    channel_class.servers = property(checks.servers.fget, checks.set_servers)
    channel_class.reinit = reinit
    for name in _CHANNEL_QUERIES:
        if hasattr(channel_class, name):
            setattr(channel_class, name, query_of(name, getattr(channel_class, name)))
    channel_class._loopback_guarded = True


def _patch_aiodns(guard: Guard, aiodns: ModuleType) -> None:
    """``DNSResolver`` needs loopback nameservers: none means the machine's resolver."""
    resolver_class = aiodns.DNSResolver
    if getattr(resolver_class, "_loopback_guarded", False):
        return

    def new(cls: type, nameservers: Sequence[str] | None = None, *args: Any, **kw: Any) -> object:
        guard.check_servers(nameservers, "aiodns.DNSResolver")
        return object.__new__(cls)

    resolver_class.__new__ = new
    resolver_class._loopback_guarded = True


class _PatchOnImport:
    """A meta path finder and loader: patch a module right after its first import.

    Not derived from ``importlib.abc``, whose import costs every child 10 ms.
    """

    def __init__(self, patches: dict[str, Callable[[ModuleType], None]]) -> None:
        self._patches = patches
        self._loaders: dict[str, Any] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._patches:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self._loaders[fullname] = spec.loader
        spec.loader = self  # type: ignore[assignment]  # a Loader by duck typing
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loaders[spec.name].create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loaders[module.__name__].exec_module(module)
        self._patches[module.__name__](module)


def install(violate: Violate) -> Guard:
    """Install every check in this process; ``violate`` reports a refusal."""
    guard = Guard(violate)
    _patch_socket(guard)
    patches: dict[str, Callable[[ModuleType], None]] = {
        "pycares": lambda module: _patch_pycares(guard, module),
        "aiodns": lambda module: _patch_aiodns(guard, module),
    }
    for name, patch in patches.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchOnImport(patches))
    sys.addaudithook(guard.audit)
    return guard


def log_violation(message: str) -> None:
    """Append one line to the session's log, if there is one."""
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    data = (message.replace("\n", " ") + "\n").encode("utf-8", "backslashreplace")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.write(fd, data)  # one write: lines of concurrent children never interleave
    finally:
        os.close(fd)


def end_child(message: str) -> NoReturn:
    """A child's violation: one line on stderr and in the log, then exit at once."""
    argv = " ".join(getattr(sys, "argv", []) or ["?"])[:200]
    line = f"{message} [pid {os.getpid()}: {argv}]"
    with contextlib.suppress(OSError):  # stderr closed: the log still has it
        os.write(2, (line + "\n").encode("utf-8", "backslashreplace"))
    log_violation(line)
    os._exit(VIOLATION_STATUS)


def install_in_child() -> None:
    """What ``sitecustomize`` runs in every child Python."""
    install(end_child)


def read_log(path: str, offset: int) -> tuple[list[str], int]:
    """The log's lines after ``offset``, and the new offset."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return [], offset
    return data.decode("utf-8", "replace").splitlines(), offset + len(data)
