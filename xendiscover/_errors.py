"""The exceptions xendiscover raises, translated once at the edge.

::

    XenDiscoverError            anything xendiscover raises on purpose
    ├── TargetError             a target, port, or option the scan cannot use
    │   └── ScanLimitError      the sweep is larger than the size guard allows
    └── ResultError             a result file that cannot be read, merged or compared

Connection outcomes ("refused", "unreachable", "timed out") are results of a
probe, never exceptions; local resource errors (too many open files, no
buffer space, address not available) are retried inside the prober and never
reach the caller.
"""

from __future__ import annotations

__all__ = ["ResultError", "ScanLimitError", "TargetError", "XenDiscoverError"]


class XenDiscoverError(Exception):
    """The base of every exception xendiscover raises on purpose."""


class TargetError(XenDiscoverError, ValueError):
    """A target, port, or option that the scan cannot use.

    The message is one line, fit to show the user as it is.
    """


class ScanLimitError(TargetError):
    """The sweep covers more addresses than the size guard allows."""


class ResultError(XenDiscoverError, ValueError):
    """A result that cannot be read, merged or compared (not this tool's, or not one plan's).

    The message is one line, fit to show the user as it is.
    """
