"""The push stage against a real registry (open, and with htpasswd auth), real docker pushes and pulls.

The CLI runs as a subprocess, as a person runs it, with its own HOME, TMPDIR,
DOCKER_CONFIG and job-summary file, and with HUBSHIP_DOCKER pointing at a
wrapper that writes down every docker command line before running the real
CLI. So the tests can show that a password reaches no output, log line,
report, file or argv, and that the user's Docker config stays as it was.

Two stand-ins live here for what the rig's registry cannot do: a front
server that answers 503 before forwarding to the real registry (a
transient failure), and one that hands out bearer tokens from its own token
endpoint before forwarding (the token flow of ghcr.io, Docker Hub, quay).

The registries are shared by the tests of this module (each test pushes to
its own repository name), so docker mounts the base image's layer from an
earlier push instead of compressing and uploading it again.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rig.docker import build_with_buildkit, local_image_id
from tests.rig.registry import RunningRegistry, serve_registry
from tooling.config import ENV_PASSWORD, ENV_USERNAME
from tooling.docker import Docker
from tooling.errors import ToolingError
from tooling.log import logger
from tooling.proc import free_port
from tooling.push import PushRequest, push_image
from tooling.registry import (
    MANIFEST_TYPES,
    Credentials,
    RegistryClient,
    RetryPolicy,
    find_credentials,
)
from tooling.state import BuiltImage, State
from tooling.state import TestedImage as SmokeTestRecord  # a name pytest does not take for a test class

PINNED = re.compile(r"^(?P<reference>\S+):(?P<tag>[^:@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
# Short waits, so the retry tests take well under a second.
FAST_RETRY = RetryPolicy(attempts=3, first_delay=0.05, max_delay=0.2, total_seconds=10)

HUB_TOML = """\
[image]
registry = "{registry}"
name = "{name}"

[deploy.staging]
values = ["deploy/staging.yaml"]
image = [{{ file = "deploy/staging.yaml", path = "jupyterhub.singleuser.image" }}]
release = "hub-staging"
namespace = "hub-staging"
chart_version = "4.3.3"

[deploy.prod]
values = ["deploy/prod.yaml"]
image = [{{ file = "deploy/prod.yaml", path = "jupyterhub.singleuser.image" }}]
release = "hub-prod"
namespace = "hub-prod"
chart_version = "4.3.3"
"""

DOCKER_WRAPPER = """\
#!/bin/sh
# Writes down each docker command line and the environment it runs in, then runs the real CLI.
printf '%s\\n' "$*" >> '{log}'
env >> '{log}.env'
exec '{program}' "$@"
"""


# ---------------------------------------------------------------- a hub repository and its user


@dataclass
class Hub:
    """A hub repository whose hub.toml pushes to `registry`, and a user of its own around the CLI."""

    root: Path
    registry: str
    name: str
    docker: Docker
    base_image: str
    home: Path
    user_docker_config: Path
    tmpdir: Path
    step_summary: Path
    argv_log: Path
    wrapper: Path
    outputs: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.name}"

    def reference(self, tag: str) -> str:
        return f"{self.repository}:{tag}"

    def build(self, tag: str) -> str:
        """A new image (the base image and a unique label) tagged REGISTRY/NAME:TAG; its id."""
        context = self.root / "context" / secrets.token_hex(4)
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(f"FROM {self.base_image}\nLABEL org.hubship.test={secrets.token_hex(8)}\n")
        reference = self.reference(tag)
        build_with_buildkit(self.docker, "--network", "none", "--tag", reference, str(context))
        image_id = local_image_id(self.docker, reference)
        self.built += [reference, image_id]
        return image_id

    def record_build(self, tag: str, image_id: str) -> None:
        State.load(self.root).record_build(BuiltImage(self.reference(tag), image_id, lock_sha256="0" * 64))

    def record_smoke_test(self, tag: str, image_id: str, *, passed: bool = True) -> None:
        report = str(self.root / ".hubship" / "reports" / "test.md")
        State.load(self.root).record_test(SmokeTestRecord(self.reference(tag), image_id, passed=passed, report=report))

    def build_and_pass(self, tag: str) -> str:
        image_id = self.build(tag)
        self.record_build(tag, image_id)
        self.record_smoke_test(tag, image_id)
        return image_id

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        """This user's environment: nothing of the caller's registry logins or CI settings."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("HUBSHIP_", "GITHUB_")) and key != "DOCKER_CONFIG"
        }
        env.update(
            HOME=str(self.home),
            TMPDIR=str(self.tmpdir),
            HUBSHIP_DOCKER=str(self.wrapper),
            GITHUB_STEP_SUMMARY=str(self.step_summary),
        )
        env.update(extra)
        return env

    def push(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`python -m tooling -v push ARGS` as this user; -v logs every command line, the most there is to leak."""
        command = [sys.executable, "-m", "tooling", "-v", "--config", str(self.root / "hub.toml"), "push", *args]
        completed = subprocess.run(
            command,
            env=self.environment(env or {}),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.outputs.append(completed.stdout + completed.stderr)
        return completed

    def docker_command_lines(self) -> list[str]:
        return self.argv_log.read_text().splitlines() if self.argv_log.exists() else []

    def written_files(self) -> dict[str, str]:
        """Every file the toolkit may have written: state, reports, the job summary, docker's argv and environment."""
        files = [path for path in (self.root / ".hubship").rglob("*") if path.is_file()]
        files += [self.step_summary, self.argv_log, Path(f"{self.argv_log}.env")]
        return {str(path): path.read_text(errors="replace") for path in files if path.exists()}

    def remove_images(self) -> None:
        """Remove every tag and image the test made (a rebuilt tag leaves the earlier image untagged)."""
        for reference in self.built:
            self.docker.run("rmi", reference, check=False)


@pytest.fixture
def make_hub(tmp_path: Path, docker_cli: Docker, rig_base_image: str) -> Iterator[Callable[[str], Hub]]:
    hubs: list[Hub] = []

    def make(registry: str) -> Hub:
        root = tmp_path / f"hub-{len(hubs)}"
        name = f"hubship-test/push-{secrets.token_hex(4)}"
        (root / ".hubship").mkdir(parents=True)
        (root / "hub.toml").write_text(HUB_TOML.format(registry=registry, name=name))
        for folder in ("home", "tmp", "user-docker-config", "bin"):
            (root.parent / f"{root.name}-{folder}").mkdir()
        argv_log = root.parent / f"{root.name}-docker-argv.log"
        wrapper = root.parent / f"{root.name}-bin" / "docker"
        program = shutil.which(docker_cli.program)
        assert program is not None
        wrapper.write_text(DOCKER_WRAPPER.format(log=argv_log, program=program))
        wrapper.chmod(0o755)
        hub = Hub(
            root=root,
            registry=registry,
            name=name,
            docker=docker_cli,
            base_image=rig_base_image,
            home=root.parent / f"{root.name}-home",
            user_docker_config=root.parent / f"{root.name}-user-docker-config",
            tmpdir=root.parent / f"{root.name}-tmp",
            step_summary=root.parent / f"{root.name}-step-summary.md",
            argv_log=argv_log,
            wrapper=wrapper,
        )
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.remove_images()


@pytest.fixture
def tooling_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """caplog for the toolkit's own logger, which stops propagating to the root once a CLI run configured it."""
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [*logger.handlers, caplog.handler])
    caplog.set_level(logging.DEBUG, logger=logger.name)
    return caplog


@pytest.fixture(scope="module")
def open_registry() -> Iterator[RunningRegistry]:
    with serve_registry() as running:
        yield running


@pytest.fixture(scope="module")
def auth_registry() -> Iterator[RunningRegistry]:
    with serve_registry(auth=True) as running:
        yield running


def served_digest(registry: RunningRegistry, name: str, tag: str) -> str | None:
    """The digest the registry serves for NAME:TAG (authenticated if it needs it), None if none."""
    answer = registry.request(f"/v2/{name}/manifests/{tag}", method="HEAD", accept=MANIFEST_TYPES)
    return answer.headers["Docker-Content-Digest"] if answer.status == 200 else None


def pinned_line(completed: subprocess.CompletedProcess[str]) -> re.Match[str]:
    assert completed.returncode == 0, completed.stderr
    match = PINNED.match(completed.stdout.splitlines()[0])
    assert match, completed.stdout
    return match


def error_of(completed: subprocess.CompletedProcess[str]) -> str:
    """The one `error: ...` message of a failed run, after checking it failed without a traceback."""
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    return completed.stderr[completed.stderr.index("error: ") :]


def assert_secret_nowhere(hub: Hub, username: str, password: str) -> None:
    forms = (password, base64.b64encode(f"{username}:{password}".encode()).decode())
    places = {"CLI output": "\n".join(hub.outputs), **hub.written_files()}
    for place, text in places.items():
        for form in forms:
            assert form not in text, f"a secret reached {place}"


# ---------------------------------------------------------------- gates


@pytest.mark.docker
def test_image_without_a_passed_smoke_test_is_refused(
    open_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    hub = make_hub(open_registry.address)
    image_id = hub.build("img-untested")
    hub.record_build("img-untested", image_id)

    untested = error_of(hub.push())
    assert f"{hub.reference('img-untested')} (image {image_id}) has not passed the smoke test" in untested
    assert "Run `python -m tooling test`" in untested

    hub.record_smoke_test("img-untested", image_id, passed=False)
    failed = error_of(hub.push())
    assert "failed its smoke test (report: " in failed
    assert "python -m tooling test" in failed

    assert not [line for line in hub.docker_command_lines() if line.startswith("push")]
    assert served_digest(open_registry, hub.name, "img-untested") is None
    assert State.load(hub.root).pushed is None


@pytest.mark.docker
def test_image_changed_since_the_recorded_build_is_refused(
    open_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    hub = make_hub(open_registry.address)
    recorded = hub.build_and_pass("img-retagged")
    rebuilt = hub.build("img-retagged")
    hub.record_smoke_test("img-retagged", rebuilt)

    message = error_of(hub.push())
    assert f"{hub.reference('img-retagged')} is now the image {rebuilt}, not {recorded}" in message
    assert "python -m tooling build" in message
    assert served_digest(open_registry, hub.name, "img-retagged") is None


def test_missing_docker_engine_is_one_message_saying_how_to_start_one(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    root.mkdir()
    (root / "hub.toml").write_text(HUB_TOML.format(registry="127.0.0.1:5000", name="hub/image"))
    State.load(root).record_build(BuiltImage("127.0.0.1:5000/hub/image:img-1", "sha256:" + "1" * 64, "0" * 64))
    socket = f"unix://{tmp_path}/no-engine.sock"
    env = {**os.environ, "DOCKER_HOST": socket}
    completed = subprocess.run(
        [sys.executable, "-m", "tooling", "--config", str(root / "hub.toml"), "push"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert f"error: No Docker engine answers at {socket}" in completed.stderr
    assert "Start a Docker engine" in completed.stderr


# ---------------------------------------------------------------- pushing to an open registry


@pytest.mark.docker
def test_tested_image_is_pushed_recorded_and_pulls_back_by_the_printed_digest(
    open_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    hub = make_hub(open_registry.address)
    image_id = hub.build_and_pass("img-first")

    first = hub.push()
    pinned = pinned_line(first)
    assert pinned["reference"] == hub.repository
    assert pinned["tag"] == "img-first"
    digest = pinned["digest"]
    assert served_digest(open_registry, hub.name, "img-first") == digest
    assert "pushed in" in first.stdout
    assert "python -m tooling bump staging" in first.stdout
    recorded = State.load(hub.root).pushed
    assert recorded is not None
    assert (recorded.reference, recorded.digest, recorded.image_id) == (hub.reference("img-first"), digest, image_id)
    report = (hub.root / ".hubship" / "reports" / "push.md").read_text()
    assert f"`{hub.reference('img-first')}@{digest}`" in report
    assert "python -m tooling bump staging" in report
    assert report.strip() in hub.step_summary.read_text()

    again = hub.push()
    assert pinned_line(again)[0] == pinned[0]
    assert "already in the registry with this image: nothing uploaded" in again.stdout
    assert [line for line in hub.docker_command_lines() if line.startswith("push")] == [
        f"push {hub.reference('img-first')}"
    ]
    assert "nothing uploaded" in (hub.root / ".hubship" / "reports" / "push.md").read_text()

    hub.docker.run("rmi", hub.reference("img-first"))
    assert hub.docker.inspect_image(image_id) is None
    hub.docker.run("pull", f"{hub.repository}@{digest}")
    try:
        assert local_image_id(hub.docker, f"{hub.repository}@{digest}") == image_id
    finally:
        hub.docker.run("rmi", f"{hub.repository}@{digest}")


@pytest.mark.docker
def test_other_image_under_a_pushed_tag_is_refused_and_the_registry_keeps_the_first(
    open_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    hub = make_hub(open_registry.address)
    hub.build_and_pass("img-taken")
    first_digest = pinned_line(hub.push())["digest"]

    other_id = hub.build_and_pass("img-taken")
    message = error_of(hub.push())
    assert f"The registry {open_registry.address} already holds the tag {hub.reference('img-taken')}" in message
    assert f"manifest {first_digest}" in message
    assert f"the local image is {other_id}" in message
    assert "rebuild (`python -m tooling build`)" in message
    assert f"{hub.repository}@{first_digest}" in message

    assert served_digest(open_registry, hub.name, "img-taken") == first_digest
    recorded = State.load(hub.root).pushed
    assert recorded is not None
    assert recorded.digest == first_digest
    assert len([line for line in hub.docker_command_lines() if line.startswith("push")]) == 1


@pytest.mark.docker
def test_image_option_pushes_a_tested_local_image_under_hub_toml_name(
    open_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    hub = make_hub(open_registry.address)
    image_id = hub.build("img-local")
    local = f"hubship-test/local-{secrets.token_hex(4)}:img-local"
    hub.docker.run("tag", hub.reference("img-local"), local)
    hub.built.append(local)
    hub.docker.run("rmi", hub.reference("img-local"))
    State.load(hub.root).record_test(SmokeTestRecord(local, image_id, passed=True, report="test.md"))

    pinned = pinned_line(hub.push("--image", local))
    assert pinned["reference"] == hub.repository
    assert pinned["tag"] == "img-local"
    assert served_digest(open_registry, hub.name, "img-local") == pinned["digest"]
    assert f"tag {local} {hub.reference('img-local')}" in hub.docker_command_lines()


@pytest.mark.docker
def test_unreachable_registry_fails_after_bounded_retries_naming_it(
    make_hub: Callable[[str], Hub], tooling_log: pytest.LogCaptureFixture
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    hub = make_hub(nowhere)
    hub.build_and_pass("img-nowhere")
    request = PushRequest(hub.root, nowhere, hub.name, hub.docker.program, retry=FAST_RETRY)

    with pytest.raises(ToolingError) as raised:
        push_image(request)
    message = raised.value.message
    assert message.startswith(f"The registry {nowhere} could not be reached: Connection refused")
    assert "gave up after 3 attempts" in message
    retries = [record.getMessage() for record in tooling_log.records if "retrying in" in record.getMessage()]
    assert len(retries) == 2
    assert all(nowhere in line for line in retries)
    assert State.load(hub.root).pushed is None


# ---------------------------------------------------------------- credentials


@pytest.mark.docker
def test_auth_registry_refuses_without_credentials_and_pushes_with_environment_credentials_unseen(
    auth_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    assert auth_registry.credentials is not None
    username, password = auth_registry.credentials.username, auth_registry.credentials.password
    hub = make_hub(auth_registry.address)
    someone_else = {"auths": {"registry.example.org": {"auth": base64.b64encode(b"someone:else").decode()}}}
    user_config = hub.user_docker_config / "config.json"
    user_config.write_text(json.dumps(someone_else))
    before = user_config.read_bytes()
    hub.build_and_pass("img-private")
    user = {"DOCKER_CONFIG": str(hub.user_docker_config)}

    anonymous = error_of(hub.push(env=user))
    assert f"The registry {auth_registry.address} refused access to {hub.name} (HTTP 401" in anonymous
    assert (
        f"credentials tried: none ({ENV_USERNAME} and {ENV_PASSWORD} are not set, and {user_config} holds no login "
        f"for {auth_registry.address})"
    ) in anonymous
    assert "`docker login`" in anonymous

    wrong = error_of(hub.push(env={**user, ENV_USERNAME: username, ENV_PASSWORD: "not-" + password}))
    assert f"credentials tried: {ENV_USERNAME} and {ENV_PASSWORD}. Check that they are current" in wrong
    assert "not-" + password not in "\n".join(hub.outputs)

    pushed = hub.push(env={**user, ENV_USERNAME: username, ENV_PASSWORD: password})
    digest = pinned_line(pushed)["digest"]
    assert served_digest(auth_registry, hub.name, "img-private") == digest
    assert f"Credentials: {ENV_USERNAME} and {ENV_PASSWORD}." in pushed.stdout
    assert f"login --username {username} --password-stdin {auth_registry.address}" in hub.docker_command_lines()

    assert_secret_nowhere(hub, username, password)
    assert user_config.read_bytes() == before
    assert sorted(path.name for path in hub.user_docker_config.iterdir()) == ["config.json"]
    assert not (hub.home / ".docker").exists()
    assert list(hub.tmpdir.iterdir()) == []


@pytest.mark.docker
def test_users_own_docker_login_is_used_and_left_as_it_was(
    auth_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    assert auth_registry.credentials is not None
    username, password = auth_registry.credentials.username, auth_registry.credentials.password
    hub = make_hub(auth_registry.address)
    user = hub.docker.with_config_dir(hub.user_docker_config)
    user.run("login", "--username", username, "--password-stdin", auth_registry.address, stdin_text=password)
    user_config = hub.user_docker_config / "config.json"
    before = user_config.read_bytes()
    hub.build_and_pass("img-own-login")

    pushed = hub.push(env={"DOCKER_CONFIG": str(hub.user_docker_config)})
    digest = pinned_line(pushed)["digest"]
    assert served_digest(auth_registry, hub.name, "img-own-login") == digest
    assert f"Credentials: the login for {auth_registry.address} in {user_config}." in pushed.stdout
    assert not [line for line in hub.docker_command_lines() if line.startswith("login")]

    assert_secret_nowhere(hub, username, password)
    assert user_config.read_bytes() == before


@pytest.mark.docker
def test_credential_helper_named_in_the_docker_config_serves_docker_and_the_toolkit(
    auth_registry: RunningRegistry, make_hub: Callable[[str], Hub]
) -> None:
    """A helper speaking docker's credential-helper protocol (what docker-credential-desktop, -pass, ... do)."""
    assert auth_registry.credentials is not None
    username, password = auth_registry.credentials.username, auth_registry.credentials.password
    hub = make_hub(auth_registry.address)
    helper_dir = hub.root.parent / "helper-bin"
    helper_dir.mkdir()
    asked = helper_dir / "asked.log"
    helper = helper_dir / "docker-credential-hubshiptest"
    answer = json.dumps({"ServerURL": auth_registry.address, "Username": username, "Secret": password})
    helper.write_text(
        f'#!/bin/sh\n[ "$1" = get ] || exit 1\nread -r server\necho "$server" >> {asked}\n'
        f'[ "$server" = "{auth_registry.address}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(0o700)
    user_config = hub.user_docker_config / "config.json"
    user_config.write_text(json.dumps({"credHelpers": {auth_registry.address: "hubshiptest"}}))
    before = user_config.read_bytes()
    hub.build_and_pass("img-helper")

    env = {"DOCKER_CONFIG": str(hub.user_docker_config), "PATH": f"{helper_dir}:{os.environ['PATH']}"}
    pushed = hub.push(env=env)
    digest = pinned_line(pushed)["digest"]
    assert served_digest(auth_registry, hub.name, "img-helper") == digest
    assert f"the credential helper docker-credential-hubshiptest (named in {user_config})" in pushed.stdout
    # Asked by the toolkit for its own checks, and by docker for the push itself.
    assert len(asked.read_text().splitlines()) >= 2
    assert_secret_nowhere(hub, username, password)
    assert user_config.read_bytes() == before


def test_credentials_come_from_the_environment_first_then_the_docker_config(tmp_path: Path) -> None:
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    hub_login = base64.b64encode(b"hub-user:hub-pass-1").decode()
    local_login = base64.b64encode(b"local-user:local-pass-1").decode()
    (config_dir / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": hub_login},
                    "http://127.0.0.1:5000": {"auth": local_login},
                    "quay.io": {"identitytoken": "refresh-token"},
                }
            }
        )
    )
    env = {"DOCKER_CONFIG": str(config_dir)}

    docker_hub = find_credentials("docker.io", env)
    assert (docker_hub.username, docker_hub.password) == ("hub-user", "hub-pass-1")
    assert not docker_hub.login_needed
    local = find_credentials("127.0.0.1:5000", env)
    assert (local.username, local.password) == ("local-user", "local-pass-1")
    assert str(config_dir / "config.json") in local.source
    assert find_credentials("quay.io", env).anonymous
    assert find_credentials("ghcr.io", env).anonymous

    from_env = find_credentials("127.0.0.1:5000", {**env, ENV_USERNAME: "ci", ENV_PASSWORD: "ci-token-1"})
    assert (from_env.username, from_env.password, from_env.login_needed) == ("ci", "ci-token-1", True)
    assert "ci-token-1" not in repr(from_env)
    with pytest.raises(ToolingError, match=f"{ENV_PASSWORD} is set but {ENV_USERNAME} is not"):
        find_credentials("ghcr.io", {ENV_PASSWORD: "token-only"})


# ---------------------------------------------------------------- the registry API: retries and bearer tokens


@dataclass(frozen=True)
class PushedImage:
    registry: RunningRegistry
    name: str
    tag: str
    digest: str
    image_id: str


@pytest.fixture(scope="module")
def pushed_image(open_registry: RunningRegistry, docker_cli: Docker, rig_base_image: str) -> Iterator[PushedImage]:
    """One image pushed straight with docker to the open registry, for the API tests to ask about."""
    name = f"hubship-test/api-{secrets.token_hex(4)}"
    reference = f"{open_registry.address}/{name}:img-api"
    context = Path(tempfile.mkdtemp(prefix="hubship-push-api-"))
    try:
        (context / "Dockerfile").write_text(f"FROM {rig_base_image}\nLABEL org.hubship.test={secrets.token_hex(8)}\n")
        build_with_buildkit(docker_cli, "--network", "none", "--tag", reference, str(context))
    finally:
        shutil.rmtree(context)
    try:
        image_id = local_image_id(docker_cli, reference)
        docker_cli.run("push", reference)
        digest = served_digest(open_registry, name, "img-api")
        assert digest is not None
        yield PushedImage(open_registry, name, "img-api", digest, image_id)
    finally:
        docker_cli.run("rmi", reference, check=False)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str


class RegistryFront:
    """A small HTTP server on 127.0.0.1 in front of a real registry; forwards GET and HEAD to it.

    `failures`: fail that many requests first, the way `failure` says: "503" (a registry restarting),
    "429" (rate limited, with Retry-After) or "drop" (the connection closes without an answer).
    `bearer`: demand a token from its own /token endpoint first (the Docker token flow); with
    `login`, the endpoint gives one only to that username and password (Basic auth).
    """

    def __init__(
        self,
        upstream: str,
        *,
        failures: int = 0,
        failure: str = "503",
        bearer: bool = False,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.upstream = upstream
        self.failures = failures
        self.failure = failure
        self.bearer = bearer
        self.login = login
        self.token = secrets.token_hex(16)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RegistryFront:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def requests_to(self, prefix: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.startswith(prefix)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                front.answer(self)

            def do_HEAD(self) -> None:
                front.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: pytest shows what the tests assert."""

        return Handler

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, handler.headers.get("Authorization", "")))
            failing = self.failures > 0
            self.failures -= int(failing)
        if failing and self.failure == "drop":
            handler.close_connection = True
        elif failing and self.failure == "429":
            body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}
            self._reply(handler, 429, body, {"Retry-After": "1"})
        elif failing:
            self._reply(handler, 503, {"errors": [{"code": "UNAVAILABLE", "message": "restarting"}]})
        elif handler.path.startswith("/token"):
            self._token(handler)
        elif self.bearer and handler.headers.get("Authorization") != f"Bearer {self.token}":
            name = handler.path.removeprefix("/v2/").split("/manifests/")[0]
            challenge = (
                f'Bearer realm="http://{self.address}/token",service="hubship-front",scope="repository:{name}:pull"'
            )
            body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            self._reply(handler, 401, body, {"WWW-Authenticate": challenge})
        else:
            self._forward(handler)

    def _token(self, handler: BaseHTTPRequestHandler) -> None:
        if self.login is not None:
            expected = "Basic " + base64.b64encode(":".join(self.login).encode()).decode()
            if handler.headers.get("Authorization") != expected:
                self._reply(handler, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                return
        self._reply(handler, 200, {"token": self.token})

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        request = urllib.request.Request(self.upstream + handler.path, method=handler.command)
        request.add_header("Accept", handler.headers.get("Accept", ""))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        handler.send_response(status)
        for header in ("Content-Type", "Docker-Content-Digest", "Content-Length"):
            if headers.get(header):
                handler.send_header(header, headers[header])
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(body)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, body: object, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(data)


@pytest.mark.docker
@pytest.mark.parametrize("failure", ["503", "429", "drop"])
def test_transient_errors_are_retried_until_the_registry_answers(
    pushed_image: PushedImage, failure: str, tooling_log: pytest.LogCaptureFixture
) -> None:
    with (
        RegistryFront(pushed_image.registry.url, failures=2, failure=failure) as front,
        RegistryClient(front.address, Credentials("none"), FAST_RETRY) as client,
    ):
        manifest = client.manifest(pushed_image.name, pushed_image.tag)
    assert manifest is not None
    assert manifest.digest == pushed_image.digest
    assert manifest.config_digests == (pushed_image.image_id,)
    assert len(front.requests_to(f"/v2/{pushed_image.name}/manifests/{pushed_image.tag}")) == 3
    said = {"503": "HTTP 503 Service Unavailable", "429": "HTTP 429 Too Many Requests", "drop": "closed connection"}
    retries = [record.getMessage() for record in tooling_log.records if "retrying in" in record.getMessage()]
    assert len(retries) == 2
    assert all(f"registry {front.address}: " in line and said[failure] in line for line in retries), retries


@pytest.mark.docker
def test_retries_stop_after_the_policy_and_the_message_names_registry_and_reason(
    pushed_image: PushedImage,
) -> None:
    with (
        RegistryFront(pushed_image.registry.url, failures=100) as front,
        RegistryClient(front.address, Credentials("none"), FAST_RETRY) as client,
        pytest.raises(ToolingError) as raised,
    ):
        client.manifest(pushed_image.name, pushed_image.tag)
    assert raised.value.message.startswith(
        f"The registry {front.address} could not be reached: HTTP 503 Service Unavailable: UNAVAILABLE restarting"
    )
    assert len(front.seen) == FAST_RETRY.attempts


def test_retry_delays_grow_exponentially_within_their_bounds() -> None:
    policy = RetryPolicy(attempts=6, first_delay=1.0, max_delay=10.0, total_seconds=60)
    assert [policy.delay(attempt, None) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert policy.delay(1, 5.0) == 5.0
    assert policy.delay(1, 600.0) == 10.0


@pytest.mark.docker
def test_bearer_token_flow_with_and_without_a_login(
    pushed_image: PushedImage, tooling_log: pytest.LogCaptureFixture
) -> None:
    password = secrets.token_urlsafe(16)
    name, tag = pushed_image.name, pushed_image.tag
    with RegistryFront(pushed_image.registry.url, bearer=True, login=("robot", password)) as front:
        with RegistryClient(front.address, Credentials("the test's login", "robot", password)) as client:
            manifest = client.manifest(name, tag)
        tokens = front.requests_to("/token")
        answered = front.requests_to(f"/v2/{name}/manifests/")
        anonymous = RegistryClient(front.address, Credentials("none (nothing set)"))
        with anonymous, pytest.raises(ToolingError) as refused:
            anonymous.manifest(name, tag)
        wrong = RegistryClient(front.address, Credentials("the test's login", "robot", "wrong-" + password))
        with wrong, pytest.raises(ToolingError) as refused_login:
            wrong.manifest(name, tag)

    assert manifest is not None
    assert manifest.digest == pushed_image.digest
    assert len(tokens) == 1
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(tokens[0].path).query)
    assert query == {"scope": [f"repository:{name}:pull"], "service": ["hubship-front"]}
    assert tokens[0].authorization == "Basic " + base64.b64encode(f"robot:{password}".encode()).decode()
    assert answered[-1].authorization == f"Bearer {front.token}"

    assert f"refused access to {name} (HTTP 401 Unauthorized" in refused.value.message
    assert f"Set {ENV_USERNAME} and {ENV_PASSWORD}" in refused.value.message
    assert "credentials tried: the test's login. Check that they are current" in refused_login.value.message
    for text in (refused.value.message, refused_login.value.message, tooling_log.text):
        assert password not in text
        assert front.token not in text
