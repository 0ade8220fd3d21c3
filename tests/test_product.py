"""Every xapi reply shape on its own, product and version with confidence, and nmap's recordings.

Pure tests over bytes: the upstream shapes (xen-api ``http_svr.ml``,
``http.ml``), the fakes' releases, and the match lines nmap recorded from
real XenServer, XCP and xend hosts (Debian ``nmap``'s
``/usr/share/nmap/nmap-service-probes``, read at test time).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import xendiscover
from xendiscover._fingerprint import fingerprint_port
from xendiscover._fingerprint._common import ReplyParser, http_body, parse_http_head
from xendiscover._fingerprint._product import (
    LIST_METHODS_CAP,
    POOL_CERTIFICATE,
    XAPI_MESSAGE_FLOORS,
    combine_xapi,
    libvirt_product,
    version_key,
    xapi_floor,
    xapi_landing_page,
    xapi_layout,
    xend_help_product,
    xend_python_product,
)
from xendiscover._fingerprint._xapi import (
    parse_isalive_jsonrpc,
    parse_isalive_xmlrpc,
    parse_list_methods,
    parse_page,
)
from xendiscover._fingerprint._xend import parse_http, parse_relocation, parse_xmlrpc
from xendiscover._model import Fingerprint, Product
from xendiscover.testing import FakeLibvirt, FakeXapi, FakeXenOrchestra, XapiIdentity
from xendiscover.testing._xapi import (
    _XAPI_403,
    _XAPI_404,
    _XAPI_ERROR_HEADERS,
    _XAPI_OPTIONS_HEADERS,
    _XAPI_PAGE_HEADERS,
    XAPI_RELEASES,
    _ocaml_response,
    _xapi_wire,
    xapi_messages,
)

NONCE = "0f6a3c2e-54b1-4f7d-9c1e-8a2b3c4d5e6f"
NMAP_PROBES = Path("/usr/share/nmap/nmap-service-probes")

#: Every parser that reads an HTTP reply: a xapi reply must be recognised by each.
HTTP_PARSERS: tuple[ReplyParser, ...] = (
    parse_http,
    parse_page,
    parse_isalive_xmlrpc,
    parse_isalive_jsonrpc,
    parse_xmlrpc,
    parse_list_methods,
)


def wire(layout: str, status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    return _xapi_wire(layout, "HTTP/1.1", status, headers, body)  # type: ignore[arg-type]


def page_404(layout: str = "spaced") -> bytes:
    body = _XAPI_404.format(path="/nothing").encode()
    return wire(layout, "404 Not Found", _XAPI_ERROR_HEADERS[1:], body)


# --------------------------------------------------------------------------- every shape

XAPI_SHAPES: dict[str, bytes] = {
    "403 (https-only, spaced)": wire("spaced", "403 Forbidden", _XAPI_ERROR_HEADERS, _XAPI_403),
    "403 (compact era)": wire("compact", "403 Forbidden", _XAPI_ERROR_HEADERS, _XAPI_403),
    "301 to https": wire("spaced", "301 Moved Permanently", [("location", "https://h/")], b""),
    "404 page": page_404(),
    "404 page (capitalised era)": page_404("capitalised"),
    "OPTIONS": wire("spaced", "200 OK", _XAPI_OPTIONS_HEADERS, b""),
    "MESSAGE_METHOD_UNKNOWN (XML-RPC)": wire(
        "compact",
        "200 OK",
        [("content-type", "text/xml")],
        _ocaml_response(
            {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", "x.y"]}
        ),
    ),
    "MESSAGE_METHOD_UNKNOWN (JSON-RPC 2.0)": wire(
        "spaced",
        "200 OK",
        [("content-type", "application/json")],
        b'{"jsonrpc":"2.0","error":{"code":1,"message":"MESSAGE_METHOD_UNKNOWN",'
        b'"data":["x.y"]},"id":1}',
    ),
    "listMethods": wire(
        "spaced",
        "200 OK",
        [("content-type", "text/xml")],
        _ocaml_response({"Status": "Success", "Value": list(xapi_messages("24.17.0"))}),
    ),
    **{
        f"landing page {release.name}": wire(
            release.layout, "200 OK", _XAPI_PAGE_HEADERS, release.page
        )
        for release in XAPI_RELEASES.values()
    },
}


@pytest.mark.parametrize("parse", HTTP_PARSERS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("shape", sorted(XAPI_SHAPES))
def test_every_xapi_reply_shape_is_xapi_whichever_probe_reads_it(
    shape: str, parse: ReplyParser
) -> None:
    reply = XAPI_SHAPES[shape]
    found = parse(reply, closed=True, nonce=NONCE)
    assert isinstance(found, Fingerprint)
    if parse is parse_isalive_jsonrpc and shape.endswith("(XML-RPC)"):
        # a Xen-API Failure in XML where JSON was asked: xapi answers JSON there
        assert found.verdict != "not-xen"
        return
    assert found.service == "xapi", found
    assert found.verdict in ("confirmed", "likely")
    assert found.product is not None
    assert found.product.confidence in ("certain", "firm", "tentative")


NOT_RECOGNISED = {
    "a bare 403": b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n",
    "a 200 with an empty body": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
}
SOMETHING_ELSE = {
    "nginx's banner": (
        b"HTTP/1.1 404 Not Found\r\nServer: nginx/1.24.0\r\nContent-Length: 0\r\n\r\n"
    ),
    "Express": b"HTTP/1.1 404 Not Found\r\nX-Powered-By: Express\r\nContent-Length: 0\r\n\r\n",
    "another page": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 44\r\n\r\n<html><title>Router login</title></html>    "
    ),
}


@pytest.mark.parametrize("parse", HTTP_PARSERS, ids=lambda p: p.__name__)
def test_not_xen_needs_positive_evidence_of_something_else(parse: ReplyParser) -> None:
    for reply in NOT_RECOGNISED.values():
        found = parse(reply, closed=True, nonce=NONCE)
        assert isinstance(found, Fingerprint)
        assert found.verdict == "unknown", (reply, found)
    for reply in SOMETHING_ELSE.values():
        found = parse(reply, closed=True, nonce=NONCE)
        assert isinstance(found, Fingerprint)
        assert found.verdict == "not-xen", (reply, found)


XO_REPLY = (
    b"HTTP/1.1 302 Found\r\nX-DNS-Prefetch-Control: off\r\nX-Frame-Options: SAMEORIGIN\r\n"
    b"X-Download-Options: noopen\r\nX-Content-Type-Options: nosniff\r\n"
    b"X-XSS-Protection: 1; mode=block\r\nLocation: /signin\r\nVary: Accept\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\n"
    b"set-cookie: connect.sid=s%3Aabc; Path=/; HttpOnly\r\nDate: Sun, 06 Dec 2026 07:00:00 GMT\r\n"
    b"Connection: close\r\n\r\nFound. Redirecting to /signin"
)


@pytest.mark.parametrize("parse", HTTP_PARSERS, ids=lambda p: p.__name__)
def test_xen_orchestra_is_an_appliance_never_a_host(parse: ReplyParser) -> None:
    found = parse(XO_REPLY, closed=True, nonce=NONCE)
    assert isinstance(found, Fingerprint)
    assert found.service is None
    assert found.verdict == "not-xen"
    assert found.product is not None
    assert found.product.name == "Xen Orchestra"
    assert found.product.cpe == "cpe:/a:vates:xen_orchestra"


# --------------------------------------------------------------------------- h11 framing


def test_a_chunked_xapi_reply_is_read() -> None:
    body = _ocaml_response({"Status": "Success", "Value": NONCE})
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:50], body[50:])
    )
    reply = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    found = parse_isalive_xmlrpc(reply, closed=False, nonce=NONCE)
    assert (found.service, found.verdict) == ("xapi", "confirmed")


def test_http_1_0_bodies_end_at_the_close_and_content_length_is_honoured() -> None:
    reply = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc"
    head = parse_http_head(reply, closed=False)
    assert head is not None
    assert head.version == "HTTP/1.0"
    assert http_body(reply, head, closed=True) == b"abc"
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef"
    sized_head = parse_http_head(sized, closed=False)
    assert sized_head is not None
    assert http_body(sized, sized_head, closed=False) == b"abc"


# --------------------------------------------------------------------------- product rules


@pytest.mark.parametrize(
    ("layout", "version", "info"),
    [("capitalised", None, "header layout before mid-2011"), ("compact", "<= 23.30", None),
     ("spaced", ">= 23.31", None)],
)  # fmt: skip
def test_header_layout_gives_the_xapi_era(layout: str, version: str | None, info: str) -> None:
    found = xapi_layout(page_404(layout))
    assert found is not None
    assert (found.version, found.info, found.confidence) == (version, info, "firm")


def test_the_floor_table_is_sorted_sourced_and_above_8_2() -> None:
    versions = [version_key(first) for _, first, _ in XAPI_MESSAGE_FLOORS]
    assert versions == sorted(versions)
    assert all(v > (1, 249) for v in versions)
    assert all("datamodel_lifecycle.ml" in source for _, _, source in XAPI_MESSAGE_FLOORS)
    assert xapi_floor(xapi_messages("1.249.0")) is None  # Citrix Hypervisor 8.2 / XCP-ng 8.2
    floor = xapi_floor(xapi_messages("24.17.0"))
    assert floor is not None
    assert floor.version == ">= 24.17.0"


def test_list_methods_is_read_with_its_own_documented_cap() -> None:
    reply = XAPI_SHAPES["listMethods"]
    assert 4096 < len(reply) < LIST_METHODS_CAP
    found = parse_list_methods(reply, closed=False)
    assert found.product is not None
    assert (found.product.name, found.product.version) == ("xapi", ">= 24.17.0")


@pytest.mark.parametrize(
    ("key", "name", "version", "cpe"),
    [
        ("xenserver-6.0", "XenServer", "6.0.2", "cpe:/a:citrix:xenserver:6.0.2"),
        ("xcp-1.1", "XCP", "1.1", None),
        ("xenserver-7.1", "XenServer", "7.1.2", "cpe:/a:citrix:xenserver:7.1.2"),
        ("xcp-ng-8.2", "XCP-ng", "8.2.1", None),
        ("xcp-ng-8.3", "XCP-ng", "8.3", None),
        ("xenserver-8", "XenServer", "8", "cpe:/a:citrix:xenserver:8"),
    ],
)
def test_landing_pages_name_brand_and_version_tentatively(
    key: str, name: str, version: str, cpe: str | None
) -> None:
    found = xapi_landing_page(XAPI_RELEASES[key].page)
    assert found is not None
    assert (found.name, found.version, found.cpe, found.confidence) == (
        name,
        version,
        cpe,
        "tentative",
    )


def test_xo_lite_with_a_floor_is_xcp_ng_8_3_firm_and_alone_tentative() -> None:
    page = xapi_landing_page(XAPI_RELEASES["xcp-ng-8.3"].page)
    alone = combine_xapi([page])
    with_floor = combine_xapi([page, xapi_floor(xapi_messages("25.6.0"))])
    with_pool = combine_xapi([page, POOL_CERTIFICATE])
    assert alone is not None
    assert with_floor is not None
    assert with_pool is not None
    assert alone.confidence == "tentative"
    assert with_floor.describe() == "XCP-ng 8.3 (xapi >= 25.2.0)"
    assert (with_floor.confidence, with_pool.confidence) == ("firm", "firm")


def test_bounds_combine_into_one_range() -> None:
    clues = [
        Product("xapi", None, "certain"),
        Product("xapi", ">= 22.27.0", "firm"),
        POOL_CERTIFICATE,
        Product("xapi", "<= 23.30", "firm"),
    ]
    found = combine_xapi(clues)
    assert found is not None
    assert (found.version, found.confidence) == (">= 22.27.0, <= 23.30", "firm")
    again = combine_xapi([found, Product("xapi", ">= 23.14.0", "firm")])
    assert again is not None
    assert again.version == ">= 23.14.0, <= 23.30"


@pytest.mark.parametrize(
    ("line", "version"),
    [(b"(ok (help quit receive sslreceive))", ">= 3.3"), (b"(ok (help quit receive))", "<= 3.2")],
)
def test_xend_help_era(line: bytes, version: str) -> None:
    found = parse_relocation(line + b"\n", closed=False)
    assert found.product == xend_help_product(line)
    assert found.product is not None
    assert (found.product.name, found.product.version) == ("xend", version)


def test_dom0_python_from_server_header() -> None:
    found = xend_python_product(server="BaseHTTP/0.3 Python/2.4.3")
    assert found is not None
    assert found.info == "dom0 Python 2.4.3"
    assert xend_python_product(server="nginx") is None


@pytest.mark.parametrize(
    ("kind", "version", "name", "shown", "cpe"),
    [
        ("Xen", 4017000, "Xen", "4.17.0", "cpe:/o:xen:xen:4.17.0"),
        ("QEMU", 8002002, "QEMU", "8.2.2", None),
        (None, None, "libvirt", None, "cpe:/a:redhat:libvirt"),
    ],
)
def test_libvirt_hypervisor_version(
    kind: str | None, version: int | None, name: str, shown: str | None, cpe: str | None
) -> None:
    found = libvirt_product(kind, version)
    assert (found.name, found.version, found.cpe) == (name, shown, cpe)


# --------------------------------------------------------------------------- nmap's recordings

#: nmap-service-probes match lines for Xen products, by their ``p/`` name (and
#: ``i/`` for xend's relocation lines), and what each recorded reply must give.
NMAP_CASES: dict[str, tuple[str, Callable[[], bytes], ReplyParser, str | None, str | None]] = {
    # name: (product text in the line, sample reply, parser, service, product name)
    "xend http": (
        "p/Xen http config/",
        lambda: (
            b"HTTP/1.1 200 OK\r\nContent-length: 7\r\nExpires: -1\r\n"
            b"Content-type: application/sxp\r\nPragma: no-cache\r\nCache-control: no-cache\r\n"
            b"\r\n(ls )''"
        ),
        parse_http,
        "xend-http",
        None,
    ),
    "XenServer page": (
        "p/Citrix Xen Simple HTTP Server/ i/XenServer $1/",
        lambda: XAPI_SHAPES["landing page XenServer 6.0.2"],
        parse_http,
        "xapi",
        "XenServer",
    ),
    "XCP page": (
        "p/Xen Cloud Platform httpd/",
        lambda: XAPI_SHAPES["landing page XCP 1.1"],
        parse_http,
        "xapi",
        "XCP",
    ),
    "xapi OPTIONS (old)": (
        "No handler table for HTTP method Unknown OPTIONS",
        lambda: (
            b"HTTP/1.0 500 Internal Error\r\nConnection: close\r\n"
            b"Cache-Control: no-cache, no-store\r\n\r\n<html><body><h1>Internal Server Error"
            b"</h1>Failure(&quot;No handler table for HTTP method Unknown OPTIONS&quot;)"
            b"</body></html>"
        ),
        parse_http,
        "xapi",
        "xapi",
    ),
    "Xen Orchestra": ("p/Xen Orchestra/", lambda: XO_REPLY, parse_page, None, "Xen Orchestra"),
    "xend relocation, Python <= 2.4": (
        r"m|^\(err \(type xen\.xend",
        lambda: b"(err (type xen.xend.XendError.XendError) (value 'Invalid operation: GET'))\n",
        parse_http,
        "xend-relocation",
        "xend",
    ),
    "xend relocation, Python >= 2.5": (
        r"m|^\(err \(type \"<class",
        lambda: (
            b"(err (type \"<class 'xen.xend.XendError.XendError'>\") "
            b"(value 'Invalid operation: GET'))\n"
        ),
        parse_http,
        "xend-relocation",
        "xend",
    ),
}


#: The products of nmap's Xen lines (xend's relocation lines are "Oracle
#: Virtual Service Agent" with extra info "Xen").
_XEN_PRODUCTS = (
    r"p/(Xen http config|Citrix Xen Simple HTTP Server|Xen Cloud Platform httpd|Xen Orchestra)/"
    r"|p/Oracle Virtual Service Agent/ i/Xen/"
)


def _nmap_regex(line: str) -> re.Pattern[bytes]:
    """The regex of one ``match`` line (``m|...|flags``), as Python compiles it."""
    match = re.match(r"match \S+ m\|(.*?)\|([si]*)(?: |$)", line)
    assert match is not None, line
    flags = re.DOTALL if "s" in match[2] else 0
    flags |= re.IGNORECASE if "i" in match[2] else 0
    return re.compile(match[1].encode("latin-1"), flags)


def _nmap_lines() -> list[str]:
    # Debian's nmap is a test dependency (.ci/debian-packages): missing, it is a failure.
    return NMAP_PROBES.read_text(encoding="latin-1").splitlines()


@pytest.mark.parametrize("case", sorted(NMAP_CASES))
def test_nmaps_recorded_xen_replies(case: str) -> None:
    marker, sample, parse, service, product = NMAP_CASES[case]
    lines = [line for line in _nmap_lines() if line.startswith("match ") and marker in line]
    assert lines, f"no nmap-service-probes match line has {marker!r}"
    reply = sample()
    assert any(_nmap_regex(line).search(reply) for line in lines), "nmap would not match it"
    found = parse(reply, closed=True, nonce=NONCE)
    assert isinstance(found, Fingerprint)
    assert found.service == service, found
    assert found.verdict == ("not-xen" if service is None else found.verdict)
    assert found.verdict != "unknown"
    name = found.product.name if found.product is not None else None
    assert name == product, found


def test_every_xen_line_of_nmap_is_covered() -> None:
    xen = [
        line
        for line in _nmap_lines()
        if line.startswith("match ") and re.search(_XEN_PRODUCTS, line)
    ]
    assert len(xen) >= 6
    samples = [sample() for _, sample, _, _, _ in NMAP_CASES.values()]
    for line in xen:
        regex = _nmap_regex(line)
        assert any(regex.search(reply) for reply in samples), f"no sample for: {line[:100]}"


def test_jsonrpc_error_objects_confirm_xapi_only_with_its_shape() -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1}
    ).encode()
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    assert parse_isalive_jsonrpc(reply, closed=True, nonce=NONCE).verdict == "not-xen"


# --------------------------------------------------------------------------- on loopback

_loop = iter(f"127.71.{a}.{b}" for a in range(1, 250) for b in range(2, 250))

#: release key -> (the port it stands in for, a pool certificate?, the product it shows)
RELEASE_CASES = {
    "xenserver-6.0": (443, False, "XenServer 6.0.2 (header layout before mid-2011)"),
    "xcp-1.1": (443, False, "XCP 1.1 (header layout before mid-2011)"),
    "xenserver-7.1": (443, False, "XenServer 7.1.2 (xapi <= 23.30)"),
    "xcp-ng-8.2": (443, False, "XCP-ng 8.2.1 (xapi <= 23.30)"),
    "xcp-ng-8.3": (443, True, "XCP-ng 8.3 (xapi >= 25.2.0)"),
    "xenserver-8": (443, True, "XenServer 8 (xapi >= 25.2.0)"),
}


@pytest.mark.parametrize("key", sorted(RELEASE_CASES))
async def test_each_release_gives_its_product_version_and_identity(key: str) -> None:
    port, pool, text = RELEASE_CASES[key]
    identity = XapiIdentity(f"{key}.example", pool_certificate=pool)
    async with FakeXapi(next(_loop), tls=True, release=key, identity=identity) as xapi:
        found = await fingerprint_port(xapi.host, xapi.port, timeout=2.0, plan_port=port)
        assert not any(b"login_with_password" in sent for sent in xapi.received)
    assert found.service == "xapi"
    assert found.verdict == "confirmed"
    assert found.product is not None
    assert found.product.describe() == text
    assert found.host_uuid == (identity.uuid if pool else None)
    assert len(found.key_fingerprints) == (2 if pool else 1)


@pytest.mark.parametrize("key", sorted(RELEASE_CASES))
async def test_port_80_of_each_release_is_xapi(key: str) -> None:
    async with FakeXapi(next(_loop), release=key) as xapi:
        found = await fingerprint_port(xapi.host, xapi.port, timeout=2.0, plan_port=80)
    assert (found.service, found.verdict) == ("xapi", "confirmed")
    assert found.product is not None


async def test_xen_orchestra_on_loopback_is_not_a_host() -> None:
    async with FakeXenOrchestra(next(_loop), tls=True) as xo:
        found = await fingerprint_port(xo.host, xo.port, timeout=2.0, plan_port=443)
        hosts = await xendiscover.discover([xo.host], port=xo.port, resolve=False, timeout=2.0)
    assert (found.service, found.verdict) == (None, "not-xen")
    assert found.product is not None
    assert found.product.name == "Xen Orchestra"
    assert hosts == []  # not listed among the Xen machines


async def test_libvirt_auth_none_names_the_xen_version() -> None:
    async with FakeLibvirt(next(_loop), auth_types=(0,), hv_type="Xen", hv_version=4017000) as lv:
        found = await fingerprint_port(lv.host, lv.port, timeout=2.0, plan_port=16509)
    assert (found.service, found.verdict) == ("libvirt", "confirmed")
    assert found.product is not None
    assert (found.product.name, found.product.version, found.product.cpe) == (
        "Xen",
        "4.17.0",
        "cpe:/o:xen:xen:4.17.0",
    )
