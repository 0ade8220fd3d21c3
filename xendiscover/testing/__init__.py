"""Test doubles for code built on xendiscover, public and supported.

- :class:`FakeBackend` (with :class:`FakeService` peers) and
  :class:`FakeResolver` stand in for the network, the clock and DNS in
  :func:`xendiscover.scan` and :func:`xendiscover.discover`.
- The fake servers answer like real Xen management services (and like
  decoys that are not), on any address and port you bind them to. Each is
  an async context manager (:class:`FakeServer`)::

      async with FakeXapi(host="127.0.0.5", port=0) as server:
          print(server.host, server.port, server.url)

The fakes, by what they fake:

- xend (``_xend``): :class:`FakeXendRelocation`, the relocation server
  (8002) or its hosts-allow reject (accept, close after a delay);
  :class:`FakeXendHttp`, the HTTP/SXP server (8000); :class:`FakeXendXmlRpc`,
  the XML-RPC servers (8006, 9363).
- xapi (``_xapi``): :class:`FakeXapi`, in the clear (80) or over TLS (443),
  in the reply shapes of each release in :data:`XAPI_RELEASES`.
- libvirt (``_libvirt``): :class:`FakeLibvirt`, libvirtd's TCP listener
  (16509), auth sasl or none.
- decoys (``_decoys``): :class:`FakeHttpServer`, a web server that is not
  Xen; :class:`FakeXenOrchestra`, an appliance, not a host;
  :class:`FakeTarpit`, accepts and never answers; :class:`FakeStreamer`, an
  HTTP head that never ends; :class:`FakeResetter`, starts a reply and then
  resets the connection.

None of them acts on what it is asked: a fake records what it
was sent (:attr:`FakeServer.received`) and answers, nothing more.
"""

from xendiscover.testing._certs import XapiIdentity, fake_certificate_pem, fake_tls_context
from xendiscover.testing._decoys import (
    FakeHttpServer,
    FakeResetter,
    FakeStreamer,
    FakeTarpit,
    FakeXenOrchestra,
)
from xendiscover.testing._fakes import Behaviour, FakeBackend, FakeResolver, FakeService
from xendiscover.testing._libvirt import FakeLibvirt
from xendiscover.testing._server import FakeServer
from xendiscover.testing._xapi import XAPI_RELEASES, FakeXapi, XapiRelease, xapi_messages
from xendiscover.testing._xend import (
    DEFAULT_XEND_METHODS,
    XEND_PYTHON,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
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
