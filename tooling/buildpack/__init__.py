"""Our buildpack: the image's conda environment is exactly the explicit lock, installed with py-rattler.

1. `tooling.buildpack.plan` reads the lock into the install plan, and
   `tooling.buildpack.layers` splits it into the environment's layer groups.
2. `tooling.buildpack.bootstrap` makes the throwaway build environment the
   install steps run on.
3. `write_build_files` lays out the `hubship/` folder of the build context
   (build environment, installer, each group's plan, login script), which
   the install steps bind-mount from the paths named here.
4. `tooling.buildpack.r2d_buildpack` is the repo2docker BuildPack that
   renders those steps; only a build that runs imports it (and repo2docker).

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

from tooling.buildpack.layers import LayerGroup
from tooling.files import write_atomic

# Bump when the Dockerfile this buildpack renders, or what the installer does, changes:
# it is one of the image tag's inputs.
BUILDPACK_VERSION = "4"


# The folder the engine adds to the build context, and where the install step mounts its parts.
CONTEXT_FOLDER = "hubship"
BOOTSTRAP_MOUNT = "/opt/hubship/bootstrap"
INSTALL_MOUNT = "/opt/hubship/install"
GROUP_MOUNT = "/opt/hubship/group"
IMAGE_FILES_MOUNT = "/opt/hubship/image-files"
PACKAGE_CACHE_MOUNT = "/opt/hubship/packages"
MIRRORS_MOUNT = "/opt/hubship/mirrors.json"
PACKAGE_CACHE_ID = "hubship-conda-packages"
PYCACHE_MOUNT = "/opt/hubship/pycache"
PYCACHE_ID = "hubship-installer-pycache"
MIRRORS_SECRET = "hubship-mirrors"  # noqa: S105 (the id of a BuildKit secret, not a password)
INSTALLER = "install_lock.py"
PLAN = "plan.json"
# The installer's option naming the layer group; the image's history shows it, so each layer can be named.
LAYER_OPTION = "--layer"
ACTIVATE_SCRIPT = "activate-env.sh"
PROFILE_SCRIPT = "/etc/profile.d/hubship-env.sh"
# Every file the build writes gets this time (the epoch), so a layer holds nothing of the build's moment.
FIXED_TIME = "@0"


# --- the build context's hubship/ folder -------------------------------------------------------


def write_build_files(groups: Sequence[LayerGroup], bootstrap: Path, destination: Path) -> None:
    """The `hubship/` folder of the build context: build environment, installer, each layer's plan, login script."""
    shutil.copytree(bootstrap, destination / "bootstrap", symlinks=True, copy_function=_link_or_copy)
    install = destination / "install"
    install.mkdir()
    shutil.copyfile(_packaged(INSTALLER), install / INSTALLER)
    for group in groups:
        write_atomic(destination / "groups" / group.name / PLAN, group.to_json())
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
