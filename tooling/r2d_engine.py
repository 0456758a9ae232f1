"""repo2docker as a library, building through the toolkit's docker wrapper with BuildKit.

repo2docker does the repository's part (it picks the buildpack, renders the
Dockerfile from its template and packs the build context); the docker call
is ours. Decisions:

- `HubshipRepo2Docker` is repo2docker's own application with two methods
  replaced. `get_engine` returns `BuildKitEngine` directly instead of looking
  up the `repo2docker.engines` entry point: the engine needs the build
  stage's settings, and registering it as a plugin would also offer it to
  the `repo2docker` command, where it cannot work. `find_image` says "not
  built yet": the build stage has already decided to build (it skips
  existing tags itself, and `--force` must rebuild).
- `BuildKitEngine` replaces repo2docker's `DockerEngine`, which needs the
  buildx plugin and runs docker outside `tooling.proc`. It unpacks the
  context repo2docker packed, adds the build stage's `hubship/` folder (the
  throwaway build environment, installer and plan that our buildpack
  bind-mounts), and runs `tooling.docker.Docker.build`: buildx when
  present, else the CLI's built-in BuildKit, always `--network host`, with
  the mirrors as a BuildKit secret. Every output line goes to the stage's
  callback; a failure propagates as docker's `CommandFailed`, which the stage
  explains.
- repo2docker's own log stays at WARNING: what it would say at INFO (content
  provider, buildpack) the stage's report says better.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repo2docker.app import Repo2Docker
from repo2docker.engine import ContainerEngine

from tooling.buildpack import CONTEXT_FOLDER
from tooling.buildpack.layers import LayerGroup
from tooling.buildpack.r2d_buildpack import buildpack_for
from tooling.docker import Builder, BuildOptions, Docker
from tooling.errors import ToolingError
from tooling.images import DOCKER_PLATFORM, IMAGE_REFERENCE_ENV, NB_UID, NB_USER


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs besides what repo2docker passes to `build`."""

    docker: Docker
    builder: Builder
    build_files: Path  # the hubship/ folder to add to the context
    context_dir: Path  # an empty folder to unpack the context into
    secrets: Mapping[str, Path]
    on_line: Callable[[str], None]
    layer_groups: tuple[LayerGroup, ...]  # the environment's, in the image's order: one copy step (layer) each


class BuildKitEngine(ContainerEngine):  # type: ignore[misc]  # repo2docker is untyped
    """A repo2docker container engine that builds with BuildKit through `tooling.docker`."""

    def __init__(self, *, parent: Any, settings: EngineSettings) -> None:
        super().__init__(parent=parent)
        self.settings = settings

    def build(
        self,
        *,
        fileobj: Any = None,
        tag: str = "",
        buildargs: Mapping[str, str] | None = None,
        platform: str | None = None,
        push: bool = False,
        **_unused: Any,  # container limits and cache_from: repo2docker passes empty ones
    ) -> Iterator[str]:
        if push or fileobj is None:
            raise ToolingError("The build stage builds from repo2docker's packed context and never pushes.")
        context = self.settings.context_dir
        with tarfile.open(fileobj=fileobj) as packed:
            packed.extractall(context, filter="data")
        self.settings.build_files.rename(context / CONTEXT_FOLDER)
        options = BuildOptions(
            context=context,
            tag=tag,
            build_args=dict(buildargs or {}),
            secrets=self.settings.secrets,
            platform=platform,
        )
        self.settings.docker.build(options, self.settings.builder, self.settings.on_line)
        return iter(())


class HubshipRepo2Docker(Repo2Docker):  # type: ignore[misc]  # repo2docker is untyped
    """repo2docker's application, building with `BuildKitEngine` whenever the build stage calls it."""

    def __init__(self, settings: EngineSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine_settings = settings

    def get_engine(self) -> BuildKitEngine:
        return BuildKitEngine(parent=self, settings=self.engine_settings)

    def find_image(self) -> bool:
        return False


def build_with_repo2docker(
    repo: Path, image_spec: str, base_image: str, labels: Mapping[str, str], settings: EngineSettings
) -> None:
    """repo2docker builds `repo` (a folder) on `base_image` with our buildpack, as jovyan (uid 1000), tagged."""
    app = HubshipRepo2Docker(
        settings,
        repo=str(repo.resolve()),
        output_image_spec=image_spec,
        base_image=base_image,
        user_id=NB_UID,
        user_name=NB_USER,
        labels=dict(labels),
        # The image knows its own name, so a hub can be asked which image it runs (verify).
        appendix=f"ENV {IMAGE_REFERENCE_ENV}={image_spec}",
        buildpacks=[buildpack_for(settings.layer_groups)],
        platform=DOCKER_PLATFORM,
        run=False,
        push=False,
        log_level=logging.WARNING,
    )
    app.initialize()
    app.build()
