"""hub.toml, read into typed, validated objects.

Every setting has a default documented here (the `description` of its field)
and in the commented hub.toml of the repository. A wrong key, type or value
fails with one line naming the file, the key and what is expected.
Paths in hub.toml are relative to the directory that holds it.
"""

from __future__ import annotations

import os
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ByteSize, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from tooling.channels import MIRROR_URL_PATTERN
from tooling.errors import ConfigError
from tooling.images import IMAGE_NAME, repository

CONFIG_NAME = "hub.toml"
CONFIG_ENV = "HUBSHIP_CONFIG"
# Registry credentials from the environment (a token goes in the password).
ENV_USERNAME = "HUBSHIP_REGISTRY_USERNAME"
ENV_PASSWORD = "HUBSHIP_REGISTRY_PASSWORD"  # noqa: S105 (a variable name; it holds a password or a token)

# The solvers the lock stage can use (`lock --engine`).
Engine = Literal["rattler", "conda-lock"]
ENGINES: tuple[Engine, ...] = ("rattler", "conda-lock")
# How a load test's users arrive (tooling.loadtest.schedule); here so the CLI declares them without the stage.
ArrivalKind = Literal["burst", "ramp", "poisson"]
ARRIVALS: tuple[ArrivalKind, ...] = ("burst", "ramp", "poisson")
KNOWN_PLATFORMS = ("linux-64", "linux-aarch64", "linux-ppc64le", "osx-64", "osx-arm64", "win-64")

# conda-lock's defaults for linux-64, without __cuda: a hub image rarely has a GPU.
DEFAULT_VIRTUAL_PACKAGES = {
    "linux-64": {"__unix": "0", "__linux": "5.10", "__glibc": "2.28", "__archspec": "1 x86_64"},
}

_REGISTRY = r"^[A-Za-z0-9.-]+(?::[0-9]+)?$"
_CHANNEL_NAME = r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[StrictStr, Field(min_length=1)]


class ImageSettings(_Section):
    registry: Name = Field(
        "ghcr.io",
        description="registry host[:port] the image is pushed to",
        pattern=_REGISTRY,
    )
    name: Name = Field(
        "example-hub/user-image",
        description="repository of the image in the registry, lowercase, e.g. 'my-org/hub-image'",
        pattern=IMAGE_NAME,
    )
    context: Path = Field(Path("image"), description="folder of repo2docker inputs (apt.txt, postBuild, start, ...)")
    base: Name = Field(
        "docker.io/library/buildpack-deps:jammy",
        description="base image of the build; for real use pin it by digest (NAME@sha256:...)",
    )

    @property
    def repository(self) -> str:
        """REGISTRY/NAME, the image reference without a tag."""
        return repository(self.registry, self.name)


class EnvironmentSettings(_Section):
    spec: Path = Field(Path("environments/environment.yml"), description="the conda environment people edit")
    lock_dir: Path = Field(
        Path("environments"), description="folder the lock stage writes conda-lock.yml and conda-<platform>.lock into"
    )
    platforms: list[Annotated[StrictStr, Field(pattern="^(" + "|".join(KNOWN_PLATFORMS) + ")$")]] = Field(
        ["linux-64"], description=f"platforms to lock, from: {', '.join(KNOWN_PLATFORMS)}", min_length=1
    )
    channels: list[Annotated[StrictStr, Field(min_length=1)]] = Field(
        [], description="channels to lock against instead of those in the spec (empty: the spec's own)"
    )
    virtual_packages: dict[StrictStr, dict[StrictStr, StrictStr]] = Field(
        DEFAULT_VIRTUAL_PACKAGES,
        description="per platform, the virtual packages of the machines the image runs on (__glibc, __cuda, ...)",
    )
    require_singleuser: StrictBool = Field(
        True, description="refuse a spec without jupyterhub-singleuser (set false to waive for a non-hub image)"
    )


class DockerSettings(_Section):
    cli: Name = Field(
        "docker",
        description="docker CLI to run; it needs buildx or built-in BuildKit (Debian's /usr/bin/docker). "
        "HUBSHIP_DOCKER overrides it",
    )


class SmokeSettings(_Section):
    timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        60, description="seconds the single-user server may take to answer under its base URL"
    )
    notebooks: list[Path] = Field([], description="tutorial notebooks that must run top to bottom in the image")
    notebook_timeout: Annotated[StrictInt, Field(gt=0)] = Field(600, description="seconds each notebook cell may take")
    extra_imports: list[Name] = Field([], description="module names to import besides those found in the image")
    skip_imports: list[Name] = Field([], description="module names not to import (say why in a comment)")
    size_budget: ByteSize = Field(ByteSize(6_000_000_000), description="largest image size allowed, e.g. '6GB'")
    tests: Path = Field(Path("image/tests"), description="the user's own pytest tests, run inside the image")
    jupyterhub_version: StrictStr = Field(
        "", description="JupyterHub version of the deployed hub; empty: derived from the chart version"
    )


class ImageLocation(_Section):
    file: Path = Field(description="values file that holds the image")
    path: Name = Field(description="YAML path of the image in that file, e.g. 'singleuser.image'")


class DeploySettings(_Section):
    values: list[Path] = Field(description="Helm values files, in the order they are passed to helm", min_length=1)
    image: list[ImageLocation] = Field(description="where the image is written in the values files", min_length=1)
    release: Name = Field(description="Helm release name")
    namespace: Name = Field(description="Kubernetes namespace")
    chart: Name = Field(
        "jupyterhub/jupyterhub",
        description="chart to deploy: REPO/NAME (from chart_repository), an oci://HOST/PATH/NAME reference, or a "
        "local chart folder or .tgz (a path starting with '.' or '/', or ending in .tgz; for wrapper charts)",
    )
    chart_version: Name = Field(description="chart version, a string such as '4.2.0'")
    hub_url: StrictStr = Field(
        "",
        description="public URL of this environment's hub, e.g. 'https://hub.example.org/'; "
        "empty: not set (loadtest and verify then say so)",
        pattern=r"^(https?://[^\s]+)?$",
    )
    api_token_env: Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        "HUBSHIP_API_TOKEN",
        description="environment variable that holds an API token of this hub (a service with the scopes verify and "
        "loadtest need: README)",
    )
    kube_context: StrictStr = Field(
        "", description="kube context this environment's cluster has in the KUBECONFIG; deploy refuses any other"
    )
    timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        600, description="seconds `helm upgrade` (and `helm rollback`) may take (helm's --timeout)"
    )
    history_max: Annotated[StrictInt, Field(ge=0)] = Field(
        10, description="release revisions Helm keeps (helm's --history-max; 0: no limit)"
    )
    rollout_timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        600, description="seconds each Deployment and DaemonSet of the release may take to roll out"
    )
    secret_values_env: Annotated[StrictStr, Field(pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")] = Field(
        "",
        description="environment variable holding the path of a secret values file passed last to helm "
        "(tokens, OAuth secrets); empty: none. The path and its contents are never printed",
    )
    verify_attempts: Annotated[StrictInt, Field(gt=0)] = Field(
        3, description="times verify tries the hub spawn check before it fails"
    )
    verify_spawn_timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        300, description="seconds verify waits for the check user's server to be ready (nodes may pull the image)"
    )
    verify_request_timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        15, description="seconds any one request of verify to the hub may take"
    )
    chart_repository: Name = Field(
        "https://hub.jupyter.org/helm-chart/",
        description="URL of the chart repository a REPO/NAME chart is pulled from (unused for oci:// and local charts)",
        pattern=r"^(https?|file)://",
    )


class HelmSettings(_Section):
    cli: Name = Field("helm", description="helm CLI to run (Helm 3.13+ or 4). HUBSHIP_HELM overrides it")


class KubectlSettings(_Section):
    cli: Name = Field("kubectl", description="kubectl CLI to run (rollout status). HUBSHIP_KUBECTL overrides it")


Seconds = Annotated[StrictInt, Field(ge=0)]
RuleId = Annotated[
    StrictStr,
    Field(
        pattern="^(idle-culling|kernel-culling|resources|capacity|high-performance-profile|shared-data|image-pinned)$"
    ),
]


class CheckSettings(_Section):
    max_idle_timeout: Annotated[StrictInt, Field(gt=0)] = Field(
        3600, description="longest cull.timeout (and kernel cull_idle_timeout) allowed, in seconds"
    )
    max_age: Seconds = Field(
        0, description="nightly policy: cull.maxAge must be set and at most this many seconds (0: no such policy)"
    )
    high_performance_profile: StrictBool = Field(
        True, description="require a profile whose guarantees give one user a node to itself"
    )
    tutorial_leads_group: Name = Field(
        "tutorial-leads", description="JupyterHub group that gets the shared data read-write"
    )
    shared_data_volume: Name = Field(
        "shared-data", description="name of the volume everyone reads and only the tutorial leads write"
    )
    waive: dict[RuleId, Annotated[StrictStr, Field(min_length=1)]] = Field(
        {}, description="rule id -> the reason this hub does without the rule; the report shows both"
    )


class CapacitySettings(_Section):
    node_cpu: Annotated[float, Field(gt=0)] = Field(8.0, description="CPUs of one user node")
    node_memory: Annotated[StrictStr, Field(pattern=r"^[0-9]+(\.[0-9]+)?[KMGT]$")] = Field(
        "32G", description="memory of one user node; K, M, G, T are powers of 1024, as KubeSpawner reads them"
    )
    reserved_cpu: Annotated[float, Field(ge=0)] = Field(
        0.5,
        description="CPU the node keeps for itself: the kubelet's reservation plus the DaemonSets every node runs "
        "(kube-proxy, the network plugin, the image puller, a log agent)",
    )
    reserved_memory: Annotated[StrictStr, Field(pattern=r"^[0-9]+(\.[0-9]+)?[KMGT]$")] = Field(
        "2G",
        description="memory the node keeps for itself (kubelet and system reservation, eviction threshold, DaemonSets)",
    )
    users: Annotated[StrictInt, Field(gt=0)] = Field(80, description="users expected on the hub at the same time")
    hours_per_day: Annotated[float, Field(gt=0, le=24)] = Field(
        8.0, description="hours a day that many users are on the hub (a workshop day)"
    )
    price_per_node_hour: Annotated[float, Field(ge=0)] = Field(
        0.0, description="price of one node for an hour, to show the cost of a day (0: not shown)"
    )


PositiveSeconds = Annotated[float, Field(gt=0)]


class LoadtestSettings(_Section):
    max_users: Annotated[StrictInt, Field(gt=0)] = Field(100, description="largest number of users a run may start")
    run_prefix: StrictStr = Field(
        "hubship-lt",
        description="start of every test user's name (a run adds its id); only such users are ever touched",
        pattern=r"^[a-z][a-z0-9-]{3,30}$",
    )
    max_concurrent: Annotated[StrictInt, Field(ge=0)] = Field(
        0, description="most users between arrival and the end of their journey at once; 0: no cap"
    )
    request_timeout: PositiveSeconds = Field(30.0, description="seconds any one request to the hub may take")
    spawn_timeout: PositiveSeconds = Field(
        600.0, description="seconds from a user's arrival until its server is ready (waits after 429s included)"
    )
    kernel_timeout: PositiveSeconds = Field(
        120.0, description="seconds for the server to answer through the proxy and a kernel to start"
    )
    cell_timeout: PositiveSeconds = Field(300.0, description="seconds each notebook cell may run")
    stop_timeout: PositiveSeconds = Field(120.0, description="seconds for a server to stop and its user to go")
    run_deadline: PositiveSeconds = Field(
        3600.0, description="seconds the whole run may take before every journey is stopped (cleanup comes after)"
    )
    cleanup_timeout: PositiveSeconds = Field(300.0, description="seconds the cleanup at the end may take")
    max_p95_ready: PositiveSeconds = Field(
        300.0, description="limit: p95 of time to server ready, in seconds; above it the run fails"
    )
    max_failure_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="limit: share of users with any failure (0.05 = 5%); above it the run fails"
    )
    contended_cpu: Annotated[float, Field(gt=0)] = Field(
        0.5, description="the generator's own CPU, in cores, above which the run is marked contended"
    )
    contended_lag: PositiveSeconds = Field(
        0.25, description="the generator's event-loop lag (p95, seconds) above which the run is marked contended"
    )


class HubConfig(_Section):
    """The whole of hub.toml. `path` is the file it was read from; paths in it resolve against its folder."""

    image: ImageSettings = ImageSettings()
    environment: EnvironmentSettings = EnvironmentSettings()
    mirrors: dict[
        Annotated[StrictStr, Field(pattern=_CHANNEL_NAME)],
        Annotated[StrictStr, Field(pattern=MIRROR_URL_PATTERN)],
    ] = Field({}, description="channel name -> URL to read it from instead (air-gapped sites, tests)")
    docker: DockerSettings = DockerSettings()
    smoke: SmokeSettings = SmokeSettings()
    loadtest: LoadtestSettings = LoadtestSettings()
    deploy: dict[Annotated[StrictStr, Field(pattern="^[a-z][a-z0-9-]*$")], DeploySettings] = Field(
        {}, description="one table per environment; 'staging' and 'prod' are required"
    )
    helm: HelmSettings = HelmSettings()
    kubectl: KubectlSettings = KubectlSettings()
    check: CheckSettings = CheckSettings()
    capacity: CapacitySettings = CapacitySettings()
    path: Path = Field(Path(CONFIG_NAME), exclude=True)

    @property
    def root(self) -> Path:
        """The folder holding hub.toml."""
        return self.path.parent

    def file(self, relative: Path) -> Path:
        """A path from hub.toml, resolved against the folder that holds it."""
        return relative if relative.is_absolute() else self.root / relative

    def deploy_target(self, name: str) -> DeploySettings:
        try:
            return self.deploy[name]
        except KeyError:
            known = ", ".join(sorted(self.deploy)) or "none"
            raise ConfigError(f"{self.path}: no [deploy.{name}] table (environments: {known}).") from None

    def require_platform(self, platform: str) -> None:
        """Refuse a hub.toml that does not lock `platform`, the platform the image is built for."""
        if platform not in self.environment.platforms:
            raise ConfigError(
                f"{self.path}: [environment] platforms has no {platform}, the platform of the image; "
                "add it and run `python -m tooling lock`."
            )

    @property
    def docker_cli(self) -> str:
        return os.environ.get("HUBSHIP_DOCKER") or self.docker.cli

    @property
    def helm_cli(self) -> str:
        return os.environ.get("HUBSHIP_HELM") or self.helm.cli

    @property
    def kubectl_cli(self) -> str:
        return os.environ.get("HUBSHIP_KUBECTL") or self.kubectl.cli


REQUIRED_ENVIRONMENTS = ("staging", "prod")


def find_config(start: Path | None = None) -> Path:
    """The hub.toml named by HUBSHIP_CONFIG, or the nearest one in this folder or its parents."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(f"No {CONFIG_NAME} in {here} or its parents. Run from the hub repository or pass --config PATH.")


def load_config(path: Path) -> HubConfig:
    """Read and validate hub.toml; raise ConfigError with one line on any problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file. Create it from the hub.toml of the toolkit's repository.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    try:
        config = HubConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(path, exc.errors()[0])) from None
    missing = [name for name in REQUIRED_ENVIRONMENTS if name not in config.deploy]
    if missing:
        raise ConfigError(f"{path}: [deploy.{missing[0]}] is missing; hub.toml needs a table for staging and prod.")
    return config.model_copy(update={"path": path.resolve()})


def _describe(path: Path, error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    fields, field = _fields_at(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = ", ".join(name for name, info in fields.items() if not info.exclude)
        return f"{path}: unknown key '{key}'; expected one of: {known}."
    expected = f" ({field.description})" if field is not None and field.description else ""
    if kind == "missing":
        return f"{path}: '{key}' is required{expected}."
    return f"{path}: '{key}': {error['msg'].lower()}{expected}, got {error['input']!r}."


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or as the values of a dict or list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _fields_at(loc: list[str]) -> tuple[dict[str, pydantic.fields.FieldInfo], pydantic.fields.FieldInfo | None]:
    """The fields of the table at `loc[:-1]`, and the field `loc[-1]` names in it."""
    fields = HubConfig.model_fields
    field = None
    for depth, part in enumerate(loc, start=1):
        if part not in fields:
            continue  # a table name under [deploy] or a list index
        field = fields[part]
        model = _model_in(field.annotation)
        if model is not None and depth < len(loc):
            fields = model.model_fields
    return fields, field
