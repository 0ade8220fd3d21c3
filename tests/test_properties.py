"""Property tests: target parsing never fails in an unexpected way.

``nox -s fuzz`` runs these (and the fingerprint parsers' properties) with
10,000 examples each; the normal test run uses the ``default`` profile.
"""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xendiscover import TargetError, TargetSpace
from xendiscover._resolve import parse_nameserver
from xendiscover._targets import parse_port, parse_target


def no_dns(name: str) -> str:
    raise TargetError(f"cannot resolve host name {name!r}")


TARGET_CHARS = "0123456789./-:abcdef[]%"
#: Characters that break a line, end a string or steer a terminal.
CONTROLS = "\n\r\t\x00\x07\x1b\x7f\x85\x9b\u2028\u2029\u200b\u202e"

target_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=TARGET_CHARS, max_size=45),
    st.text(alphabet=st.sampled_from(TARGET_CHARS + CONTROLS), max_size=45),
    # A target that parses, but for a control or a line break in it.
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(["10.0.0.1", "10.0.0.0/24", "10.0.0.1-9", "fd00::1%", "[::1]:53"]),
            st.text(alphabet=CONTROLS, min_size=1, max_size=3),
            st.sampled_from(["", "1", "0.0.0.2", "/8", ":53", "x"]),
        ),
    ),
)


def assert_one_line_naming(message: str, text: str) -> None:
    """A user's error: one printable line showing the input (escaped), and little else.

    ``isprintable`` is false for a line break, any C0/C1 control and a
    bidi override: a message built from the raw input fails it.
    """
    assert message.isprintable(), message
    assert repr(text) in message or repr(text.strip()) in message, message
    assert len(message) <= 2 * len(repr(text)) + 64, message


@given(target_text)
def test_parse_target_returns_an_interval_or_a_target_error(text: str) -> None:
    try:
        version, (start, end) = parse_target(text, resolve=no_dns)
    except TargetError as exc:
        if text.strip():
            assert_one_line_naming(str(exc), text)
        else:
            assert str(exc) == "empty target"
    else:
        assert version in (4, 6)
        assert 0 <= start <= end < 2 ** (32 if version == 4 else 128)


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_networks_round_trip(address: ipaddress.IPv4Address, prefix: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    assert parse_target(str(network)) == (
        4,
        (int(network.network_address), int(network.broadcast_address)),
    )


@given(st.ip_addresses(), st.ip_addresses())
def test_ranges_parse_in_order_or_are_refused(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address,
    b: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    try:
        version, (start, end) = parse_target(f"{a}-{b}")
    except TargetError:
        assert a.version != b.version or int(b) < int(a)
    else:
        assert (version, start, end) == (a.version, int(a), int(b))


def networks(min_prefix: int) -> st.SearchStrategy[ipaddress.IPv4Network]:
    # Inside 10.0.0.0/20 so that includes and excludes overlap often.
    return st.builds(
        lambda offset, prefix: ipaddress.IPv4Network(f"10.0.{offset}.0/{prefix}", strict=False),
        st.integers(0, 15),
        st.integers(min_prefix, 30),
    )


@given(st.lists(networks(24), max_size=6), st.lists(networks(26), max_size=4))
def test_space_is_the_set_difference(
    include: list[ipaddress.IPv4Network], exclude: list[ipaddress.IPv4Network]
) -> None:
    space = TargetSpace.from_specs(map(str, include), exclude=map(str, exclude))
    expected = {int(a) for n in include for a in n} - {int(a) for n in exclude for a in n}
    walked = [int(ipaddress.ip_address(a)) for _, a in space]
    assert walked == sorted(expected)
    assert space.size == len(expected)


@given(st.text(max_size=12))
def test_parse_port_is_total(text: str) -> None:
    try:
        port = parse_port(text)
    except TargetError:
        pass
    else:
        assert 1 <= port <= 65535


@given(target_text)
def test_parse_nameserver_gives_c_ares_a_server_or_a_target_error(text: str) -> None:
    try:
        server = parse_nameserver(text)
    except TargetError as exc:
        assert_one_line_naming(str(exc), text)
    else:
        assert server.isascii()  # c-ares encodes its server list as ASCII
        assert server.isprintable()
        assert parse_nameserver(server) == server  # already in the form c-ares takes


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_target, "10.0.0.1-\u00b2"),  # superscript two: isdigit, not int()
        (parse_nameserver, "127.0.0.1:\u00b2"),
        (parse_nameserver, "[::1]:\u0665\u0663"),  # Arabic-Indic 53: c-ares cannot encode it
        (parse_nameserver, "::1%\n"),  # a scope id is passed on as given
        (parse_nameserver, "[::1%\u202e]:53"),
    ],
)
def test_parser_bugs_found_by_the_properties_stay_fixed(parse: object, text: str) -> None:
    assert callable(parse)
    try:
        result = parse(text)
    except TargetError as exc:
        assert_one_line_naming(str(exc), text)
    else:
        assert str(result).isascii()
        assert str(result).isprintable()
