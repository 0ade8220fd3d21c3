"""Property tests: target parsing never fails in an unexpected way.

``nox -s fuzz`` runs these (and the fingerprint parsers' properties) with
10,000 examples each; the normal test run uses the ``default`` profile.
"""

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from xendiscover import TargetError, TargetSpace
from xendiscover._resolve import parse_nameserver
from xendiscover._targets import parse_port, parse_target


def no_dns(name: str) -> str:
    raise TargetError(f"cannot resolve host name {name!r}")


target_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789./-:abcdef[]", max_size=45),
)


@given(target_text)
def test_parse_target_returns_an_interval_or_a_target_error(text: str) -> None:
    try:
        version, (start, end) = parse_target(text, resolve=no_dns)
    except TargetError as exc:
        assert "\n" not in str(exc)  # one line, fit for the user
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


@given(st.text(max_size=50))
def test_parse_nameserver_is_total(text: str) -> None:
    try:
        parse_nameserver(text)
    except TargetError as exc:
        assert "\n" not in str(exc)
