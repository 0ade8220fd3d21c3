"""Helpers shared by the sans-IO reply parsers: errors, evidence, HTTP and XML-RPC.

Nothing here touches a socket. Every function takes the bytes a peer sent and
returns a value, or raises :class:`ReplyError` (the only exception a parser may
raise)::

    ReplyError          a parser could not reach a verdict from these bytes
    └── NeedMoreData    ...yet: the peer is still open and may send more

A parser raises :class:`NeedMoreData` only while ``closed`` is false; once the
peer has closed, every parser returns a :class:`~xendiscover._model.Fingerprint`.

A parser of a multi-step exchange (libvirt's) may return :class:`Continue`
instead, while the peer is open: "send this next request, then keep reading".
It is always handed the *cumulative* bytes of the connection, so it can
re-walk the replies from the first byte and knows which step it is at.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import h11

from xendiscover._errors import XenDiscoverError
from xendiscover._escape import escape
from xendiscover._model import Fingerprint, Service

__all__ = [
    "EVIDENCE_LIMIT",
    "MAX_HEAD",
    "Continue",
    "HttpHead",
    "NeedMoreData",
    "ParseResult",
    "ReplyError",
    "ReplyParser",
    "RpcShape",
    "XmlRpcReply",
    "closed_silently",
    "decode_xmlrpc",
    "evidence",
    "excerpt",
    "first_line",
    "http_body",
    "http_body_so_far",
    "http_host",
    "http_post",
    "looks_like_http",
    "parse_http_head",
    "xenapi_failure",
    "xenapi_failure_fingerprint",
    "xmlrpc_shape",
]

#: The longest evidence string a parser produces (in characters).
EVIDENCE_LIMIT = 80


class ReplyError(XenDiscoverError, ValueError):
    """A reply parser could not reach a verdict from the bytes it was given."""


class NeedMoreData(ReplyError):
    """The bytes so far cannot decide; only raised while the peer is still open."""


@dataclass(frozen=True, slots=True)
class Continue:
    """A parser's "not decided yet: send this, then keep reading".

    The driver sends :attr:`request` once per new :attr:`step` (a parser
    returns the same ``Continue`` again while it waits for that step's reply,
    and the driver does not send it twice) and goes on reading into the same
    cumulative buffer, within the same deadline and read cap. A parser
    never returns ``Continue`` when ``closed`` is true: once the peer closed
    (or the driver stops early and asks for a final word by passing
    ``closed=True``), it decides from what it has.

    Attributes:
        step: The step number, counting from 1 for the first follow-up.
        request: The exact bytes to send for this step (checked against the
            forbidden words like every request).
    """

    step: int
    request: bytes


#: What a parser returns: a verdict, or the next request of a multi-step exchange.
ParseResult = Fingerprint | Continue


class ReplyParser(Protocol):
    """The signature every reply parser has.

    A parser is a pure function: the bytes the peer sent so far on this
    connection (cumulative, from the first byte), whether the peer closed the
    connection, and the nonce the request carried (the UUID of an ``isAlive``
    probe; ignored by parsers that do not need it). Only multi-step parsers
    ever return :class:`Continue`.
    """

    def __call__(self, data: bytes, *, closed: bool, nonce: str) -> ParseResult:
        """Decide what answered, ask for a next step, or raise :class:`ReplyError`."""
        ...


def excerpt(data: bytes, limit: int = EVIDENCE_LIMIT) -> str:
    r"""Render ``data`` as a printable excerpt of at most ``limit`` characters.

    Printable ASCII is kept; ``\r``, ``\n``, ``\t`` and backslash are escaped
    the C way, every other byte as ``\xNN``. A cut excerpt ends in ``...``.

    Args:
        data: The bytes to show.
        limit: The longest result, in characters (at least 4).

    Returns:
        The excerpt, pure printable ASCII.
    """
    return escape(data, limit=limit)


def evidence(label: str, data: bytes = b"") -> str:
    """Write evidence: a label, then an excerpt of ``data``, within the limit.

    Args:
        label: What was seen, in words (kept whole).
        data: The bytes that decided it; shown after ``": "`` if not empty.

    Returns:
        At most :data:`EVIDENCE_LIMIT` printable characters.
    """
    label = excerpt(label.encode("ascii", "backslashreplace"), EVIDENCE_LIMIT)
    if not data:
        return label
    room = EVIDENCE_LIMIT - len(label) - 2
    if room < 8:
        return label
    return f"{label}: {excerpt(data, room)}"


def first_line(data: bytes) -> bytes:
    """Return the bytes up to (not including) the first line break, or all."""
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def closed_silently(service: Service | None = None) -> Fingerprint:
    """Describe a peer that accepted, then closed without sending a byte."""
    return Fingerprint(service, "unknown", "accepted and closed without a reply")


@dataclass(frozen=True, slots=True)
class HttpHead:
    """The status line and headers of an HTTP response.

    Attributes:
        version: ``"HTTP/1.0"`` or ``"HTTP/1.1"``.
        status: The status code.
        reason: The reason phrase.
        headers: ``(name, value)`` pairs in order, names as sent.
        body_start: The offset of the first body byte in the reply.
        raw: The head's bytes as sent (status line and headers), for rules
            that read its layout (xapi's eras).
    """

    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body_start: int
    raw: bytes = b""

    def get(self, name: str) -> str | None:
        """Return the first header called ``name`` (any case), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` as a number, or ``None`` if absent or invalid."""
        value = self.get("content-length")
        if value is None or not value.strip().isdigit():
            return None
        return int(value.strip())

    @property
    def status_line(self) -> str:
        """The status line as text, e.g. ``HTTP/1.1 200 OK``."""
        return f"{self.version} {self.status} {self.reason}".rstrip()


#: The longest response head read, in bytes (h11's limit on an incomplete event).
MAX_HEAD = 16 * 1024


def looks_like_http(data: bytes) -> bool | None:
    """Whether ``data`` starts like an HTTP response (``None``: too short to tell)."""
    if len(data) < 5:
        return None if b"HTTP/".startswith(data) else False
    return data.startswith(b"HTTP/")


@dataclass(frozen=True, slots=True)
class _Framed:
    head: HttpHead | None
    body: bytes
    complete: bool


def _head_end(data: bytes) -> int:
    """The offset just past the blank line that ends the head (CRLF or bare LF)."""
    ends = [i + n for i, n in ((data.find(b"\r\n\r\n"), 4), (data.find(b"\n\n"), 2)) if i != -1]
    return min(ends) if ends else len(data)


def _head(event: h11.Response, data: bytes) -> HttpHead:
    end = _head_end(data)
    return HttpHead(
        version=f"HTTP/{event.http_version.decode('ascii')}",
        status=event.status_code,
        reason=event.reason.decode("latin-1"),
        headers=tuple(
            (name.decode("ascii", "replace"), value.decode("latin-1"))
            for name, value in event.headers.raw_items()
        ),
        body_start=end,
        raw=data[:end],
    )


def _frame(data: bytes, closed: bool) -> _Framed:
    """Run the reply through h11: its head, the body bytes so far, and whether it ended.

    h11 does the framing (status line, headers, ``Content-Length``, chunked
    bodies, HTTP/1.0 bodies that end at the close); the request it is told
    about is never sent (the probes write their own bytes).
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "xendiscover")]))
    head: HttpHead | None = None
    body = bytearray()
    try:
        conn.receive_data(data)
        if closed:
            conn.receive_data(b"")
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                head = _head(event, data)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return _Framed(head, bytes(body), True)
            elif not isinstance(event, h11.InformationalResponse):
                return _Framed(head, bytes(body), False)  # NEED_DATA, PAUSED, closed
    except h11.RemoteProtocolError:
        return _Framed(head, bytes(body), False)


def parse_http_head(data: bytes, *, closed: bool) -> HttpHead | None:
    """Parse the head of an HTTP/1.x response (framed by h11).

    Args:
        data: The reply so far.
        closed: Whether the peer has closed (a head cut short is then final).

    Returns:
        The head, or ``None`` if ``data`` is not an HTTP/1.x response head (or
        the peer closed before the head was complete).

    Raises:
        NeedMoreData: The head is not complete yet and the peer is still open.
    """
    if looks_like_http(data) is False:
        return None
    framed = _frame(data, closed)
    if framed.head is not None:
        return framed.head
    complete_head = _head_end(data) < len(data) or data.endswith((b"\r\n\r\n", b"\n\n"))
    if closed or complete_head or len(data) > MAX_HEAD:
        return None
    raise NeedMoreData("HTTP head incomplete")


def http_body(data: bytes, head: HttpHead, *, closed: bool) -> bytes:
    """Return the body of an HTTP response, once it is complete (framed by h11).

    The body is complete when ``Content-Length`` bytes arrived, the last
    chunk of a chunked body did, or the peer closed (a body without either
    ends at the close; one cut short by the close is returned as it is).

    Raises:
        NeedMoreData: The body is not complete yet and the peer is still open.
    """
    framed = _frame(data, closed)
    if framed.complete or closed:
        return framed.body
    raise NeedMoreData("HTTP body incomplete")


def http_body_so_far(data: bytes) -> bytes:
    """The body bytes received so far (de-chunked), complete or not."""
    return _frame(data, False).body


#: Who wrote an XML-RPC document, from its surface: ``ocaml`` (ocaml-rpc, as
#: xapi: double-quoted XML declaration, bare ``<value>text</value>``),
#: ``python`` (xmlrpclib, as xend: single quotes, ``<value><string>``), or
#: ``other``.
RpcShape = Literal["ocaml", "python", "other"]


def xmlrpc_shape(body: bytes) -> RpcShape:
    """Tell ocaml-rpc (xapi) from Python xmlrpclib (xend) by how they write XML."""
    head = body.lstrip()[:64]
    bare_string = re.search(rb"<value>[^<]", body) is not None
    typed_string = b"<value><string>" in body
    if head.startswith(b'<?xml version="1.0"?>') and bare_string and not typed_string:
        return "ocaml"
    if head.startswith(b"<?xml version='1.0'?>") and typed_string:
        return "python"
    return "other"


#: An XML-RPC value, as this module decodes it.
RpcValue = str | int | float | bool | list["RpcValue"] | dict[str, "RpcValue"] | None


@dataclass(frozen=True, slots=True)
class XmlRpcReply:
    """A decoded XML-RPC ``methodResponse``.

    Attributes:
        value: The single returned value (``None`` for a fault).
        fault: The fault string, if the reply was a ``<fault>``.
        shape: Who wrote the document (see :data:`RpcShape`).
    """

    value: RpcValue
    fault: str | None
    shape: RpcShape


_MAX_DEPTH = 16


def _scalar(kind: Callable[[str], RpcValue], what: str) -> Callable[[str], RpcValue]:
    def decode(text: str) -> RpcValue:
        try:
            return kind(text.strip())
        except ValueError as error:
            raise ReplyError(f"bad XML-RPC {what}") from error

    return decode


#: Scalar XML-RPC types, by tag (a ``<string>`` keeps its text as is).
_SCALARS: dict[str, Callable[[str], RpcValue]] = {
    "int": _scalar(int, "int"),
    "i4": _scalar(int, "int"),
    "i8": _scalar(int, "int"),
    "boolean": lambda text: text.strip() == "1",
    "double": _scalar(float, "double"),
}


def _decode_struct(typed: ET.Element, depth: int) -> RpcValue:
    result: dict[str, RpcValue] = {}
    for member in typed.findall("member"):
        name = member.find("name")
        value = member.find("value")
        if name is None or value is None:
            raise ReplyError("bad XML-RPC struct member")
        result[name.text or ""] = _decode_value(value, depth + 1)
    return result


def _decode_value(node: ET.Element, depth: int = 0) -> RpcValue:
    if depth > _MAX_DEPTH:
        raise ReplyError("XML-RPC value nested too deep")
    children = list(node)
    if not children:
        return node.text or ""
    typed = children[0]
    text = typed.text or ""
    if typed.tag in _SCALARS:
        return _SCALARS[typed.tag](text)
    if typed.tag == "array":
        data = typed.find("data")
        items = [] if data is None else data.findall("value")
        return [_decode_value(item, depth + 1) for item in items]
    if typed.tag == "struct":
        return _decode_struct(typed, depth)
    return text


def decode_xmlrpc(body: bytes) -> XmlRpcReply | None:
    """Decode an XML-RPC ``methodResponse`` without trusting it.

    Documents with a DTD (``<!``) are refused before they reach the XML
    parser, so no entity can expand.

    Returns:
        The reply, or ``None`` if ``body`` is not a well-formed
        ``methodResponse`` with one value or a fault.
    """
    if b"<!" in body or b"<methodResponse" not in body:
        return None
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError):
        return None
    if root.tag != "methodResponse":
        return None
    shape = xmlrpc_shape(body)
    try:
        fault = root.find("fault/value")
        if fault is not None:
            value = _decode_value(fault)
            text = value.get("faultString") if isinstance(value, dict) else None
            return XmlRpcReply(None, str(text) if text is not None else "fault", shape)
        param = root.find("params/param/value")
        if param is None:
            return None
        return XmlRpcReply(_decode_value(param), None, shape)
    except ReplyError:
        return None


def xenapi_failure(value: RpcValue) -> list[str] | None:
    """Return the ``ErrorDescription`` of a Xen-API ``Failure`` struct, else ``None``.

    Xen-API servers (xapi, and xend's Xen-API server) answer errors as a
    normal struct ``{'Status': 'Failure', 'ErrorDescription': [code, ...]}``
    rather than an XML-RPC fault.
    """
    if not isinstance(value, dict) or value.get("Status") != "Failure":
        return None
    description = value.get("ErrorDescription")
    if not isinstance(description, list) or not description:
        return None
    return [str(item) for item in description]


def xenapi_failure_fingerprint(failure: list[str], shape: RpcShape) -> Fingerprint:
    """Tell who wrote a Xen-API ``Failure`` struct.

    The struct itself is the Xen-API convention; the XML surface tells xapi
    (ocaml-rpc) from xend's XML-RPC servers (Python xmlrpclib).
    """
    code = failure[0].encode("ascii", "backslashreplace")
    if shape == "ocaml":
        return Fingerprint("xapi", "confirmed", evidence("Xen-API Failure (ocaml-rpc)", code))
    if shape == "python":
        return Fingerprint(
            "xend-xmlrpc", "confirmed", evidence("Xen-API Failure (xmlrpclib)", code)
        )
    return Fingerprint("xapi", "likely", evidence("Xen-API Failure struct", code))


def http_host(address: str) -> str:
    """Return the ``Host`` header value for ``address``: an IP literal, or a fixed name.

    Only IP literals are echoed (IPv6 in brackets), so no caller text can
    smuggle a word into a request; anything else becomes ``localhost``.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "localhost"
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


def http_post(path: str, host: str, content_type: str, body: bytes, *, http10: bool) -> bytes:
    """Build an HTTP POST request with ``Connection: close``.

    Args:
        path: The request target, e.g. ``/RPC2``.
        host: The address the request goes to (see :func:`http_host`).
        content_type: The body's media type.
        body: The request body.
        http10: Send ``HTTP/1.0`` rather than ``HTTP/1.1``.
    """
    version = "HTTP/1.0" if http10 else "HTTP/1.1"
    head = (
        f"POST {path} {version}\r\n"
        f"Host: {http_host(host)}\r\n"
        f"User-Agent: xendiscover\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body
