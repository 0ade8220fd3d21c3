"""Test doubles for code built on xendiscover, public and supported.

- :class:`FakeConnector` and :class:`FakeResolver` stand in for the network
  and DNS in :func:`xendiscover.scan` and :func:`xendiscover.discover`.
- The fake servers answer like real Xen management services (and like
  decoys that are not), on any address and port you bind them to.
"""

from xendiscover.testing import _servers
from xendiscover.testing._fakes import Behaviour, FakeConnector, FakeResolver
from xendiscover.testing._servers import *  # noqa: F403

__all__ = ["Behaviour", "FakeConnector", "FakeResolver"]
__all__ += _servers.__all__
