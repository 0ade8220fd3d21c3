"""Output formats: each produced by a real loopback scan and read back by its consumer's parser.

The scan runs once per module against fake Xen services (and decoys) bound on
127.88.0.x, ports picked by the kernel; names come from a FakeResolver. Every
JSON record is validated against the JSON Schema shipped in the package.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import csv
import io
import ipaddress
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xendiscover
from xendiscover._model import Host, Service, Verdict
from xendiscover._output import (
    CSV_FIELDS,
    FORMATS,
    SCHEMA_ID,
    ansible_inventory,
    atomic_writer,
    format_all,
    format_ansible,
    format_csv,
    format_json,
    format_jsonl,
    format_jsonl_line,
    format_list,
    format_text,
    host_schema,
    listed,
    printable,
    render,
    write_atomically,
)
from xendiscover.testing import (
    FakeHttpServer,
    FakeLibvirt,
    FakeResolver,
    FakeServer,
    FakeXapi,
    FakeXendHttp,
    FakeXendRelocation,
    FakeXendXmlRpc,
)

POLAR, CARBONO, XMLRPC, LIBVIRT, DECOY, SILENT, LIKELY = (f"127.88.0.{n}" for n in range(2, 9))
NAMES = {
    POLAR: "polar.inf.ufsm.br",
    CARBONO: "carbono12.inf.ufsm.br",
    LIBVIRT: "kvm1.example.test",
    DECOY: "www.example.test",
}


@dataclass(frozen=True)
class Scan:
    """What the real scan found: sorted hosts, and the JSON lines streamed as found."""

    hosts: list[Host]
    streamed: list[str]
    ports: dict[str, list[int]]


def _fakes() -> list[FakeServer]:
    return [
        FakeXendRelocation(POLAR),  # xend host with two services: one line in text
        FakeXendHttp(POLAR),
        FakeXapi(CARBONO),
        FakeXendXmlRpc(XMLRPC),
        FakeLibvirt(LIBVIRT),
        FakeHttpServer(DECOY),  # not Xen
        FakeXendRelocation(SILENT, hosts_allow=False),  # off 8002: unknown
    ]


async def _likely_relocation(stack: contextlib.AsyncExitStack) -> FakeServer:
    """A default xend's relocation server: on 8002, accept and close, "likely"."""
    try:
        return await stack.enter_async_context(FakeXendRelocation(LIKELY, 8002, hosts_allow=False))
    except OSError as error:  # pragma: no cover - someone else holds 8002 on all addresses
        pytest.skip(f"cannot bind {LIKELY}:8002 for the likely-xend fake: {error}")


async def _scan() -> Scan:
    async with contextlib.AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(fake) for fake in _fakes()]
        fakes.append(await _likely_relocation(stack))
        ports: dict[str, list[int]] = {}
        for fake in fakes:
            ports.setdefault(fake.host, []).append(fake.port)
        streamed: list[str] = []
        found: list[Host] = []
        hosts = xendiscover.scan(
            [f"{POLAR}-{LIKELY}"],
            port=sorted({fake.port for fake in fakes}),
            resolver=FakeResolver(NAMES),
            timeout=2.0,
        )
        async with contextlib.aclosing(hosts):
            async for host in hosts:
                found.append(host)
                streamed.append(format_jsonl_line(host))  # as the CLI streams it
    return Scan(sorted(found, key=lambda h: h.sort_key), streamed, ports)


@pytest.fixture(scope="module")
def scan() -> Scan:
    result = asyncio.run(_scan())
    by_address = {h.address: h for h in result.hosts}
    assert by_address[POLAR].service in ("xend-relocation", "xend-http")
    assert by_address[XMLRPC].verdict == "confirmed"
    assert by_address[LIKELY].verdict == "likely"
    assert by_address[SILENT].verdict == "unknown"
    assert by_address[DECOY].verdict == "not-xen"
    assert len(result.hosts) == sum(len(p) for p in result.ports.values())
    return result


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = host_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# --------------------------------------------------------------------------- formats


def test_text_names_each_xen_host_once_sorted_by_address(scan: Scan) -> None:
    lines = format_text(scan.hosts).splitlines()
    assert lines == [NAMES[POLAR], NAMES[CARBONO], XMLRPC, LIKELY]  # POLAR: 2 ports, 1 line
    assert format_text(list(reversed(scan.hosts))) == format_text(scan.hosts)


def test_text_without_xen_filter_names_every_open_address(scan: Scan) -> None:
    lines = format_text(scan.hosts, xen_only=False).splitlines()
    expected = [NAMES.get(a, a) for a in (POLAR, CARBONO, XMLRPC, LIBVIRT, DECOY, SILENT, LIKELY)]
    assert lines == expected


def test_all_lists_every_open_port_in_five_tab_separated_columns(scan: Scan) -> None:
    rows = [line.split("\t") for line in format_all(scan.hosts).splitlines()]
    assert len(rows) == len(scan.hosts)
    assert all(len(row) == 5 for row in rows)
    for row, host in zip(rows, scan.hosts, strict=True):
        assert row == [
            host.display_name,
            str(host.port),
            host.service or "-",
            host.verdict,
            host.evidence,
        ]
    decoy = next(row for row in rows if row[0] == NAMES[DECOY])
    assert decoy[2:4] == ["-", "not-xen"]


def test_json_is_an_array_of_schema_valid_records(
    scan: Scan, validator: jsonschema.protocols.Validator
) -> None:
    records = json.loads(format_json(scan.hosts))
    assert isinstance(records, list)
    assert records == [h.as_dict() for h in scan.hosts]
    for record in records:
        validator.validate(record)


def test_jsonl_streams_one_schema_valid_record_per_line(
    scan: Scan, validator: jsonschema.protocols.Validator
) -> None:
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in scan.streamed)
    streamed = [json.loads(line) for line in scan.streamed]
    assert sorted(streamed, key=lambda r: (int(ipaddress.ip_address(r["address"])), r["port"])) == [
        h.as_dict() for h in scan.hosts
    ]
    whole = [json.loads(line) for line in format_jsonl(scan.hosts).splitlines()]
    assert whole == [h.as_dict() for h in scan.hosts]
    for record in streamed + whole:
        validator.validate(record)


def _csv_record(row: dict[str, str]) -> dict[str, Any]:
    """Turn a CSV row back into a JSON record: empty cells are null."""
    return {
        **{key: value or None for key, value in row.items()},
        "port": int(row["port"]),
        "evidence": row["evidence"],
        "latency_ms": float(row["latency_ms"]),
    }


def test_csv_has_a_header_and_reads_back_with_dictreader(
    scan: Scan, validator: jsonschema.protocols.Validator
) -> None:
    reader = csv.DictReader(io.StringIO(format_csv(scan.hosts), newline=""))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    records = [_csv_record(row) for row in rows]
    assert records == [h.as_dict() for h in scan.hosts]
    for record in records:
        validator.validate(record)


def _check_ansible_inventory(inventory: Any) -> None:
    """Check the shape Ansible documents for a dynamic inventory's ``--list``."""
    assert isinstance(inventory, dict)
    hostvars = inventory["_meta"]["hostvars"]
    assert isinstance(hostvars, dict)
    groups = {name: body for name, body in inventory.items() if name != "_meta"}
    for name, body in groups.items():
        assert isinstance(body, dict), name
        assert set(body) <= {"hosts", "vars", "children"}, name
        assert isinstance(body.get("hosts", []), list)
        assert isinstance(body.get("vars", {}), dict)
        for child in body.get("children", []):
            assert child in groups, f"{name} has an undefined child group {child}"
        for host in body.get("hosts", []):
            assert isinstance(host, str)
            assert host in hostvars, f"{host} of group {name} has no hostvars"
    grouped = {h for body in groups.values() for h in body.get("hosts", [])}
    assert grouped == set(hostvars), "every host with hostvars is in some group"


def test_ansible_inventory_has_the_documented_structure(scan: Scan) -> None:
    inventory = json.loads(format_ansible(scan.hosts))
    _check_ansible_inventory(inventory)
    assert sorted(inventory["all"]["children"]) == ["libvirt", "xapi", "xend"]
    assert inventory["xend"]["hosts"] == [NAMES[POLAR], XMLRPC, LIKELY]
    assert inventory["xapi"]["hosts"] == [NAMES[CARBONO]]
    assert inventory["libvirt"]["hosts"] == [NAMES[LIBVIRT]]
    hostvars = inventory["_meta"]["hostvars"]
    assert NAMES[DECOY] not in hostvars
    assert SILENT not in hostvars
    polar = hostvars[NAMES[POLAR]]
    assert polar["ansible_host"] == POLAR
    assert polar["xen_service"] in ("xend-relocation", "xend-http")
    assert polar["xen_verdict"] == "confirmed"
    assert polar["xen_port"] in scan.ports[POLAR]
    assert polar["xen_ports"] == sorted(scan.ports[POLAR])
    assert hostvars[NAMES[LIBVIRT]]["xen_verdict"] == "unknown"
    assert hostvars[XMLRPC] == {
        "ansible_host": XMLRPC,
        "xen_service": "xend-xmlrpc",
        "xen_port": scan.ports[XMLRPC][0],
        "xen_verdict": "confirmed",
        "xen_ports": scan.ports[XMLRPC],
    }
    assert hostvars[LIKELY]["xen_verdict"] == "likely"
    assert hostvars[LIKELY]["xen_port"] == 8002


def test_list_is_the_2007_python_list_line(scan: Scan) -> None:
    line = format_list(scan.hosts)
    assert line == f"['{NAMES[POLAR]}', '{NAMES[CARBONO]}', '{XMLRPC}', '{LIKELY}']\n"
    assert ast.literal_eval(line) == format_text(scan.hosts).splitlines()


def test_render_dispatches_every_format(scan: Scan) -> None:
    assert FORMATS == ("text", "json", "jsonl", "csv", "ansible", "list")
    assert render(scan.hosts, "text") == format_text(scan.hosts)
    assert render(scan.hosts, "text", view="open") == format_text(scan.hosts, xen_only=False)
    assert render(scan.hosts, "text", view="all") == format_all(scan.hosts)
    assert render(scan.hosts, "list", view="open") == format_list(scan.hosts, xen_only=False)
    assert render(scan.hosts, "json") == format_json(scan.hosts)
    assert render(scan.hosts, "jsonl") == format_jsonl(scan.hosts)
    assert render(scan.hosts, "csv") == format_csv(scan.hosts)
    assert render(scan.hosts, "ansible") == format_ansible(scan.hosts)
    assert render(scan.hosts, "list") == format_list(scan.hosts)
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(scan.hosts, "yaml")


def test_listed_is_the_one_definition_of_what_a_view_lists(scan: Scan) -> None:
    xen = listed(scan.hosts, "xen")
    assert xen
    assert all(h.verdict in ("confirmed", "likely") for h in xen)
    assert len(xen) < len(scan.hosts)
    assert listed(scan.hosts, "all") == listed(scan.hosts, "open") == scan.hosts


def test_printable_escapes_every_control_character() -> None:
    hostile = "a\x1b[2Jb\x07c\x9bd\r\ne\tf\x7fg"
    shown = printable(hostile)
    assert shown == "a\\x1b[2Jb\\x07c\\x9bd\\r\\ne\\tf\\x7fg"
    assert all(c.isprintable() for c in shown)


def test_every_format_of_nothing_still_parses() -> None:
    assert format_text([]) == ""
    assert format_all([]) == ""
    assert format_jsonl([]) == ""
    assert json.loads(format_json([])) == []
    assert ast.literal_eval(format_list([])) == []
    reader = csv.DictReader(io.StringIO(format_csv([])))
    assert list(reader) == []
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    inventory = json.loads(format_ansible([]))
    _check_ansible_inventory(inventory)
    assert inventory["_meta"]["hostvars"] == {}


def test_ansible_keeps_two_addresses_with_one_ptr_name_apart() -> None:
    hosts = [
        Host("10.0.0.1", 443, "xen.example", service="xapi", verdict="confirmed"),
        Host("10.0.0.2", 443, "xen.example", service="xapi", verdict="confirmed"),
    ]
    inventory = ansible_inventory(hosts)
    _check_ansible_inventory(inventory)
    assert inventory["xapi"]["hosts"] == ["xen.example", "10.0.0.2"]


def test_ansible_describes_a_host_by_its_surest_xen_port() -> None:
    hosts = [
        Host("10.0.0.1", 16509, "h", service="libvirt", verdict="unknown"),
        Host("10.0.0.1", 80, "h", service="xapi", verdict="likely"),
        Host("10.0.0.1", 443, "h", service="xapi", verdict="confirmed"),
    ]
    inventory = ansible_inventory(hosts)
    assert inventory["_meta"]["hostvars"]["h"]["xen_port"] == 443
    assert inventory["xapi"]["hosts"] == ["h"]
    assert inventory["libvirt"]["hosts"] == ["h"]


# --------------------------------------------------------------------------- properties

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
_hosts = st.lists(
    st.builds(
        Host,
        address=st.ip_addresses().map(str),
        port=st.integers(1, 65535),
        hostname=st.none() | _text.filter(bool),
        latency_ms=st.floats(0, 10_000, allow_nan=False),
        service=st.sampled_from([None, *get_args(Service)]),
        verdict=st.sampled_from(get_args(Verdict)),
        evidence=_text,
    ),
    max_size=8,
)


@given(_hosts)
def test_csv_round_trips_any_record(hosts: list[Host]) -> None:
    rows = list(csv.DictReader(io.StringIO(format_csv(hosts), newline="")))
    assert len(rows) == len(hosts)
    for row, host in zip(rows, sorted(hosts, key=lambda h: h.sort_key), strict=True):
        assert row["hostname"] == (host.hostname or "")
        assert row["evidence"] == host.evidence
        assert float(row["latency_ms"]) == round(host.latency_ms, 3)


@given(_hosts)
def test_line_formats_keep_one_record_per_line(hosts: list[Host]) -> None:
    assert len(format_jsonl(hosts).splitlines()) == len(hosts)
    all_lines = format_all(hosts).split("\n")[:-1]
    assert len(all_lines) == len(hosts)
    assert all(line.count("\t") == 4 for line in all_lines)


# --------------------------------------------------------------------------- schema


def test_schema_ships_in_the_package_and_is_versioned() -> None:
    shipped = resources.files("xendiscover") / "schema/host.schema.json"
    assert shipped.is_file()
    schema = json.loads(shipped.read_text(encoding="utf-8"))
    assert schema == host_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["x-schema-version"] == 1
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_describes_exactly_the_record() -> None:
    schema = host_schema()
    record = Host("10.0.0.1", 8002).as_dict()
    assert set(schema["properties"]) == set(record) == set(schema["required"])
    assert schema["properties"]["service"]["enum"] == [*get_args(Service), None]
    assert schema["properties"]["verdict"]["enum"] == list(get_args(Verdict))


@pytest.mark.parametrize(
    ("key", "value"),
    [("port", 0), ("verdict", "maybe"), ("address", "not-an-ip"), ("service", "vmware")],
)
def test_schema_rejects_a_bad_record(
    validator: jsonschema.protocols.Validator, key: str, value: object
) -> None:
    record: dict[str, Any] = {**Host("10.0.0.1", 8002).as_dict(), key: value}
    assert not validator.is_valid(record)


# --------------------------------------------------------------------------- atomic writes


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_write_atomically_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "hosts.json"
    write_atomically(target, "first\n")
    assert target.read_text() == "first\n"
    target.chmod(0o640)
    write_atomically(str(target), "second\r\nline\n")
    assert target.read_bytes() == b"second\r\nline\n"  # written as given
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert _leftovers(tmp_path, {"hosts.json"}) == []


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_an_interrupted_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    target = tmp_path / "inventory.json"
    target.write_text("old content\n")

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    def write_in_two_halves() -> None:
        with atomic_writer(target) as handle:
            handle.write("new content, first half")
            handle.flush()  # the half is on disk, in the temp file
            if fail_at == "write":
                raise KeyboardInterrupt  # Ctrl-C between two writes
            handle.write(" and the second half\n")

    if fail_at in ("fsync", "replace"):
        monkeypatch.setattr(os, fail_at, interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_in_two_halves()
    assert target.read_text() == "old content\n"
    assert _leftovers(tmp_path, {"inventory.json"}) == []


def test_an_interrupted_first_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "out.csv", "a,b\n")
    assert _leftovers(tmp_path, set()) == []


def test_write_atomically_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_write_atomically_into_a_missing_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "missing" / "out.txt", "x")
    assert _leftovers(tmp_path, set()) == []


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    write_atomically(tmp_path / "new.txt", "x")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
