"""pytest fixtures for a whole hub on the rig (loaded as a plugin by tests/conftest.py).

- `rig_hub` (session): a scratch copy of this repository's hub (hub.toml,
  environments/, image/, deploy/) in a tmp folder, as its own git repository
  with one commit. Its hub.toml builds on the rig's base image, reads
  conda-forge from the rig's channel (`[mirrors]`), and names a registry on
  127.0.0.1 at a free port where nothing listens (a stage that needs a real
  registry points its own copy at one). Its environment is locked against the
  rig's channel by the real lock stage.
- `rig_built_image` (session): that hub's image, built once per session by
  the real build stage (`BuildResult`: reference, tag, image id, ...). The
  image is removed from the engine at the end of the session; Docker's build
  cache keeps its layers, so the next session's build takes seconds.
- `copy_rig_hub`: makes copies of `rig_hub` in the test's tmp folder, to
  change (a notebook, postBuild, the lock) and build again. Each copy names a
  registry address of its own, so its images never take the session image's
  name; the images a test builds are removed after it.

The repository name the rig's hub pushes to is `RIG_HUB_NAME`; `in_image`
runs a command in an image the way the tests do (no network, no pull).
Every expected failure (`ToolingError`) becomes `pytest.fail` with its
message.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from tests.lock_fixtures import PROJECT, Hub
from tests.rig.channel_fixtures import RigChannel
from tooling.build import BuildRequest, BuildResult, build_image
from tooling.config import load_config
from tooling.docker import ContainerSpec, Docker
from tooling.errors import CommandFailed, ToolingError
from tooling.lock import lock_environment
from tooling.lockrequest import LockRequest
from tooling.proc import free_port, run

RIG_HUB_NAME = "rig-hub/user-image"
HUB_PARTS = ("hub.toml", "environments", "image", "deploy")
GIT_IDENTITY = ("-c", "user.name=hubship rig", "-c", "user.email=rig@hubship.invalid")
# Seconds a command run by `in_image` may take (they are quick: ids, versions, imports, listings).
IN_IMAGE_TIMEOUT = 120.0


@dataclass(frozen=True)
class RigHub(Hub):
    """A hub repository on the rig; `registry` is where its hub.toml says images go."""

    registry: str = ""

    @property
    def explicit_lock(self) -> Path:
        return self.explicit

    @property
    def image_dir(self) -> Path:
        return self.root / "image"

    def request(self, **options: Any) -> BuildRequest:
        return BuildRequest.from_config(load_config(self.config), **options)

    def set_hub_toml(self, table: str, key: str, value: str | bool) -> None:
        document = tomlkit.parse(self.config.read_text(encoding="utf-8"))
        document[table][key] = value
        self.config.write_text(tomlkit.dumps(document), encoding="utf-8")

    def git(self, *args: str) -> str:
        return run(["git", *GIT_IDENTITY, "-C", str(self.root), *args]).stdout.strip()


def in_image(docker: Docker, reference: str, *command: str, entrypoint: str | None = None) -> str:
    """Run `command` in the image as its user, with no network and no pull; its standard output.

    A container still running after IN_IMAGE_TIMEOUT seconds is removed (by its name) and the call fails.
    """
    spec = ContainerSpec(reference, command, name=f"hubship-rig-{secrets.token_hex(4)}", entrypoint=entrypoint)
    try:
        return docker.run("run", "--rm", *spec.arguments(), timeout=IN_IMAGE_TIMEOUT).stdout
    except CommandFailed:
        docker.remove_containers(spec.name)
        raise


def make_rig_hub(root: Path, *, base_image: str, channel_url: str, registry: str) -> RigHub:
    """This repository's hub, copied to `root`, set up for the rig, locked, and committed."""
    root.mkdir(parents=True, exist_ok=True)
    for part in HUB_PARTS:
        source = PROJECT / part
        if source.is_dir():
            shutil.copytree(source, root / part)
        else:
            shutil.copy2(source, root / part)
    hub = RigHub(root, registry=registry)
    document = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
    document["image"]["base"] = base_image
    document["image"]["registry"] = registry
    document["image"]["name"] = RIG_HUB_NAME
    document["mirrors"]["conda-forge"] = channel_url
    hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")
    lock_environment(LockRequest.from_config(load_config(hub.config)))
    (root / ".gitignore").write_text("/.hubship/\n", encoding="utf-8")
    hub.git("init", "--quiet")
    hub.git("add", "--all")
    hub.git("commit", "--quiet", "--message", "A hub on the rig")
    return hub


def copy_hub(hub: RigHub, root: Path, registry: str) -> RigHub:
    """A copy of `hub` (its git history included, its .hubship state not) whose images go to `registry`."""
    shutil.copytree(hub.root, root, symlinks=True, ignore=shutil.ignore_patterns(".hubship"))
    copy = RigHub(root, registry=registry)
    copy.set_hub_toml("image", "registry", registry)
    return copy


@pytest.fixture(scope="session")
def rig_hub(
    tmp_path_factory: pytest.TempPathFactory, rig_channel: RigChannel, rig_base_image: str, docker_cli: Docker
) -> RigHub:
    try:
        return make_rig_hub(
            tmp_path_factory.mktemp("rig-hub") / "hub",
            base_image=rig_base_image,
            channel_url=rig_channel.url,
            registry=f"127.0.0.1:{free_port()}",
        )
    except ToolingError as exc:
        failure = exc.message
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def rig_built_image(rig_hub: RigHub, docker_cli: Docker) -> Iterator[BuildResult]:
    try:
        result = build_image(rig_hub.request())
    except ToolingError as exc:
        failure = exc.message
    else:
        yield result
        docker_cli.run("rmi", result.reference, check=False)
        return
    pytest.fail(failure, pytrace=False)


@dataclass
class HubCopies:
    """Makes copies of the rig's hub for one test, and removes the images built from them afterwards."""

    hub: RigHub
    folder: Path
    docker: Docker
    built: list[str] = field(default_factory=list)

    def __call__(self, name: str = "copy", registry: str | None = None) -> RigHub:
        return copy_hub(self.hub, self.folder / name, registry or f"127.0.0.1:{free_port()}")

    def build(self, hub: RigHub, **options: Any) -> BuildResult:
        """The build stage on `hub`; the image is removed after the test."""
        result = build_image(hub.request(**options))
        # By id too: a --force build leaves the image it replaces under the tag without a name.
        self.built += [result.reference, result.image_id]
        return result

    def remove_images(self) -> None:
        for reference in dict.fromkeys(self.built):
            self.docker.run("rmi", reference, check=False)


@pytest.fixture
def copy_rig_hub(
    rig_hub: RigHub, rig_built_image: BuildResult, tmp_path: Path, docker_cli: Docker
) -> Iterator[HubCopies]:
    copies = HubCopies(rig_hub, tmp_path, docker_cli)
    yield copies
    copies.remove_images()
