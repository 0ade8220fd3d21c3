"""The parser behind ``nox -s readme`` (tests/readme_commands.py): pure, no commands run."""

from __future__ import annotations

import pytest
import readme_commands as rc


def block(*lines: str) -> str:
    body = "\n".join(lines)
    return f"Intro.\n\n<!-- readme-test: set-up commands -->\n```sh\n{body}\n```\n\nMore.\n"


def test_the_readme_itself_parses_and_names_what_ci_runs() -> None:
    readme = rc.README.read_text()
    commands = rc.parse_setup_commands(readme)
    assert commands.second == "bash .ci/run"
    assert commands.sweep[0] == ".venv/bin/xendiscover"
    assert rc.check_second_command(commands, readme, rc.CI_RUN.read_text()).startswith("nox -s ")
    assert rc.demo_command(readme) == (".venv/bin/xendiscover", "demo")


def test_command_one_splits_at_its_sweep() -> None:
    commands = rc.parse_setup_commands(
        block(
            "# comments are not commands",
            "python3 -m venv .venv&&.venv/bin/pip install . && .venv/bin/xendiscover -p 8002",
            "bash .ci/run",
        )
    )
    assert commands.setup == (("python3", "-m", "venv", ".venv"), (".venv/bin/pip", "install", "."))
    assert commands.sweep == (".venv/bin/xendiscover", "-p", "8002")


@pytest.mark.parametrize(
    "lines",
    [
        ["python3 -m venv .venv; .venv/bin/xendiscover", "bash .ci/run"],  # not &&
        ["python3 -m venv .venv || true && .venv/bin/xendiscover", "bash .ci/run"],
        [".venv/bin/xendiscover -p 8002 && echo done", "bash .ci/run"],  # sweep not last
        ["python3 -m xendiscover && .venv/bin/xendiscover demo", "bash .ci/run"],  # 2 scans
        [".venv/bin/xendiscover && .venv/bin/xendiscover demo", "bash .ci/run"],
        ["python3 -m venv .venv && .venv/bin/xendiscover"],  # one command
        ["a && .venv/bin/xendiscover", "bash .ci/run", "more"],  # three
    ],
)
def test_what_the_check_cannot_run_safely_is_an_error(lines: list[str]) -> None:
    with pytest.raises(rc.ReadmeError):
        rc.parse_setup_commands(block(*lines))


def test_no_marker_is_an_error() -> None:
    with pytest.raises(rc.ReadmeError, match="marker"):
        rc.parse_setup_commands("```sh\nbash .ci/run\n```\n")


def test_command_two_must_be_what_ci_runs() -> None:
    commands = rc.parse_setup_commands(block("a && .venv/bin/xendiscover", "bash ci.sh"))
    with pytest.raises(rc.ReadmeError, match=r"bash \.ci/run"):
        rc.check_second_command(commands, "", 'exec "$venv/bin/nox" -s tests\n')
    commands = rc.parse_setup_commands(block("a && .venv/bin/xendiscover", "bash .ci/run"))
    with pytest.raises(rc.ReadmeError, match="nox -s tests lint"):
        rc.check_second_command(commands, "`nox -s tests`", 'exec "$venv/bin/nox" -s tests lint\n')
