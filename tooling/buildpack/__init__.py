"""Our buildpack: the image's conda environment is exactly the explicit lock, installed with py-rattler.

1. `tooling.buildpack.plan` reads the lock into the install plan, and
   `tooling.buildpack.layers` splits it into the environment's layer groups.
2. `tooling.buildpack.bootstrap` makes the throwaway build environment the
   install step runs on.
3. `write_build_files` lays out the `hubship/` folder of the build context
   (build environment, installer, the plan, login script), which the
   install step bind-mounts from the paths named here.
4. `tooling.buildpack.r2d_buildpack` is the repo2docker BuildPack that
   renders the environment stage (one install step, which leaves each
   group's files in a folder of its own) and the image's steps that copy
   each group's folder in; only a build that runs imports it (and repo2docker).

`BUILDPACK_VERSION` and `installer_files_digest` are inputs of the image's
tag. How the environment gets into the image, and why:
docs/design.md#toolingbuildpack.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tooling.buildpack.layers import LayerGroup, install_plan_json
from tooling.files import write_atomic

# Bump when the Dockerfile this buildpack renders, or what the installer does, changes:
# it is one of the image tag's inputs.
BUILDPACK_VERSION = "5"


# The folder the engine adds to the build context, and where the install step mounts its parts.
CONTEXT_FOLDER = "hubship"
BOOTSTRAP_MOUNT = "/opt/hubship/bootstrap"
INSTALL_MOUNT = "/opt/hubship/install"
PLAN_MOUNT = "/opt/hubship/plan"
IMAGE_FILES_MOUNT = "/opt/hubship/image-files"
PACKAGE_CACHE_MOUNT = "/opt/hubship/packages"
MIRRORS_MOUNT = "/opt/hubship/mirrors.json"
PACKAGE_CACHE_ID = "hubship-conda-packages"
PYCACHE_MOUNT = "/opt/hubship/pycache"
PYCACHE_ID = "hubship-installer-pycache"
MIRRORS_SECRET = "hubship-mirrors"  # noqa: S105 (the id of a BuildKit secret, not a password)
INSTALLER = "install_lock.py"
PLAN = "plan.json"
# The Dockerfile stage that installs the environment, and where it leaves each layer group's files
# (LAYERS_ROOT/NAME/ holds the group's paths as they are in the image). The image's history names
# each group's COPY from there, so each layer can be named.
ENVIRONMENT_STAGE = "hubship-environment"
LAYERS_ROOT = "/opt/hubship/layers"
LOGIN_ROOT = "/opt/hubship/login"  # the login script's folder (PROFILE_SCRIPT in it), copied in on its own
ACTIVATE_SCRIPT = "activate-env.sh"
PROFILE_SCRIPT = "/etc/profile.d/hubship-env.sh"
# Every file the build writes gets this time (the epoch), so a layer holds nothing of the build's moment.
FIXED_TIME = "@0"


# --- the build context's hubship/ folder -------------------------------------------------------


def write_build_files(groups: Sequence[LayerGroup], bootstrap: Path, destination: Path) -> None:
    """The `hubship/` folder of the build context: build environment, installer, the plan, login script."""
    shutil.copytree(bootstrap, destination / "bootstrap", symlinks=True, copy_function=_link_or_copy)
    install = destination / "install"
    install.mkdir()
    shutil.copyfile(_packaged(INSTALLER), install / INSTALLER)
    write_atomic(destination / "plan" / PLAN, install_plan_json(groups))
    image_files = destination / "image-files"
    image_files.mkdir()
    shutil.copyfile(_packaged(ACTIVATE_SCRIPT), image_files / ACTIVATE_SCRIPT)


def _packaged(name: str) -> Path:
    return Path(str(resources.files("tooling.buildpack") / "files" / name))


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (the build environment is large and never changed), or a copy across file systems."""
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def installer_files_digest() -> str:
    """sha256 of the files this buildpack ships into the build: they decide what the image holds."""
    digest = hashlib.sha256()
    for name in (INSTALLER, ACTIVATE_SCRIPT):
        digest.update(_packaged(name).read_bytes())
    return digest.hexdigest()
