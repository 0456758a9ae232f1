"""Nox sessions: each stage of the toolkit, plus lint and tests.

A stage session is `python -m tooling COMMAND` in a virtualenv with the
toolkit installed; arguments after `--` pass through, e.g.
`nox -s lock -- --update numpy`. No session holds logic of its own.
"""

from pathlib import Path

import nox

nox.needs_version = ">=2026.10.20"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

WORKFLOWS = sorted(str(path) for path in Path(".github/workflows").glob("*.yml"))
STAGE_COMMANDS = (
    "config",
    "lock",
    "lock-diff",
    "build",
    "test",
    "push",
    "bump",
    "set-image",
    "check",
    "deploy",
    "verify",
    "promote",
    "rollback",
    "pipeline",
    "runbook",
    "loadtest",
)


def _stage_session(command: str) -> None:
    def stage(session: nox.Session) -> None:
        session.install("-e", ".")
        session.run("python", "-m", "tooling", command, *session.posargs)

    stage.__doc__ = f"python -m tooling {command} (arguments after -- pass through)"
    nox.session(name=command)(stage)


for _command in STAGE_COMMANDS:
    _stage_session(_command)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy over the toolkit, its tests and benchmarks; the workflows audited."""
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    # Low findings are advice (e.g. installing configurable-http-proxy without a lockfile); fail on the rest.
    # No actionlint: PyPI offers only a one-person fork's prebuilt binary that cannot be checked against its
    # source here; tests/test_workflows.py holds this project's own rules for the workflows.
    session.run("zizmor", "--min-severity", "medium", ".github/workflows")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, rig included (needs the Docker engine that DOCKER_HOST names)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)
