"""The lock stage: environment.yml -> conda-lock.yml and conda-<platform>.lock, with a change report.

Reads the spec files (conda dependencies and a `pip:` section) with
conda-lock's own parser, solves them (py-rattler by default, or the
conda-lock command line), and writes conda-lock's v1 lock and the explicit
`@EXPLICIT url#md5` file through conda-lock's own writer and renderer. The
`content_hash` is conda-lock's, computed by its own functions from the same
sources and virtual packages, so `conda-lock lock --check-input-hash` with
the same virtual packages sees the lock as current.

Two keys of conda-lock's `custom_metadata` carry what the next run needs:
the top-level specs (so the change report can say a spec changed) and a
checksum of the package entries (so `--check` can tell a hand-edited lock).

Both files are rendered completely before either is replaced, each replace
is atomic, and Ctrl-C is held while the two are renamed into place: a failed
or interrupted run leaves the previous lock as it was.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydantic
from conda_lock.content_hash import backwards_compatible_content_hashes, compute_content_hashes
from conda_lock.errors import ChannelAggregationError
from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile, LockMeta
from conda_lock.lookup import DEFAULT_MAPPING_URL
from conda_lock.models.lock_spec import Dependency, LockSpecification, PathDependency, URLDependency, VCSDependency
from conda_lock.src_parser import make_lock_spec
from conda_lock.virtual_package import FakeRepoData, virtual_package_repo_from_specification

from tooling.channels import channel_sources, check_channels
from tooling.config import Engine
from tooling.errors import ConfigError, ToolingError
from tooling.files import shown, write_atomic_together
from tooling.lockdiff import LockReport, diff_locks
from tooling.lockfile import (
    CHECKSUM_KEY,
    RELOCK,
    SPECS_KEY,
    LockFileError,
    encode_specs,
    known_rendering,
    packages_checksum,
    parse_lock,
    read_lock_text,
    remember_rendering,
    render_conda_lock_yml,
    render_explicit,
)
from tooling.lockrequest import LockCheck, LockRequest
from tooling.log import logger, step
from tooling.solve import (
    SolveJob,
    solve_with_conda_lock,
    solve_with_rattler,
    spec_line,
    virtual_spec_yaml,
)
from tooling.yamlfiles import read_environment_dependencies

# A hub spawns `jupyterhub-singleuser`; conda-forge's jupyterhub and PyPI's jupyterhub also ship it.
SINGLEUSER_PROVIDERS = frozenset({("conda", "jupyterhub-singleuser"), ("conda", "jupyterhub"), ("pip", "jupyterhub")})
_COMMIT = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LockResult:
    lock_file: Path
    explicit_files: tuple[Path, ...]
    report: LockReport
    engine: Engine
    package_counts: Mapping[str, int]
    solver_seconds: float
    total_seconds: float
    written: bool  # False when the new lock is the same as the previous one


# --- reading the spec ----------------------------------------------------------------


def read_spec(request: LockRequest) -> LockSpecification:
    """The spec files as conda-lock's LockSpecification; one clear error for a broken or unsafe file."""
    spec = parse_spec_files(
        request.spec_files,
        platforms=request.platforms,
        channel_overrides=request.channel_overrides,
        mapping_url=_mapping_url(request),
    )
    _refuse_unpinned_pip(request.spec_files, spec)
    return spec


def _mapping_url(request: LockRequest) -> str:
    """The PyPI-to-conda name mapping the request names, or conda-lock's own."""
    return request.pypi_mapping or DEFAULT_MAPPING_URL


def parse_spec_files(
    spec_files: Sequence[Path], *, platforms: Sequence[str], channel_overrides: Sequence[str] = (), mapping_url: str
) -> LockSpecification:
    """Environment files, checked, then read by conda-lock's own parser for the given platforms."""
    for spec_file in spec_files:
        _check_spec_file(spec_file)
    try:
        return make_lock_spec(
            src_files=list(spec_files),
            channel_overrides=list(channel_overrides) or None,
            platform_overrides=list(platforms),
            mapping_url=mapping_url,
        )
    except ChannelAggregationError as exc:
        files = ", ".join(str(f) for f in spec_files)
        raise ToolingError(f"{files}: the files list incompatible channels ({exc}).") from None
    except RuntimeError as exc:
        raise _spec_parse_error(spec_files, exc) from None
    except OSError as exc:  # reading the PyPI-to-conda name mapping (requests' errors are OSErrors)
        raise ToolingError(
            f"Could not read the PyPI-to-conda name mapping {mapping_url} that a pip: section needs "
            f"({exc}). Pass --pypi-mapping FILE_OR_URL."
        ) from None


def _check_spec_file(path: Path) -> None:
    for entry in read_environment_dependencies(path):
        if isinstance(entry, dict):
            for requirement in entry["pip"]:
                _refuse_editable(path, requirement)


def _refuse_editable(path: Path, requirement: str) -> None:
    if requirement.startswith("-e ") or requirement.startswith("--editable"):
        raise ToolingError(
            f"{spec_line([path], requirement)}: editable pip requirement '{requirement}' cannot be locked; "
            "install a released version, or a URL with #sha256=, or git+URL@COMMIT."
        )


def _spec_parse_error(spec_files: Sequence[Path], exc: RuntimeError) -> ToolingError:
    match = re.search(r"`(.*)`", str(exc))
    if match is None:
        return ToolingError(f"{spec_files[0]}: {exc}")
    text = match.group(1)
    name = re.split(r"[\s=<>!~\[]", text, maxsplit=1)[0]
    return ToolingError(f"{spec_line(spec_files, name)}: '{text}' is not a valid conda spec.")


def _refuse_unpinned_pip(spec_files: Sequence[Path], spec: LockSpecification) -> None:
    for dependencies in spec.dependencies.values():
        for dep in dependencies:
            problem = _unpinned(dep)
            if problem:
                raise ToolingError(f"{spec_line(spec_files, dep.name)}: {problem}")


def _unpinned(dep: Dependency) -> str:
    if isinstance(dep, VCSDependency) and not (dep.rev and _COMMIT.match(dep.rev)):
        return (
            f"pip requirement '{dep.name} @ {dep.vcs}+{dep.source}' is not pinned to a commit; "
            "write it as git+URL@<full commit hash> so the lock cannot change under you."
        )
    if isinstance(dep, URLDependency) and not any(h.partition(":")[2] for h in dep.hashes):
        return f"pip requirement '{dep.name} @ {dep.url}' has no hash; append #sha256=<hash of the file>."
    if isinstance(dep, PathDependency):
        return (
            f"pip requirement '{dep.name} @ {dep.path}' is a local path, which another machine cannot install; "
            "publish it, or use a URL with #sha256=."
        )
    return ""


def top_level_specs(spec: LockSpecification) -> dict[tuple[str, str], str]:
    """(manager, name) -> the version part of each top-level spec, as the report shows it."""
    specs: dict[tuple[str, str], str] = {}
    for dep in spec.dependencies[spec.platforms[0]]:
        if isinstance(dep, URLDependency):
            text = f"@ {dep.url}"
        elif isinstance(dep, VCSDependency):
            text = f"@ {dep.vcs}+{dep.source}@{dep.rev}"
        else:
            text = " ".join(part for part in (getattr(dep, "version", ""), getattr(dep, "build", None)) if part)
        specs[(dep.manager, dep.name)] = "" if text == "*" else text
    return specs


# --- content hash and virtual packages ----------------------------------------------


def virtual_package_repo(request: LockRequest) -> tuple[FakeRepoData, str]:
    """conda-lock's virtual package repo for hub.toml's virtual packages, and the same as a spec file."""
    text = virtual_spec_yaml(request.virtual_packages)
    with tempfile.TemporaryDirectory(prefix="hubship-virtual-packages-") as tmp:
        spec_file = Path(tmp) / "virtual-packages.yml"
        spec_file.write_text(text, encoding="utf-8")
        try:
            return virtual_package_repo_from_specification(spec_file), text
        except pydantic.ValidationError as exc:
            raise ConfigError(f"hub.toml [environment.virtual_packages]: {exc.errors()[0]['msg']}.") from None


def content_hashes(spec: LockSpecification, repo: FakeRepoData) -> dict[str, str]:
    """conda-lock's content hash per platform, from its own function: what --check-input-hash compares."""
    return dict(compute_content_hashes(spec, repo))


# --- locking ----------------------------------------------------------------------------


def lock_environment(request: LockRequest) -> LockResult:
    """Solve the spec and write conda-lock.yml and the explicit lock files, with a report against the previous lock."""
    started = time.monotonic()
    spec = read_spec(request)
    repo, repo_yaml = virtual_package_repo(request)
    previous_text, previous = _previous_lock(request)
    sources = channel_sources(spec.channels, request.mirrors)
    if request.update:
        _check_update(request, previous, spec)
    check_channels(sources, request.platforms)
    job = SolveJob(
        spec=spec,
        spec_files=request.spec_files,
        sources=sources,
        virtual_repo=repo,
        virtual_spec_yaml=repo_yaml,
        previous=previous,
        update=request.update,
        mapping_url=_mapping_url(request),
        conda_exe=request.conda_exe,
    )
    solution = solve_with_rattler(job) if request.engine == "rattler" else solve_with_conda_lock(job)
    lock = build_lockfile(request, spec, repo, solution.packages)
    _require_singleuser(request, lock)
    with step("Writing the lock files"):
        rendered = render_lock_files(request, lock, previous_text, previous)
        report = diff_locks(
            previous,
            lock,
            old_label=shown(request.lock_file) if previous is not None else "no previous lock",
            new_label=shown(request.lock_file),
            specs=top_level_specs(spec),
            updated=request.update,
        )
        written = write_lock_files(rendered)
    return LockResult(
        lock_file=request.lock_file,
        explicit_files=tuple(request.explicit_file(p) for p in request.platforms),
        report=report,
        engine=request.engine,
        package_counts=package_counts(lock, request.platforms),
        solver_seconds=solution.solver_seconds,
        total_seconds=time.monotonic() - started,
        written=written,
    )


def package_counts(lock: Lockfile, platforms: Sequence[str]) -> dict[str, int]:
    return {platform: sum(1 for p in lock.package if p.platform == platform) for platform in platforms}


def describe_counts(counts: Mapping[str, int]) -> str:
    """'120 packages for linux-64, 118 packages for osx-arm64'."""
    return ", ".join(f"{n} packages for {platform}" for platform, n in counts.items())


def _previous_lock(request: LockRequest) -> tuple[str, Lockfile | None]:
    """conda-lock.yml's text and lock as they are before this run; ('', None) when it is missing or unreadable."""
    if not request.lock_file.exists():
        return "", None
    try:
        text = read_lock_text(request.lock_file)
        return text, parse_lock(text, request.lock_file)
    except LockFileError as exc:
        if request.update:
            raise ToolingError(f"--update needs the previous lock, and it is unreadable: {exc.message}") from None
        logger.warning("The previous lock is unreadable (%s); the report treats this as a first lock.", exc.message)
        return "", None


def _check_update(request: LockRequest, previous: Lockfile | None, spec: LockSpecification) -> None:
    if previous is None:
        raise ToolingError(f"--update relocks some packages of {request.lock_file}, which does not exist yet.")
    if list(previous.metadata.channels) != list(spec.channels):
        raise ToolingError(
            f"The spec's channels changed since {request.lock_file} was made "
            f"({', '.join(c.url for c in previous.metadata.channels)} -> {', '.join(c.url for c in spec.channels)}); "
            "a partial update would mix them. Run without --update."
        )
    locked = {p.name for p in previous.package}
    unknown = sorted(set(request.update) - locked)
    if unknown:
        raise ToolingError(f"--update {' '.join(unknown)}: not in {request.lock_file} (check the spelling).")


def build_lockfile(
    request: LockRequest, spec: LockSpecification, repo: FakeRepoData, packages: list[LockedDependency]
) -> Lockfile:
    lock = Lockfile(
        package=packages,
        metadata=LockMeta(
            content_hash=content_hashes(spec, repo),
            channels=list(spec.channels),
            platforms=list(spec.platforms),
            sources=[
                Path(os.path.relpath(f.resolve(), request.lock_dir.resolve())).as_posix() for f in request.spec_files
            ],
        ),
    )
    lock.metadata.custom_metadata = {
        SPECS_KEY: encode_specs(top_level_specs(spec)),
        CHECKSUM_KEY: packages_checksum(lock),
    }
    return lock


def _require_singleuser(request: LockRequest, lock: Lockfile) -> None:
    problem = _singleuser_missing(request, lock)
    if problem:
        raise ToolingError(problem)


def _singleuser_missing(request: LockRequest, lock: Lockfile) -> str:
    if not request.require_singleuser:
        return ""
    for platform in request.platforms:
        present = {(p.manager, p.name) for p in lock.package if p.platform == platform}
        if not present & SINGLEUSER_PROVIDERS:
            return (
                f"{request.spec_files[0]}: the environment has no jupyterhub-singleuser for {platform}, the server "
                "a hub starts in each user's pod. Add `jupyterhub-singleuser` to its dependencies, or set "
                "environment.require_singleuser = false in hub.toml for an image no hub will spawn."
            )
    return ""


def render_lock_files(
    request: LockRequest, lock: Lockfile, previous_text: str = "", previous: Lockfile | None = None
) -> dict[Path, str]:
    """conda-lock.yml (conda-lock's writer) and each conda-<platform>.lock (conda-lock's explicit renderer)."""
    files = {request.lock_file: _conda_lock_yml(lock, previous_text, previous)}
    for platform in request.platforms:
        files[request.explicit_file(platform)] = render_explicit(lock, platform)
    return files


def _conda_lock_yml(lock: Lockfile, previous_text: str, previous: Lockfile | None) -> str:
    """conda-lock.yml's text for `lock`: the previous text when that is the writer's text of the same lock."""
    # Rendering is a tenth of a relock. A text known to be the writer's rendering of its lock (the check or
    # this stage found it so, and its package checksum was right) whose metadata is this lock's (the
    # content hashes, channels, sources, specs, and the checksum of every package entry) is what
    # rendering this lock gives: the writer sorts the packages, so their order does not matter.
    if previous is not None and previous.metadata == lock.metadata and known_rendering(previous_text):
        return previous_text
    rendering = render_conda_lock_yml(lock)
    remember_rendering(rendering.text, rendering.data)
    return rendering.text


def write_lock_files(files: Mapping[Path, str]) -> bool:
    """Replace the files whose content changed; False when all were already current."""
    changed = {path: text for path, text in files.items() if not _holds_text(path, text)}
    with _interrupts_held():
        write_atomic_together(changed)
    return bool(changed)


def _holds_text(path: Path, text: str) -> bool:
    """Whether the file holds `text` (read as text: line endings aside); a missing or non-UTF-8 file does not."""
    try:
        return path.read_text(encoding="utf-8") == text
    except (FileNotFoundError, UnicodeDecodeError):
        return False


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C while the lock files are renamed into place, so they are replaced together or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# --- checking -------------------------------------------------------------------------


def check_lock(request: LockRequest) -> LockCheck:
    """Whether the committed lock is what locking the spec would give: current, complete, untouched."""
    try:
        return _check(request)
    except LockFileError as exc:
        return LockCheck(False, exc.message)


def _check(request: LockRequest) -> LockCheck:
    path = request.lock_file
    if not path.exists():
        return LockCheck(False, f"{path} does not exist; {RELOCK}")
    text = read_lock_text(path)
    lock = parse_lock(text, path)
    problem = (
        _edited_by_hand(path, text, lock)
        or _missing_platform(request, lock)
        or _incomplete(path, lock)
        or _stale(request, lock)
        or _explicit_mismatch(request, lock)
        or _singleuser_missing(request, lock)
    )
    if problem:
        return LockCheck(False, problem)
    return LockCheck(True, f"{path} is current ({describe_counts(package_counts(lock, request.platforms))}).", lock)


def _edited_by_hand(path: Path, text: str, lock: Lockfile) -> str:
    recorded = (lock.metadata.custom_metadata or {}).get(CHECKSUM_KEY)
    if recorded is not None and recorded != packages_checksum(lock):
        return f"{path}: package entries were edited by hand (their checksum changed); {RELOCK}"
    if known_rendering(text):
        return ""
    rendering = render_conda_lock_yml(lock)
    problem = _differs_from_rendering(path, text, rendering.text)
    if not problem:
        remember_rendering(text, rendering.data)
    return problem


def _differs_from_rendering(path: Path, text: str, rendered: str) -> str:
    """Where the text differs from what conda-lock's writer writes for the lock it holds; '' when nowhere."""
    expected = _data_lines(rendered)
    for number, line in _data_lines(text):
        wanted = expected.pop(0) if expected else None
        if wanted is None or wanted[1] != line:
            return f"{path}:{number}: edited by hand (conda-lock writes this line differently); {RELOCK}"
    if expected:
        return f"{path}: truncated (ends before conda-lock's writer would); {RELOCK}"
    return ""


def _data_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.startswith("#")]


def _missing_platform(request: LockRequest, lock: Lockfile) -> str:
    for platform in request.platforms:
        if platform not in lock.metadata.platforms or platform not in lock.metadata.content_hash:
            return f"{request.lock_file}: no solution for platform {platform}; {RELOCK}"
        if not any(p.platform == platform for p in lock.package):
            return f"{request.lock_file}: no packages for platform {platform}; {RELOCK}"
    return ""


def _incomplete(path: Path, lock: Lockfile) -> str:
    for platform in lock.metadata.platforms:
        names = {p.name for p in lock.package if p.platform == platform and p.manager == "conda"}
        for package in lock.package:
            if package.platform != platform or package.manager != "conda":
                continue
            for dependency in package.dependencies:
                if not dependency.startswith("__") and dependency not in names:
                    return (
                        f"{path}: incomplete: {package.name} needs {dependency}, which is not in the lock ({platform})."
                    )
    return ""


def _stale(request: LockRequest, lock: Lockfile) -> str:
    spec = read_spec(request)
    repo, _ = virtual_package_repo(request)
    for platform in request.platforms:
        if lock.metadata.content_hash[platform] not in backwards_compatible_content_hashes(spec, repo, platform):
            files = ", ".join(str(f) for f in request.spec_files)
            return (
                f"{request.lock_file} is stale: {files} (or hub.toml's channels or virtual packages) changed "
                f"since it was made; {RELOCK}"
            )
    return ""


def _explicit_mismatch(request: LockRequest, lock: Lockfile) -> str:
    for platform in request.platforms:
        path = request.explicit_file(platform)
        if not path.exists():
            return f"{path} does not exist; {RELOCK}"
        if not _holds_text(path, render_explicit(lock, platform)):
            return f"{path} does not match {request.lock_file} (edited, or left from another lock); {RELOCK}"
    return ""
