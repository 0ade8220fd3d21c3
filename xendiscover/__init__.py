"""xendiscover: find the Xen hosts on your networks, tell what runs on them, name them.

The whole public surface is listed in ``__all__``::

    import asyncio, xendiscover

    hosts = asyncio.run(xendiscover.discover(["10.0.0.0/24"], port=8002))
    print([h.display_name for h in hosts])

:func:`scan` yields hosts as they are found; :func:`discover` waits for the end
and sorts them. Both run the same pipeline as the ``xendiscover`` command.
All I/O goes through a :class:`Backend` (:class:`SocketBackend` by default;
``xendiscover.testing.FakeBackend`` for tests).
"""

from xendiscover._backend import (
    Backend,
    ConnectFailed,
    ConnectionLost,
    ConnectResult,
    NetworkError,
    Outcome,
    SocketBackend,
    Stream,
    TLSFailed,
    WorkerProcess,
)
from xendiscover._errors import ScanLimitError, TargetError, XenDiscoverError
from xendiscover._model import Fingerprint, Host, Service, Verdict
from xendiscover._networks import LocalNetwork, interface_is_up, local_networks
from xendiscover._pipeline import discover, scan
from xendiscover._plan import DEFAULT_PORTS, ScanOptions, ScanPlan, plan
from xendiscover._resolve import DNSNameResolver, NameResolver
from xendiscover._sweep import ScanStats, WorkerError
from xendiscover._targets import DEFAULT_MAX_HOSTS, TargetSpace
from xendiscover._version import __version__

__all__ = [
    "DEFAULT_MAX_HOSTS",
    "DEFAULT_PORTS",
    "Backend",
    "ConnectFailed",
    "ConnectResult",
    "ConnectionLost",
    "DNSNameResolver",
    "Fingerprint",
    "Host",
    "LocalNetwork",
    "NameResolver",
    "NetworkError",
    "Outcome",
    "ScanLimitError",
    "ScanOptions",
    "ScanPlan",
    "ScanStats",
    "Service",
    "SocketBackend",
    "Stream",
    "TLSFailed",
    "TargetError",
    "TargetSpace",
    "Verdict",
    "WorkerError",
    "WorkerProcess",
    "XenDiscoverError",
    "__version__",
    "discover",
    "interface_is_up",
    "local_networks",
    "plan",
    "scan",
]
