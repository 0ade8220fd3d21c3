"""xendiscover: find the Xen hosts on your networks, tell what runs on them, name them.

The whole public surface is listed in ``__all__``::

    import asyncio, xendiscover

    hosts = asyncio.run(xendiscover.discover(["10.0.0.0/24"], port=8002))
    print([h.key for h in hosts])   # the Xen machines: confirmed names, else addresses

:func:`discover` returns the Xen machines, one :class:`Host` each;
:func:`scan` yields one :class:`Finding` per open port as soon as it is
known. Both run the same pipeline as the ``xendiscover`` command. A library
call sweeps only what it is given: pass :data:`LOCAL_NETWORKS` to sweep this
machine's networks.
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
from xendiscover._model import (
    Finding,
    Fingerprint,
    Host,
    HostnameSource,
    PortFinding,
    Service,
    Verdict,
    group_findings,
)
from xendiscover._networks import LocalNetwork, interface_is_up, local_networks
from xendiscover._pipeline import Include, discover, scan
from xendiscover._plan import DEFAULT_PORTS, LOCAL_NETWORKS, ScanOptions, ScanPlan, Targets, plan
from xendiscover._resolve import DNSNameResolver, NameResolver
from xendiscover._sweep import ScanStats, WorkerError
from xendiscover._targets import DEFAULT_MAX_HOSTS, TargetSpace
from xendiscover._version import __version__

__all__ = [
    "DEFAULT_MAX_HOSTS",
    "DEFAULT_PORTS",
    "LOCAL_NETWORKS",
    "Backend",
    "ConnectFailed",
    "ConnectResult",
    "ConnectionLost",
    "DNSNameResolver",
    "Finding",
    "Fingerprint",
    "Host",
    "HostnameSource",
    "Include",
    "LocalNetwork",
    "NameResolver",
    "NetworkError",
    "Outcome",
    "PortFinding",
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
    "Targets",
    "Verdict",
    "WorkerError",
    "WorkerProcess",
    "XenDiscoverError",
    "__version__",
    "discover",
    "group_findings",
    "interface_is_up",
    "local_networks",
    "plan",
    "scan",
]
