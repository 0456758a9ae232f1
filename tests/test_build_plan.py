"""The build stage's decisions that need no image: the install plan, the tag, the way to build.

The plan is read from this repository's own lock (real conda-forge records).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lock_fixtures import PROJECT
from tooling.build import TagInputs
from tooling.buildpack.plan import read_install_plan, remember_plan, remembered_plan
from tooling.docker import Docker, LocalImage, choose_builder
from tooling.errors import ToolingError
from tooling.lockrequest import LockRequest

EXPLICIT = PROJECT / "environments" / "conda-linux-64.lock"
FULL = PROJECT / "environments" / "conda-lock.yml"
BASE = LocalImage("sha256:" + "a" * 64, ())


def test_install_plan_is_the_explicit_lock_in_order_with_both_hashes() -> None:
    plan = read_install_plan(EXPLICIT, FULL)

    urls = [line.split("#")[0] for line in EXPLICIT.read_text().splitlines() if line.startswith("https://")]
    assert [package.url for package in plan.packages] == urls
    assert all(len(package.md5) == 32 and len(package.sha256) == 64 for package in plan.packages)
    bootstrap = {package.name for package in plan.bootstrap_packages()}
    assert {"python", "openssl", "libzlib"} <= bootstrap
    assert not {"numpy", "jupyterlab"} & bootstrap


def test_install_plan_refuses_lock_files_that_disagree(tmp_path: Path) -> None:
    explicit = tmp_path / "conda-linux-64.lock"
    explicit.write_text("\n".join(line for line in EXPLICIT.read_text().splitlines() if "/python-3" not in line) + "\n")
    full = tmp_path / "conda-lock.yml"
    shutil.copy(FULL, full)

    with pytest.raises(ToolingError) as raised:
        read_install_plan(explicit, full)

    assert "lists 1 package(s) that" in raised.value.message
    assert "python-3" in raised.value.message


def copied_lock_request(folder: Path) -> LockRequest:
    """A lock request for a copy of this repository's spec and lock files."""
    shutil.copytree(PROJECT / "environments", folder)
    return LockRequest(
        spec_files=(folder / "environment.yml",),
        lock_dir=folder,
        platforms=("linux-64",),
        virtual_packages={"linux-64": {"__glibc": "2.35"}},
    )


def test_a_remembered_plan_is_the_plan_read_from_the_lock(tmp_path: Path) -> None:
    request = copied_lock_request(tmp_path / "environments")
    plan = read_install_plan(request.explicit_file("linux-64"), request.lock_file)
    remember_plan(tmp_path / "cache", request, plan)

    assert remembered_plan(tmp_path / "cache", request) == plan


@pytest.mark.parametrize(
    "edit",
    [
        lambda request: request.spec_files[0].write_text(request.spec_files[0].read_text() + "  - six\n"),
        lambda request: request.lock_file.write_text(request.lock_file.read_text().replace("md5: ", "md5: 0", 1)),
        lambda request: request.explicit_file("linux-64").unlink(),
    ],
    ids=["spec edited", "lock edited", "explicit lock deleted"],
)
def test_no_plan_is_remembered_once_a_file_the_check_reads_changed(
    edit: Callable[[LockRequest], object], tmp_path: Path
) -> None:
    request = copied_lock_request(tmp_path / "environments")
    remember_plan(tmp_path / "cache", request, read_install_plan(request.explicit_file("linux-64"), request.lock_file))

    edit(request)

    assert remembered_plan(tmp_path / "cache", request) is None


def test_a_damaged_remembered_plan_is_ignored(tmp_path: Path) -> None:
    request = copied_lock_request(tmp_path / "environments")
    remember_plan(tmp_path / "cache", request, read_install_plan(request.explicit_file("linux-64"), request.lock_file))
    (kept,) = (path for path in (tmp_path / "cache").rglob("*") if path.is_file())
    kept.write_text('{"packages": [')

    assert remembered_plan(tmp_path / "cache", request) is None


def staged_copy(target: Path) -> Path:
    shutil.copytree(PROJECT / "image", target)
    return target


def tag_of(staged: Path) -> str:
    return TagInputs.of(read_install_plan(EXPLICIT, FULL), staged, "registry.example/base:1", BASE).tag()


def test_tag_follows_content_and_modes_not_folders_or_times(tmp_path: Path) -> None:
    first, second = staged_copy(tmp_path / "a"), staged_copy(tmp_path / "b")
    start = first / "start"
    os.utime(start, (1, 1))

    assert tag_of(first) == tag_of(second)
    start.chmod(0o644)
    assert tag_of(first) != tag_of(second)
    start.chmod(second.joinpath("start").stat().st_mode)
    assert tag_of(first) == tag_of(second)
    (first / "notebooks" / "intro.ipynb").write_text("{}\n")
    assert tag_of(first) != tag_of(second)


def test_tag_follows_the_base_image(tmp_path: Path) -> None:
    staged = staged_copy(tmp_path / "image")
    plan = read_install_plan(EXPLICIT, FULL)
    other = LocalImage("sha256:" + "b" * 64, ())

    tags = {
        TagInputs.of(plan, staged, "registry.example/base:1", BASE).tag(),
        TagInputs.of(plan, staged, "registry.example/base:2", BASE).tag(),
        TagInputs.of(plan, staged, "registry.example/base:1", other).tag(),
    }

    assert len(tags) == 3
    assert all(re.fullmatch(r"img-[0-9a-f]{12}", tag) for tag in tags)


def test_builder_is_buildx_else_built_in_buildkit_of_a_cli_before_23() -> None:
    assert choose_builder(True, "28.2.2") == "buildx"
    assert choose_builder(False, "20.10.24+dfsg1") == "built-in BuildKit"
    assert choose_builder(False, "28.2.2") is None


@pytest.mark.docker
def test_rig_cli_builds_with_its_built_in_buildkit() -> None:
    assert Docker(os.environ.get("HUBSHIP_DOCKER") or "docker").builder() == "built-in BuildKit"
