"""The sans-IO netlink parser, from kernel replies recorded in a namespace (issue 24).

The bytes are in ``tests/netlink_replies.py``; ``tests/netlink_capture.py`` built the
namespace they came from (its docstring lists the routes and neighbours).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from netlink_replies import REPLIES

from xendiscover import _netlink as nl

net = ipaddress.ip_network
addr = ipaddress.ip_address


def _main_routes(family: str) -> dict[str, nl.Route]:
    return {str(r.destination): r for r in nl.parse_routes(REPLIES[family]) if r.table == 254}


@pytest.mark.parametrize(
    ("prefix", "kind", "gateway", "oif"),
    [
        ("10.77.64.0/24", "unicast", "10.77.2.2", 3),
        ("10.77.80.0/20", "unicast", "10.77.2.2", 3),
        ("0.0.0.0/0", "unicast", "10.77.2.2", 3),
        ("0.0.0.0/1", "unicast", None, 4),
        ("128.0.0.0/1", "unicast", None, 4),
        ("10.77.99.9/32", "unicast", "10.77.2.2", 3),
        ("10.77.96.0/24", "blackhole", None, None),
        ("10.77.97.0/24", "unreachable", None, None),
        ("10.77.98.0/24", "prohibit", None, None),
        ("10.77.72.0/24", "unicast", "10.8.0.1", 4),
        ("10.77.2.0/30", "unicast", None, 3),
    ],
)
def test_main_table_ipv4_routes(prefix: str, kind: str, gateway: str | None, oif: int) -> None:
    route = _main_routes("routes4")[prefix]
    assert route.type == kind
    assert route.gateway == (addr(gateway) if gateway else None)
    assert route.oif == oif


def test_every_ipv4_route_of_the_namespace_and_no_other() -> None:
    routes = nl.parse_routes(REPLIES["routes4"])
    assert len(_main_routes("routes4")) == 12  # and the tunnel's peer, 10.8.0.1/32
    tables = {(str(r.destination), r.table, r.type) for r in routes if r.table != 254}
    assert ("10.77.80.0/20", 100, "blackhole") in tables
    assert ("127.0.0.0/8", 255, "local") in tables
    assert {r.destination.version for r in routes} == {4}


def test_on_link_route_has_link_scope_and_source() -> None:
    route = _main_routes("routes4")["10.77.2.0/30"]
    assert route.scope == 253
    assert route.prefsrc == addr("10.77.2.1")
    assert route.protocol == 2  # kernel


def test_ipv6_routes() -> None:
    routes = _main_routes("routes6")
    assert routes["fd77:99::/48"].gateway == addr("fd77:2::2")
    assert routes["fd77:2::/64"].gateway is None
    assert routes["fd77:99::/48"].destination.version == 6


def test_neighbours_with_their_states() -> None:
    found = {str(n.address): n for n in nl.parse_neighbours(REPLIES["neigh4"])}
    assert found["10.77.2.2"].states == {"reachable"}
    assert found["10.77.2.2"].lladdr == "02:00:00:00:02:02"
    assert found["10.77.2.3"].states == {"stale"}
    assert found["10.77.2.4"].states == {"failed"}
    assert found["10.77.2.4"].lladdr is None
    assert {n.ifindex for n in found.values()} == {3}


def test_ipv6_neighbours_link_local_and_ula() -> None:
    found = {str(n.address): n for n in nl.parse_neighbours(REPLIES["neigh6"])}
    assert found["fd77:2::2"].states == {"reachable"}
    assert found["fe80::2"].states == {"stale"}
    assert found["fe80::2"].lladdr == found["fd77:2::2"].lladdr
    assert found["ff02::16"].states == {"noarp"}  # multicast entries are there too


@pytest.mark.parametrize(
    ("address", "gateway", "oif"),
    [("10.77.64.1", "10.77.2.2", 3), ("10.77.72.1", "10.8.0.1", 4)],
)
def test_lookup_finds_the_route(address: str, gateway: str, oif: int) -> None:
    route = nl.parse_lookup(REPLIES[f"get {address}"])
    assert route is not None
    assert route.gateway == addr(gateway)
    assert route.oif == oif
    assert route.table == 254
    assert route.destination == net(f"{address}/32")


@pytest.mark.parametrize("address", ["10.77.80.1", "10.77.96.1"])
def test_lookup_into_a_blackhole_is_no_route(address: str) -> None:
    # 10.77.80.1: main says via 10.77.2.2, but a rule sends it to table 100's blackhole.
    assert nl.parse_lookup(REPLIES[f"get {address}"]) is None
    with pytest.raises(nl.NetlinkError) as caught:
        nl.parse_routes(REPLIES[f"get {address}"])
    assert caught.value.errno == 22  # EINVAL, as `ip route get` reports


def test_requests_have_the_kernels_layout() -> None:
    dump = nl.route_dump(socket.AF_INET, seq=7)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", dump)
    assert (length, kind, flags, seq, pid) == (len(dump), 26, 0x301, 7, 0)
    assert dump[16] == socket.AF_INET
    neigh = nl.neighbour_dump(socket.AF_INET6)
    assert struct.unpack_from("=HH", neigh, 4) == (30, 0x301)
    assert neigh[16] == socket.AF_INET6
    get = nl.route_lookup(addr("10.77.64.1"))
    assert struct.unpack_from("=HH", get, 4) == (26, 0x1)
    assert get[17] == 32  # dst_len
    assert get.endswith(struct.pack("=HH", 8, 1) + bytes([10, 77, 64, 1]))
    assert len(nl.route_lookup(addr("fd77::1"))) % 4 == 0


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (REPLIES["routes4"][:-20] + b"abc", "3 stray bytes"),
        (REPLIES["routes4"][:-3], "truncated netlink message at byte 1052"),
        (REPLIES["routes4"][:20], "truncated netlink message"),
        (_message(24, b"\x02" * 5), "truncated route message"),
        (_message(28, b"\x02" * 3), "truncated neighbour message"),
        (_message(24, bytes([2]) + bytes(11) + struct.pack("=HH", 40, 1)), "truncated route attr"),
        (_message(2, b"\x01"), "truncated netlink error"),
        (
            _message(24, bytes([2, 24]) + bytes(10) + struct.pack("=HH", 6, 1) + b"\x0a\x4d\0\0"),
            "an address of 2 bytes",
        ),
        (
            _message(24, bytes([2, 40]) + bytes(10) + struct.pack("=HH", 8, 1) + b"\x0a\x4d\0\0"),
            "invalid route prefix",
        ),
    ],
)
def test_malformed_replies_are_refused_in_one_line(data: bytes, why: str) -> None:
    with pytest.raises(nl.NetlinkError, match=why):
        nl.parse_routes(data) if b"\x1c\x00" not in data[4:6] else nl.parse_neighbours(data)


def test_other_families_and_message_types_are_skipped() -> None:
    bridge = _message(24, bytes([7]) + bytes(11))  # AF_BRIDGE route
    link = _message(16, bytes(16))  # RTM_NEWLINK
    assert nl.parse_routes(bridge + link + _message(3, bytes(4))) == []
    assert nl.parse_neighbours(_message(28, bytes([2]) + bytes(11))) == []  # no NDA_DST


def test_an_acknowledgement_is_not_an_error() -> None:
    assert nl.parse_routes(_message(2, bytes(4) + bytes(16))) == []


def test_a_reply_of_too_many_messages_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nl, "MAX_MESSAGES", 3)
    with pytest.raises(nl.NetlinkError, match="more than 3"):
        nl.parse_routes(REPLIES["routes4"])


@given(st.binary(max_size=300))
def test_any_bytes_give_routes_or_a_netlink_error(data: bytes) -> None:
    for parse in (nl.parse_routes, nl.parse_neighbours, nl.parse_lookup):
        with contextlib.suppress(nl.NetlinkError):
            parse(data)


@given(st.binary(max_size=64), st.integers(0, 40))
def test_a_route_message_of_any_body_parses_or_fails_cleanly(body: bytes, dst_len: int) -> None:
    message = _message(24, bytes([2, dst_len]) + bytes(10) + body)
    with contextlib.suppress(nl.NetlinkError):
        nl.parse_routes(message)
