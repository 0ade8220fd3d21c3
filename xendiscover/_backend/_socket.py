"""The real backend: non-blocking sockets and subprocesses on the running loop.

Portable: the connect reactor runs on :mod:`selectors` (epoll on Linux,
kqueue on macOS and the BSDs) and ``setblocking(False)``; what Linux adds
(``IP_RECVERR``, ``SOCK_NONBLOCK``, reconnecting a refused socket) is used
where :data:`xendiscover._platform.FEATURES` says it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import math
import os
import selectors
import socket
import ssl
import struct
import sys
import time

from xendiscover import _platform
from xendiscover._backend._base import (
    ConnectFailed,
    Connection,
    ConnectionLost,
    ConnectResult,
    NetworkError,
    Outcome,
    Started,
    Stream,
    TLSFailed,
    WorkerProcess,
    outcome_of_errno,
)

__all__ = ["SocketBackend"]

# SO_LINGER {on, 0 s}: close() sends a reset and leaves no TIME_WAIT behind.
_LINGER_ZERO = struct.pack("ii", 1, 0)
#: Linux makes a socket non-blocking and close-on-exec in one call.
_SOCK_FLAGS = (
    socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0)
)
_EINPROGRESS, _EALREADY = errno.EINPROGRESS, errno.EALREADY
_ECONNREFUSED = errno.ECONNREFUSED
#: A second connect() saying the socket is connected (0, EISCONN) or pending.
_LIVE = frozenset({0, errno.EALREADY, errno.EISCONN})
#: Failures after which the socket is back to unconnected and can connect again.
_REUSABLE = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH})
#: Ask for the ICMP error behind a failed connect (<linux/in.h>, <linux/in6.h>;
#: the socket module does not name them): level, option, and the level and
#: origin of the ``sock_extended_err`` that ``MSG_ERRQUEUE`` then returns.
_RECVERR = {
    socket.AF_INET: (socket.IPPROTO_IP, 11, 2),  # IP_RECVERR, SO_EE_ORIGIN_ICMP
    socket.AF_INET6: (socket.IPPROTO_IPV6, 25, 3),  # IPV6_RECVERR, SO_EE_ORIGIN_ICMP6
}
#: errno values an ICMP error can leave on a connecting socket.
_ICMP_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EACCES, errno.ENONET}
)
#: The most queued errors read to reach the newest (a reused socket may hold
#: older ones, e.g. from a local firewall's reject).
_ERRQUEUE_DEPTH = 8
#: struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad,
#: ee_info, ee_data; the sender's sockaddr follows it.
_EXTENDED_ERR = struct.Struct("=IBBBBII")
#: The answer of a refused connect (it ended inside connect(): latency 0).
_REFUSED = ConnectResult(Outcome.CLOSED, 0.0, errno.ECONNREFUSED)
_perf_counter = time.perf_counter

#: The module a probe process runs (``python -m``).
WORKER_MODULE = "xendiscover._sweep._worker"
#: The most bytes one read of a probe process's output returns.
_WORKER_READ = 65536


#: The most ICMP senders remembered as this machine's own, or not.
_OURS_KEPT = 1024
_ours: dict[str, bool] = {}


def _is_ours(address: str) -> bool:
    """Whether ``address`` is one of this machine's (it can be bound to)."""
    known = _ours.get(address)
    if known is None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((address, 0))
            known = True
        except OSError:
            known = False
        if len(_ours) >= _OURS_KEPT:
            _ours.clear()
        _ours[address] = known
    return known


def _ask_for_icmp(sock: socket.socket) -> None:
    """Have the kernel keep the ICMP error behind a failed connect (Linux)."""
    level, option, _ = _RECVERR.get(sock.family, (0, 0, 0))
    if option:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, 1)


def _icmp_of(sock: socket.socket) -> tuple[int, int, str] | None:
    """The ICMP error queued on ``sock``: ``(type, code, sender)``, or ``None``."""
    level, option, origin = _RECVERR.get(sock.family, (0, 0, 0))
    if not option:
        return None
    ancillary: list[tuple[int, int, bytes]] = []
    for _ in range(_ERRQUEUE_DEPTH):  # the newest is this connect's; older ones are stale
        try:
            _, ancillary, _, _ = sock.recvmsg(0, 256, socket.MSG_ERRQUEUE)
        except OSError:
            break  # nothing (more) queued, or not Linux
    for cmsg_level, cmsg_type, data in ancillary:
        if cmsg_level != level or cmsg_type != option or len(data) < _EXTENDED_ERR.size + 8:
            continue
        _, ee_origin, ee_type, ee_code, _, _, _ = _EXTENDED_ERR.unpack_from(data)
        if ee_origin != origin:
            continue
        sender = data[_EXTENDED_ERR.size :]
        if sock.family == socket.AF_INET:
            address = socket.inet_ntop(socket.AF_INET, sender[4:8])
        elif len(sender) >= 24:
            address = socket.inet_ntop(socket.AF_INET6, sender[8:24])
        else:
            continue
        return ee_type, ee_code, address
    return None


class _PendingConnect:
    """One connect in progress, watched by :class:`_Connects`.

    Whichever comes first (writable, deadline, cancellation) settles it;
    everything after that is a no-op, and the socket is released exactly once.
    """

    __slots__ = ("_keep", "_owner", "_start", "_timeout", "fd", "future", "sock")

    def __init__(
        self,
        owner: _Connects,
        sock: socket.socket,
        start: float,
        timeout: float,
        future: asyncio.Future[ConnectResult],
        keep: bool = False,
    ) -> None:
        self._owner = owner
        self._keep = keep
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self._start = start
        self._timeout = timeout
        self.future = future
        future.add_done_callback(self._finished)

    def _settle(self, result: ConnectResult) -> None:
        self._owner.release(self)
        if not self.future.done():
            self.future.set_result(result)

    def writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        icmp = _icmp_of(sock) if code in _ICMP_ERRNOS and self._owner.recverr else None
        latency = _perf_counter() - self._start
        if code == 0 and self._keep:  # the caller takes the open connection
            self._owner.release(self, close=False)
            if not self.future.done():
                self.future.set_result(ConnectResult(Outcome.OPEN, latency, 0, connection=sock))
            else:
                sock.close()
            return
        local = icmp is not None and _is_ours(icmp[2])
        self._settle(ConnectResult(outcome_of_errno(code), latency, code, icmp, local=local))

    def expired(self) -> None:
        if self.sock is not None:
            self._settle(ConnectResult(Outcome.TIMEOUT, self._timeout, errno.ETIMEDOUT))

    def _finished(self, _: asyncio.Future[ConnectResult]) -> None:
        self._owner.release(self)  # cancelled by the caller: close now


class _Connects:
    """Every sweep connect in progress on one loop: one selector, one timer.

    asyncio's ``add_writer`` and ``call_later`` cost a handle, a selector
    key, a transport check and a Python-level heap comparison per call,
    which a sweep of tens of thousands of pending connects pays for every
    attempt. Here a pending connect costs one registration in a selector of
    our own (epoll on Linux, kqueue on macOS and the BSDs) and one entry in
    a heap of tuples (compared in C); the loop watches that selector's own
    descriptor and one timer, for the earliest deadline. A selector with no
    descriptor of its own (``poll``, ``select``) is watched through the
    loop's ``add_writer``, one socket at a time.

    Args:
        loop: The running loop.
        recverr: Ask failed connects for the ICMP error behind them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, recverr: bool = False) -> None:
        self.loop = loop
        self.recverr = recverr
        self._selector: selectors.BaseSelector | None = selectors.DefaultSelector()
        fileno = getattr(self._selector, "fileno", None)
        fd = fileno() if fileno is not None else -1
        if fd < 0:  # poll or select: no descriptor to watch
            self._selector.close()
            self._selector = None
        self._watched: dict[int, _PendingConnect] = {}
        # (deadline, tie-breaker, connect); settled entries are dropped lazily.
        self._deadlines: list[tuple[float, int, _PendingConnect]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        if self._selector is not None:
            loop.add_reader(fd, self._ready)

    def watch(
        self, sock: socket.socket, start: float, timeout: float, keep: bool = False
    ) -> _PendingConnect:
        """Watch ``sock``'s pending connect until it settles or ``timeout`` passes."""
        future = self.loop.create_future()
        pending = _PendingConnect(self, sock, start, timeout, future, keep)
        if self._selector is not None:
            self._selector.register(pending.fd, selectors.EVENT_WRITE)
        else:
            self.loop.add_writer(pending.fd, pending.writable)
        self._watched[pending.fd] = pending
        deadline = self.loop.time() + timeout
        heapq.heappush(self._deadlines, (deadline, next(self._order), pending))
        if deadline < self._timer_at:
            self._arm(deadline)
        return pending

    def release(self, pending: _PendingConnect, close: bool = True) -> None:
        """Stop watching ``pending`` and close its socket (once; not with ``close=False``)."""
        sock, pending.sock = pending.sock, None
        if sock is None:
            return
        if self._watched.pop(pending.fd, None) is pending:
            if self._selector is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    self._selector.unregister(pending.fd)
            elif not self.loop.is_closed():
                self.loop.remove_writer(pending.fd)
        if close:
            sock.close()
        if not self._watched and self._deadlines:
            self._deadlines.clear()  # nothing left to time out: drop the settled entries
            self._disarm()

    def _ready(self) -> None:
        assert self._selector is not None
        watched = self._watched
        for key, _ in self._selector.select(0):
            pending = watched.get(key.fd)
            if pending is not None:
                pending.writable()

    def _arm(self, deadline: float) -> None:
        self._disarm()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        heap = self._deadlines
        # Within a millisecond counts as due: the loop may wake a hair early.
        due = self.loop.time() + 0.001
        while heap and (heap[0][2].sock is None or heap[0][0] <= due):
            heapq.heappop(heap)[2].expired()
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        """Settle nothing more: stop watching and close the epoll set."""
        self._disarm()
        for pending in list(self._watched.values()):
            self.release(pending)
            if not self.loop.is_closed():
                pending.future.cancel()
        if self._selector is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(self._selector.fileno())  # type: ignore[attr-defined,unused-ignore]
            self._selector.close()
            self._selector = None


#: The most bytes one read from the socket takes (a TLS record is at most 16 KiB).
_CHUNK = 16384


class _Tls:
    """A TLS client session over memory buffers, for one :class:`_SocketStream`.

    asyncio's own TLS transport gives every connection a 256 KiB read
    buffer; with hundreds of conversations at once (a range of tarpits on
    443) that alone was most of the scanner's memory. Here the records go
    through two memory BIOs, and the stream's ordinary reads and writes.
    """

    __slots__ = ("incoming", "obj", "outgoing")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        # None sends no SNI; the context checks no name.
        self.obj = context.wrap_bio(
            self.incoming, self.outgoing, server_side=False, server_hostname=server_hostname
        )


class _SocketStream:
    """A :class:`Stream` over asyncio's streams; TLS through memory buffers (:class:`_Tls`)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: _Tls | None = None

    async def _send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def _flush(self, tls: _Tls) -> None:
        pending = tls.outgoing.read()
        if pending:
            await self._send(pending)

    async def _fill(self, tls: _Tls) -> bool:
        """Feed the next bytes from the socket to TLS; ``False`` once the peer closed."""
        data = await self._reader.read(_CHUNK)
        if not data:
            tls.incoming.write_eof()
            return False
        tls.incoming.write(data)
        return True

    async def write(self, data: bytes, *, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                tls = self._tls
                if tls is None:
                    await self._send(data)
                    return
                tls.obj.write(data)
                await self._flush(tls)
        except TimeoutError:
            raise
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS: {exc.reason or 'error'}") from None
        except OSError as exc:  # ConnectionError included
            raise ConnectionLost(_why(exc)) from None

    async def read(self, max_bytes: int, *, timeout: float) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                tls = self._tls
                if tls is None:
                    return await self._reader.read(max_bytes)
                return await self._read_tls(tls, max_bytes)
        except TimeoutError:
            raise
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS: {exc.reason or 'error'}") from None
        except OSError as exc:  # ConnectionError included
            raise ConnectionLost(_why(exc)) from None

    async def _read_tls(self, tls: _Tls, max_bytes: int) -> bytes:
        while True:
            try:
                return tls.obj.read(max_bytes)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # closed (with or without a close_notify: a reply ends either way)
            await self._flush(tls)  # a key update, say
            if not await self._fill(tls):
                continue  # the EOF is now in the BIO: the next read says so

    async def start_tls(
        self, context: ssl.SSLContext, *, server_hostname: str | None, timeout: float
    ) -> None:
        tls = _Tls(context, server_hostname or None)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        tls.obj.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        pass
                    await self._flush(tls)
                    if not await self._fill(tls):
                        raise ConnectionLost("closed during the TLS handshake")
                await self._flush(tls)
        except (TimeoutError, ConnectionLost):
            raise
        except ssl.SSLError as exc:
            raise TLSFailed(exc.reason or "handshake failed") from None
        except OSError as exc:  # ConnectionError included
            raise ConnectionLost(_why(exc)) from None
        self._tls = tls

    def peer_certificate(self) -> bytes | None:
        if self._tls is None:
            return None
        return self._tls.obj.getpeercert(binary_form=True)

    def close(self) -> None:
        self._writer.transport.abort()


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


#: Each handed-over connection travels as one record of this many bytes (its
#: key, "address port", padded) carrying its descriptor. A stream socket,
#: not datagrams: Linux queues at most ``net.unix.max_dgram_qlen`` (10)
#: datagrams, where a stream is bounded only by its buffer.
_RECORD = 64
#: The most records one read of the channel takes.
_RECORDS_PER_READ = 16


def _record(address: str, port: int) -> bytes:
    return f"{address} {port}".encode().ljust(_RECORD)


class _Subprocess:
    """A :class:`WorkerProcess` over an asyncio subprocess (and its connection channel)."""

    def __init__(
        self, proc: asyncio.subprocess.Process, channel: socket.socket | None = None
    ) -> None:
        self._proc = proc
        self._channel = channel
        self._buffer = b""
        self._fds: list[int] = []
        self._arrived: dict[bytes, socket.socket] = {}

    def connection(self, address: str, port: int) -> Connection | None:
        """The connection handed over for ``address``:``port`` (sent before its line)."""
        key = _record(address, port)
        while key not in self._arrived and self._receive():
            pass
        return self._arrived.pop(key, None)

    def _receive(self) -> bool:
        """Read what the channel holds; ``False`` when there was nothing."""
        if self._channel is None:
            return False
        try:
            data, fds, _, _ = socket.recv_fds(
                self._channel, _RECORD * _RECORDS_PER_READ, _RECORDS_PER_READ
            )
        except OSError:  # nothing more now (BlockingIOError), or gone
            return False
        if not data:
            self._close_channel()
            return False
        self._buffer += data
        self._fds += fds
        while len(self._buffer) >= _RECORD and self._fds:
            record, self._buffer = self._buffer[:_RECORD], self._buffer[_RECORD:]
            sock = socket.socket(fileno=self._fds.pop(0))
            sock.setblocking(False)
            old = self._arrived.pop(record, None)
            if old is not None:
                old.close()
            self._arrived[record] = sock
        return True

    async def read(self) -> bytes:
        assert self._proc.stdout is not None
        return await self._proc.stdout.read(_WORKER_READ)

    async def wait(self) -> int:
        code = await self._proc.wait()
        self._close_channel()  # its output was read: whatever was not asked for is unused
        return code

    def kill(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        self._close_channel()

    def _close_channel(self) -> None:
        for sock in self._arrived.values():
            sock.close()
        self._arrived.clear()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None


class SocketBackend:
    """The real :class:`~xendiscover._backend.Backend`.

    A socket whose sweep connect was refused (or found no route) is kept and
    used for the next address: Linux lets a TCP socket connect again once a
    failed attempt has been collected, which saves a ``socket()`` and a
    ``close()`` per probe, a third of the kernel's work on a refused port.

    Args:
        channel: In a probe process, the Unix socket over which kept
            connections go to the scanning process (:meth:`hand_over`).
    """

    def __init__(self, channel: socket.socket | None = None) -> None:
        self._spare: dict[int, socket.socket] = {}
        self._connects: _Connects | None = None
        self._channel = channel
        features = _platform.FEATURES
        self._recverr = features.recverr
        self._sock_flags = _SOCK_FLAGS if features.sock_nonblock else socket.SOCK_STREAM
        self._set_nonblocking = not features.sock_nonblock
        self._reusable = _REUSABLE if features.reuse_failed_socket else frozenset()

    def _watcher(self) -> _Connects:
        loop = asyncio.get_running_loop()
        connects = self._connects
        if connects is None or connects.loop is not loop:
            if connects is not None:
                connects.close()
            connects = self._connects = _Connects(loop, self._recverr)
        return connects

    def connect(
        self,
        family: socket.AddressFamily,
        address: str,
        port: int,
        timeout: float,
        keep: bool = False,
    ) -> Started:
        """Start a sweep connect; see :meth:`Backend.connect`."""
        start = _perf_counter()
        sock = self._spare.pop(family, None) or self._new_socket(family)
        if isinstance(sock, ConnectResult):
            return sock
        target = (address, port)
        try:
            code = sock.connect_ex(target)
            if code == _EINPROGRESS:
                # On loopback and fast links the handshake (or the reset) has
                # usually happened inside connect() already. A second connect()
                # reports it (0: connected; an errno: failed, and the socket is
                # reset for reuse) or says EALREADY: still pending.
                code = sock.connect_ex(target)
        except OSError as exc:  # e.g. an IPv6 address on a host without IPv6
            sock.close()
            return ConnectResult(outcome_of_errno(exc.errno or 0), 0.0, exc.errno or 0)
        if code in self._reusable:
            self._spare[family] = sock
            if code == _ECONNREFUSED:
                return _REFUSED  # the common case: no allocation, no clock
            return ConnectResult(outcome_of_errno(code), _perf_counter() - start, code)
        if code in _LIVE:
            # Connected or pending: whatever happens, close() must reset, not linger.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            if code == _EALREADY:
                return self._watcher().watch(sock, start, timeout, keep).future
            if keep:  # connected inside the call: the caller takes the connection
                return ConnectResult(Outcome.OPEN, _perf_counter() - start, 0, connection=sock)
            code = 0
        sock.close()
        return ConnectResult(outcome_of_errno(code), _perf_counter() - start, code)

    def _new_socket(self, family: socket.AddressFamily) -> socket.socket | ConnectResult:
        """A fresh non-blocking socket for a sweep connect, or why there is none."""
        try:
            sock = socket.socket(family, self._sock_flags)
            if self._set_nonblocking:
                sock.setblocking(False)  # the portable way: one call more
        except OSError as exc:
            return ConnectResult(outcome_of_errno(exc.errno or 0), 0.0, exc.errno or 0)
        if self._recverr:
            _ask_for_icmp(sock)
        return sock

    async def open_stream(
        self, address: str, port: int, *, timeout: float, connection: Connection | None = None
    ) -> Stream:
        """Open a TCP connection, or adopt a kept one; see :meth:`Backend.open_stream`."""
        try:
            async with asyncio.timeout(timeout):
                if isinstance(connection, socket.socket):
                    reader, writer = await asyncio.open_connection(sock=connection)
                else:
                    if connection is not None:
                        connection.close()
                    reader, writer = await asyncio.open_connection(address, port)
        except TimeoutError:
            raise
        except OSError as exc:
            code = exc.errno or 0
            raise ConnectFailed(outcome_of_errno(code), code, _why(exc)) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        return _SocketStream(reader, writer)

    async def spawn_worker(self, job: bytes, *, connections: bool = False) -> WorkerProcess:
        """Start ``python -m xendiscover._sweep._worker`` and hand it ``job``.

        The process gets its own process group, so a signal to this one's
        group (Ctrl-C, ``kill -TERM -PGID``) reaches only the scanning
        process, which owns termination; it dies with its parent. With
        ``connections``, it gets one end of a Unix socket pair over which it
        sends the open connections it keeps (``SCM_RIGHTS``).
        """
        ours = theirs = None
        argv = [sys.executable, "-m", WORKER_MODULE, str(os.getpid())]
        if connections:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.setblocking(False)
            argv.append(str(theirs.fileno()))
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,  # it reports over the wire, or not at all
                process_group=0,
                pass_fds=() if theirs is None else (theirs.fileno(),),
            )
        except OSError as exc:
            if ours is not None:
                ours.close()
            raise NetworkError(f"cannot start a probe process: {_why(exc)}") from None
        finally:
            if theirs is not None:
                theirs.close()
        assert proc.stdin is not None
        with contextlib.suppress(ConnectionError):  # one that died at once: told by wait()
            proc.stdin.write(job)
            await proc.stdin.drain()
        proc.stdin.close()
        return _Subprocess(proc, ours)

    def hand_over(self, connection: Connection, address: str, port: int) -> None:
        """Send a kept connection to the scanning process; see :meth:`Backend.hand_over`."""
        channel = self._channel
        if channel is not None and isinstance(connection, socket.socket):
            record = _record(address, port)
            try:
                sent = socket.send_fds(
                    channel, [record], [connection.fileno()], socket.MSG_DONTWAIT
                )
            except OSError:  # full or gone, nothing sent: the fingerprint connects anew
                sent = _RECORD
            if sent != _RECORD:  # a record cut short: the channel is out of step
                channel.close()
                self._channel = None
        connection.close()  # ours only: a descriptor in flight keeps the connection open

    def time(self) -> float:
        """The monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait on the event loop."""
        await asyncio.sleep(seconds)

    def close(self) -> None:
        """Close the spare sockets and the channel, and stop watching connects."""
        for sock in self._spare.values():
            sock.close()
        self._spare.clear()
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._connects is not None:
            self._connects.close()
            self._connects = None
