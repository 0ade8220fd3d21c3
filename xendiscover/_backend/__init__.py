"""The I/O backend: every connect, stream, probe process and clock read of a scan.

See :mod:`xendiscover._backend._base` for the interface and its exception
tree; :class:`SocketBackend` is the real implementation and
:class:`xendiscover.testing.FakeBackend` the scripted one.
"""

from xendiscover._backend._base import (
    BACKOFF_FIRST,
    BACKOFF_MAX,
    RESOURCE_ERRNOS,
    Backend,
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
    backoff,
    outcome_of_errno,
)
from xendiscover._backend._socket import WORKER_MODULE, SocketBackend

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "RESOURCE_ERRNOS",
    "WORKER_MODULE",
    "Backend",
    "ConnectFailed",
    "ConnectResult",
    "Connection",
    "ConnectionLost",
    "NetworkError",
    "Outcome",
    "SocketBackend",
    "Started",
    "Stream",
    "TLSFailed",
    "WorkerProcess",
    "backoff",
    "outcome_of_errno",
]
