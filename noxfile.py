"""One dev loop: `nox` runs lint, types and tests with the same commands as `.ci/run` and the README."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install("torch==2.13.0")
    session.install("-e", ".[dev,train,serve]")
    session.run("mypy")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    session.install("torch==2.13.0")
    session.install("-e", ".[dev,train,serve]")
    session.run("python", "-m", "pytest", "-m", "not gpu", *session.posargs)


@nox.session(python="3.11")
def fast(session: nox.Session) -> None:
    """Plain pytest: unit tests only (the default markers skip the integration tier)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[dev,train,serve]")
    session.run("python", "-m", "pytest", *session.posargs)
