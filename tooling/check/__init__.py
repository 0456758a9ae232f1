"""`check`: an environment's Helm values against the pinned chart, KubeSpawner, and the lessons of 2020.

    read values files (duplicates, YAML errors) -> pinned chart (cached)
    -> merge over the chart's defaults as Helm does -> values.schema.json
    -> what the schema cannot see (KubeSpawner options, volume fields,
       quantities) -> rules (idle-culling, kernel-culling, resources,
       capacity, high-performance-profile, shared-data, image-pinned)
    -> `helm template` and where the single-user image lands

The result lists every finding and rule with pass/FAIL/waived, the file and
line that set the value, and the fix; the CLI prints it and exits 1 on a
failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tooling.check.blind_spots import check_chart_blind_spots, check_spawner_options, resources_of
from tooling.check.capacity import Capacity, capacity
from tooling.check.chart import ChartSource, local_chart, read_chart, require_version
from tooling.check.findings import Finding, failure
from tooling.check.kubespawner_names import spawner_names
from tooling.check.render import NamedImage, image_findings, image_text, parse_key_path, render
from tooling.check.rules import RULES, RuleContext
from tooling.check.schema import schema_findings
from tooling.check.values_files import ValuesFile, dotted, merge_files, read_values_file, value_at
from tooling.config import CapacitySettings, CheckSettings, HubConfig
from tooling.errors import ConfigError
from tooling.files import cache_folder


@dataclass(frozen=True)
class CheckRequest:
    environment: str
    root: Path
    files: tuple[Path, ...]
    labels: tuple[str, ...]
    image_places: tuple[tuple[int, str], ...]  # (index into files, YAML path) from hub.toml
    chart: ChartSource
    release: str
    namespace: str
    helm: str
    settings: CheckSettings
    capacity: CapacitySettings
    render: bool = True
    cache_root: Path = field(default_factory=cache_folder)  # where charts and KubeSpawner's names are kept

    @classmethod
    def from_config(cls, config: HubConfig, environment: str, *, render: bool = True) -> CheckRequest:
        target = config.deploy_target(environment)
        files = tuple(config.file(path) for path in target.values)
        places = []
        for location in target.image:
            resolved = config.file(location.file)
            if resolved not in files:
                raise ConfigError(
                    f"{config.path}: [deploy.{environment}] image names {location.file}, which is not one of its "
                    "values files."
                )
            places.append((files.index(resolved), location.path))
        return cls(
            environment,
            config.root,
            files,
            tuple(str(path) for path in target.values),
            tuple(places),
            ChartSource.from_config(config, target),
            target.release,
            target.namespace,
            config.helm_cli,
            config.check,
            config.capacity,
            render,
        )


@dataclass(frozen=True)
class CheckResult:
    environment: str
    chart: str
    findings: tuple[Finding, ...]
    capacity: Capacity
    rendered: bool

    @property
    def failed(self) -> bool:
        return any(finding.failed for finding in self.findings)


def check_values(request: CheckRequest) -> CheckResult:
    files = [read_values_file(path, label) for path, label in zip(request.files, request.labels, strict=True)]
    chart_path = local_chart(request.chart, request.helm, request.cache_root)
    contents = read_chart(chart_path)
    require_version(contents, request.chart, chart_path)
    values = merge_files(contents.defaults, files)
    findings = _duplicate_findings(files)
    if contents.schema is not None:
        findings += schema_findings(contents.schema, values)
    names = spawner_names(request.cache_root)
    findings += check_chart_blind_spots(values, names)
    findings += check_spawner_options(values, names)
    resources = resources_of(values)
    sizes = capacity(request.capacity, resources)
    context = RuleContext(values, request.settings, names, resources, sizes)
    for rule in RULES:
        reason = request.settings.waive.get(rule.id)
        findings += [finding.waived(reason) if reason and finding.failed else finding for finding in rule.run(context)]
    if request.render:
        findings += _render_findings(request, chart_path, files)
    return CheckResult(request.environment, request.chart.label, tuple(findings), sizes, request.render)


def _duplicate_findings(files: list[ValuesFile]) -> list[Finding]:
    return [
        failure(
            "duplicate-key",
            f"{duplicate.first}, {duplicate.second}",
            f"{dotted(duplicate.path)} is set twice in {duplicate.first.file}: Helm keeps only the second, "
            "the first is dropped",
            "merge the two into one key",
        )
        for file in files
        for duplicate in file.duplicates
    ]


def _render_findings(request: CheckRequest, chart_path: Path, files: list[ValuesFile]) -> list[Finding]:
    manifests, error = render(
        request.helm, chart_path, request.release, request.namespace, files=request.files, cwd=request.root
    )
    if error:
        return [failure("render", None, f"helm template failed: {error}", "fix the findings above; Helm refuses them")]
    named = []
    for index, path in request.image_places:
        key_path = parse_key_path(path)
        origin = files[index].origins.get(key_path)
        image = image_text(value_at(files[index].data, key_path))
        named.append(NamedImage(str(origin) if origin else files[index].label, key_path, image))
    return image_findings(manifests, named)
