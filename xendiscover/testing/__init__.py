"""Test doubles for code built on xendiscover, public and supported.

- :class:`FakeBackend` (with :class:`FakeService` peers) and
  :class:`FakeResolver` stand in for the network, the clock and DNS in
  :func:`xendiscover.scan` and :func:`xendiscover.discover`.
- The fake servers answer like real Xen management services (and like
  decoys that are not), on any address and port you bind them to.
"""

from xendiscover.testing._certs import XapiIdentity, fake_certificate_pem
from xendiscover.testing._fakes import Behaviour, FakeBackend, FakeResolver, FakeService
from xendiscover.testing._servers import (
    DEFAULT_XEND_METHODS,
    XAPI_RELEASES,
    XEND_PYTHON,
    FakeHttpServer,
    FakeLibvirt,
    FakeResetter,
    FakeServer,
    FakeStreamer,
    FakeTarpit,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
    FakeXenOrchestra,
    XapiRelease,
    fake_tls_context,
    xapi_messages,
)

__all__ = [
    "DEFAULT_XEND_METHODS",
    "XAPI_RELEASES",
    "XEND_PYTHON",
    "Behaviour",
    "FakeBackend",
    "FakeHttpServer",
    "FakeLibvirt",
    "FakeResetter",
    "FakeResolver",
    "FakeServer",
    "FakeService",
    "FakeStreamer",
    "FakeTarpit",
    "FakeXapi",
    "FakeXenOrchestra",
    "FakeXendHttp",
    "FakeXendRelocation",
    "FakeXendXmlRpc",
    "XapiIdentity",
    "XapiRelease",
    "fake_certificate_pem",
    "fake_tls_context",
    "xapi_messages",
]
