"""Nox sessions: each stage of the toolkit, plus lint and tests.

A stage session is `python -m tooling COMMAND` in a virtualenv with the
toolkit installed; arguments after `--` pass through, e.g.
`nox -s lock -- --update numpy`. No session holds logic of its own.
"""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

STAGE_COMMANDS = ("config", "lock", "lock-diff", "push", "bump", "set-image")


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
    """ruff (lint and format) and mypy over the toolkit, its tests and benchmarks."""
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, rig included (needs the Docker engine that DOCKER_HOST names)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)
