"""One environment's cluster, as hub.toml names it: release, chart, values, context, and the programs to run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tooling.config import DeploySettings, HubConfig
from tooling.deploy.helm import Helm, Release
from tooling.deploy.kubectl import Kubectl
from tooling.errors import ConfigError, ToolingError
from tooling.images import ImageReference
from tooling.log import register_secret
from tooling.yamledit import read_image_at

# Strings of the secret values file at least this long are hidden from all output (shorter ones are words
# such as "true" or a port, which hiding would garble every message).
SECRET_MIN_LENGTH = 8


@dataclass(frozen=True)
class Target:
    """What every cluster command of one environment needs from hub.toml."""

    environment: str
    settings: DeploySettings
    root: Path
    config_path: Path
    helm: Helm
    kubectl: Kubectl

    @classmethod
    def from_config(cls, config: HubConfig, environment: str) -> Target:
        settings = config.deploy_target(environment)
        return cls(environment, settings, config.root, config.path, Helm(config.helm_cli), Kubectl(config.kubectl_cli))

    @property
    def release(self) -> Release:
        return Release(self.settings.release, self.settings.namespace, self.settings.kube_context)

    def file(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else self.root / relative

    def values_files(self) -> list[Path]:
        return [self.file(path) for path in self.settings.values]

    def image(self) -> ImageReference:
        """The image ENV's values hold now (its first [deploy.ENV].image place)."""
        place = self.settings.image[0]
        return read_image_at(self.file(place.file), place.file.as_posix(), place.path)

    def chart_arguments(self) -> list[str]:
        """What helm is given for the chart: NAME --repo URL, an oci:// reference, or a local path; and the version."""
        chart, version = self.settings.chart, ["--version", self.settings.chart_version]
        if chart.startswith("oci://"):
            return [chart, *version]
        if chart.startswith((".", "/")) or chart.endswith(".tgz"):
            return [str(self.file(Path(chart)))]
        return [chart.rsplit("/", 1)[-1], "--repo", self.settings.chart_repository, *version]

    def require_context(self) -> str:
        """The kube context hub.toml names, once kubectl says it is the current one; a refusal otherwise."""
        wanted = self.settings.kube_context
        if not wanted:
            raise ConfigError(
                f"{self.config_path}: [deploy.{self.environment}] kube_context is not set; name the kube context "
                "of this environment's cluster, so that a deploy can never reach another cluster."
            )
        current = self.kubectl.current_context()
        if current != wanted:
            raise ToolingError(
                f"The current kube context is {current!r}, but hub.toml's [deploy.{self.environment}] kube_context "
                f"is {wanted!r}; nothing was run. Switch with `kubectl config use-context {wanted}` or point "
                "KUBECONFIG at that cluster's file."
            )
        return current

    def secret_values(self) -> list[Path]:
        """The secret values file the environment variable hub.toml names points at ([] when it names none).

        Its path and every string in it are registered as secrets: they never show in any output.
        """
        variable = self.settings.secret_values_env
        if not variable:
            return []
        path = os.environ.get(variable, "")
        if not path:
            raise ToolingError(
                f"hub.toml's [deploy.{self.environment}] secret_values_env names ${variable}, which is not set; "
                "set it to the path of the secret values file (in CI: written from a secret, removed after)."
            )
        register_secret(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError:
            raise ToolingError(f"${variable} names a secret values file that cannot be read.") from None
        except yaml.YAMLError:
            raise ToolingError(f"${variable} names a secret values file that is not valid YAML.") from None
        for text in _strings(data):
            if len(text) >= SECRET_MIN_LENGTH:
                register_secret(text)
        return [Path(path)]


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
