"""The smoke-test stage: the built image is the locked environment, and starts the way JupyterHub starts it.

`smoke_test` reads as the process it performs:

1. The image: `--image REF`, else the one the build stage recorded. The
   Docker engine must answer and hold the image; a missing image is one
   clear error and is never pulled. configurable-http-proxy must be on PATH.
   The JupyterHub the image must suit is known before anything runs (below).
2. The checks run concurrently on a few threads (each mostly waits for a
   container), every one bounded in time (`tooling.smoke.checks`):
   `user` (uid 1000, not root, no passwordless sudo), `environment`
   (conda-meta equals the lock: name, version, build, md5, every difference
   listed), `imports` (what environment.yml names imports),
   `singleuser` (jupyterhub-singleuser present, its major version the
   deployed hub's), `server-start` (jupyterhub-singleuser through the
   ENTRYPOINT with a spawner's environment answers under /user/NAME/),
   `hub-spawn` (a real JupyterHub with DockerSpawner and
   configurable-http-proxy on 127.0.0.1 spawns the image through its REST
   API, the server is reached through the proxy, a kernel runs code, the
   server stops and its container is gone: `tooling.hubcheck` with the
   local hub of `tooling.smoke.hub`), one `notebook PATH` per tutorial in
   hub.toml, `user-tests` (pytest on image/tests inside the image) and
   `size` (within hub.toml's budget). While the local hub starts (a few
   seconds), the checks that do not need it already run.
3. Every container this run started is removed at the end (all carry the
   run's label), whether the checks passed, failed or timed out.
4. The result, passed or not, is recorded in .hubship/state.json under the
   image's id, with the path of its Markdown report, which the push stage
   reads: an image that did not pass is never pushed. The command
   (`tooling.cli.smoke_cmd`) renders the reports there: Markdown (a line per
   check; the failures' details below) and JUnit XML (a testcase per check,
   under .hubship/reports/ unless --junit names a path).

Which JupyterHub: `[smoke] jupyterhub_version` when set, else the one the
z2jh chart of every `[deploy.*]` table ships (`CHART_HUB_MAJOR`: chart 4.x
runs JupyterHub 5.x, 3.x runs 4.x, 2.x runs 3.x, 1.x runs 1.x). A chart the
table does not know, or deploy targets whose hubs differ in major version,
are a configuration error that says to set `jupyterhub_version`. The image
suits a hub when jupyterhub-singleuser has the hub's major version.

Design notes: docs/design.md#toolingsmoke.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tooling.checkresult import CheckResult, Outcome, run_check
from tooling.config import HubConfig
from tooling.docker import Docker
from tooling.errors import ConfigError, ToolingError
from tooling.hubcheck import CHECK_NAME as HUB_CHECK
from tooling.hubcheck import HubCheckSettings, check_hub_spawn
from tooling.images import IMAGE_PLATFORM
from tooling.lockfile import LOCK_NAME
from tooling.log import logger, redact, step
from tooling.smoke.checks import (
    RUN_LABEL,
    HubRequirement,
    ImageEnvironment,
    ImageUnderTest,
    LockedPackage,
    SpecNames,
    check_environment,
    check_imports,
    check_notebook,
    check_server_start,
    check_singleuser,
    check_size,
    check_user,
    check_user_tests,
    import_plan,
    locked_packages,
    read_environment,
    spec_names,
)
from tooling.smoke.hub import LocalHub, LocalHubSettings, local_hub, require_proxy
from tooling.state import State, TestedImage, reports_dir

REPORT_NAME = "smoke-test.md"
JUNIT_NAME = "smoke-test.xml"
# The z2jh chart's major version -> the JupyterHub major version it runs.
CHART_HUB_MAJOR = {1: 1, 2: 3, 3: 4, 4: 5}
# Threads for the checks: they mostly wait for containers, which share the machine's cores.
WORKERS = max(2, min(6, 2 * (os.cpu_count() or 1)))
CHECK_LABEL = "hubship.smoke.check"
# On top of [smoke] timeout for the spawn: the hub's own steps around the server's start.
HUB_STEPS_TIMEOUT = 60.0
CONTAINER_GONE_TIMEOUT = 10.0
LOG_LINES = 15


@dataclass(frozen=True)
class SmokeRequest:
    """What the stage reads: which image, the hub's files, and hub.toml's [smoke] settings."""

    root: Path
    image: str | None  # a local NAME:TAG; None: the image the build stage recorded
    docker_cli: str
    lock_file: Path
    spec_file: Path
    notebooks: tuple[Path, ...]
    notebook_timeout: int
    server_timeout: int
    extra_imports: tuple[str, ...]
    skip_imports: tuple[str, ...]
    size_budget: int
    tests: Path
    hub: HubRequirement
    junit: Path | None = None  # default: .hubship/reports/smoke-test.xml

    @classmethod
    def from_config(cls, config: HubConfig, *, image: str | None = None, junit: Path | None = None) -> SmokeRequest:
        config.require_platform(IMAGE_PLATFORM)
        smoke = config.smoke
        return cls(
            root=config.root,
            image=image,
            docker_cli=config.docker_cli,
            lock_file=config.file(config.environment.lock_dir) / LOCK_NAME,
            spec_file=config.file(config.environment.spec),
            notebooks=tuple(config.file(path) for path in smoke.notebooks),
            notebook_timeout=smoke.notebook_timeout,
            server_timeout=smoke.timeout,
            extra_imports=tuple(smoke.extra_imports),
            skip_imports=tuple(smoke.skip_imports),
            size_budget=int(smoke.size_budget),
            tests=config.file(smoke.tests),
            hub=required_hub(config),
            junit=junit,
        )

    def shown(self, path: Path) -> str:
        """A path as hub.toml would name it: relative to the hub's folder when inside it."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)


@dataclass(frozen=True)
class SmokeResult:
    reference: str
    image_id: str
    checks: tuple[CheckResult, ...]
    report: Path
    junit: Path
    seconds: float

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.passed)


def required_hub(config: HubConfig) -> HubRequirement:
    """The JupyterHub major version the image must suit: hub.toml's override, else the deployed charts'."""
    hub_toml = config.path
    override = config.smoke.jupyterhub_version
    if override:
        match = re.match(r"^v?(\d+)(\.\d+)*$", override)
        if match is None:
            raise ConfigError(f"{hub_toml}: [smoke] jupyterhub_version {override!r} is not a version such as '5.4'.")
        return HubRequirement(int(match.group(1)), f'[smoke] jupyterhub_version = "{override}"')
    sources: dict[int, dict[str, list[str]]] = {}
    for name, target in sorted(config.deploy.items()):
        chart = re.match(r"^v?(\d+)\.", target.chart_version)
        major = CHART_HUB_MAJOR.get(int(chart.group(1))) if chart else None
        if major is None:
            known = ", ".join(f"{chart}.x runs {hub}.x" for chart, hub in CHART_HUB_MAJOR.items())
            raise ConfigError(
                f"{hub_toml}: [deploy.{name}] chart_version {target.chart_version!r}: which JupyterHub that chart "
                f"runs is not known here (chart {known}). Set [smoke] jupyterhub_version to the version of the "
                'hub it deploys, e.g. "5.4".'
            )
        sources.setdefault(major, {}).setdefault(target.chart_version, []).append(f"[deploy.{name}]")
    if len(sources) != 1:
        described = "; ".join(f"JupyterHub {major}.x: {_charts(charts)}" for major, charts in sources.items())
        raise ConfigError(
            f"{hub_toml}: the deploy targets run different JupyterHub major versions ({described}); one image "
            "cannot suit both. Set [smoke] jupyterhub_version to the one to test against."
        )
    ((major, charts),) = sources.items()
    return HubRequirement(major, _charts(charts))


def _charts(charts: Mapping[str, list[str]]) -> str:
    """'chart 4.3.3 in [deploy.prod] and [deploy.staging]', one part per chart version."""
    return "; ".join(f"chart {version} in {' and '.join(tables)}" for version, tables in charts.items())


# --- the stage ---------------------------------------------------------------------------------


def smoke_test(request: SmokeRequest) -> SmokeResult:
    """Run every check on the image; record in the state whether this image passed, and where its report goes."""
    started = time.monotonic()
    state = State.load(request.root)
    reference = _image_reference(request, state)
    docker = Docker(request.docker_cli)
    docker.require_engine()
    image = docker.inspect_image(reference)
    if image is None:
        raise ToolingError(
            f"The Docker engine at {docker.engine} has no image {reference}. The smoke test never pulls an "
            "image: build it here (`python -m tooling build`), or name a local one with --image NAME:TAG "
            "(`docker images` lists them)."
        )
    require_proxy()
    inputs = _Inputs(*locked_packages(request.lock_file, IMAGE_PLATFORM), spec_names(request.spec_file))
    target = ImageUnderTest(docker, reference, image, secrets.token_hex(4))
    with step(f"smoke-test {reference} ({len(_check_names(request))} checks)"):
        try:
            checks = _run_checks(request, target, inputs)
        finally:
            docker.remove_containers(*docker.containers_labelled(target.label))
    reports = reports_dir(request.root)
    result = SmokeResult(
        reference=reference,
        image_id=image.image_id,
        checks=checks,
        report=reports / REPORT_NAME,
        junit=request.junit or reports / JUNIT_NAME,
        seconds=time.monotonic() - started,
    )
    state.record_test(TestedImage(reference, image.image_id, result.passed, str(result.report)))
    return result


def _image_reference(request: SmokeRequest, state: State) -> str:
    if request.image is not None:
        return request.image
    return state.require_built().reference


def _check_names(request: SmokeRequest) -> list[str]:
    notebooks = [f"notebook {request.shown(path)}" for path in request.notebooks]
    return ["user", "environment", "imports", "singleuser", "server-start", HUB_CHECK, *notebooks, "user-tests", "size"]


@dataclass(frozen=True)
class _Inputs:
    """The hub's files the checks compare the image with, read (and checked) before anything runs."""

    locked_conda: Mapping[str, LockedPackage]
    locked_pip: Mapping[str, LockedPackage]
    names: SpecNames


def _run_checks(request: SmokeRequest, target: ImageUnderTest, inputs: _Inputs) -> tuple[CheckResult, ...]:
    """Every check, concurrently; the two that need the local hub once it answers. In `_check_names` order."""
    futures: dict[str, Future[CheckResult]] = {}
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="smoke") as pool, ExitStack() as stack:

        def submit(name: str, check: Callable[[], Outcome]) -> None:
            futures[name] = pool.submit(run_check, name, check)
            futures[name].add_done_callback(_log_result)

        environment = pool.submit(read_environment, target, inputs.locked_pip)
        lock_name = request.shown(request.lock_file)
        submit("user", lambda: check_user(target))
        submit("environment", lambda: check_environment(environment.result(), inputs.locked_conda, lock_name))
        submit("singleuser", lambda: check_singleuser(target, request.hub))
        submit("size", lambda: check_size(target.image, request.size_budget))
        submit("imports", lambda: _imports(request, target, inputs.names, environment))
        for path in request.notebooks:
            shown = request.shown(path)
            submit(f"notebook {shown}", _notebook_check(target, path, shown, request.notebook_timeout))
        submit("user-tests", lambda: check_user_tests(target, request.root, request.tests))
        try:
            hub = stack.enter_context(local_hub(_hub_settings(request, target)))
        except ToolingError as exc:
            submit("server-start", _failing(exc))
            submit(HUB_CHECK, _failing(exc))
        else:
            submit("server-start", lambda: check_server_start(target, hub.api_url, request.server_timeout))
            futures[HUB_CHECK] = pool.submit(_hub_spawn, request, target, hub)
            futures[HUB_CHECK].add_done_callback(_log_result)
        results = {name: future.result() for name, future in futures.items()}
    return tuple(results[name] for name in _check_names(request))


def _imports(
    request: SmokeRequest, target: ImageUnderTest, names: SpecNames, environment: Future[ImageEnvironment]
) -> Outcome:
    return check_imports(target, import_plan(names, environment.result(), request.extra_imports, request.skip_imports))


def _notebook_check(target: ImageUnderTest, path: Path, shown: str, timeout: int) -> Callable[[], Outcome]:
    return lambda: check_notebook(target, path, shown, timeout)


def _log_result(future: Future[CheckResult]) -> None:
    if future.exception() is None:
        result = future.result()
        mark = "pass" if result.passed else "FAIL"
        logger.info("  %s  %s (%.1f s): %s", mark, result.name, result.seconds, result.reason)


def _failing(error: ToolingError) -> Callable[[], Outcome]:
    """A check that fails with `error`, for a check that cannot run (`run_check` words it like any other)."""

    def check() -> Outcome:
        raise error

    return check


def _hub_settings(request: SmokeRequest, target: ImageUnderTest) -> LocalHubSettings:
    return LocalHubSettings(
        image=target.image.image_id,
        timeout=request.server_timeout,
        container_name=target.container_name("hub") + "-{username}",
        labels={RUN_LABEL: target.run_id, CHECK_LABEL: HUB_CHECK},
    )


class _SpawnedContainerWatch:
    """Tells the hub check when the server's container has exited, keeping its last log lines."""

    def __init__(self, target: ImageUnderTest) -> None:
        self.target = target
        self.log: list[str] = []

    def __call__(self) -> str:
        docker = self.target.docker
        for container in _spawned_containers(self.target):
            state = docker.container_state(container)
            if state is not None and state.status in ("exited", "dead"):
                self.log = [f"container: {redact(line)}" for line in docker.container_log(container, LOG_LINES)]
                return f"the server's container exited (exit code {state.exit_code})"
        return ""


def _hub_spawn(request: SmokeRequest, target: ImageUnderTest, hub: LocalHub) -> CheckResult:
    """The hub spawn check on the local hub, then: the user's container must be gone."""
    settings = HubCheckSettings(spawn_timeout=request.server_timeout + HUB_STEPS_TIMEOUT)
    watch = _SpawnedContainerWatch(target)
    result = check_hub_spawn(hub.url, hub.token, settings, watch)
    if not result.passed:
        return dataclasses.replace(result, details=(*result.details, *watch.log, *hub.log_tail()))
    left = _spawned_containers_left(target)
    if left:
        return dataclasses.replace(
            result,
            passed=False,
            reason=f"the server stopped, but its container is still there ({', '.join(left)})",
        )
    return result


def _spawned_containers(target: ImageUnderTest) -> list[str]:
    """The containers the local hub's spawner started in this run (running or not)."""
    return target.docker.containers_labelled(target.label, f"{CHECK_LABEL}={HUB_CHECK}")


def _spawned_containers_left(target: ImageUnderTest) -> list[str]:
    """The spawned containers still there after up to CONTAINER_GONE_TIMEOUT seconds of waiting for them to go."""
    deadline = time.monotonic() + CONTAINER_GONE_TIMEOUT
    while True:
        left = _spawned_containers(target)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)
