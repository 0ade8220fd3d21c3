"""xendiscover: find the Xen hosts on your networks, tell what runs on them, name them.

The whole public surface is listed in ``__all__``::

    import asyncio, xendiscover

    hosts = asyncio.run(xendiscover.discover(["10.0.0.0/24"], port=8002))
    print([h.key for h in hosts])   # the Xen machines: confirmed names, else addresses

:func:`discover` returns the Xen machines, one :class:`Host` each;
:func:`scan` yields one :class:`Finding` per open port as soon as it is
known. Both run the same pipeline as the ``xendiscover`` command. A library
call sweeps only what it is given: pass :data:`LOCAL_NETWORKS` to sweep this
machine's networks (``| ROUTED_NETWORKS`` for those behind its gateways,
``| IPV6_NEIGHBOURS`` for the IPv6 hosts on its links).
All I/O goes through a :class:`Backend` (:class:`SocketBackend` by default;
``xendiscover.testing.FakeBackend`` for tests).
"""

import importlib as _importlib
import typing as _typing

from xendiscover._version import __version__

if _typing.TYPE_CHECKING:
    from xendiscover._backend import (
        Backend,
        ConnectFailed,
        Connection,
        ConnectionLost,
        ConnectResult,
        NetworkError,
        Outcome,
        SocketBackend,
        Stream,
        TLSFailed,
        WorkerProcess,
    )
    from xendiscover._diff import Change, diff
    from xendiscover._errors import ResultError, ScanLimitError, TargetError, XenDiscoverError
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
    from xendiscover._plan import (
        DEFAULT_PORTS,
        IPV6_NEIGHBOURS,
        LOCAL_NETWORKS,
        ROUTED_NETWORKS,
        ScanOptions,
        ScanPlan,
        Targets,
        plan,
    )
    from xendiscover._resolve import DNSNameResolver, NameResolver
    from xendiscover._results import ScanResult, load_result, merge
    from xendiscover._run import RunInfo
    from xendiscover._sweep import ScanStats, WorkerError
    from xendiscover._targets import DEFAULT_MAX_HOSTS, TargetSpace


#: Where each public name lives; imported on first use (PEP 562), so that a
#: probe process or ``--help`` does not pay for TLS, DNS and certificate code.
_EXPORTS: dict[str, str] = {
    "Backend": "xendiscover._backend",
    "Change": "xendiscover._diff",
    "ConnectFailed": "xendiscover._backend",
    "ConnectResult": "xendiscover._backend",
    "ConnectionLost": "xendiscover._backend",
    "DEFAULT_MAX_HOSTS": "xendiscover._targets",
    "DEFAULT_PORTS": "xendiscover._plan",
    "DNSNameResolver": "xendiscover._resolve",
    "Finding": "xendiscover._model",
    "Fingerprint": "xendiscover._model",
    "Host": "xendiscover._model",
    "HostnameSource": "xendiscover._model",
    "IPV6_NEIGHBOURS": "xendiscover._plan",
    "Include": "xendiscover._pipeline",
    "LOCAL_NETWORKS": "xendiscover._plan",
    "LocalNetwork": "xendiscover._networks",
    "NameResolver": "xendiscover._resolve",
    "NetworkError": "xendiscover._backend",
    "Outcome": "xendiscover._backend",
    "PortFinding": "xendiscover._model",
    "ROUTED_NETWORKS": "xendiscover._plan",
    "ResultError": "xendiscover._errors",
    "RunInfo": "xendiscover._run",
    "ScanLimitError": "xendiscover._errors",
    "ScanOptions": "xendiscover._plan",
    "ScanPlan": "xendiscover._plan",
    "ScanResult": "xendiscover._results",
    "ScanStats": "xendiscover._sweep",
    "Service": "xendiscover._model",
    "SocketBackend": "xendiscover._backend",
    "Stream": "xendiscover._backend",
    "Connection": "xendiscover._backend",
    "TLSFailed": "xendiscover._backend",
    "TargetError": "xendiscover._errors",
    "TargetSpace": "xendiscover._targets",
    "Targets": "xendiscover._plan",
    "Verdict": "xendiscover._model",
    "WorkerError": "xendiscover._sweep",
    "WorkerProcess": "xendiscover._backend",
    "XenDiscoverError": "xendiscover._errors",
    "diff": "xendiscover._diff",
    "discover": "xendiscover._pipeline",
    "group_findings": "xendiscover._model",
    "interface_is_up": "xendiscover._networks",
    "load_result": "xendiscover._results",
    "local_networks": "xendiscover._networks",
    "merge": "xendiscover._results",
    "plan": "xendiscover._plan",
    "scan": "xendiscover._pipeline",
}

__all__ = [
    "DEFAULT_MAX_HOSTS",
    "DEFAULT_PORTS",
    "IPV6_NEIGHBOURS",
    "LOCAL_NETWORKS",
    "ROUTED_NETWORKS",
    "Backend",
    "Change",
    "ConnectFailed",
    "ConnectResult",
    "Connection",
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
    "ResultError",
    "RunInfo",
    "ScanLimitError",
    "ScanOptions",
    "ScanPlan",
    "ScanResult",
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
    "diff",
    "discover",
    "group_findings",
    "interface_is_up",
    "load_result",
    "local_networks",
    "merge",
    "plan",
    "scan",
]


def __getattr__(name: str) -> _typing.Any:
    """Import a public name from its module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xendiscover' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
