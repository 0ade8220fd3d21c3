"""Development sessions: ``nox -s tests``, ``lint``, ``typecheck``.

Every session installs the project from ``pyproject.toml`` into its own
virtual environment, so what passes here passes on a fresh machine.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
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
    session.run("pytest", "-m", "not netns", "-k", "propert or hypothesis", *session.posargs)


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
