"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``docs`` and more.

Every session installs the project from ``pyproject.toml`` into its own
virtual environment, so what passes here passes on a fresh machine.

``tests`` runs on every supported Python the machine has (see
:func:`find_pythons`) and fails when it has none of them; the other sessions
run on the first one found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

# What CI runs (.ci/run): the README's test command.
nox.options.sessions = ["tests", "lowest", "lint", "typecheck", "docs", "readme", "screenshots"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
# A session whose interpreter is missing fails instead of being skipped, and
# nox never downloads an interpreter of its own.
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"

ROOT = Path(__file__).resolve().parent
#: The Python versions the project supports (pyproject: requires-python >= 3.11).
SUPPORTED = ("3.11", "3.12", "3.13")
#: Symlinks to the interpreters found, put first on PATH so nox's own lookup
#: of ``pythonX.Y`` lands on them (and not on, say, a pyenv shim for a
#: version that pyenv has installed but not selected, which fails when run).
PYTHON_LINKS = ROOT / ".nox" / "_pythons"
#: Where pyenv keeps the versions it has installed.
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def _works(candidate: str, version: str) -> str | None:
    """The real executable behind ``candidate`` if it runs as ``version`` and has venv."""
    # ensurepip is what Debian's python3-venv adds: without it, venv cannot make
    # an environment with pip in it.
    major, minor = version.split(".")
    code = (
        "import sys, ensurepip, venv\n"
        f"assert sys.version_info[:2] == ({major}, {minor})\n"
        "print(sys.executable)"
    )
    try:
        done = subprocess.run(
            [candidate, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    executable = done.stdout.strip()
    return executable if done.returncode == 0 and os.path.isabs(executable) else None


def _candidates(version: str) -> list[str]:
    """``pythonX.Y`` on PATH, then pyenv's installs of that version, newest first."""
    found = [shutil.which(f"python{version}") or ""]
    installs = [
        d for d in PYENV_VERSIONS.glob(f"{version}.*") if re.fullmatch(r"\d+\.\d+\.\d+", d.name)
    ]
    installs.sort(key=lambda d: tuple(int(part) for part in d.name.split(".")), reverse=True)
    found += [str(d / "bin" / f"python{version}") for d in installs]
    return [c for c in dict.fromkeys(found) if c]


def find_pythons() -> dict[str, str]:
    """Each supported version this machine can run, mapped to its interpreter.

    A candidate counts only if running it works: a pyenv shim exists for every
    installed version but fails unless that version is selected, and Debian's
    ``python3.X`` cannot make a virtual environment without python3-venv.
    """
    found: dict[str, str] = {}
    for version in SUPPORTED:
        for candidate in _candidates(version):
            if executable := _works(candidate, version):
                found[version] = executable
                break
    return found


def _link_pythons(found: dict[str, str]) -> None:
    """Point ``PYTHON_LINKS/pythonX.Y`` at the interpreters found; put it first on PATH."""
    PYTHON_LINKS.mkdir(parents=True, exist_ok=True)
    wanted = {f"python{version}": executable for version, executable in found.items()}
    for link in PYTHON_LINKS.iterdir():
        if link.name.startswith("python") and link.name not in wanted:
            link.unlink(missing_ok=True)
    for name, executable in wanted.items():
        staged = PYTHON_LINKS / f".{name}.{os.getpid()}"
        staged.unlink(missing_ok=True)
        staged.symlink_to(executable)
        staged.replace(PYTHON_LINKS / name)  # atomic: another nox may be reading the link
    os.environ["PATH"] = os.pathsep.join([str(PYTHON_LINKS), os.environ.get("PATH", "")])


FOUND = find_pythons()
_link_pythons(FOUND)
#: The versions ``tests`` runs on; empty when the machine has none.
PYTHONS = list(FOUND)
#: The one version the other sessions use (when none is found, nox reports it missing).
PYTHON = PYTHONS[0] if PYTHONS else SUPPORTED[0]


@nox.session(python=PYTHONS or False)
def tests(session: nox.Session) -> None:
    """Run the test suite on each supported Python found (lab tests need root)."""
    if not PYTHONS:
        session.error(
            f"no supported Python found: the tests need one of python{', python'.join(SUPPORTED)}"
            " with venv (Debian and Ubuntu: apt-get install python3-venv); looked on PATH"
            f" and in {PYENV_VERSIONS}"
        )
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


def lowest_pins(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``NAME==FLOOR`` for every runtime dependency: the lowest version pyproject allows.

    Each dependency must have a ``>=`` floor (a dependency without one is an
    error here): the floor is a promise, and the ``lowest`` session keeps it.
    """
    import tomllib

    from packaging.requirements import Requirement

    pins = []
    for line in tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]:
        requirement = Requirement(line)
        floors = [s.version for s in requirement.specifier if s.operator == ">="]
        if len(floors) != 1:
            raise ValueError(f"dependency {line!r} has no single >= floor")
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


@nox.session(python=PYTHON)
def lowest(session: nox.Session) -> None:
    """Run the test suite with the lowest allowed version of every runtime dependency.

    The floors in pyproject.toml (``typer>=0.15.4``, ...) are pinned exactly
    (:func:`lowest_pins`, as ``uv pip install --resolution lowest-direct``
    would choose them); what those pull in is resolved as usual.
    """
    constraints = Path(session.create_tmp()) / "lowest.txt"
    constraints.write_text("\n".join(lowest_pins()) + "\n", encoding="utf-8")
    session.install("-c", str(constraints), "-e", ".[test]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Run the property tests with 10,000 examples each (hypothesis "fuzz" profile)."""
    session.install("-e", ".[test]")
    session.env["HYPOTHESIS_PROFILE"] = "fuzz"
    properties = [
        "tests/test_properties.py",  # target, port and nameserver parsing
        "tests/test_fingerprint_parsers.py",  # every parser's contract
        "tests/test_fingerprint_safety.py",  # no forbidden word in any request
        "tests/test_protocol.py",  # the probe-process protocol, bytes in any chunks
        "tests/test_output.py",  # every renderer, hostile names and evidence
    ]
    session.run("pytest", "-q", *properties, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the package, the tests and this file with mypy --strict."""
    session.install("-e", ".[test]", "mypy", "nox")
    session.run("mypy")


@nox.session(python=PYTHON)
def lab(session: nox.Session) -> None:
    """Run ``python -m xendiscover ARGS`` inside the virtual LAN of tests/netlab.py.

    Needs root: it builds network namespaces (an admin host, a /24 with Xen
    fakes and decoys, a lossy /20, a down interface, an IPv6 /64, a routed
    subnet behind a gateway, a dnsmasq), runs the scan in the admin
    namespace, and tears everything down. Example: ``nox -s lab -- --all``.
    """
    import sys

    session.install("-e", ".")
    sys.path.insert(0, "tests")
    import netlab

    code = netlab.run_in_lab(session.posargs, python=f"{session.bin}/python")
    if code not in (0, 1):
        session.error(f"xendiscover exited with {code}")


@nox.session(python=PYTHON)
def readme(session: nox.Session) -> None:
    """Run the README's set-up command as written, in fresh clones (tests/readme_commands.py).

    Once with Debian's own python3 (``env -i``, a stock PATH, no pyenv) and once
    with this machine's environment; apt-get runs for real as root. The sweep
    half runs inside the namespace lab's admin namespace and must name the lab's
    Xen hosts; without root it is replaced by ``demo``. Command 2 is checked to
    be ``bash .ci/run``, never run: CI runs it, and it runs this session.
    """
    session.install("-e", ".")
    session.run("python", "tests/readme_commands.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site (site/) with MkDocs, warnings as errors."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2.0
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def screenshots(session: nox.Session) -> None:
    """Screenshot every docs page in headless Chromium at 1280 and 390 px; fail on overflow.

    Builds the site into build/screenshots/site, serves it on 127.0.0.1 and
    writes build/screenshots/PAGE-WIDTH.png (look at them); the check is in
    tests/docs_screenshots.py. Installs Debian's chromium and fonts-dejavu-core
    with apt-get if chromium is missing.
    """
    if shutil.which("chromium") is None:
        session.run("apt-get", "update", external=True)
        packages = ("chromium", "fonts-dejavu-core")
        session.run("apt-get", "install", "-y", "--no-install-recommends", *packages, external=True)
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    out = ROOT / "build" / "screenshots"
    shutil.rmtree(out, ignore_errors=True)
    session.run("mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out / "site"))
    session.run(
        "python", "tests/docs_screenshots.py", "--site", str(out / "site"), "--out", str(out)
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark against nmap and thread-per-address; write docs/performance.md.

    Installs Debian's nmap with apt-get if it is missing. The routed workloads
    (W2, W3) and the namespace lab of W5 need root (and W5 dnsmasq) and are
    skipped, with the reason, without them. Pass options after ``--``, e.g.
    ``nox -s bench -- --quick``, ``-- --workloads W1,W4`` or
    ``-- --baseline-rev fe5ab22`` (the same rows for that revision, in the
    same rotation).
    """
    import shutil

    if shutil.which("nmap") is None:
        session.run("apt-get", "update", external=True)
        session.run("apt-get", "install", "-y", "nmap", external=True)
    session.install("-e", ".")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python=PYTHON)
def mutation(session: nox.Session) -> None:
    """Mutation-test the sweep, the fingerprint decisions and grouping (long: not in CI).

    mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``) mutates
    ``_sweep/_prober.py``, ``_fingerprint/__init__.py``,
    ``_fingerprint/_driver.py`` and ``_model.py`` and runs the fast tests
    that cover each mutant; a survivor is a change no test noticed. It prints
    the survivors and the counts; ``mutmut show NAME`` (in the session's
    environment) shows one. Pass mutmut options after ``--``, e.g.
    ``nox -s mutation -- --max-children 2``.
    """
    session.install("-e", ".[test]", "mutmut==3.8.1")
    session.run("mutmut", "run", *session.posargs)
    session.run("mutmut", "results")
