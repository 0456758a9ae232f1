"""The chart hub.toml pins: where it comes from, the local copy the check reads, and what it holds.

hub.toml's `chart` is REPO/NAME (pulled from `chart_repository`), an
`oci://` reference, or a local folder or .tgz (a wrapper chart, a test).
Remote charts are fetched once with `helm pull` into the toolkit's cache,
keyed by where they come from, name and version; later checks read the
cached archive without Helm or the network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tooling import proc
from tooling.config import DeploySettings, HubConfig
from tooling.errors import CommandFailed, ConfigError, ToolingError

HELM_HINT = "Install Helm 3.13+ or 4, or name it in hub.toml ([helm] cli) or HUBSHIP_HELM."
PULL_TIMEOUT = 300


@dataclass(frozen=True)
class ChartSource:
    """One chart at one version, and where it comes from."""

    chart: str  # as hub.toml writes it
    version: str
    repository: str  # URL of the chart repository; empty for oci:// and local charts
    local: Path | None  # a folder or .tgz on this machine

    @property
    def name(self) -> str:
        return self.chart.rstrip("/").rsplit("/", 1)[-1]

    @property
    def remote_ref(self) -> str:
        """What `helm pull` is given: NAME with --repo, or the oci:// reference."""
        return self.chart if self.chart.startswith("oci://") else self.name

    @property
    def label(self) -> str:
        return f"{self.chart} {self.version}"

    @classmethod
    def from_config(cls, config: HubConfig, target: DeploySettings) -> ChartSource:
        chart = target.chart
        if chart.startswith("oci://"):
            return cls(chart, target.chart_version, "", None)
        if chart.startswith((".", "/")) or chart.endswith(".tgz"):
            return cls(chart, target.chart_version, "", config.file(Path(chart)))
        if chart.count("/") != 1:
            raise ConfigError(
                f"{config.path}: chart = {chart!r} is neither REPO/NAME, an oci:// reference nor a local path "
                "(start a path with ./ or /)."
            )
        return cls(chart, target.chart_version, target.chart_repository, None)


def cache_dir(root: Path) -> Path:
    return root / "charts"


def local_chart(source: ChartSource, helm: str, cache_root: Path) -> Path:
    """A folder or .tgz of the pinned chart on this machine, pulled with helm into the cache when remote."""
    if source.local is not None:
        if not source.local.exists():
            raise ConfigError(f"chart {source.local}: no such folder or .tgz (hub.toml [deploy] chart).")
        return source.local
    origin = source.repository or source.chart
    key = hashlib.sha256(origin.encode()).hexdigest()[:12]
    cached = cache_dir(cache_root) / key / f"{source.name}-{source.version}.tgz"
    if not cached.exists():
        _pull(source, helm, cached)
    return cached


def _pull(source: ChartSource, helm: str, cached: Path) -> None:
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as download:
        argv = [helm, "pull", source.remote_ref, "--version", source.version, "--destination", download]
        if source.repository:
            argv += ["--repo", source.repository]
        try:
            proc.run(argv, timeout=PULL_TIMEOUT, hint=HELM_HINT)
        except CommandFailed as exc:
            where = f" from {source.repository}" if source.repository else ""
            raise ToolingError(
                f"helm could not pull {source.label}{where}: {exc.last_line}. "
                "Check chart, chart_version and chart_repository in hub.toml [deploy]."
            ) from None
        archives = sorted(Path(download).glob("*.tgz"))
        if len(archives) != 1:
            raise ToolingError(f"`helm pull {source.remote_ref}` left {len(archives)} archives, expected one.")
        shutil.move(archives[0], cached)


@dataclass(frozen=True)
class ChartContents:
    """What the check reads from the chart: its name and version, default values and schema."""

    name: str
    version: str
    defaults: dict[str, Any]
    schema: dict[str, Any] | None


def read_chart(path: Path) -> ChartContents:
    """Chart.yaml, values.yaml and values.schema.json of a chart folder or archive."""
    files = _chart_files(path)
    if "Chart.yaml" not in files:
        raise ToolingError(f"{path}: not a Helm chart (no Chart.yaml).")
    try:
        meta = yaml.load(files["Chart.yaml"], Loader=yaml.CSafeLoader) or {}
        defaults = yaml.load(files.get("values.yaml", b""), Loader=yaml.CSafeLoader) or {}
        schema = json.loads(files["values.schema.json"]) if "values.schema.json" in files else None
    except (yaml.YAMLError, ValueError) as exc:
        raise ToolingError(f"{path}: the chart's own files are not valid YAML/JSON: {exc}.") from None
    return ChartContents(str(meta.get("name", "")), str(meta.get("version", "")), defaults, schema)


WANTED = ("Chart.yaml", "values.yaml", "values.schema.json")


def _chart_files(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {name: (path / name).read_bytes() for name in WANTED if (path / name).is_file()}
    try:
        with tarfile.open(path, "r:gz") as archive:
            found: dict[str, bytes] = {}
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] in WANTED and member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        found[parts[1]] = handle.read()
            return found
    except (tarfile.TarError, OSError) as exc:
        raise ToolingError(f"{path}: not a chart archive ({exc}). Delete it to pull it again.") from None


def require_version(contents: ChartContents, source: ChartSource, path: Path) -> None:
    if contents.version != source.version:
        raise ConfigError(
            f"chart {path} is version {contents.version or '(none)'}, but hub.toml pins chart_version "
            f"{source.version}: make them agree."
        )
