"""Results read back, merged and compared: the reader, ``merge`` and ``diff``, API and command.

Results are written by the code the command uses (:func:`render` with a
:class:`RunInfo`) and read back by :func:`parse_result`/:func:`load_result`;
hostile or foreign files must end in one line and exit status 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import schema_validator

import xendiscover
from xendiscover import Change, Finding, Host, ResultError, RunInfo, ScanResult
from xendiscover._diff import changed, format_diff_jsonl, format_diff_text
from xendiscover._model import group_findings
from xendiscover._output import diff_schema, document_schema, listed, render
from xendiscover._results import load_result, parse_result
from xendiscover._run import FORMAT_VERSION
from xendiscover._targets import TargetSpace

NET = "10.0.0.0/24"
UUID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def _run(shard: tuple[int, int] = (1, 1), **changes: Any) -> RunInfo:
    run = RunInfo(
        version=xendiscover.__version__,
        started="2026-03-01T06:00:00.000+00:00",
        targets=(NET,),
        resolved=(NET,),
        ports=(443, 8002),
        shard=shard,
        listing="all",
    ).finished(stopped=None)
    return dataclasses.replace(run, ended="2026-03-01T06:00:04.500+00:00", **changes)


def _xend(address: str, verdict: str = "confirmed", **kwargs: Any) -> Finding:
    return Finding(address, 8002, "xend-relocation", verdict, "xend", 0.5, **kwargs)  # type: ignore[arg-type]


def _xapi(address: str, uuid: str = UUID, **kwargs: Any) -> Finding:
    """A XAPI host's port: its pool certificate's UUID claim, and the key that proves it."""
    key = hashlib.sha256(uuid.encode()).hexdigest()
    return Finding(
        address, 443, "xapi", "confirmed", "isAlive", 0.7, host_uuid=uuid,
        key_fingerprints=(key,), **kwargs,
    )  # fmt: skip


FOUND = [
    _xend("10.0.0.5", hostname="polar.example", hostname_source="ptr"),
    Finding("10.0.0.5", 443, None, "not-xen", "nginx", 0.3),
    _xapi("10.0.0.12", hostname="carbono.example", hostname_source="ptr"),
    _xapi("10.0.0.201"),  # the same XAPI host on a second address (another shard of 4)
    _xend("10.0.0.20", "likely", hostname="x\\x5b.example", hostname_source="ptr-unconfirmed"),
    Finding("10.0.0.31", 16509, "libvirt", "unknown", "libvirt", 0.2),
]


def _result(found: list[Finding], fmt: str, run: RunInfo | None = None) -> ScanResult:
    return parse_result(render(found, fmt, view="all", run=run or _run()), name=f"r.{fmt}")


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_result_reads_back_as_the_machines_and_run_written(fmt: str) -> None:
    result = _result(FOUND, fmt)
    assert result.run == _run()
    assert list(result.machines) == group_findings(FOUND)
    assert result.machines[1].addresses == ("10.0.0.12", "10.0.0.201")  # by its key
    if fmt == "jsonl":
        assert result.findings == tuple(sorted(FOUND, key=lambda f: f.sort_key))


def test_a_json_result_of_the_xen_machines_reads_back_as_them() -> None:
    run = _run(listing="xen")
    result = parse_result(render(FOUND, "json", run=run))
    assert list(result.machines) == listed(FOUND, "xen")
    assert result.run is not None
    assert result.run.listing == "xen"


def test_a_jsonl_without_its_end_line_was_cut_short() -> None:
    lines = render(FOUND, "jsonl", run=_run()).splitlines(keepends=True)
    result = parse_result("".join(lines[:-1]))
    assert result.run is not None
    assert not result.run.completed
    assert len(result.open_ports()) == len(FOUND)


def test_results_of_the_previous_format_are_read_without_a_run() -> None:
    array = json.dumps([h.as_dict() for h in group_findings(FOUND)])
    old = parse_result(array)
    assert old.run is None
    assert list(old.machines) == group_findings(FOUND)
    lines = "".join(json.dumps(f.as_dict()) + "\n" for f in FOUND)
    old_lines = parse_result(lines)
    assert old_lines.run is None
    assert len(old_lines.open_ports()) == len(FOUND)


def _document(**run_changes: object) -> str:
    document = json.loads(render(FOUND, "json", run=_run()))
    document["run"].update(run_changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ("hello", "not JSON"),
        ("42", "not a result of xendiscover"),
        ('{"machines": 3}', "no 'machines' list"),
        (_document(format=FORMAT_VERSION + 1), "newer xendiscover"),
        (_document(tool="nmap"), "not a result of xendiscover"),
        (_document(shard="5/4"), "invalid shard"),
        (_document(ports=[0]), "invalid 'ports'"),
        (_document(resolved=["10.0.0.0/33"]), "invalid network"),
        (_document(started="\x1b[2J"), "invalid 'started'"),
        ('{"run": null, "machines": [{"address": "x"}]}', "machine 1: invalid 'address'"),
        ('{"run": null, "machines": [{"address": "10.0.0.1"}]}', "missing addresses"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"record": "port", "address": "10.0.0.1"}\n{"x": 1}', "line 1: missing"),
        ('{"record": "end"}\n', "not a record of xendiscover's jsonl"),
        ('{"record": "port", "address": "10.0.0.1", "port": 70000}\n', "invalid 'port'"),
    ],
)
def test_anything_else_is_one_line_naming_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ResultError) as caught:
        parse_result(text, name="in.json")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(("in.json", "not", "run", "written"))


def test_a_hostile_verdict_or_service_is_refused() -> None:
    document = json.loads(render(FOUND, "json", run=_run()))
    document["machines"][0]["services"][0]["verdict"] = "<script>"
    with pytest.raises(ResultError, match="service 1: invalid 'verdict'"):
        parse_result(json.dumps(document))


def test_a_file_that_is_too_large_or_not_text_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ResultError, match="not UTF-8"):
        load_result(binary)
    big = tmp_path / "big.json"
    big.write_text(render(FOUND, "json", run=_run()))
    monkeypatch.setattr("xendiscover._results.MAX_RESULT_BYTES", 100)
    with pytest.raises(ResultError, match="larger than"):
        load_result(big)
    with pytest.raises(ResultError, match="cannot read"):
        load_result(tmp_path / "absent.json")


# --------------------------------------------------------------------------- coverage


@given(
    st.lists(st.integers(0, 300), min_size=1, max_size=4),
    st.integers(1, 5),
    st.data(),
)
def test_a_run_covers_exactly_the_addresses_its_shard_sweeps(
    offsets: list[int], count: int, data: st.DataObject
) -> None:
    specs = [f"10.0.{o // 256}.{o % 256}/{data.draw(st.integers(28, 32))}" for o in offsets]
    space = TargetSpace.from_specs(specs, exclude=["10.0.0.3"])
    from xendiscover._run import space_networks

    index = data.draw(st.integers(1, count))
    run = _run(shard=(index, count), resolved=space_networks(space))
    swept = {address for _, address in space.sharded(index, count)}
    every = {address for _, address in space}
    assert {a for a in every if run.covers(a)} == swept
    assert not run.covers("10.0.0.3")
    assert not run.covers("192.0.2.1")


# --------------------------------------------------------------------------- merge


def _shards(found: list[Finding], count: int, fmt: str = "jsonl") -> list[ScanResult]:
    """The result each shard of ``count`` would have written: the ports at its addresses."""
    results = []
    for index in range(1, count + 1):
        run = _run(shard=(index, count))
        mine = [f for f in found if run.covers(f.address)]
        results.append(parse_result(render(mine, fmt, view="all", run=run), name=f"s{index}"))
    return results


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_merged_shards_are_the_unsharded_result(fmt: str) -> None:
    shards = _shards(FOUND, 4, fmt)
    # The XAPI host's two addresses fall in two shards: one machine once merged.
    assert sum(len(s.machines) for s in shards) == len(group_findings(FOUND)) + 1
    merged = xendiscover.merge(reversed(shards))
    assert list(merged.machines) == group_findings(FOUND)
    assert merged.run is not None
    assert merged.run.merged == ((1, 4), (2, 4), (3, 4), (4, 4))
    assert (merged.run.shard, merged.run.completed) == ((1, 1), True)
    document = json.loads(render(merged.open_ports(), "json", view="all", run=merged.run))
    schema_validator(document_schema()).validate(document)


def test_a_missing_or_incomplete_shard_is_named() -> None:
    one, _two, three, four = _shards(FOUND, 4)
    cut = dataclasses.replace(three, run=_run((3, 4), completed=False, stopped="SIGINT"))
    with pytest.raises(ResultError) as caught:
        xendiscover.merge([one, four, cut])
    assert str(caught.value) == "missing shard 2/4; shard 3/4 (s3) incomplete (SIGINT)"
    partial = xendiscover.merge([one, four, cut], partial=True)
    assert partial.run is not None
    assert not partial.run.completed
    assert partial.run.merged == ((1, 4), (3, 4), (4, 4))


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"ports": (8002,)}, "ports"),
        ({"resolved": ("10.0.1.0/24",)}, "targets"),
        ({"exclude": ("10.0.0.1",)}, "exclusions"),
        ({"version": "0.0.1"}, "version"),
        ({"shard": (2, 3)}, "shard count"),
    ],
)
def test_shards_of_another_plan_are_refused(changes: dict[str, Any], what: str) -> None:
    one, two = _shards(FOUND, 2)
    other = dataclasses.replace(two, run=dataclasses.replace(_run((2, 2)), **changes))
    with pytest.raises(ResultError, match=f"s2: not a shard of the plan of s1 \\(its {what}"):
        xendiscover.merge([one, other])


def test_the_same_shard_twice_or_no_run_metadata_is_refused() -> None:
    one, _ = _shards(FOUND, 2)
    with pytest.raises(ResultError, match=r"shard 1/2 given twice \(s1, s1\)"):
        xendiscover.merge([one, one])
    with pytest.raises(ResultError, match="no run metadata"):
        xendiscover.merge([dataclasses.replace(one, run=None)])
    with pytest.raises(ResultError, match="nothing to merge"):
        xendiscover.merge([])


# --------------------------------------------------------------------------- diff


def _events(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.event, c.machine) for c in changes]


def test_a_renumbered_host_has_moved_and_each_change_is_one_event() -> None:
    old = _result(FOUND, "json")
    new_found = [
        _xend("10.0.0.5", hostname="polar.example", hostname_source="ptr"),  # nginx stopped
        _xapi("10.0.0.77", hostname="carbono.example", hostname_source="ptr"),  # renumbered
        _xapi("10.0.0.202"),
        _xend(
            "10.0.0.20", "confirmed", hostname="x\\x5b.example", hostname_source="ptr-unconfirmed"
        ),
        Finding("10.0.0.31", 16509, "libvirt", "unknown", "libvirt", 0.2),
        _xend("10.0.0.90"),  # new
    ]
    changes = xendiscover.diff(old, _result(new_found, "jsonl"))
    assert [(c.event, c.machine, c.matched_by, c.port) for c in changes] == [
        ("service-removed", "polar.example", "name", 443),
        ("verdict-changed", "10.0.0.20", "address", 8002),
        ("moved", "carbono.example", "key_fingerprint", None),
        ("added", "10.0.0.90", None, None),
    ]
    moved = changes[2]
    assert (moved.old, moved.new) == (("10.0.0.12", "10.0.0.201"), ("10.0.0.77", "10.0.0.202"))
    assert changed(changes)
    for line in format_diff_jsonl(changes).splitlines():
        schema_validator(diff_schema()).validate(json.loads(line))


def test_nothing_changed_is_no_event() -> None:
    assert xendiscover.diff(_result(FOUND, "json"), _result(FOUND, "jsonl")) == []


def test_the_certificate_key_outranks_the_uuid_and_the_address() -> None:
    key_a, key_b = "a" * 64, "b" * 64
    (one,) = group_findings([_xapi("10.0.0.1", uuid="u-1")])
    (two,) = group_findings([_xapi("10.0.0.2", uuid="u-2")])
    fields = {f.name: getattr(one, f.name) for f in dataclasses.fields(Host)}
    fields2 = {f.name: getattr(two, f.name) for f in dataclasses.fields(Host)}
    old = ScanResult((Host(**{**fields, "key_fingerprints": (key_a,)}),
                      Host(**{**fields2, "key_fingerprints": (key_b,)})), _run())  # fmt: skip
    # The two hosts swapped addresses (and a UUID claim): the keys say who is who.
    swapped_one = Host(**{**fields2, "host_uuid": "u-1", "key_fingerprints": (key_a,)})
    swapped_two = Host(**{**fields, "host_uuid": "u-2", "key_fingerprints": (key_b,)})
    changes = xendiscover.diff(old, ScanResult((swapped_two, swapped_one), _run()))
    assert [(c.event, c.matched_by, c.old, c.new) for c in changes] == [
        ("moved", "key_fingerprint", ("10.0.0.2",), ("10.0.0.1",)),
        ("moved", "key_fingerprint", ("10.0.0.1",), ("10.0.0.2",)),
    ]


def test_removed_only_when_new_completed_and_swept_the_old_address() -> None:
    old = _result(FOUND, "json")
    gone = [f for f in FOUND if f.address != "10.0.0.31"]
    assert _events(xendiscover.diff(old, _result(gone, "json"))) == [("removed", "10.0.0.31")]
    cut = _run(completed=False, stopped="SIGINT")
    assert _events(xendiscover.diff(old, _result(gone, "json", cut))) == [
        ("not-checked", "10.0.0.31")
    ]
    elsewhere = _run(resolved=("10.0.0.0/28",))
    assert "removed" not in {
        c.event for c in xendiscover.diff(old, _result(gone, "json", elsewhere))
    }
    other_shard = _run(shard=(1, 2))  # .31 is in shard 2 of 2
    assert not other_shard.covers("10.0.0.31")
    assert "removed" not in {
        c.event for c in xendiscover.diff(old, _result(gone, "json", other_shard))
    }
    no_run = dataclasses.replace(_result(gone, "jsonl"), run=None)
    assert _events(xendiscover.diff(old, no_run)) == [("not-checked", "10.0.0.31")]
    assert not changed(xendiscover.diff(old, no_run))


def test_the_text_form_is_one_escaped_line_per_change() -> None:
    old = _result(FOUND, "json")
    evil = [_xend("10.0.0.5", hostname="a\x1b[2J.example", hostname_source="ptr-unconfirmed")]
    evil += FOUND[1:]
    new = ScanResult(tuple(group_findings(evil)), _run())  # as the API may be given it
    text = format_diff_text(xendiscover.diff(old, new))
    assert text == (
        "~ 10.0.0.5 [10.0.0.5] name-changed: "
        "polar.example (ptr) -> a\\x1b[2J.example (ptr-unconfirmed)\n"
    )


# --------------------------------------------------------------------------- the command


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xendiscover", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_diff_exit_status_is_0_unchanged_1_changed_2_error(tmp_path: Path) -> None:
    old, new, bad = tmp_path / "old.json", tmp_path / "new.jsonl", tmp_path / "bad.json"
    old.write_text(render(FOUND, "json", view="all", run=_run()))
    new.write_text(render(FOUND[:-1], "jsonl", run=_run()))
    bad.write_text(_document(format=99))
    same = _cli("diff", str(old), str(old))
    assert (same.returncode, same.stdout) == (0, "")
    diff = _cli("diff", "-f", "jsonl", str(old), str(new))
    assert diff.returncode == 1, diff.stderr
    (line,) = diff.stdout.splitlines()
    assert json.loads(line)["event"] == "removed"
    for args in ([str(old), str(bad)], [str(old)], [str(old), str(tmp_path / "none")]):
        error = _cli("diff", *args)
        assert error.returncode == 2
        assert error.stderr.count("\n") == 1
        assert "Traceback" not in error.stderr
    assert "newer xendiscover" in _cli("diff", str(old), str(bad)).stderr


def test_merge_writes_any_format_and_names_a_missing_shard(tmp_path: Path) -> None:
    files = []
    for shard in _shards(FOUND, 3):
        path = tmp_path / f"{shard.name}.jsonl"
        assert shard.findings is not None
        assert shard.run is not None
        path.write_text(render(list(shard.findings), "jsonl", run=shard.run))
        files.append(str(path))
    merged = _cli("merge", "--json", *files)
    assert merged.returncode == 0, merged.stderr
    document = json.loads(merged.stdout)
    assert [m["addresses"] for m in document["machines"]] == [
        list(h.addresses) for h in group_findings(FOUND)
    ]
    assert document["run"]["merged"] == ["1/3", "2/3", "3/3"]
    out = tmp_path / "merged.csv"
    assert _cli("merge", "-f", "csv", "-o", str(out), *files).returncode == 0
    assert out.read_bytes().count(b"\n") == len(FOUND) + 1  # \n line ends (issue 21)
    assert b"\r" not in out.read_bytes()
    assert json.loads((tmp_path / "merged.csv.run.json").read_text())["run"]["completed"]
    missing = _cli("merge", files[0], files[2])
    assert missing.returncode == 2
    assert missing.stderr == "xendiscover merge: error: missing shard 2/3\n"


def test_the_api_example_of_the_docs_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "runs.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", page, re.DOTALL)
    monkeypatch.chdir(tmp_path)
    Path("old.json").write_text(render(FOUND, "json", view="all", run=_run()))
    Path("new.jsonl").write_text(render(FOUND[1:], "jsonl", run=_run()))
    for shard in _shards(FOUND, 2):
        assert shard.findings is not None
        Path(f"{shard.name}.jsonl").write_text(render(list(shard.findings), "jsonl", run=shard.run))
    exec(compile(example, "runs.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "name-changed 10.0.0.5 polar.example (ptr) None"
    assert out[1] == "service-removed 10.0.0.5 xend-relocation None"
    assert out[-1] == repr([h.key for h in group_findings(FOUND)])


def test_a_product_one_sweep_could_not_tell_is_no_change_another_one_is() -> None:
    from xendiscover._model import Product

    def sweep(product: Product | None) -> ScanResult:
        found = [_xend("10.0.0.5", product=product)]
        return ScanResult(tuple(group_findings(found)), _run())

    xcp82, xcp83 = Product("XCP-ng", "8.2"), Product("XCP-ng", "8.3")
    assert xendiscover.diff(sweep(xcp82), sweep(None)) == []  # less knowledge
    assert xendiscover.diff(sweep(xcp82), sweep(Product("XCP-ng"))) == []  # no version now
    (change,) = xendiscover.diff(sweep(xcp82), sweep(xcp83))
    assert (change.event, change.port, change.old, change.new) == (
        "product-changed",
        8002,
        "xend-relocation XCP-ng 8.2",
        "xend-relocation XCP-ng 8.3",
    )
    (change,) = xendiscover.diff(sweep(xcp82), sweep(Product("XenServer", "8.2")))
    assert change.event == "product-changed"


@pytest.mark.parametrize("command", ["diff", "merge"])
def test_the_subcommands_help_is_plain(command: str) -> None:
    done = _cli(command, "--help")
    assert done.returncode == 0
    first = done.stdout.splitlines()[0]
    assert (
        first
        == {
            "diff": "Usage: xendiscover diff [OPTIONS] OLD NEW",
            "merge": "Usage: xendiscover merge [OPTIONS] FILE...",
        }[command]
    )
    assert "<str>" not in done.stdout
    assert "{" not in done.stdout
