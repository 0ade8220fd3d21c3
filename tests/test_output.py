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
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import schema_validator

import xendiscover
from xendiscover._model import Finding, Host, HostnameSource, Service, Verdict, group_findings
from xendiscover._output import (
    CSV_FIELDS,
    FORMATS,
    SCHEMA_ID,
    VIEWS,
    OutputFile,
    ansible_inventory,
    atomic_writer,
    diff_schema,
    document_schema,
    finding_schema,
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
    neutralise_cell,
    port_records,
    printable,
    render,
    run_schema,
    write_atomically,
)
from xendiscover._run import FORMAT_VERSION, RunInfo, now
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
    """What the real scan found: findings (sorted), the JSON lines streamed as found."""

    findings: list[Finding]
    streamed: list[str]
    ports: dict[str, list[int]]

    @property
    def machines(self) -> list[Host]:
        return group_findings(self.findings)


def _fakes() -> list[FakeServer]:
    return [
        FakeXendRelocation(POLAR),  # xend host with two services: one machine
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
        found: list[Finding] = []
        findings = xendiscover.scan(
            [f"{POLAR}-{LIKELY}"],
            port=sorted({fake.port for fake in fakes}),
            resolver=FakeResolver(NAMES),
            timeout=2.0,
        )
        async with contextlib.aclosing(findings):
            async for finding in findings:
                # As the CLI streams it: each line with its machine's facts so far.
                streamed += map(format_jsonl_line, port_records([finding], known=found))
                found.append(finding)
    return Scan(sorted(found, key=lambda f: f.sort_key), streamed, ports)


@pytest.fixture(scope="module")
def scan() -> Scan:
    result = asyncio.run(_scan())
    by_address = {h.address: h for h in result.machines}
    assert by_address[POLAR].verdict == "confirmed"
    assert len(by_address[POLAR].services) == 2
    assert by_address[XMLRPC].verdict == "confirmed"
    assert by_address[LIKELY].verdict == "likely"
    assert by_address[SILENT].verdict == "unknown"
    assert by_address[DECOY].verdict == "not-xen"
    assert len(result.findings) == sum(len(p) for p in result.ports.values())
    return result


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    return schema_validator(schema)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    return _validator(host_schema())


@pytest.fixture(scope="module")
def line_validator() -> jsonschema.protocols.Validator:
    return _validator(finding_schema())


# --------------------------------------------------------------------------- formats


def test_text_names_each_xen_machine_once_sorted_by_address(scan: Scan) -> None:
    lines = render(scan.findings, "text").splitlines()
    keys = [line.split("  ")[0] for line in lines]  # each key, then its product
    assert keys == [NAMES[POLAR], NAMES[CARBONO], XMLRPC, LIKELY]  # POLAR: 2 ports, 1 line
    assert lines[1] == f"{NAMES[CARBONO]}  xapi >= 25.2.0"  # what its listMethods shows
    assert render(list(reversed(scan.findings)), "text") == render(scan.findings, "text")


def test_text_of_the_open_view_names_every_machine(scan: Scan) -> None:
    lines = [
        line.split("  ")[0] for line in render(scan.findings, "text", view="open").splitlines()
    ]
    expected = [NAMES.get(a, a) for a in (POLAR, CARBONO, XMLRPC, LIBVIRT, DECOY, SILENT, LIKELY)]
    assert lines == expected


def test_all_shows_each_machine_then_its_services(scan: Scan) -> None:
    lines = render(scan.findings, "text", view="all").splitlines()
    machine_lines = [line.split("\t") for line in lines if not line.startswith("  ")]
    service_lines = [line[2:].split("\t") for line in lines if line.startswith("  ")]
    assert len(machine_lines) == 7
    assert len(service_lines) == len(scan.findings)
    assert all(len(row) == 6 for row in machine_lines)
    assert all(len(row) == 4 for row in service_lines)
    assert machine_lines[0][:5] == [NAMES[POLAR], POLAR, "confirmed", "ptr", "-"]
    # The last field is the machine's product, as the default view shows it.
    for row, machine in zip(machine_lines, scan.machines, strict=True):
        product = machine.product
        assert row[5] == ("-" if product is None else product.describe())
    assert machine_lines[0][5].startswith("xend")
    decoy = next(row for row in service_lines if row[0].startswith(DECOY + ":"))
    assert decoy[1:3] == ["-", "not-xen"]


def test_json_is_the_run_and_schema_valid_machines(
    scan: Scan, validator: jsonschema.protocols.Validator
) -> None:
    run = RunInfo(version=xendiscover.__version__, started=now(), ports=(8002,), listing="all")
    document = json.loads(render(scan.findings, "json", view="all", run=run))
    schema_validator(document_schema()).validate(document)
    assert document["run"] == run.as_dict()
    records = document["machines"]
    assert records == [h.as_dict() for h in scan.machines]
    for record in records:
        validator.validate(record)
    polar = records[0]
    assert polar["hostname"] == NAMES[POLAR]
    assert polar["hostname_source"] == "ptr"
    assert polar["addresses"] == [POLAR]
    assert sorted(s["port"] for s in polar["services"]) == sorted(scan.ports[POLAR])
    xen_only = json.loads(render(scan.findings, "json"))
    assert xen_only["run"] is None  # no run given: a library call formatting machines
    assert [r["address"] for r in xen_only["machines"]] == [POLAR, CARBONO, XMLRPC, LIKELY]


def test_jsonl_streams_one_schema_valid_line_per_open_port(
    scan: Scan, line_validator: jsonschema.protocols.Validator
) -> None:
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in scan.streamed)
    streamed = sorted(
        (json.loads(line) for line in scan.streamed), key=lambda r: (r["address"], r["port"])
    )
    whole = [json.loads(line) for line in format_jsonl(scan.findings).splitlines()]
    assert streamed == sorted(whole, key=lambda r: (r["address"], r["port"]))
    own = [{key: r[key] for key in f.as_dict()} for r, f in zip(whole, scan.findings, strict=True)]
    assert own == [f.as_dict() for f in scan.findings]  # plus its machine's facts
    for record in whole:
        line_validator.validate(record)


def test_jsonl_with_a_run_starts_with_it_and_ends_with_how_it_ended(scan: Scan) -> None:
    run = RunInfo(version="9.9", started=now(), ports=(8002,), listing="all").finished(
        stopped="SIGINT"
    )
    lines = [json.loads(line) for line in format_jsonl(scan.findings, run).splitlines()]
    first, *ports, last = lines
    assert first["record"] == "run"
    # The first line is the run as it started, streamed or not: its end is the last line's.
    assert (first["ended"], first["completed"], first["stopped"]) == (None, False, None)
    schema_validator(run_schema()).validate(first)
    assert [p["record"] for p in ports] == ["port"] * len(scan.findings)
    assert last == {
        "record": "end",
        "ended": run.ended,
        "completed": False,
        "stopped": "SIGINT",
        "ports": len(scan.findings),
    }


def _csv_record(row: dict[str, str]) -> dict[str, Any]:
    """Turn a CSV row back into a JSON record: empty cells are null."""
    return {
        **{key: value or None for key, value in row.items()},
        "port": int(row["port"]),
        "evidence": row["evidence"],
        "latency_ms": float(row["latency_ms"]),
        "key_fingerprints": row["key_fingerprints"].split(),
        "certificate_names": row["certificate_names"].split(),
    }


def test_csv_has_a_header_and_reads_back_with_dictreader(
    scan: Scan, line_validator: jsonschema.protocols.Validator
) -> None:
    reader = csv.DictReader(io.StringIO(render(scan.findings, "csv"), newline=""))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    records = [_csv_record(row) for row in rows]
    assert records == port_records(scan.findings)
    for record in records:
        line_validator.validate(record)


def _check_static_inventory(inventory: Any) -> dict[str, dict[str, Any]]:
    """Check the static YAML/JSON inventory shape; return every host's variables."""
    assert isinstance(inventory, dict)
    assert set(inventory) == {"all"}
    children = inventory["all"]["children"]
    assert set(children) == {"xapi", "xend", "libvirt"}
    hostvars: dict[str, dict[str, Any]] = {}
    for body in children.values():
        assert set(body) == {"hosts"}
        for name, variables in body["hosts"].items():
            assert isinstance(variables, dict)
            assert hostvars.setdefault(name, variables) == variables
    return hostvars


def test_ansible_inventory_is_a_static_inventory_keyed_by_trusted_names(scan: Scan) -> None:
    inventory = json.loads(render(scan.findings, "ansible", view="all"))
    hostvars = _check_static_inventory(inventory)
    children = inventory["all"]["children"]
    assert list(children["xend"]["hosts"]) == [NAMES[POLAR], XMLRPC, LIKELY]
    assert list(children["xapi"]["hosts"]) == [NAMES[CARBONO]]
    assert list(children["libvirt"]["hosts"]) == [NAMES[LIBVIRT]]
    assert NAMES[DECOY] not in hostvars
    assert SILENT not in hostvars
    polar = hostvars[NAMES[POLAR]]
    assert polar["ansible_host"] == POLAR
    assert polar["xen_service"] in ("xend-relocation", "xend-http")
    assert polar["xen_verdict"] == "confirmed"
    assert polar["xen_ports"] == sorted(scan.ports[POLAR])
    assert polar["xen_hostname_source"] == "ptr"
    assert hostvars[NAMES[LIBVIRT]]["xen_verdict"] == "unknown"
    assert hostvars[LIKELY]["xen_verdict"] == "likely"
    assert hostvars[LIKELY]["xen_port"] == 8002


ANSIBLE_INVENTORY = shutil.which("ansible-inventory")


@pytest.mark.skipif(ANSIBLE_INVENTORY is None, reason="ansible-core is not installed")
def test_the_real_ansible_inventory_reads_the_file(scan: Scan, tmp_path: Path) -> None:
    path = tmp_path / "xen.json"
    path.write_text(render(scan.findings, "ansible", view="all"))
    assert ANSIBLE_INVENTORY is not None
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path), "ANSIBLE_HOME": str(tmp_path)}
    run = subprocess.run(
        [ANSIBLE_INVENTORY, "-i", str(path), "--list"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Unable to parse" not in run.stderr
    assert "No inventory was parsed" not in run.stderr
    listed_back = json.loads(run.stdout)
    assert sorted(listed_back["xend"]["hosts"]) == sorted([NAMES[POLAR], XMLRPC, LIKELY])
    assert listed_back["xapi"]["hosts"] == [NAMES[CARBONO]]
    assert listed_back["_meta"]["hostvars"][NAMES[POLAR]]["ansible_host"] == POLAR


def test_list_is_the_2007_python_list_line(scan: Scan) -> None:
    line = render(scan.findings, "list")
    assert line == f"['{NAMES[POLAR]}', '{NAMES[CARBONO]}', '{XMLRPC}', '{LIKELY}']\n"
    keys = [text.split("  ")[0] for text in render(scan.findings, "text").splitlines()]
    assert ast.literal_eval(line) == keys


def test_render_dispatches_every_format(scan: Scan) -> None:
    found, xen, every = scan.findings, listed(scan.findings, "xen"), scan.machines
    assert FORMATS == ("text", "json", "jsonl", "csv", "ansible", "list")
    assert render(found, "text") == format_text(xen)
    assert render(found, "text", view="open") == format_text(every)
    assert render(found, "text", view="all") == format_all(every)
    assert render(found, "json") == format_json(xen)
    assert render(found, "jsonl") == format_jsonl(found)
    assert render(found, "csv") == format_csv(found)
    assert render(found, "ansible") == format_ansible(xen)
    assert render(found, "list") == format_list(xen)
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        render(found, "yaml")


def test_listed_is_the_one_definition_of_what_a_view_lists(scan: Scan) -> None:
    xen = listed(scan.findings, "xen")
    assert [h.address for h in xen] == [POLAR, CARBONO, XMLRPC, LIKELY]
    assert listed(scan.findings, "all") == listed(scan.findings, "open") == scan.machines


def test_printable_escapes_every_control_character() -> None:
    hostile = "a\x1b[2Jb\x07c\x9bd\r\ne\tf\x7fg\u202eh\u200bi\U000e0001"
    shown = printable(hostile)
    assert shown == ("a\\x1b[2Jb\\x07c\\x9bd\\r\\ne\\tf\\x7fg\\u202eh\\u200bi\\U000e0001")
    assert shown.isprintable()
    assert printable("polar.inf.ufsm.br") == "polar.inf.ufsm.br"


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_look_like_formulas_are_neutralised(first: str) -> None:
    evil = f'{first}HYPERLINK("http://x")'
    finding = Finding("10.0.0.1", 8002, evidence=evil, hostname=evil, hostname_source="ptr")
    row = next(csv.DictReader(io.StringIO(format_csv([finding]), newline="")))
    assert row["evidence"] == row["hostname"] == "'" + evil
    assert neutralise_cell("10.0.0.1") == "10.0.0.1"


def test_every_format_of_nothing_still_parses() -> None:
    assert format_text([]) == ""
    assert format_all([]) == ""
    assert format_jsonl([]) == ""
    assert json.loads(format_json([])) == {"run": None, "machines": []}
    assert ast.literal_eval(format_list([])) == []
    reader = csv.DictReader(io.StringIO(format_csv([])))
    assert list(reader) == []
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    assert _check_static_inventory(json.loads(format_ansible([]))) == {}


def _xapi(address: str, name: str | None = None, **kwargs: Any) -> Finding:
    source: HostnameSource | None = "ptr" if name else None
    return Finding(
        address, 443, "xapi", "confirmed", hostname=name, hostname_source=source, **kwargs
    )


def test_ansible_keeps_two_machines_with_one_name_apart() -> None:
    hosts = group_findings([_xapi("10.0.0.1", "xen.example"), _xapi("10.0.0.2", "xen.example")])
    assert len(hosts) == 2
    children = ansible_inventory(hosts)["all"]["children"]
    assert list(children["xapi"]["hosts"]) == ["xen.example", "10.0.0.2"]


def test_ansible_describes_a_machine_by_its_surest_xen_port() -> None:
    hosts = group_findings(
        [
            Finding(
                "10.0.0.1", 16509, "libvirt", "unknown", hostname="h.example", hostname_source="ptr"
            ),
            Finding("10.0.0.1", 80, "xapi", "likely", hostname="h.example", hostname_source="ptr"),
            Finding(
                "10.0.0.1", 443, "xapi", "confirmed", hostname="h.example", hostname_source="ptr"
            ),
        ]
    )
    children = ansible_inventory(hosts)["all"]["children"]
    assert children["xapi"]["hosts"]["h.example"]["xen_port"] == 443
    assert list(children["libvirt"]["hosts"]) == ["h.example"]


@pytest.mark.parametrize("source", ["ptr-unconfirmed", "certificate"])
def test_an_untrusted_name_is_shown_but_never_a_key(source: str) -> None:
    finding = Finding(
        "10.0.0.9", 8002, "xend-relocation", "likely",
        hostname="trusted.example" if source != "certificate" else None,
        hostname_source="ptr-unconfirmed" if source != "certificate" else None,
        certificate_names=("trusted.example",) if source == "certificate" else (),
    )  # fmt: skip
    (host,) = group_findings([finding])
    assert (host.hostname, host.hostname_source) == ("trusted.example", source)
    assert host.key == "10.0.0.9"
    assert format_text([host]) == f"10.0.0.9 ({source}: trusted.example)\n"
    assert ast.literal_eval(format_list([host])) == ["10.0.0.9"]
    assert list(ansible_inventory([host])["all"]["children"]["xend"]["hosts"]) == ["10.0.0.9"]


# --------------------------------------------------------------------------- grouping


def test_findings_group_by_address_and_by_proven_key() -> None:
    uuid = "4f3c6a1e-0b7d-4a52-9c1e-2d8f6b7a9e10"
    other = "8d2e4b6a-1c3f-4e5d-9a7b-0c1d2e3f4a5b"
    key, key2 = "a" * 64, "b" * 64
    hosts = group_findings(
        [
            _xapi("10.0.1.5", host_uuid=uuid, key_fingerprints=(key,)),
            _xapi("10.0.0.5", "xen5.example", host_uuid=uuid, key_fingerprints=(key,)),
            Finding("10.0.0.5", 80, "xapi", "likely"),  # same address as the one above
            _xapi("10.0.0.6", host_uuid=other, key_fingerprints=(key2,)),  # another host
            Finding("10.0.0.7", 8002, None, "not-xen"),
        ]
    )
    assert [(h.address, h.addresses, h.host_uuid) for h in hosts] == [
        ("10.0.0.5", ("10.0.0.5", "10.0.1.5"), uuid),
        ("10.0.0.6", ("10.0.0.6",), other),
        ("10.0.0.7", ("10.0.0.7",), None),
    ]
    multi = hosts[0]
    assert multi.hostname == "xen5.example"
    assert multi.key == "xen5.example"
    assert multi.key_fingerprints == (key,)
    assert len(multi.services) == 3
    assert multi.verdict == "confirmed"
    assert not any(h.uuid_conflict for h in hosts)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["not-xen", "unknown"], "unknown"),
        (["unknown", "likely", "not-xen"], "likely"),
        (["likely", "confirmed"], "confirmed"),
        (["not-xen"], "not-xen"),
    ],
)
def test_a_machine_has_the_strongest_verdict_of_its_services(
    verdicts: list[Verdict], expected: Verdict
) -> None:
    findings = [Finding("10.0.0.1", 8000 + i, None, v) for i, v in enumerate(verdicts)]
    (host,) = group_findings(findings)
    assert host.verdict == expected


def test_a_confirmed_name_beats_an_unconfirmed_one_beats_a_certificate() -> None:
    uuid = "4f3c6a1e-0b7d-4a52-9c1e-2d8f6b7a9e10"
    (host,) = group_findings(
        [
            _xapi("10.0.0.1", certificate_names=("cert.example",), key_fingerprints=(uuid,)),
            Finding("10.0.0.2", 443, "xapi", "confirmed", hostname="spoof.example",
                    hostname_source="ptr-unconfirmed", key_fingerprints=(uuid,)),
            Finding("10.0.0.3", 443, "xapi", "confirmed", hostname="real.example",
                    hostname_source="ptr", key_fingerprints=(uuid,)),
        ]
    )  # fmt: skip
    assert (host.hostname, host.hostname_source, host.key) == (
        "real.example",
        "ptr",
        "real.example",
    )


# --------------------------------------------------------------------------- properties

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
_findings = st.lists(
    st.builds(
        Finding,
        address=st.ip_addresses().map(str),
        port=st.integers(1, 65535),
        service=st.sampled_from([None, *get_args(Service)]),
        verdict=st.sampled_from(get_args(Verdict)),
        evidence=_text,
        latency_ms=st.floats(0, 10_000, allow_nan=False),
        hostname=st.none() | _text.filter(bool),
        hostname_source=st.sampled_from([None, "ptr", "ptr-unconfirmed"]),
        host_uuid=st.none() | st.uuids().map(str),
    ),
    max_size=8,
)


@given(_findings)
def test_csv_round_trips_any_record_but_formulas(findings: list[Finding]) -> None:
    rows = list(csv.DictReader(io.StringIO(format_csv(findings), newline="")))
    assert len(rows) == len(findings)
    for row, finding in zip(rows, sorted(findings, key=lambda f: f.sort_key), strict=True):
        assert row["hostname"] == neutralise_cell(finding.hostname or "")
        assert row["evidence"] == neutralise_cell(finding.evidence)
        assert float(row["latency_ms"]) == round(finding.latency_ms, 3)
        assert not row["evidence"].startswith(("=", "+", "-", "@", "\t", "\r"))


@given(_findings)
def test_text_formats_never_carry_a_control_character(findings: list[Finding]) -> None:
    for view in VIEWS:
        for fmt in ("text", "list"):
            out = render(findings, fmt, view=view)
            assert all(c.isprintable() or c == "\n" or c == "\t" for c in out), (fmt, view)
            lines = out.splitlines()
            if fmt == "text" and view != "all":
                assert len(lines) == len(listed(findings, view))


@given(_findings)
def test_line_formats_keep_one_record_per_line(findings: list[Finding]) -> None:
    assert len(format_jsonl(findings).splitlines()) == len(findings)
    lines = format_all(group_findings(findings)).split("\n")[:-1]
    assert len([line for line in lines if line.startswith("  ")]) == len(findings)
    assert all(line.count("\t") in (3, 5) for line in lines)  # service, machine


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("host", host_schema),
        ("finding", finding_schema),
        ("run", run_schema),
        ("document", document_schema),
        ("diff", diff_schema),
    ],
)
def test_schemas_ship_in_the_package_and_are_versioned(name: str, make: Any) -> None:
    shipped = resources.files("xendiscover") / f"schema/{name}.schema.json"
    assert shipped.is_file()
    schema = json.loads(shipped.read_text(encoding="utf-8"))
    assert schema == make()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert isinstance(schema["x-schema-version"], int)
    assert schema["$id"].endswith(f"/{name}/{schema['x-schema-version']}.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert host_schema()["$id"] == SCHEMA_ID


def test_the_document_schema_refers_to_the_shipped_machine_and_run_schemas() -> None:
    properties = document_schema()["properties"]
    assert properties["machines"]["items"]["$ref"] == host_schema()["$id"]
    assert {"$ref": run_schema()["$id"]} in properties["run"]["anyOf"]
    assert run_schema()["properties"]["format"]["const"] == FORMAT_VERSION


def test_schemas_describe_exactly_the_records() -> None:
    finding = Finding("10.0.0.1", 8002)
    (machine,) = group_findings([finding])
    for schema, record in (
        (host_schema(), machine.as_dict()),
        (finding_schema(), {"record": "port", **port_records([finding])[0]}),
    ):
        assert set(schema["properties"]) == set(record)
        assert set(schema["required"]) == set(record) - {"record"}
        assert schema["properties"]["verdict"]["enum"] == list(get_args(Verdict))
    run = RunInfo(version="1", started=now(), merged=((1, 2), (2, 2)))
    assert set(run_schema()["properties"]) == {"record", *run.as_dict()}
    assert set(run_schema()["required"]) == set(run.as_dict()) - {"merged"}
    service = host_schema()["properties"]["services"]["items"]
    assert set(service["properties"]) == set(machine.services[0].as_dict())
    assert service["properties"]["service"]["enum"] == [*get_args(Service), None]


@pytest.mark.parametrize(
    ("key", "value"),
    [("verdict", "maybe"), ("address", "not-an-ip"), ("addresses", []), ("hostname_source", "dns")],
)
def test_schema_rejects_a_bad_machine(
    validator: jsonschema.protocols.Validator, key: str, value: object
) -> None:
    (machine,) = group_findings([Finding("10.0.0.1", 8002)])
    record: dict[str, Any] = machine.as_dict()
    assert validator.is_valid(record)
    assert not validator.is_valid({**record, key: value})  # type: ignore[dict-item]


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


def test_a_link_of_another_user_in_a_shared_directory_is_not_followed(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the link another owner")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: sticky, world-writable
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = shared / "out.json"
    link.symlink_to(victim)
    os.lchown(link, 54321, 54321)  # planted by another user
    with pytest.raises(PermissionError, match="another user"):
        write_atomically(link, "clobbered")
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in shared.iterdir()) == ["out.json"]
    os.lchown(link, 0, 0)  # our own link: followed, as before
    write_atomically(link, "new")
    assert victim.read_text() == "new"


def test_special_mode_bits_are_not_copied(tmp_path: Path) -> None:
    target = tmp_path / "inventory.json"
    target.write_text("old")
    target.chmod(0o4755)
    write_atomically(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_an_output_file_is_reserved_early_and_kept_whole_on_a_partial_run(tmp_path: Path) -> None:
    target = tmp_path / "inventory.json"
    target.write_text("complete old result")
    out = OutputFile(target)
    out.open()
    assert len(list(tmp_path.iterdir())) == 2  # the reserved temp file beside it
    written = out.keep_partial("half a result")
    assert written == tmp_path / "inventory.json.partial"
    assert target.read_text() == "complete old result"
    assert written.read_text() == "half a result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "inventory.json",
        "inventory.json.partial",
    ]
    with pytest.raises(FileNotFoundError):
        OutputFile(tmp_path / "missing" / "x.json").open()


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
