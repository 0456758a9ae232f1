"""The build stage: repo2docker builds the user image, and the environment in it is exactly the lock.

`build_image` reads as the process it performs:

1. The lock must be current (`lock --check`), unless `--allow-stale-lock`.
   The explicit lock and conda-lock.yml become the install plan (see
   `tooling.buildpack.plan`): every package with its md5 and sha256. The
   check hands over conda-lock.yml as it read it: the lock is parsed once.
   The plan of a lock that passed is kept under the cache: a build whose
   lock files, spec files and hub.toml settings did not change since needs
   neither the check nor the plan's reading again.
2. `image/` (hub.toml [image] context) is copied into a staging folder: the
   build and the tag see the same snapshot, whatever is edited meanwhile.
3. The Docker engine must answer. The base image must be in the engine; if
   it is not, it is pulled once, explicitly (a present one is never looked
   up at its registry, by the stage or by BuildKit).
4. The tag is derived from the build's inputs: the install plan, every staged
   file (path, mode, content), the base image's reference and id, and the
   versions of the toolkit, the buildpack and its installer, repo2docker and
   py-rattler. `img-` and 12 hex digits: readable, stable for the same
   inputs, never all digits (Helm would read those as a number). Mirrors
   are not an input: packages are checked by hash wherever they come from.
5. An image with that tag in the local engine, or in the registry, means
   there is nothing to build (unless `--force`); one that only the registry
   has is pulled, so the later stages find it locally. A registry that cannot
   be asked gives a warning, and the build goes ahead.
6. repo2docker builds it (`tooling.r2d_engine`) with BuildKit (buildx, else
   the CLI's built-in BuildKit), with OCI labels: source and
   revision (git, `-dirty` when the hub folder has changes), created,
   version (the tag), base name and digest, the lock's sha256 and the
   toolkit's version. They are LABEL lines at the end of repo2docker's
   Dockerfile: BuildKit does not let a label invalidate a cached step, so the
   changing `created` costs no rebuild, and no label is a tag input.
7. The image is recorded in .hubship/state.json for the smoke-test and push
   stages, and the result carries what the report shows: id, size, largest
   layers, the environment's layers (`tooling.buildpack.layers`: each one's
   packages, size, and whether the registry already holds it), how long each
   phase and each Docker step took. The full build log
   and the Dockerfile are kept in .hubship/logs/.

A failed build raises one `ToolingError` naming the failing step (the
environment install, apt.txt, postBuild, ...) with the last lines of its own
output; a package whose hash does not match the lock and a full disk get
messages of their own.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tooling import __version__
from tooling.buildpack import (
    BUILDPACK_VERSION,
    INSTALLER,
    LAYERS_ROOT,
    MIRRORS_SECRET,
    installer_files_digest,
    write_build_files,
)
from tooling.buildpack.bootstrap import NO_SPACE, ensure_bootstrap
from tooling.buildpack.layers import layer_groups
from tooling.buildpack.plan import (
    RATTLER_DISTRIBUTION,
    InstallPlan,
    read_install_plan,
    remember_plan,
    remembered_plan,
)
from tooling.channels import BUILD_MIRROR_SCHEMES, mirror_prefixes, register_url_secrets
from tooling.config import HubConfig
from tooling.docker import Docker, HistoryEntry, LocalImage
from tooling.errors import CommandFailed, CommandTimedOut, ConfigError, ProgramNotFound, ToolingError
from tooling.files import cache_folder, sha256_file, write_atomic
from tooling.images import IMAGE_PLATFORM, repository, split_reference
from tooling.lockrequest import LockCheck, LockRequest
from tooling.log import Step, logger, step
from tooling.proc import run
from tooling.registry import (
    RegistryClient,
    RegistryError,
    RemoteLayer,
    RetryPolicy,
    docker_logged_in,
    find_credentials,
    held_layers,
)
from tooling.state import STATE_DIR, BuiltImage, State, now

TAG_PREFIX = "img-"
TAG_HEX_DIGITS = 12
# Asking the registry whether the tag exists must not hold a build up for long; it is retried once,
# because a wrong "not there" costs a whole build.
REGISTRY_CHECK_RETRY = RetryPolicy(attempts=2, first_delay=0.5, max_delay=1.0, total_seconds=5.0)
# Which layers the registry holds only feeds the report ("registry: unknown" when it cannot be asked), so it
# is asked once: waiting to retry would only slow every build on a machine that cannot reach the registry.
LAYER_SURVEY_RETRY = RetryPolicy(attempts=1)
LOG_DIR = "logs"
LOG_TAIL_LINES = 15
LARGEST_LAYERS = 5
INSTALLER_MARK = "hubship-install:"
# Files from which repo2docker's other buildpacks would make an environment.
IGNORED_ENVIRONMENT_FILES = (
    "environment.yml",
    "environment.yaml",
    "requirements.txt",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    "pyproject.toml",
    "install.R",
    "runtime.txt",
    "Project.toml",
    "REQUIRE",
    "default.nix",
    "Dockerfile",
)


@dataclass(frozen=True)
class BuildRequest:
    """What the build stage reads: the hub's files, the image's name and base, the CLI, and the options."""

    root: Path
    context: Path
    explicit_lock: Path
    lock_request: LockRequest
    registry: str
    name: str
    base: str
    docker_cli: str
    mirrors: Mapping[str, str] = field(default_factory=dict)
    force: bool = False
    allow_stale_lock: bool = False
    cache_dir: Path = field(default_factory=cache_folder)

    @classmethod
    def from_config(
        cls,
        config: HubConfig,
        *,
        mirrors: Mapping[str, str] | None = None,
        force: bool = False,
        allow_stale_lock: bool = False,
        pypi_mapping: str | None = None,
    ) -> BuildRequest:
        """hub.toml's [image], [environment], [mirrors] and [docker]; `mirrors` win over hub.toml's."""
        config.require_platform(IMAGE_PLATFORM)
        lock_request = LockRequest.from_config(config, mirrors=mirrors, pypi_mapping=pypi_mapping)
        _require_build_mirrors(config, lock_request.mirrors, given=mirrors or {})
        return cls(
            root=config.root,
            context=_image_context(config),
            explicit_lock=lock_request.explicit_file(IMAGE_PLATFORM),
            lock_request=lock_request,
            registry=config.image.registry,
            name=config.image.name,
            base=config.image.base,
            docker_cli=config.docker_cli,
            mirrors=dict(lock_request.mirrors),
            force=force,
            allow_stale_lock=allow_stale_lock,
        )

    @property
    def repository(self) -> str:
        return repository(self.registry, self.name)


def _image_context(config: HubConfig) -> Path:
    """hub.toml's [image] context: the folder of repo2docker inputs, which must exist."""
    folder = config.file(config.image.context)
    if not folder.is_dir():
        raise ConfigError(
            f"{config.path}: [image] context names {folder}: no such folder. It is the folder of repo2docker "
            "inputs (apt.txt, postBuild, start, notebooks); create it, or fix the setting."
        )
    return folder


def _require_build_mirrors(config: HubConfig, mirrors: Mapping[str, str], *, given: Mapping[str, str]) -> None:
    """Refuse a mirror the build cannot read (not http(s)), naming where it was set: `given` (--mirror) or hub.toml."""
    for name, url in sorted(mirrors.items()):
        if url.startswith(BUILD_MIRROR_SCHEMES):
            continue
        register_url_secrets(url)
        where = "--mirror" if name in given else f"[mirrors] of {config.path}"
        # hub.toml may rightly hold a file:// mirror for the lock stage, if the build is given another.
        raise ConfigError(
            f"Mirror {name} = {url} ({where}): the build reads packages from inside the build container, which "
            "cannot see the host's files; a file:// mirror serves the lock stage only. Serve that folder over http "
            f"(e.g. `python -m http.server --bind 127.0.0.1`) and give the build its URL: --mirror {name}=URL."
        )


@dataclass(frozen=True)
class Timing:
    """How long one phase of the stage, or one Docker step, took."""

    name: str
    seconds: float
    cached: bool = False


@dataclass(frozen=True)
class EnvironmentLayer:
    """One layer of the environment: its group, how many packages, its size, and whether the registry has it."""

    name: str
    packages: int
    size: int  # bytes, uncompressed
    diff_id: str  # '' when the image's history cannot be matched to its layers
    in_registry: bool | None  # None: unknown (the registry could not be asked, or the layer has no diff id)


@dataclass(frozen=True)
class BuildResult:
    """What the build stage did, and what the image is."""

    reference: str  # REGISTRY/NAME:TAG
    tag: str
    image_id: str
    built: bool  # False: an image with this tag existed, nothing was built
    reason: str  # why it was built, or why not
    size: int
    base: str
    lock_sha256: str
    packages: int
    largest_layers: tuple[HistoryEntry, ...]  # what made each, shortened by describe_layer; the environment as one
    environment_layers: tuple[EnvironmentLayer, ...]  # in install order
    phases: tuple[Timing, ...]
    docker_steps: tuple[Timing, ...]  # every step of the Dockerfile, in order (empty when nothing was built)
    labels: Mapping[str, str]
    stale_lock: str  # why the lock is stale, when --allow-stale-lock let the build go on; else ""
    log: Path | None
    seconds: float


# --- the stage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    image: LocalImage
    built: bool
    reason: str
    docker_steps: tuple[Timing, ...] = ()
    log: Path | None = None


def build_image(request: BuildRequest) -> BuildResult:
    """Build (or find) the image of the hub's lock and image/ folder; record it for the next stages."""
    started = time.monotonic()
    for url in request.mirrors.values():
        register_url_secrets(url)
    phases = _Phases()
    with phases("check the lock"):
        plan, stale = _checked_plan(request)
        lock_sha256 = sha256_file(request.explicit_lock)
        mirrors = mirror_prefixes(request.mirrors)
    docker = Docker(request.docker_cli)
    with tempfile.TemporaryDirectory(prefix="hubship-build-") as scratch:
        work = Path(scratch)
        with phases("check Docker and the base image"):
            docker.require_engine()
            base = _ensure_base_image(docker, request.base)
        with phases("stage image/ and derive the tag"):
            staged = _stage_context(request.context, work / "repo")
            tag = TagInputs.of(plan, staged, request.base, base).tag()
        reference = f"{request.repository}:{tag}"
        with phases("look for an image with this tag"):
            existing = None if request.force else _existing_image(docker, request, reference, tag)
        if existing is None:
            reason = "--force" if request.force else "no image with this tag yet"
            outcome = _build(
                request,
                plan=plan,
                mirrors=mirrors,
                staged=staged,
                reference=reference,
                labels=oci_labels(request, tag, base, lock_sha256),
                reason=reason,
                docker=docker,
                work=work,
                phases=phases,
            )
        else:
            outcome = existing
    with phases("inspect the image"):
        image_history = docker.history(reference)
        layers = _largest_layers(image_history)
        steps = own_steps(image_history, len(docker.history(request.base)))
    with phases(f"ask {request.registry} which layers it holds"):
        held = _registry_layers(request)
    environment = environment_layers(plan, steps, outcome.image.layers[len(base.layers) :], held)
    State.load(request.root).record_build(BuiltImage(reference, outcome.image.image_id, lock_sha256))
    return BuildResult(
        reference=reference,
        tag=tag,
        image_id=outcome.image.image_id,
        built=outcome.built,
        reason=outcome.reason,
        size=outcome.image.size,
        base=request.base,
        lock_sha256=lock_sha256,
        packages=len(plan.packages) + len(plan.pip),
        largest_layers=layers,
        environment_layers=environment,
        phases=tuple(phases.timings),
        docker_steps=outcome.docker_steps,
        labels=dict(outcome.image.labels),
        stale_lock=stale,
        log=outcome.log,
        seconds=time.monotonic() - started,
    )


def _build(
    request: BuildRequest,
    *,
    plan: InstallPlan,
    mirrors: Mapping[str, str],
    staged: Path,
    reference: str,
    labels: Mapping[str, str],
    reason: str,
    docker: Docker,
    work: Path,
    phases: _Phases,
) -> _Outcome:
    # repo2docker is imported only here: an image that already exists is found without it.
    from tooling.r2d_engine import EngineSettings, build_with_repo2docker  # noqa: PLC0415 (costly import)

    with phases("prepare the build environment and context"):
        builder = docker.builder()
        bootstrap = ensure_bootstrap(plan, mirrors, request.cache_dir)
        groups = layer_groups(plan)
        write_build_files(groups, bootstrap, work / "hubship")
        secret = work / "mirrors.json"
        write_atomic(secret, json.dumps(mirrors, sort_keys=True))
    build_log = _BuildLog(request.root / STATE_DIR / LOG_DIR)
    settings = EngineSettings(
        docker=docker,
        builder=builder,
        build_files=work / "hubship",
        context_dir=work / "context",
        secrets={MIRRORS_SECRET: secret},
        on_line=build_log.add,
        layer_groups=groups,
    )
    with phases(f"build with repo2docker ({builder})") as progress:
        build_log.progress = progress.update
        try:
            build_with_repo2docker(staged, reference, request.base, labels, settings)
        except CommandFailed:
            log_path = build_log.save(settings.context_dir)
            raise explain_build_failure(build_log.lines, log_path, staged) from None
        except (ValueError, RuntimeError) as exc:  # repo2docker's words for inputs it refuses (apt.txt, binder/)
            raise ToolingError(f"repo2docker cannot build {request.context}: {exc}") from None
        log_path = build_log.save(settings.context_dir)
    image = docker.inspect_image(reference)
    if image is None:
        raise ToolingError(f"docker build reported success, but the engine has no {reference}; see {log_path}.")
    return _Outcome(image, True, reason, docker_steps(build_log.lines), log_path)


class _Phases:
    """Times each phase of the stage, logging it as a step."""

    def __init__(self) -> None:
        self.timings: list[Timing] = []

    @contextmanager
    def __call__(self, title: str) -> Iterator[Step]:
        with step(title) as current:
            yield current
        self.timings.append(Timing(title, current.elapsed))


# --- the lock ----------------------------------------------------------------------------------


def _checked_plan(request: BuildRequest) -> tuple[InstallPlan, str]:
    """The install plan of a current lock, and ''; or of a stale one and why, when --allow-stale-lock lets it in."""
    remembered = remembered_plan(request.cache_dir, request.lock_request)
    if remembered is not None:
        return remembered, ""
    verdict = _require_current_lock(request)
    plan = read_install_plan(request.explicit_lock, request.lock_request.lock_file, lock=verdict.lock)
    if not verdict.current:
        return plan, verdict.reason
    remember_plan(request.cache_dir, request.lock_request, plan)
    return plan, ""


def _require_current_lock(request: BuildRequest) -> LockCheck:
    """The lock's verdict when it is current, or stale and --allow-stale-lock lets the build go on; else an error."""
    from tooling.lock import check_lock  # noqa: PLC0415 (conda-lock's import: only when the check runs)

    verdict = check_lock(request.lock_request)
    if verdict.current:
        return verdict
    if request.allow_stale_lock:
        logger.warning("building from a stale lock (--allow-stale-lock): %s", verdict.reason)
        return verdict
    raise ToolingError(
        f"The lock is not current: {verdict.reason}\nThe image installs the lock, so it would not be what "
        "environment.yml says. Relock first, or pass --allow-stale-lock to build from the lock as it is."
    )


# --- image/, the base image, the tag -----------------------------------------------------------


def _stage_context(context: Path, target: Path) -> Path:
    shutil.copytree(context, target, symlinks=True)
    _warn_about_ignored_environment_files(context, target)
    return target


def _warn_about_ignored_environment_files(context: Path, staged: Path) -> None:
    """repo2docker would build an environment from these files; this build installs the lock instead."""
    for folder in (staged, staged / "binder", staged / ".binder"):
        for name in IGNORED_ENVIRONMENT_FILES:
            if (folder / name).exists():
                shown = context / (folder / name).relative_to(staged)
                logger.warning(
                    "%s is not used: the image's environment is the lock (environments/), not repo2docker's "
                    "environment files; move its packages into environment.yml and relock",
                    shown,
                )


def context_entries(folder: Path) -> tuple[tuple[str, str], ...]:
    """Every entry under `folder`, as (relative path, what it is): file mode and sha256, link target, or dir."""
    entries = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            entries.append((relative, f"link {path.readlink()}"))
        elif path.is_dir():
            entries.append((relative, f"dir {mode:o}"))
        else:
            entries.append((relative, f"file {mode:o} {sha256_file(path)}"))
    return tuple(entries)


@dataclass(frozen=True)
class TagInputs:
    """Everything that decides what the image holds; the tag is a digest of it."""

    install_plan_sha256: str
    context: tuple[tuple[str, str], ...]
    base_reference: str
    base_image_id: str
    toolkit_version: str
    buildpack_version: str
    installer_sha256: str
    repo2docker_version: str
    rattler_version: str

    @classmethod
    def of(cls, plan: InstallPlan, staged: Path, base_reference: str, base: LocalImage) -> TagInputs:
        return cls(
            install_plan_sha256=hashlib.sha256(plan.to_json().encode()).hexdigest(),
            context=context_entries(staged),
            base_reference=base_reference,
            base_image_id=base.image_id,
            toolkit_version=__version__,
            buildpack_version=BUILDPACK_VERSION,
            installer_sha256=installer_files_digest(),
            repo2docker_version=importlib.metadata.version("jupyter-repo2docker"),
            rattler_version=importlib.metadata.version(RATTLER_DISTRIBUTION),
        )

    def tag(self) -> str:
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"{TAG_PREFIX}{digest[:TAG_HEX_DIGITS]}"


def _ensure_base_image(docker: Docker, reference: str) -> LocalImage:
    """The base image in the local engine; pulled once, explicitly, when the engine lacks it."""
    image = docker.inspect_image(reference)
    if image is not None:
        return image
    return _pull(
        docker,
        reference,
        lambda said: (
            f"The base image {reference} ([image] base in hub.toml) is not in the Docker engine at "
            f"{docker.engine}, and pulling it failed: {said}\nCheck the name, that its registry is reachable "
            "(and that you are logged in to it, if it is private), or load the image into the engine yourself "
            "(`docker pull`, `docker load`); then rerun `python -m tooling build`."
        ),
    )


def _pull(docker: Docker, reference: str, failure: Callable[[str], str]) -> LocalImage:
    """`docker pull`, showing progress; the image the engine then has. `failure` words a failed pull."""
    with step(f"pull {reference}") as progress:
        try:
            docker.pull(reference, progress.update)
        except CommandFailed as exc:
            raise ToolingError(failure(exc.last_line)) from None
    pulled = docker.inspect_image(reference)
    if pulled is None:
        raise ToolingError(f"`docker pull {reference}` succeeded, but the engine has no such image afterwards.")
    return pulled


def base_digest(reference: str, image: LocalImage) -> str:
    """The base image's registry digest: from a NAME@sha256:... reference, else the one the engine knows; or ''."""
    if "@" in reference:
        return reference.split("@", 1)[1]
    name = split_reference(reference)[0]
    for repo_digest in image.repo_digests:
        repository, _, digest = repo_digest.partition("@")
        if repository == name or repository.endswith("/" + name):
            return digest
    return ""


# --- an image that already exists --------------------------------------------------------------


def _existing_image(docker: Docker, request: BuildRequest, reference: str, tag: str) -> _Outcome | None:
    local = docker.inspect_image(reference)
    if local is not None:
        return _Outcome(local, False, "the local Docker engine already has an image with this tag")
    if not _registry_holds(request, tag):
        return None
    credentials = find_credentials(request.registry)
    with docker_logged_in(docker, request.registry, credentials) as puller:
        pulled = _pull(
            puller,
            reference,
            lambda said: (
                f"{request.registry} has {reference}, the image of these inputs, but pulling it failed: "
                f"{said}\nCredentials: {credentials.source}. Fix access to the registry, "
                "or pass --force to build it here."
            ),
        )
    return _Outcome(pulled, False, f"{request.registry} already has an image with this tag (pulled it)")


def _registry_holds(request: BuildRequest, tag: str) -> bool:
    """Whether the registry has the tag; False, with a warning, when it cannot be asked."""
    try:
        credentials = find_credentials(request.registry)
        with RegistryClient(request.registry, credentials, REGISTRY_CHECK_RETRY) as registry:
            return registry.manifest(request.name, tag) is not None
    except RegistryError as exc:
        why = exc.summary
    except ToolingError as exc:  # the credentials themselves could not be read
        why = exc.message
    logger.warning(
        "could not ask %s whether it has %s:%s, so building it (%s)", request.registry, request.name, tag, why
    )
    return False


def _registry_layers(request: BuildRequest) -> dict[str, RemoteLayer] | None:
    """Diff id -> layer for the layers of the image name's tags in the registry; None, with a warning, if unknown."""
    state = State.load(request.root)
    first = [state.pushed.reference.rsplit(":", 1)[1]] if state.pushed is not None else []
    try:
        credentials = find_credentials(request.registry)
        with RegistryClient(request.registry, credentials, LAYER_SURVEY_RETRY) as registry:
            return held_layers(registry, request.name, first)
    except RegistryError as exc:
        why = exc.summary
    except ToolingError as exc:  # the credentials themselves could not be read
        why = exc.message
    logger.warning("could not ask %s which layers of %s it holds (%s)", request.registry, request.name, why)
    return None


# The environment stage's folder a layer was copied from names its group.
_LAYER_NAME = re.compile(rf"{re.escape(LAYERS_ROOT)}/([^/\s]+)/")
# The Dockerfile instructions that make a layer when BuildKit builds them (even an empty one).
_LAYER_INSTRUCTIONS = ("RUN", "COPY", "ADD", "WORKDIR")


def own_steps(history: Sequence[HistoryEntry], base_steps: int) -> tuple[HistoryEntry, ...]:
    """The image's own steps (newest first), without the `base_steps` its base image brought."""
    return tuple(history[: len(history) - base_steps])


def _makes_layer(entry: HistoryEntry) -> bool:
    return entry.size > 0 or entry.created_by.split(" ", 1)[0] in _LAYER_INSTRUCTIONS


def environment_layers(
    plan: InstallPlan,
    steps: Sequence[HistoryEntry],
    diff_ids: Sequence[str],
    held: Mapping[str, RemoteLayer] | None,
) -> tuple[EnvironmentLayer, ...]:
    """The environment's layers (one per copy step), named, counted, sized, and looked up in the registry.

    `steps` are the Dockerfile's steps, newest first (`docker history` without the base image's), and
    `diff_ids` the layers they made, oldest first (the image's layers without the base image's). When the
    steps that make a layer are not as many as the layers, the layers go without diff ids.
    """
    counts = {group.name: group.count for group in layer_groups(plan)}
    with_layers = [entry for entry in reversed(steps) if _makes_layer(entry)]
    matched = len(with_layers) == len(diff_ids)
    layers = []
    for index, entry in enumerate(with_layers):
        found = _LAYER_NAME.search(entry.created_by)
        if found is None:
            continue
        diff_id = diff_ids[index] if matched else ""
        in_registry = None if held is None or not diff_id else diff_id in held
        layers.append(EnvironmentLayer(found.group(1), counts.get(found.group(1), 0), entry.size, diff_id, in_registry))
    return tuple(layers)


# --- labels ------------------------------------------------------------------------------------


def oci_labels(request: BuildRequest, tag: str, base: LocalImage, lock_sha256: str) -> dict[str, str]:
    """The image's labels: OCI's annotation keys, plus the lock's sha256 and the toolkit's version."""
    labels = {
        "org.opencontainers.image.source": _source_url(request.root),
        "org.opencontainers.image.revision": _revision(request.root),
        "org.opencontainers.image.created": now(),
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.base.name": request.base,
        "org.opencontainers.image.base.digest": base_digest(request.base, base),
        "hubship.lock.sha256": lock_sha256,
        "hubship.version": __version__,
    }
    # Values go into LABEL lines of the Dockerfile between double quotes.
    return {key: re.sub(r'["\\\s]', "", value) for key, value in labels.items() if value}


def _git(root: Path, *args: str) -> str:
    try:
        completed = run(["git", "-C", str(root), *args], check=False, timeout=30)
    except (ProgramNotFound, CommandTimedOut):  # no git on this machine, or it hung: the image goes unlabelled
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def _revision(root: Path) -> str:
    """HEAD of the hub's git repository, with `-dirty` when the hub folder has uncommitted changes."""
    head = _git(root, "rev-parse", "HEAD")
    if not head:
        return ""
    changes = _git(root, "status", "--porcelain", "--", ".", f":(exclude){STATE_DIR}")
    return f"{head}-dirty" if changes else head


def _source_url(root: Path) -> str:
    """Where the hub repository lives: its origin remote (without credentials), or the CI's repository URL."""
    remote = _git(root, "remote", "get-url", "origin")
    if remote:
        parts = urlsplit(remote)
        if parts.scheme and "@" in parts.netloc:
            remote = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        return remote
    server, repository = os.environ.get("GITHUB_SERVER_URL", ""), os.environ.get("GITHUB_REPOSITORY", "")
    return f"{server}/{repository}" if server and repository else ""


# --- the build's output ------------------------------------------------------------------------


class _BuildLog:
    """Every line of the build's output, kept for the report and for explaining a failure."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []
        self.progress: Callable[[str], None] = lambda _line: None

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.progress(line)

    def save(self, context: Path) -> Path:
        """Write the log (and the Dockerfile repo2docker rendered) to .hubship/logs/; return the log's path."""
        dockerfile = context / "Dockerfile"
        if dockerfile.is_file():
            write_atomic(self.folder / "build.Dockerfile", dockerfile.read_text(encoding="utf-8"))
        path = self.folder / "build.log"
        write_atomic(path, "\n".join(self.lines) + "\n")
        return path


_VERTEX = re.compile(r"^#(\d+) (.*)$")
_OUTPUT = re.compile(r"^(\d+\.\d+) (.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")


@dataclass
class _Vertex:
    """One step of a BuildKit build (`#N ...` lines of its plain progress output)."""

    name: str
    seconds: float = 0.0
    cached: bool = False
    error: str = ""
    output: list[str] = field(default_factory=list)


def _vertices(lines: Sequence[str]) -> dict[int, _Vertex]:
    vertices: dict[int, _Vertex] = {}
    for line in lines:
        match = _VERTEX.match(line)
        if match is None:
            continue
        number, rest = int(match.group(1)), match.group(2)
        vertex = vertices.setdefault(number, _Vertex(rest))
        done = _DONE.match(rest)
        output = _OUTPUT.match(rest)
        if done:
            vertex.seconds = float(done.group(1))
        elif rest == "CACHED":
            vertex.cached = True
        elif rest.startswith("ERROR:"):
            vertex.error = rest.removeprefix("ERROR:").strip()
        elif output:
            vertex.output.append(output.group(2))
    return vertices


def docker_steps(lines: Sequence[str]) -> tuple[Timing, ...]:
    """The Dockerfile's steps (`[ n/m] INSTRUCTION`) with their durations, in build order."""
    return tuple(
        Timing(_instruction(vertex.name), vertex.seconds, vertex.cached)
        for vertex in _vertices(lines).values()
        if vertex.name.startswith("[") and not vertex.name.startswith("[internal]")
    )


def _instruction(name: str) -> str:
    """`[ 5/21] RUN --mount=... apt-get ...` -> `RUN apt-get ...`, on one line."""
    words = name.split("]", 1)[-1].split()
    return " ".join(word for word in words if not word.startswith("--mount="))


# --- failures ----------------------------------------------------------------------------------


def explain_build_failure(lines: Sequence[str], log_path: Path, staged: Path) -> ToolingError:
    """One message for a failed `docker build`: which step, its last lines, and what to do."""
    failed = next((vertex for vertex in reversed(_vertices(lines).values()) if vertex.error), None)
    output = failed.output if failed is not None else [line for line in lines if line.strip()]
    tail = "\n".join(f"    {line}" for line in output[-LOG_TAIL_LINES:])
    step_name = _step_name(failed.name, staged) if failed is not None else ""
    where = f" at: {step_name}" if failed is not None else ""
    said = f"\nIts last lines of output:\n{tail}" if tail else ""
    full_log = f"\nFull log: {log_path}."
    error_mark = f"{INSTALLER_MARK} error:"
    installer_errors = [line.split(error_mark, 1)[1].strip() for line in output if error_mark in line]
    if any(NO_SPACE in line.lower() for line in lines):
        return ToolingError(
            f"The image build ran out of disk space{where}.{said}{full_log}\n"
            "Free space where Docker keeps images and its build cache (`docker builder prune` removes the build "
            "cache, including the downloaded packages; `docker image prune` removes unused images), or give "
            "Docker a larger disk. If the output names another full place (/tmp, /dev/shm), that one is full. "
            "Then rerun `python -m tooling build`."
        )
    if any("does not match the lock" in error for error in installer_errors):
        return ToolingError(
            "The build refused a package whose hash does not match the lock, and installed nothing:\n"
            + "\n".join(f"    {error}" for error in installer_errors)
            + f"{full_log}\nThe channel (or its mirror) serves another file than the one locked, or the lock "
            "was edited. Relock (`python -m tooling lock`), or fix the mirror, then rerun `python -m tooling build`."
        )
    return ToolingError(f"The image build failed{where}.{said}{full_log}\n{_what_to_do(step_name)}")


def _step_name(name: str, staged: Path) -> str:
    instruction = _instruction(name)
    if INSTALLER in instruction:
        return "installing the locked environment (py-rattler)"
    if "/postBuild" in instruction:
        return "image/postBuild"
    if "apt-get" in instruction and _apt_packages(staged) & set(instruction.split()):
        return "installing the packages of image/apt.txt"
    return instruction


def _apt_packages(staged: Path) -> set[str]:
    apt = staged / "apt.txt"
    if not apt.is_file():
        return set()
    return {line.partition("#")[0].strip() for line in apt.read_text(encoding="utf-8").splitlines()} - {""}


def _what_to_do(step_name: str) -> str:
    if step_name == "image/postBuild":
        return "Fix image/postBuild (it runs as jovyan in the image's environment), then rerun the build."
    if step_name == "installing the packages of image/apt.txt":
        return "Fix the package names in image/apt.txt (they must exist in the base image's apt sources)."
    return "Fix the cause shown above, then rerun `python -m tooling build`."


# --- the image ---------------------------------------------------------------------------------


def _largest_layers(image_history: Sequence[HistoryEntry]) -> tuple[HistoryEntry, ...]:
    """The largest layers in an image's history, the environment's counted as one (listed on their own too)."""
    history = [entry for entry in image_history if entry.size > 0]
    environment = [entry for entry in history if _LAYER_NAME.search(entry.created_by)]
    others = [
        replace(entry, created_by=describe_layer(entry.created_by)) for entry in history if entry not in environment
    ]
    if environment:
        described = f"{describe_layer(environment[0].created_by)} ({len(environment)} layers)"
        others.append(HistoryEntry(described, sum(entry.size for entry in environment)))
    return tuple(sorted(others, key=lambda entry: entry.size, reverse=True)[:LARGEST_LAYERS])


def describe_layer(created_by: str) -> str:
    """What made a layer, on one line: the instruction without the build args and shell docker adds."""
    if not created_by:
        return "(the base image)"
    if _LAYER_NAME.search(created_by):
        return f"the locked environment, installed by {INSTALLER}"
    text = re.sub(r"^RUN \|\d+ (?:\S+=\S* )*/bin/sh -c ", "RUN ", created_by)
    return " ".join(text.removesuffix("# buildkit").split())
