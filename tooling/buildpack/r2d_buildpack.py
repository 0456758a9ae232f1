"""Our repo2docker BuildPack: repo2docker's BaseImage, with the locked environment installed in layers.

repo2docker's conda buildpack re-solves environment.yml at every build, and
brings micromamba and a frozen base environment from anaconda.org. This
buildpack replaces only that part. Everything else is repo2docker's own
(`BaseImage`): the jovyan user, REPO_DIR, apt.txt, postBuild, start, the
entrypoint, and the environment variables hub images are expected to set
(NB_PYTHON_PREFIX=/srv/conda/envs/notebook, CONDA_DIR, KERNEL_PYTHON_PREFIX,
PATH with ${NB_PYTHON_PREFIX}/bin ahead of the system's).

1. A root step creates the prefix and the install steps' mount points.
2. One install step per layer group (`buildpack_for`) runs the installer on
   the build environment, each bind-mounting only its own group's plan.

Only a build that runs imports this module (and so repo2docker): an image
that already exists is found without it. Why the steps are as they are:
docs/design.md#toolingbuildpack and docs/design.md#layers.
"""

from __future__ import annotations

from repo2docker.buildpacks.base import BaseImage

from tooling.buildpack import (
    ACTIVATE_SCRIPT,
    BOOTSTRAP_MOUNT,
    CONTEXT_FOLDER,
    FIXED_TIME,
    GROUP_MOUNT,
    IMAGE_FILES_MOUNT,
    INSTALL_MOUNT,
    INSTALLER,
    LAYER_OPTION,
    MIRRORS_MOUNT,
    MIRRORS_SECRET,
    PACKAGE_CACHE_ID,
    PACKAGE_CACHE_MOUNT,
    PLAN,
    PROFILE_SCRIPT,
    PYCACHE_ID,
    PYCACHE_MOUNT,
)
from tooling.buildpack.layers import LayerGroup
from tooling.images import NB_UID


class HubshipBuildPack(BaseImage):  # type: ignore[misc]  # repo2docker is untyped
    """repo2docker's BaseImage plus the locked environment in ${NB_PYTHON_PREFIX}."""

    def detect(self) -> bool:
        return True

    def get_build_env(self) -> list[tuple[str, str]]:
        return [
            *super().get_build_env(),
            ("CONDA_DIR", "${APP_BASE}/conda"),
            ("NB_PYTHON_PREFIX", "${CONDA_DIR}/envs/notebook"),
            ("KERNEL_PYTHON_PREFIX", "${NB_PYTHON_PREFIX}"),
        ]

    def get_env(self) -> list[tuple[str, str]]:
        # What `conda activate` sets for the environment; the image has no conda to run it.
        activated = [("CONDA_PREFIX", "${NB_PYTHON_PREFIX}"), ("CONDA_DEFAULT_ENV", "${NB_PYTHON_PREFIX}")]
        return [*super().get_env(), *activated]

    def get_path(self) -> list[str]:
        return ["${NB_PYTHON_PREFIX}/bin", *super().get_path()]

    # The environment's layers, one install step each (set by `buildpack_for`).
    layer_names: tuple[str, ...] = ()

    def get_build_scripts(self) -> list[tuple[str, str]]:
        installs = [("${NB_USER}", _install_script(name)) for name in self.layer_names]
        return [*super().get_build_scripts(), ("root", _prepare_prefix_script()), *installs]


def buildpack_for(groups: tuple[LayerGroup, ...]) -> type[HubshipBuildPack]:
    """The buildpack that installs these groups, one Dockerfile step (one layer) each, in this order."""
    return type("HubshipBuildPack", (HubshipBuildPack,), {"layer_names": tuple(group.name for group in groups)})


def _bind(folder: str, target: str) -> str:
    return f"--mount=type=bind,source={CONTEXT_FOLDER}/{folder},target={target}"


def _prepare_prefix_script() -> str:
    # The install steps' mount points exist beforehand, with fixed times, so that BuildKit does not create
    # them (with the build's time) in an environment layer. Every environment layer holds the prefix's
    # parent folders as they are, so they get the fixed time too (APP_BASE is CONDA_DIR's parent).
    return (
        f"{_bind('image-files', IMAGE_FILES_MOUNT)} \\\n"
        '    install -d -o "${NB_USER}" -g "${NB_USER}" \\\n'
        '        "${CONDA_DIR}" "${CONDA_DIR}/envs" "${NB_PYTHON_PREFIX}" && \\\n'
        f"    install -d {BOOTSTRAP_MOUNT} {INSTALL_MOUNT} {GROUP_MOUNT} {PACKAGE_CACHE_MOUNT} {PYCACHE_MOUNT} && \\\n"
        f"    install -m 0600 /dev/null {MIRRORS_MOUNT} && \\\n"
        f"    install -m 0644 {IMAGE_FILES_MOUNT}/{ACTIVATE_SCRIPT} {PROFILE_SCRIPT} && \\\n"
        f'    touch -h -d {FIXED_TIME} "${{APP_BASE}}" "${{CONDA_DIR}}" "${{CONDA_DIR}}/envs" \\\n'
        f'        "${{NB_PYTHON_PREFIX}}" {PROFILE_SCRIPT} \\\n'
        f"        {BOOTSTRAP_MOUNT} {INSTALL_MOUNT} {GROUP_MOUNT} {PACKAGE_CACHE_MOUNT} {PYCACHE_MOUNT} {MIRRORS_MOUNT}"
    )


def _install_script(group: str) -> str:
    # Only this group's part of the plan is mounted: a change elsewhere in the lock leaves this step's
    # inputs as they were. /tmp is a tmpfs, so nothing the step leaves there reaches the layer.
    # The installer's own modules (the build environment's and py-rattler's) are compiled once, into a
    # cache mount, not again in every step; -X applies to the installer's interpreter only, not to the
    # environment's python it runs to compile the image's modules.
    return (
        f"{_bind('bootstrap', BOOTSTRAP_MOUNT)} \\\n"
        f"    {_bind('install', INSTALL_MOUNT)} \\\n"
        f"    {_bind(f'groups/{group}', GROUP_MOUNT)} \\\n"
        f"    --mount=type=cache,id={PACKAGE_CACHE_ID},target={PACKAGE_CACHE_MOUNT},uid={NB_UID},gid={NB_UID} \\\n"
        f"    --mount=type=secret,id={MIRRORS_SECRET},target={MIRRORS_MOUNT},uid={NB_UID} \\\n"
        f"    --mount=type=cache,id={PYCACHE_ID},target={PYCACHE_MOUNT},uid={NB_UID},gid={NB_UID} \\\n"
        "    --mount=type=tmpfs,target=/tmp \\\n"
        f"    PYTHONPATH={BOOTSTRAP_MOUNT}/site PYTHONNOUSERSITE=1 \\\n"
        f"    {BOOTSTRAP_MOUNT}/env/bin/python -X pycache_prefix={PYCACHE_MOUNT} {INSTALL_MOUNT}/{INSTALLER} \\\n"
        f'        --plan {GROUP_MOUNT}/{PLAN} --prefix "${{NB_PYTHON_PREFIX}}" \\\n'
        f"        --cache {PACKAGE_CACHE_MOUNT} --mirrors {MIRRORS_MOUNT} --fixed-time 0 {LAYER_OPTION} {group}"
    )
