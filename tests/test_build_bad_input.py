"""The build stage's bad inputs: each gives one clear message and a non-zero exit, and leaves no image behind.

Every failure here is real: no engine at DOCKER_HOST, a base image its
registry does not have, a postBuild that fails, an apt package the offline
base image cannot find, a package whose md5 was altered in the lock (checked
against the real file from the rig's channel), a full disk (a small tmpfs on
the host, and /dev/shm inside the build).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lock_fixtures import CliResult
from tests.rig.hub_fixtures import HubCopies, RigHub, copy_hub
from tests.rig.registry import RunningRegistry
from tooling.build import BuildResult
from tooling.docker import Docker
from tooling.proc import free_port

pytestmark = [pytest.mark.docker, pytest.mark.rig]

Cli = Callable[..., CliResult]


def repository_images(docker: Docker, hub: RigHub) -> list[str]:
    shown = docker.run("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", f"{hub.registry}/rig-hub/user-image")
    return shown.stdout.split()


def one_error(result: CliResult, code: int = 1) -> str:
    """The CLI's single `error: ...` message, after checking it failed with `code` (2: hub.toml) without a traceback."""
    assert result.code == code, result.out
    assert "Traceback" not in result.err
    return result.err[result.err.index("error: ") :]


def test_no_docker_engine_says_how_to_start_one(
    rig_hub: RigHub, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    socket = tmp_path / "no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket}")

    message = one_error(cli(rig_hub, "build"))

    assert f"No Docker engine answers at unix://{socket}" in message
    assert "Start a Docker engine" in message


def test_missing_base_image_is_pulled_once_and_named_when_its_registry_lacks_it(
    copy_rig_hub: HubCopies, cli: Cli, registry: RunningRegistry, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()
    base = f"{registry.address}/hubship-test/no-such-base:1"
    hub.set_hub_toml("image", "base", base)

    message = one_error(cli(hub, "build"))

    assert f"The base image {base} ([image] base in hub.toml) is not in the Docker engine" in message
    assert "pulling it failed:" in message
    assert "manifest unknown" in message or "not found" in message
    assert repository_images(docker_cli, hub) == []


def test_stale_lock_is_refused_unless_allowed(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    hub.spec.write_text(hub.spec.read_text() + "  - six\n")

    message = one_error(cli(hub, "build"))
    allowed = cli(hub, "build", "--allow-stale-lock")
    copy_rig_hub.built.append(allowed.out.splitlines()[0])

    assert "The lock is not current:" in message
    assert "is stale" in message
    assert "--allow-stale-lock" in message
    assert allowed.code == 0, allowed.err
    assert "WARNING: built from a stale lock (--allow-stale-lock)" in allowed.out


def test_a_lock_that_passed_the_check_is_checked_again_once_the_spec_changes(
    rig_hub: RigHub, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub = copy_hub(rig_hub, tmp_path / "copy", f"127.0.0.1:{free_port()}")
    # The lock is checked before Docker is asked: these builds stop there, after the check.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    first = cli(hub, "build")
    again = cli(hub, "-v", "build")
    hub.spec.write_text(hub.spec.read_text() + "  - six\n")

    message = one_error(cli(hub, "build"))

    assert "No Docker engine answers" in first.err
    assert "the lock passed the check with these inputs before" in again.err
    assert "The lock is not current:" in message
    assert "is stale" in message


def test_failing_post_build_is_named_with_its_last_lines(copy_rig_hub: HubCopies, cli: Cli, docker_cli: Docker) -> None:
    hub = copy_rig_hub()
    post_build = hub.image_dir / "postBuild"
    post_build.write_text(
        "#!/bin/bash\necho 'downloading the tutorial data'\necho 'data server said 404' >&2\nexit 3\n"
    )

    message = one_error(cli(hub, "build"))

    assert "The image build failed at: image/postBuild." in message
    assert "\n    downloading the tutorial data\n" in message
    assert "\n    data server said 404\n" in message
    assert "Fix image/postBuild" in message
    assert re.search(r"Full log: \S+/\.hubship/logs/build\.log", message)
    assert repository_images(docker_cli, hub) == []


def test_unknown_apt_package_is_named_with_apt_gets_words(
    copy_rig_hub: HubCopies, cli: Cli, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()
    (hub.image_dir / "apt.txt").write_text("# tools for the tutorials\nless\nhubship-no-such-package\n")

    message = one_error(cli(hub, "build"))

    assert "The image build failed at: installing the packages of image/apt.txt." in message
    assert "Unable to locate package hubship-no-such-package" in message
    assert repository_images(docker_cli, hub) == []


def test_apt_txt_that_repo2docker_refuses_is_named(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    (hub.image_dir / "apt.txt").write_text("Git\n")

    message = one_error(cli(hub, "build"))

    assert f"repo2docker cannot build {hub.image_dir}: Found invalid package name Git in apt.txt" in message


def altered_md5(hub: RigHub) -> tuple[str, str, str]:
    """Alter the md5 of one noarch package in both lock files; its file name, real md5 and altered md5."""
    line = next(
        line
        for line in hub.explicit.read_text().splitlines()
        if "/noarch/" in line and not line.rsplit("/", 1)[1].startswith("python")
    )
    url, real = line.split("#")
    altered = real[:-1] + ("0" if real[-1] != "0" else "1")
    for path in (hub.explicit, hub.lock):
        path.write_text(path.read_text().replace(real, altered))
    return url.rsplit("/", 1)[1], real, altered


def test_package_whose_hash_does_not_match_the_lock_is_never_installed(
    copy_rig_hub: HubCopies, cli: Cli, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()
    file_name, real, altered = altered_md5(hub)

    refused = one_error(cli(hub, "build"))
    message = one_error(cli(hub, "build", "--allow-stale-lock"))

    assert "edited by hand" in refused
    assert "The build refused a package whose hash does not match the lock, and installed nothing:" in message
    assert f"{file_name} (https://conda.anaconda.org/conda-forge/noarch/{file_name}) does not match the lock" in message
    assert f"md5 expected {altered}, got {real}" in message
    assert repository_images(docker_cli, hub) == []


def test_lock_files_that_disagree_are_refused_before_building(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    line = next(line for line in hub.explicit.read_text().splitlines() if line.startswith("https://"))
    hub.explicit.write_text(hub.explicit.read_text().replace(line, line[:-1] + ("0" if line[-1] != "0" else "1")))

    message = one_error(cli(hub, "build", "--allow-stale-lock"))

    assert "the two lock files disagree; run `python -m tooling lock`." in message
    assert str(hub.explicit) in message


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MB file system (tmpfs), unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk_for_the_build_environment_says_what_to_free(
    copy_rig_hub: HubCopies, cli: Cli, small_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = copy_rig_hub()
    monkeypatch.setenv("XDG_CACHE_HOME", str(small_tmpfs))

    message = one_error(cli(hub, "build", "--force"))

    assert f"No space left on device in {small_tmpfs / 'hubship'} while preparing the build environment" in message
    assert "XDG_CACHE_HOME" in message


def test_full_disk_during_the_build_says_what_to_free(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    # /dev/shm of a build container is a 64 MB tmpfs: writing more fills it for real.
    (hub.image_dir / "postBuild").write_text(
        "#!/bin/bash\nset -e\necho 'caching the tutorial data'\ndd if=/dev/zero of=/dev/shm/data bs=1M count=100\n"
    )

    message = one_error(cli(hub, "build"))

    assert "The image build ran out of disk space at: image/postBuild." in message
    assert "No space left on device" in message
    assert "docker builder prune" in message


def test_file_mirror_is_refused_for_the_build(rig_hub: RigHub, cli: Cli, rig_built_image: BuildResult) -> None:
    message = one_error(cli(rig_hub, "build", "--force", "--mirror", "conda-forge=file:///srv/conda-forge"), code=2)

    assert "Mirror conda-forge = file:///srv/conda-forge (--mirror)" in message
    assert "cannot see the host's files" in message


def test_file_mirror_in_hub_toml_is_refused_for_the_build(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    hub.set_hub_toml("mirrors", "conda-forge", "file:///srv/conda-forge")

    message = one_error(cli(hub, "build"), code=2)

    assert f"Mirror conda-forge = file:///srv/conda-forge ([mirrors] of {hub.config})" in message
    assert "--mirror conda-forge=URL" in message


def test_missing_image_folder_is_named(copy_rig_hub: HubCopies, cli: Cli) -> None:
    hub = copy_rig_hub()
    hub.set_hub_toml("image", "context", "user-image")

    message = one_error(cli(hub, "build"), code=2)

    assert f"{hub.config}: [image] context names {hub.root / 'user-image'}: no such folder" in message
