"""The sans-IO reply parsers, from recorded and derived replies: no sockets here."""

from __future__ import annotations

import struct
import uuid
import xmlrpc.client
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xendiscover._fingerprint import PROBES
from xendiscover._fingerprint._common import (
    EVIDENCE_LIMIT,
    Continue,
    NeedMoreData,
    ReplyError,
    ReplyParser,
    decode_xmlrpc,
    evidence,
    excerpt,
    parse_http_head,
)
from xendiscover._fingerprint._libvirt import AUTH_LIST_REQUEST, encode_packet, parse_auth_list
from xendiscover._fingerprint._probes import TLS_HELLO, check_request
from xendiscover._fingerprint._xapi import parse_isalive_jsonrpc, parse_isalive_xmlrpc
from xendiscover._fingerprint._xend import (
    HOSTS_ALLOW_EVIDENCE,
    parse_http,
    parse_relocation,
    parse_xmlrpc,
)
from xendiscover._model import Fingerprint, Service, Verdict

NONCE = "0f6a3c2e-54b1-4f7d-9c1e-8a2b3c4d5e6f"


def http(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [status, *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def xapi_reply(body: bytes) -> bytes:
    headers = [
        ("content-length", str(len(body))),
        ("content-type", "text/xml"),
        ("cache-control", "no-cache, no-store"),
        ("Access-Control-Allow-Origin", "*"),
    ]
    return http("HTTP/1.1 200 OK", headers, body)


def python_reply(value: Any) -> bytes:
    """A reply as xend 4.4's XMLRPCRequestHandler writes it (xmlrpclib2.py, BaseHTTP)."""
    body = xmlrpc.client.dumps((value,), methodresponse=True).encode()
    headers = [
        ("Server", "BaseHTTP/0.3 Python/2.7.3"),
        ("Date", "Thu, 26 Nov 2026 13:56:40 GMT"),
        ("Content-Type", "text/xml"),
        ("Content-Length", str(len(body))),
    ]
    return http("HTTP/1.1 200 OK", headers, body)


# --- recorded and derived replies (see the protocol notes) ---------------------

RELOCATION_HELP = b"(ok (help quit receive sslreceive))\n"
RELOCATION_HELP_OLD = b"(ok (help quit receive))\n"
RELOCATION_ERR = (
    b"(err (type \"<class 'xen.xend.XendError.XendError'>\") (value 'Invalid operation: GET'))\n"
)
RELOCATION_ERR_PY24 = (
    b"(err (type xen.xend.XendError.XendError) (value 'Invalid operation: GET'))\n"
)
XEND_SXP = (  # the real 4.4.0 server's answer to GET / with Host, no User-Agent
    b"HTTP/1.1 200 OK\r\nContent-length: 7\r\nExpires: -1\r\nContent-type: application/sxp\r\n"
    b"Pragma: no-cache\r\nCache-control: no-cache\r\n\r\n(ls )''"
)
NGINX_404 = http(
    "HTTP/1.1 404 Not Found",
    [("Server", "nginx/1.24.0"), ("Content-Type", "text/html"), ("Content-Length", "22")],
    b"<html>Not Found</html>",
)
NGINX_405 = http(
    "HTTP/1.1 405 Not Allowed",
    [("Server", "nginx"), ("Content-Type", "text/html"), ("Content-Length", "9")],
    b"<html/>..",
)
XAPI_ECHO = xapi_reply(
    b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
    b"<member><name>Status</name><value>Success</value></member>"
    b"<member><name>Value</name><value>" + NONCE.encode() + b"</value></member>"
    b"</struct></value></param></params></methodResponse>"
)
XAPI_UNKNOWN = xapi_reply(
    b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
    b"<member><name>Status</name><value>Failure</value></member>"
    b"<member><name>ErrorDescription</name><value><array><data>"
    b"<value>MESSAGE_METHOD_UNKNOWN</value><value>system.isAlive:" + NONCE.encode() + b"</value>"
    b"</data></array></value></member></struct></value></param></params></methodResponse>"
)
XEND_LIST = python_reply(["system.listMethods", "xend.domains", "xend.node.info"])
XEND_XENAPI_LIST = python_reply(["session.login_with_password", "VM.get_all"])
XEND_UNKNOWN = python_reply(
    {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", "system.isAlive:x"]}
)
OTHER_XMLRPC_LIST = python_reply(["system.listMethods", "wiki.getPage"])
XMLRPC_FAULT = http(
    "HTTP/1.1 200 OK",
    [("Content-Type", "text/xml")],
    xmlrpc.client.dumps(xmlrpc.client.Fault(1, "method not found"), methodresponse=True).encode(),
)
JSON_ECHO = http(
    "HTTP/1.1 200 OK",
    [("content-type", "application/json")],
    b'{"jsonrpc":"2.0","result":"' + NONCE.encode() + b'","id":1}',
)
JSON_UNKNOWN = http(  # ocaml-rpc jsonrpc.ml: a V2 error is the Xen-API error array
    "HTTP/1.1 200 OK",
    [("content-type", "application/json")],
    b'{"jsonrpc":"2.0","error":["MESSAGE_METHOD_UNKNOWN","system.isAlive:x"],"id":1}',
)
JSON_OTHER_ERROR = http(
    "HTTP/1.1 200 OK",
    [("content-type", "application/json")],
    b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}',
)
LIBVIRT_REPLY = encode_packet(66, kind=1, serial=1, status=0, payload=struct.pack(">Ii", 1, 1))
LIBVIRT_ERROR = encode_packet(66, kind=1, serial=1, status=1, payload=b"\x00" * 8)
BILLION_LAUGHS = xapi_reply(
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><methodResponse><params><param>'
    b"<value>&lol2;</value></param></params></methodResponse>"
)

RECORDED = [
    RELOCATION_HELP,
    RELOCATION_HELP_OLD,
    RELOCATION_ERR,
    RELOCATION_ERR_PY24,
    XEND_SXP,
    NGINX_404,
    NGINX_405,
    XAPI_ECHO,
    XAPI_UNKNOWN,
    XEND_LIST,
    XEND_XENAPI_LIST,
    XEND_UNKNOWN,
    OTHER_XMLRPC_LIST,
    XMLRPC_FAULT,
    JSON_ECHO,
    JSON_UNKNOWN,
    JSON_OTHER_ERROR,
    LIBVIRT_REPLY,
    LIBVIRT_ERROR,
    BILLION_LAUGHS,
]

Case = tuple[ReplyParser, bytes, bool, Service | None, Verdict]

CASES: list[Case] = [
    # relocation (8002), reply to (help)
    (parse_relocation, RELOCATION_HELP, False, "xend-relocation", "confirmed"),
    (parse_relocation, RELOCATION_HELP_OLD, True, "xend-relocation", "confirmed"),
    (parse_relocation, RELOCATION_ERR, True, "xend-relocation", "confirmed"),
    (parse_relocation, RELOCATION_ERR_PY24, False, "xend-relocation", "confirmed"),
    (parse_relocation, b"", True, "xend-relocation", "likely"),
    (parse_relocation, NGINX_404, True, None, "not-xen"),
    (parse_relocation, b"HTTP/1.1 400", False, None, "not-xen"),
    (parse_relocation, b"SSH-2.0-OpenSSH_9.6\r\n", False, None, "not-xen"),
    (parse_relocation, b"(err (type foo) (value bar))\n", False, None, "unknown"),
    (parse_relocation, b"(ok (he", True, None, "unknown"),
    (parse_relocation, b"\x00\xff\x15", True, None, "not-xen"),
    (parse_relocation, LIBVIRT_REPLY, True, None, "not-xen"),
    # HTTP/SXP (8000), reply to GET / without User-Agent
    (parse_http, XEND_SXP, False, "xend-http", "confirmed"),
    (parse_http, XEND_SXP.replace(b"(ls )", b"(xend)"), True, "xend-http", "likely"),
    (parse_http, RELOCATION_ERR, False, "xend-relocation", "confirmed"),
    (parse_http, NGINX_404, False, None, "not-xen"),
    # A bare 403 is not positive evidence of another server: not recognised, unknown.
    (parse_http, b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n", False, None, "unknown"),
    (parse_http, XEND_SXP[:30], True, None, "not-xen"),
    (parse_http, b"", True, None, "unknown"),
    (parse_http, b"220 smtp.example ESMTP\r\n", False, None, "not-xen"),
    # xend XML-RPC (8006, 9363), reply to system.listMethods
    (parse_xmlrpc, XEND_LIST, False, "xend-xmlrpc", "confirmed"),
    (parse_xmlrpc, XEND_XENAPI_LIST, False, "xend-xmlrpc", "likely"),
    (parse_xmlrpc, XEND_UNKNOWN, False, "xend-xmlrpc", "confirmed"),
    (parse_xmlrpc, XAPI_UNKNOWN, False, "xapi", "confirmed"),
    (parse_xmlrpc, OTHER_XMLRPC_LIST, False, None, "not-xen"),
    (parse_xmlrpc, XMLRPC_FAULT, True, None, "not-xen"),
    (parse_xmlrpc, NGINX_405, False, None, "not-xen"),
    (parse_xmlrpc, BILLION_LAUGHS, False, None, "unknown"),  # refused unread: no evidence
    (parse_xmlrpc, XEND_LIST[:-20], True, "xend-xmlrpc", "confirmed"),  # prefix decides
    (parse_xmlrpc, OTHER_XMLRPC_LIST[:-20], True, None, "not-xen"),
    # xapi XML-RPC, reply to system.isAlive:<uuid>
    (parse_isalive_xmlrpc, XAPI_ECHO, False, "xapi", "confirmed"),
    (
        parse_isalive_xmlrpc,
        XAPI_ECHO.replace(NONCE[:8].encode(), b"ffffffff"),
        False,
        "xapi",
        "likely",
    ),
    (parse_isalive_xmlrpc, XAPI_UNKNOWN, False, "xapi", "confirmed"),
    (parse_isalive_xmlrpc, XEND_UNKNOWN, False, "xend-xmlrpc", "confirmed"),
    (parse_isalive_xmlrpc, NGINX_405, False, None, "not-xen"),
    (parse_isalive_xmlrpc, XMLRPC_FAULT, True, None, "not-xen"),
    (parse_isalive_xmlrpc, BILLION_LAUGHS, False, None, "unknown"),
    (parse_isalive_xmlrpc, RELOCATION_ERR, False, "xend-relocation", "confirmed"),
    (
        parse_isalive_xmlrpc,
        http(
            "HTTP/1.1 404 Not Found",
            [("content-length", "38")],
            b"<html><address>Xapi Server</address>..",
        ),
        False,
        "xapi",
        "likely",
    ),
    (
        parse_isalive_xmlrpc,
        http("HTTP/1.1 200 OK", [], b"<html><title>XO Lite</title></html>"),
        True,
        "xapi",
        "likely",
    ),
    (parse_isalive_xmlrpc, XAPI_ECHO[:60], True, None, "not-xen"),
    (parse_isalive_xmlrpc, b"\x15\x03\x01\x00\x02\x02\x46", True, None, "not-xen"),
    # xapi JSON-RPC
    (parse_isalive_jsonrpc, JSON_ECHO, True, "xapi", "confirmed"),
    (parse_isalive_jsonrpc, JSON_UNKNOWN, True, "xapi", "confirmed"),
    (parse_isalive_jsonrpc, JSON_OTHER_ERROR, True, None, "not-xen"),
    (parse_isalive_jsonrpc, NGINX_404, False, None, "not-xen"),
    (parse_isalive_jsonrpc, http("HTTP/1.1 200 OK", [], b"[" * 3000), True, None, "unknown"),
    (parse_isalive_jsonrpc, http("HTTP/1.1 200 OK", [], b'"just a string"'), True, None, "not-xen"),
    # libvirt, reply to AUTH_LIST
    (parse_auth_list, LIBVIRT_REPLY, False, "libvirt", "unknown"),
    (parse_auth_list, LIBVIRT_ERROR, False, "libvirt", "unknown"),
    (parse_auth_list, LIBVIRT_REPLY[:10], True, None, "not-xen"),
    (parse_auth_list, AUTH_LIST_REQUEST, False, None, "not-xen"),  # a CALL, not a REPLY
    (parse_auth_list, NGINX_404, False, None, "not-xen"),
    (parse_auth_list, b"\xff\xff\xff\xff" + LIBVIRT_REPLY[4:], False, None, "not-xen"),
    (parse_auth_list, b"", True, None, "unknown"),
]


@pytest.mark.parametrize(("parse", "data", "closed", "service", "verdict"), CASES)
def test_parser_verdicts(
    parse: ReplyParser, data: bytes, closed: bool, service: Service | None, verdict: Verdict
) -> None:
    found = parse(data, closed=closed, nonce=NONCE)
    assert isinstance(found, Fingerprint)
    assert (found.service, found.verdict) == (service, verdict), found
    assert len(found.evidence) <= EVIDENCE_LIMIT
    assert found.evidence.isprintable()
    assert found.evidence.isascii()


def test_hosts_allow_close_is_likely_with_its_evidence() -> None:
    found = parse_relocation(b"", closed=True)
    assert found == Fingerprint("xend-relocation", "likely", HOSTS_ALLOW_EVIDENCE)
    assert "hosts-allow" in found.evidence


@pytest.mark.parametrize(
    ("parse", "partial"),
    [
        (parse_relocation, b""),
        (parse_relocation, b"(ok (he"),
        (parse_relocation, b"(err (type \"<class 'xen.xe"),
        (parse_relocation, b"HTT"),
        (parse_http, XEND_SXP[:40]),
        (parse_http, XEND_SXP[: XEND_SXP.index(b"(ls") + 2]),
        (parse_xmlrpc, XEND_LIST[: XEND_LIST.index(b"<value><string>xend.") + 20]),
        (parse_isalive_xmlrpc, XAPI_ECHO[:-30]),
        (parse_isalive_jsonrpc, JSON_ECHO[:20]),
        (parse_auth_list, LIBVIRT_REPLY[:5]),
        (parse_auth_list, LIBVIRT_REPLY[:30]),
    ],
)
def test_truncated_reply_waits_while_open(parse: ReplyParser, partial: bytes) -> None:
    with pytest.raises(NeedMoreData):
        parse(partial, closed=False, nonce=NONCE)
    assert isinstance(parse(partial, closed=True, nonce=NONCE), Fingerprint)


def test_recorded_replies_decide_byte_by_byte_no_earlier_than_possible() -> None:
    # Fed one byte at a time, a parser waits, then decides and stays decided.
    table: list[tuple[ReplyParser, bytes, str]] = [
        (parse_relocation, RELOCATION_HELP, "confirmed"),
        (parse_http, XEND_SXP, "confirmed"),
        (parse_isalive_xmlrpc, XAPI_ECHO, "confirmed"),
        (parse_auth_list, LIBVIRT_REPLY, "unknown"),
    ]
    for parse, data, verdict in table:
        decided: Fingerprint | Continue | None = None
        for end in range(1, len(data) + 1):
            try:
                decided = parse(data[:end], closed=False, nonce=NONCE)
            except NeedMoreData:
                assert decided is None
                continue
        assert isinstance(decided, Fingerprint)
        assert decided.verdict == verdict


def test_oversized_replies_keep_evidence_short() -> None:
    huge = b"(ok (help " + b"receive " * 5000 + b"))\n"
    found = parse_relocation(huge, closed=False)
    assert found.verdict == "confirmed"
    assert len(found.evidence) <= EVIDENCE_LIMIT
    body = b"x" * 100_000
    found = parse_http(http("HTTP/1.1 200 OK", [("Server", "a" * 500)], body), closed=True)
    assert found.verdict == "not-xen"
    assert len(found.evidence) <= EVIDENCE_LIMIT


def test_excerpt_escapes_and_cuts() -> None:
    assert excerpt(b"ok\r\n\x00\xff\\") == "ok\\r\\n\\x00\\xff\\\\"
    cut = excerpt(b"a" * 200, 20)
    assert cut.endswith("...")
    assert len(cut) <= 20
    assert excerpt(b"\x00" * 50, 11) == "\\x00\\x00..."
    assert evidence("label", b"data") == "label: data"
    assert len(evidence("l" * 200, b"data")) <= EVIDENCE_LIMIT


def test_http_head_parser() -> None:
    head = parse_http_head(XEND_SXP, closed=False)
    assert head is not None
    assert head.status == 200
    assert head.get("CONTENT-TYPE") == "application/sxp"
    assert head.content_length == 7
    assert parse_http_head(b"SSH-2.0-x\r\n", closed=False) is None
    with pytest.raises(NeedMoreData):
        parse_http_head(b"HTTP/1.1 200 OK\r\nA: b", closed=False)


def test_xmlrpc_shapes() -> None:
    ocaml = decode_xmlrpc(XAPI_ECHO[XAPI_ECHO.index(b"<?xml") :])
    python = decode_xmlrpc(XEND_LIST[XEND_LIST.index(b"<?xml") :])
    assert ocaml is not None
    assert ocaml.shape == "ocaml"
    assert python is not None
    assert python.shape == "python"
    assert decode_xmlrpc(b"<methodResponse><params/>") is None


# --- property tests: any bytes give a Fingerprint or the parser's own error -----

PARSERS: list[ReplyParser] = sorted({probe.parse for probe in (*PROBES, TLS_HELLO)}, key=repr)
SERVICES = set(get_args(Service)) | {None}
VERDICTS = set(get_args(Verdict))


def check_contract(parse: ReplyParser, data: bytes, closed: bool, nonce: str) -> None:
    if closed:  # once the peer closed, every parser must decide
        found = parse(data, closed=closed, nonce=nonce)
    else:
        try:
            found = parse(data, closed=closed, nonce=nonce)
        except ReplyError:  # the parser's own error type, and only that
            return
        if isinstance(found, Continue):  # a multi-step parser asks for its next call
            assert check_request(found.request) == found.request
            assert found.step >= 1
            return
    assert isinstance(found, Fingerprint)
    assert found.service in SERVICES
    assert found.verdict in VERDICTS
    assert len(found.evidence) <= EVIDENCE_LIMIT
    assert found.evidence.isascii()
    assert found.evidence.isprintable()


replies = st.one_of(
    st.binary(max_size=2048),
    # mangled real replies reach the deep branches: cut, spliced, bit-flipped
    st.tuples(st.sampled_from(RECORDED), st.integers(0, 4096), st.binary(max_size=64)).map(
        lambda t: t[0][: t[1]] + t[2]
    ),
    st.tuples(st.sampled_from(RECORDED), st.integers(0, 4095), st.integers(0, 255)).map(
        lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]
    ),
)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: str(getattr(p, "__name__", p)))
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=replies, closed=st.booleans(), nonce=st.sampled_from([NONCE, str(uuid.uuid4()), ""]))
def test_parser_contract(parse: ReplyParser, data: bytes, closed: bool, nonce: str) -> None:
    check_contract(parse, data, closed, nonce)
