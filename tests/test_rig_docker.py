"""The Docker side of the rig is real: an offline Debian base image, a real registry, pushes and pulls by digest."""

from __future__ import annotations

import io
import os
import re
import secrets
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from repo2docker.buildpacks.base import BaseImage

from tests.rig.docker import build_with_buildkit, local_image_id
from tests.rig.registry import RunningRegistry, serve_registry
from tooling.docker import Docker
from tooling.proc import Completed

pytestmark = pytest.mark.docker

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
HOST_PYTHON = Path("/usr/bin/python3.11")
HOST_PYTHON_STDLIB = Path("/usr/lib/python3.11")


def run_offline(
    docker: Docker, image: str, *command: str, options: tuple[str, ...] = (), check: bool = True
) -> Completed:
    """`docker run` with no network at all and no pull."""
    return docker.run("run", "--rm", "--network", "none", "--pull", "never", *options, image, *command, check=check)


def build_small_image(docker: Docker, base_image: str, context: Path, tag: str) -> str:
    """Build a one-line change on the base image (BuildKit, host network); return the token it wrote."""
    token = secrets.token_hex(8)
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo {token} > /etc/hubship-rig-token\n")
    build_with_buildkit(docker, "--network", "host", "--tag", tag, str(context))
    return token


def pushed_digest(push: Completed) -> str:
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", push.stdout)
    assert match, f"no digest in the push output:\n{push.stdout}"
    return match.group(1)


def assert_registry_lists(registry: RunningRegistry, repository: str, tag: str, digest: str) -> None:
    assert registry.request("/v2/_catalog").json() == {"repositories": [repository]}
    assert registry.request(f"/v2/{repository}/tags/list").json() == {"name": repository, "tags": [tag]}
    manifest = registry.request(f"/v2/{repository}/manifests/{tag}", method="HEAD", accept=MANIFEST_TYPES)
    assert manifest.status == 200
    assert manifest.headers["Docker-Content-Digest"] == digest


def remove_and_pull_by_digest(docker: Docker, reference: str, digest: str, image_id: str) -> None:
    """Delete the local image, pull it back as NAME@DIGEST, and check it is the same image."""
    repository = reference.rsplit(":", 1)[0]
    docker.run("rmi", reference)
    assert docker.inspect_image(image_id) is None
    docker.run("pull", f"{repository}@{digest}")
    assert local_image_id(docker, f"{repository}@{digest}") == image_id


def test_login_shell_keeps_the_path_the_container_starts_with(docker_cli: Docker, rig_base_image: str) -> None:
    path = "/opt/hubship-env/bin:/usr/local/bin:/usr/bin:/bin"
    shown = run_offline(docker_cli, rig_base_image, "bash", "-lc", 'echo "$PATH"', options=("-e", f"PATH={path}"))
    assert shown.stdout.strip() == path


def test_container_has_only_the_loopback_interface(docker_cli: Docker, rig_base_image: str) -> None:
    interfaces = run_offline(docker_cli, rig_base_image, "ls", "/sys/class/net")
    assert interfaces.stdout.split() == ["lo"]


def test_apt_works_offline_for_packages_already_present(docker_cli: Docker, rig_base_image: str) -> None:
    update = run_offline(docker_cli, rig_base_image, "apt-get", "update")
    assert not re.search(r"^(Get|Hit|Ign|Err):", update.stdout, re.MULTILINE), update.stdout

    present = run_offline(
        docker_cli, rig_base_image, "apt-get", "install", "--yes", "--no-install-recommends", "locales", "git"
    )
    assert "locales is already the newest version" in present.stdout
    assert "0 newly installed" in present.stdout

    unknown = run_offline(
        docker_cli, rig_base_image, "apt-get", "install", "--yes", "hubship-no-such-package", check=False
    )
    assert unknown.returncode != 0
    assert "Unable to locate package hubship-no-such-package" in unknown.stderr


def test_debian_python_runs_with_every_extension_module(docker_cli: Docker, rig_base_image: str) -> None:
    """Debian's python3.11, placed the way a conda package assembled from it is, finds every library it links."""
    check = (
        "import importlib, os, ssl, sys, zoneinfo\n"
        "dynload = os.path.join(sys.prefix, 'lib', 'python3.11', 'lib-dynload')\n"
        "names = sorted(name.split('.')[0] for name in os.listdir(dynload))\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(sys.prefix, len(names))\n"
        "print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 0)\n"
        "print(zoneinfo.ZoneInfo('Europe/Paris').key)\n"
    )
    result = run_offline(
        docker_cli,
        rig_base_image,
        "/opt/python/bin/python3.11",
        "-c",
        check,
        options=(
            "--env",
            "PYTHONDONTWRITEBYTECODE=1",
            "--volume",
            f"{HOST_PYTHON}:/opt/python/bin/python3.11:ro",
            "--volume",
            f"{HOST_PYTHON_STDLIB}:/opt/python/lib/python3.11:ro",
        ),
    )
    prefix_line, ca_line, zone_line = result.stdout.splitlines()
    prefix, imported = prefix_line.split()
    assert prefix == "/opt/python"
    assert int(imported) == len(list((HOST_PYTHON_STDLIB / "lib-dynload").glob("*.so")))
    assert ca_line == "True"
    assert zone_line == "Europe/Paris"


@dataclass(frozen=True)
class RecordingDocker(Docker):
    """The toolkit's Docker, keeping every command line it runs, to check what reaches argv."""

    argvs: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, **options: Any) -> Completed:
        self.argvs.append([self.program, *args])
        return super().run(*args, **options)


class _UnpackBuildContext:
    """Takes docker-py's place in repo2docker's `BuildPack.build`: unpacks the context it assembled."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def build(self, *, fileobj: io.BytesIO, **_kwargs: Any) -> list[dict[str, str]]:
        with tarfile.open(fileobj=fileobj) as context:
            context.extractall(self.directory, filter="data")
        return []


def test_repo2docker_template_builds_on_the_base_image_without_network(
    docker_cli: Docker, rig_base_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """repo2docker's own Dockerfile (apt steps, locale-gen, user setup) builds with no network at all."""
    empty_repo = tmp_path / "repo"
    empty_repo.mkdir()
    monkeypatch.chdir(empty_repo)
    context = tmp_path / "context"
    build_args = {"NB_USER": "jovyan", "NB_UID": "1000"}
    tag = f"hubship-rig-test/r2d-base:{secrets.token_hex(4)}"
    list(BaseImage(rig_base_image).build(_UnpackBuildContext(context), tag, 0, build_args, [], {}))
    build_arg_options = [arg for name, value in build_args.items() for arg in ("--build-arg", f"{name}={value}")]
    # --no-cache: every run really executes the template's steps on the current base image.
    build_with_buildkit(docker_cli, "--no-cache", "--network", "none", *build_arg_options, "--tag", tag, str(context))
    try:
        user, path, locales, substituted = (
            run_offline(docker_cli, tag, "-lc", command, options=("--entrypoint", "/bin/bash")).stdout
            for command in ("id -un", 'echo "$PATH"', "locale -a && locale 2>&1", "HUBSHIP=ok envsubst <<< '$HUBSHIP'")
        )
    finally:
        docker_cli.run("rmi", tag)
    assert user.strip() == "jovyan"
    # The image's ENV PATH survives the login shell repo2docker's entrypoint runs.
    assert path.startswith("/home/jovyan/.local/bin:")
    assert "en_US.utf8" in locales.split()
    assert "Cannot set" not in locales
    assert substituted.strip() == "ok"


def test_push_and_pull_by_digest_without_credentials(
    docker_cli: Docker, rig_base_image: str, registry: RunningRegistry, tmp_path: Path
) -> None:
    assert not registry.auth
    repository = "rig-test/hello"
    reference = f"{registry.address}/{repository}:v1"
    token = build_small_image(docker_cli, rig_base_image, tmp_path / "context", reference)
    image_id = local_image_id(docker_cli, reference)

    digest = pushed_digest(docker_cli.run("push", reference))
    assert_registry_lists(registry, repository, "v1", digest)

    remove_and_pull_by_digest(docker_cli, reference, digest, image_id)
    try:
        pulled = run_offline(docker_cli, f"{registry.address}/{repository}@{digest}", "cat", "/etc/hubship-rig-token")
    finally:
        docker_cli.run("rmi", f"{registry.address}/{repository}@{digest}")
    assert pulled.stdout.strip() == token


def test_auth_registry_refuses_push_until_login_then_serves_by_digest(
    docker_cli: Docker, rig_base_image: str, registry_with_auth: RunningRegistry, tmp_path: Path
) -> None:
    registry = registry_with_auth
    assert registry.credentials is not None
    username, password = registry.credentials.username, registry.credentials.password
    docker = RecordingDocker(docker_cli.program, tmp_path / "docker-config")
    repository = "rig-test/private"
    reference = f"{registry.address}/{repository}:v1"
    build_small_image(docker, rig_base_image, tmp_path / "context", reference)
    image_id = local_image_id(docker, reference)

    assert registry.request("/v2/", authenticate=False).status == 401
    refused = docker.run("push", reference, check=False)
    assert refused.returncode != 0
    assert "no basic auth credentials" in refused.stderr

    docker.run("login", "--username", username, "--password-stdin", registry.address, stdin_text=password)
    digest = pushed_digest(docker.run("push", reference))
    assert registry.request("/v2/").status == 200
    assert_registry_lists(registry, repository, "v1", digest)

    remove_and_pull_by_digest(docker, reference, digest, image_id)
    docker.run("rmi", f"{registry.address}/{repository}@{digest}")
    anonymous = docker_cli.with_config_dir(tmp_path / "anonymous-config")
    refused_pull = anonymous.run("pull", f"{registry.address}/{repository}@{digest}", check=False)
    assert refused_pull.returncode != 0
    assert "no basic auth credentials" in refused_pull.stderr

    assert ["login", "--username", username, "--password-stdin", registry.address] in [
        argv[1:] for argv in docker.argvs
    ]
    assert not [argv for argv in docker.argvs if any(password in arg for arg in argv)]


def test_registry_stops_by_its_pid_and_leaves_nothing_behind() -> None:
    with serve_registry(auth=True) as running:
        assert running.address.startswith("127.0.0.1:")
        assert running.request("/v2/").status == 200
        assert running.storage.parent.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)
    assert not running.storage.parent.exists()
