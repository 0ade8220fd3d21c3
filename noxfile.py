"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``.

Every session installs the project from ``pyproject.toml`` into its own
virtual environment, so what passes here passes on a fresh machine.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (lab tests need root and network namespaces)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Run the property tests with 10,000 examples each (hypothesis "fuzz" profile)."""
    session.install("-e", ".[test]")
    session.env["HYPOTHESIS_PROFILE"] = "fuzz"
    properties = [
        "tests/test_properties.py",  # target, port and nameserver parsing
        "tests/test_fingerprint_parsers.py",  # every parser's contract
        "tests/test_fingerprint_safety.py",  # no forbidden word in any request
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
def docs(session: nox.Session) -> None:
    """Build the documentation site (site/) with MkDocs, warnings as errors."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about MkDocs 2.0
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark against nmap and thread-per-address; write docs/performance.md.

    Installs Debian's nmap with apt-get if it is missing. The routed workloads
    (W2, W3) need root for their network namespaces and are skipped without
    it. Pass options after ``--``, e.g. ``nox -s bench -- --quick`` or
    ``-- --workloads W1,W4``.
    """
    import shutil

    if shutil.which("nmap") is None:
        session.run("apt-get", "update", external=True)
        session.run("apt-get", "install", "-y", "nmap", external=True)
    session.install("-e", ".")
    session.run("python", "benchmarks/bench.py", *session.posargs)
