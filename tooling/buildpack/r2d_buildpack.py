"""Our repo2docker BuildPack: repo2docker's BaseImage, with the locked environment installed in layers.

repo2docker's conda buildpack re-solves environment.yml at every build, and
brings micromamba and a frozen base environment from anaconda.org. This
buildpack replaces only that part. Everything else is repo2docker's own
(`BaseImage`): the jovyan user, REPO_DIR, apt.txt, postBuild, start, the
entrypoint, and the environment variables hub images are expected to set
(NB_PYTHON_PREFIX=/srv/conda/envs/notebook, CONDA_DIR, KERNEL_PYTHON_PREFIX,
PATH with ${NB_PYTHON_PREFIX}/bin ahead of the system's).

1. A stage of its own before repo2docker's (`ENVIRONMENT_STAGE`, on the same
   base image) installs the whole environment in one step and leaves each
   layer group's files in a folder of its own (`LAYERS_ROOT`/NAME), and the
   login script in another (`LOGIN_ROOT`). BuildKit runs it while the
   image's own stage runs its first steps.
2. In the image's stage, one `COPY --from` step copies the login script's
   folder onto `/`, then one step per layer group (`buildpack_for`) that
   group's folder: one layer each. repo2docker renders build scripts as RUN
   steps only, so each copy is rendered as a marker step that `render`
   replaces.

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
    ENVIRONMENT_STAGE,
    FIXED_TIME,
    IMAGE_FILES_MOUNT,
    INSTALL_MOUNT,
    INSTALLER,
    LAYERS_ROOT,
    LOGIN_ROOT,
    MIRRORS_MOUNT,
    MIRRORS_SECRET,
    PACKAGE_CACHE_ID,
    PACKAGE_CACHE_MOUNT,
    PLAN,
    PLAN_MOUNT,
    PROFILE_SCRIPT,
    PYCACHE_ID,
    PYCACHE_MOUNT,
)
from tooling.buildpack.layers import LayerGroup
from tooling.errors import ToolingError
from tooling.images import NB_UID

COPY_MARKER = "hubship-copy-layer"


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

    # The environment's layers, one copy step each, in this order (set by `buildpack_for`).
    layer_names: tuple[str, ...] = ()

    def copied_folders(self) -> list[str]:
        """The environment stage's folders the image's stage copies onto `/`, one step each, in this order."""
        return [LOGIN_ROOT, *(f"{LAYERS_ROOT}/{name}" for name in self.layer_names)]

    def get_build_scripts(self) -> list[tuple[str, str]]:
        copies = [("root", f"{COPY_MARKER} {folder}") for folder in self.copied_folders()]
        return [*super().get_build_scripts(), *copies]

    def render(self, build_args: dict[str, str] | None = None) -> str:
        """The environment stage, then repo2docker's Dockerfile with each copy step in place."""
        dockerfile = str(super().render(build_args))
        for folder in self.copied_folders():
            marker = f"RUN {COPY_MARKER} {folder}\n"
            if dockerfile.count(marker) != 1:
                raise ToolingError(f"repo2docker's Dockerfile does not hold the step {marker.strip()!r} once.")
            dockerfile = dockerfile.replace(marker, f"COPY --from={ENVIRONMENT_STAGE} {folder}/ /\n")
        return self.environment_stage() + dockerfile

    def environment_stage(self) -> str:
        # The same build variables as the image's stage, one ENV each: a value may name an earlier one.
        variables = "".join(f"ENV {name}={value}\n" for name, value in self.get_build_env())
        return f"FROM {self.base_image} AS {ENVIRONMENT_STAGE}\n{variables}RUN {_install_script()}\n\n"


def buildpack_for(groups: tuple[LayerGroup, ...]) -> type[HubshipBuildPack]:
    """The buildpack that copies these groups into the image, one Dockerfile step (one layer) each, in this order."""
    return type("HubshipBuildPack", (HubshipBuildPack,), {"layer_names": tuple(group.name for group in groups)})


def _bind(folder: str, target: str) -> str:
    return f"--mount=type=bind,source={CONTEXT_FOLDER}/{folder},target={target}"


def _install_script() -> str:
    # Runs as root: the layers' folders get the owners the image's folders have. The prefix's folders
    # are made as the image's stage would make them (APP_BASE as the base image has it). /tmp is a
    # tmpfs; nothing of this stage reaches the image but the folders copied in. Every path of the
    # login script's folder gets the fixed time, so its layer is the same in every build too.
    login = f"{LOGIN_ROOT}{PROFILE_SCRIPT}"
    # The installer's own modules (the build environment's and py-rattler's) are compiled into a
    # cache mount, once; -X applies to the installer's interpreter only, not to the environment's
    # python it runs to compile the image's modules.
    return (
        f"{_bind('bootstrap', BOOTSTRAP_MOUNT)} \\\n"
        f"    {_bind('install', INSTALL_MOUNT)} \\\n"
        f"    {_bind('plan', PLAN_MOUNT)} \\\n"
        f"    {_bind('image-files', IMAGE_FILES_MOUNT)} \\\n"
        f"    --mount=type=cache,id={PACKAGE_CACHE_ID},target={PACKAGE_CACHE_MOUNT} \\\n"
        f"    --mount=type=secret,id={MIRRORS_SECRET},target={MIRRORS_MOUNT} \\\n"
        f"    --mount=type=cache,id={PYCACHE_ID},target={PYCACHE_MOUNT} \\\n"
        "    --mount=type=tmpfs,target=/tmp \\\n"
        f"    install -D -m 0644 {IMAGE_FILES_MOUNT}/{ACTIVATE_SCRIPT} {login} && \\\n"
        f"    touch -h -d {FIXED_TIME} {LOGIN_ROOT} {LOGIN_ROOT}/etc {LOGIN_ROOT}/etc/profile.d {login} && \\\n"
        f'    install -d -o {NB_UID} -g {NB_UID} "${{CONDA_DIR}}" "${{CONDA_DIR}}/envs" "${{NB_PYTHON_PREFIX}}" && \\\n'
        f"    PYTHONPATH={BOOTSTRAP_MOUNT}/site PYTHONNOUSERSITE=1 \\\n"
        f"    {BOOTSTRAP_MOUNT}/env/bin/python -X pycache_prefix={PYCACHE_MOUNT} {INSTALL_MOUNT}/{INSTALLER} \\\n"
        f'        --plan {PLAN_MOUNT}/{PLAN} --prefix "${{NB_PYTHON_PREFIX}}" \\\n'
        f"        --cache {PACKAGE_CACHE_MOUNT} --mirrors {MIRRORS_MOUNT} --fixed-time 0 \\\n"
        f"        --layers {LAYERS_ROOT} --owner {NB_UID}"
    )
