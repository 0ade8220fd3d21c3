"""Fuzz: hostile text in findings, through every renderer and every view (issue 13).

The pipeline checks names and evidence before they reach a
:class:`~xendiscover.Finding`; these properties hold even when it did not.
Any text (C0 and C1 controls, bidi overrides, zero-width and line
separators, formula starts, markup) in a finding's ``hostname``,
``evidence``, ``certificate_names`` and ``host_uuid`` goes through
:func:`xendiscover._output.render` in every format of ``FORMATS`` and every
view of ``VIEWS``: nothing raises, nothing raw reaches a terminal, every
machine format parses back. ``nox -s fuzz`` runs it with 10,000 examples.
"""

from __future__ import annotations

import ast
import csv
import io
import ipaddress
import json
import re
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from xendiscover import Finding
from xendiscover._model import HostnameSource, Service, Verdict, group_findings
from xendiscover._names import MAX_NAME, escape_name, is_dns_name
from xendiscover._output import (
    CSV_FIELDS,
    FORMATS,
    VIEWS,
    View,
    listed,
    port_records,
    printable,
    render,
)

#: Characters that steer a terminal, break a line or a cell, or hide text.
NASTY = (
    [chr(c) for c in range(0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + list("\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e")
    + list("\u2066\u2067\u2068\u2069\ufeff\ufffe")
    + list("=+-@'\",;[]/\\ ")
)

#: Any text Python can encode (no lone surrogates), weighted towards the nasty.
hostile = st.text(
    alphabet=st.one_of(st.sampled_from(NASTY), st.characters(exclude_categories=["Cs"])),
    max_size=40,
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
dns_name = st.lists(label, min_size=1, max_size=4).map(".".join).filter(is_dns_name)
name = st.one_of(dns_name, hostile, hostile.map(escape_name))

#: A few addresses, so that findings share machines; and any address at all.
address = st.one_of(
    st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.7", "fd00::7", "::1"]),
    st.ip_addresses().map(str),
)

findings = st.lists(
    st.builds(
        Finding,
        address=address,
        port=st.integers(1, 65535),
        service=st.sampled_from([None, *get_args(Service)]),
        verdict=st.sampled_from(get_args(Verdict)),
        evidence=hostile,
        latency_ms=st.floats(0, 100_000),
        hostname=st.none() | name,
        hostname_source=st.sampled_from([None, *get_args(HostnameSource)]),
        host_uuid=st.none() | st.sampled_from(["9e1bc6a5-5d7c-4f1a-8c0e-2a2b3c4d5e6f"]) | hostile,
        certificate_names=st.lists(name, max_size=3).map(tuple),
    ),
    max_size=6,
)


def only_printable_lines(text: str) -> bool:
    """Printable characters, tabs and newlines only: nothing a terminal acts on."""
    return all(c.isprintable() or c in "\t\n" for c in text)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@given(findings)
def test_every_format_and_view_renders_without_raising(found: list[Finding]) -> None:
    for fmt in FORMATS:
        for view in VIEWS:
            assert isinstance(render(found, fmt, view=view), str)


@given(findings, st.sampled_from(VIEWS))
def test_text_is_one_printable_line_per_machine(found: list[Finding], view: View) -> None:
    out = render(found, "text", view=view)
    assert only_printable_lines(out), out
    hosts = listed(found, view)
    lines = out.splitlines()
    if view == "all":  # a line per machine, then an indented line per service
        assert len(lines) == len(hosts) + sum(len(h.services) for h in hosts)
        machine_lines = [line for line in lines if not line.startswith("  ")]
        assert len(machine_lines) == len(hosts)
        assert all(line.count("\t") == 5 for line in machine_lines)
        assert all(line.count("\t") == 3 for line in lines if line.startswith("  "))
    else:
        assert len(lines) == len(hosts)
    assert out.count("\n") == len(lines)  # str.splitlines breaks at no other character


@given(findings, st.sampled_from(VIEWS))
def test_list_is_a_printable_python_list_of_keys(found: list[Finding], view: View) -> None:
    out = render(found, "list", view=view)
    assert only_printable_lines(out), out
    assert out.count("\n") == 1
    assert ast.literal_eval(out) == [h.key for h in listed(found, view)]


@given(findings, st.sampled_from(VIEWS))
def test_json_formats_are_ascii_and_parse_back(found: list[Finding], view: View) -> None:
    for fmt in ("json", "jsonl", "ansible"):
        out = render(found, fmt, view=view)
        assert out.isascii(), fmt  # every control escaped (\u001b), none raw
        assert only_printable_lines(out), fmt
    hosts = listed(found, view)
    document = json.loads(render(found, "json", view=view))
    assert document == {"run": None, "machines": [h.as_dict() for h in hosts]}
    lines = render(found, "jsonl", view=view).splitlines()
    assert [json.loads(line) for line in lines] == [
        {"record": "port", **r} for r in port_records(found)
    ]
    ordered = sorted(found, key=lambda f: f.sort_key)
    own = [
        {key: json.loads(line)[key] for key in f.as_dict()}
        for line, f in zip(lines, ordered, strict=True)
    ]
    assert [{**r, "host_uuid": None} for r in own] == [
        {**f.as_dict(), "host_uuid": None} for f in ordered
    ]


@given(findings, st.sampled_from(VIEWS))
def test_csv_parses_and_no_cell_is_a_formula(found: list[Finding], view: View) -> None:
    out = render(found, "csv", view=view)
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == list(CSV_FIELDS)
    assert len(rows) == len(found) + 1
    for row in rows[1:]:
        assert len(row) == len(CSV_FIELDS)
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


@given(findings)
def test_ansible_host_names_are_addresses_or_dns_names(found: list[Finding]) -> None:
    inventory = json.loads(render(found, "ansible"))
    for group in inventory["all"]["children"].values():
        for key in group["hosts"]:
            assert is_ip(key) or is_dns_name(key), key


@given(findings)
def test_ansible_host_names_of_checked_findings_are_addresses_or_dns_names(
    found: list[Finding],
) -> None:
    # As the pipeline makes them: a "ptr" name passed is_dns_name (and FCrDNS).
    checked = [f for f in found if f.hostname_source != "ptr" or is_dns_name(f.hostname or "")]
    inventory = json.loads(render(checked, "ansible"))
    keys = [key for group in inventory["all"]["children"].values() for key in group["hosts"]]
    assert all(is_ip(key) or is_dns_name(key) for key in keys), keys
    machines = group_findings(checked)
    assert set(keys) <= {h.key for h in machines} | {h.address for h in machines}


# printable() and escape_name(): any text at all, lone surrogates included.
any_text = st.text(alphabet=st.characters(exclude_categories=[]), max_size=300)


@given(any_text)
def test_printable_output_is_printable_and_fixed(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()
    assert printable(shown) == shown  # idempotent: printable text is left alone
    if text.isprintable():
        assert shown == text


_SAFE_TEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."
_ESCAPED = re.compile(r"(?:[A-Za-z0-9.-]|\\[tnr\\]|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8})*")
_SHORT = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}


def unescape(shown: str) -> str:
    return re.sub(
        r"\\(?:([tnr\\])|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))",
        lambda m: _SHORT[m[1]] if m[1] else chr(int(next(g for g in m.groups() if g), 16)),
        shown,
    )


@given(st.one_of(any_text, dns_name, st.sampled_from(NASTY)))
def test_escape_name_is_inert_ascii_and_loses_nothing(text: str) -> None:
    shown = escape_name(text)
    assert len(shown) <= 255
    cut = shown.endswith("...") and unescape(shown) != text
    body = shown.removesuffix("...") if cut else shown
    assert _ESCAPED.fullmatch(body), shown  # no space, quote, bracket, '=', bare backslash
    if cut:
        assert text.startswith(unescape(body))  # a long name is cut, never changed
    else:
        assert unescape(body) == text  # one name, one escape: no two names look alike
    if is_dns_name(text) or (set(text) <= set(_SAFE_TEXT) and len(text) <= 255):
        assert shown == text  # a name that needs no escaping is shown as it is
    if is_dns_name(shown):
        assert shown == text  # escaping never makes a DNS name out of another text


def test_the_longest_dns_name_is_shown_as_it_is() -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == MAX_NAME
    assert is_dns_name(longest)
    assert escape_name(longest) == longest
