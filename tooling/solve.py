"""Solving a lock specification into locked packages: py-rattler embedded, or the conda-lock CLI.

Both engines read each channel from where the mirrors say and return
conda-lock's `LockedDependency` entries whose URLs are canonical
(`https://conda.anaconda.org/NAME/<subdir>/<file>` for a named channel), so
a lock made behind a mirror is the same lock as one made online.

- `rattler`: `rattler.solve` in this process, with the virtual packages of
  hub.toml passed explicitly; no conda, mamba or micromamba needed. Records
  become lock entries the way conda-lock turns a solver's answer into them
  (dependency specs merged per name, categories by conda-lock's own
  `apply_categories`), and a `pip:` section is solved by conda-lock's own
  PyPI solver.
- `conda-lock`: the real `conda-lock lock` command, which needs a conda,
  mamba or micromamba executable.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import rattler
import yaml
from conda_lock._vendor.poetry.puzzle.exceptions import SolverProblemError
from conda_lock._vendor.poetry.repositories.exceptions import PackageNotFoundError, RepositoryError
from conda_lock.conda_solver import _to_match_spec
from conda_lock.interfaces.vendored_conda import MatchSpec as CondaMatchSpec
from conda_lock.lockfile import apply_categories, write_conda_lock_file
from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile
from conda_lock.models.channel import Channel
from conda_lock.models.lock_spec import Dependency, LockSpecification, VersionedDependency
from conda_lock.pypi_solver import solve_pypi
from conda_lock.virtual_package import FakeRepoData
from rattler import BuildString, GenericVirtualPackage, PackageName, RepoDataRecord, Subdir, Version
from rattler.exceptions import GatewayError, SolverError

from tooling import proc
from tooling.channels import ChannelSource, canonical_url
from tooling.errors import CommandFailed, ToolingError
from tooling.lockfile import read_lock
from tooling.log import Step, logger, step

SOLVER_EXECUTABLES = ("micromamba", "mamba", "conda")


# --- what both engines take ------------------------------------------------------


@dataclass(frozen=True)
class SolveJob:
    spec: LockSpecification
    spec_files: tuple[Path, ...]
    sources: tuple[ChannelSource, ...]
    virtual_repo: FakeRepoData  # conda-lock's virtual package repo, built from hub.toml
    virtual_spec_yaml: str  # the same, as a conda-lock --virtual-package-spec file
    previous: Lockfile | None
    update: tuple[str, ...]
    mapping_url: str
    conda_exe: str | None = None

    @property
    def platforms(self) -> list[str]:
        return list(self.spec.platforms)

    def conda_specs(self, platform: str) -> dict[str, VersionedDependency]:
        return {dep.name: dep for dep in self.spec.dependencies[platform] if dep.manager == "conda"}

    def pip_specs(self, platform: str) -> dict[str, Dependency]:
        return {dep.name: dep for dep in self.spec.dependencies[platform] if dep.manager == "pip"}

    def previous_packages(self, platform: str, manager: str) -> list[LockedDependency]:
        if self.previous is None:
            return []
        return [p for p in self.previous.package if p.platform == platform and p.manager == manager]


@dataclass(frozen=True)
class Solution:
    packages: list[LockedDependency]
    solver_seconds: float


# --- py-rattler ------------------------------------------------------------------


def solve_with_rattler(job: SolveJob) -> Solution:
    packages: list[LockedDependency] = []
    solver_seconds = 0.0
    gateway = rattler.Gateway()
    for platform in job.platforms:
        specs = job.conda_specs(platform)
        with step(f"Solving {len(specs)} conda specs for {platform} with py-rattler") as progress:
            records = asyncio.run(_solve_platform(job, platform, gateway))
            solver_seconds += progress.elapsed
        conda = _locked_conda_packages(job, platform, records)
        packages += conda.values()
        packages += _solve_pip(job, platform, conda)
    return Solution(packages, solver_seconds)


async def _solve_platform(job: SolveJob, platform: str, gateway: rattler.Gateway) -> list[RepoDataRecord]:
    channels = [rattler.Channel(source.read_from) for source in job.sources]
    specs = [_match_spec(dep) for dep in job.conda_specs(platform).values()]
    try:
        locked = await _locked_records(job, platform, gateway, channels) if job.update else []
        return await rattler.solve(
            sources=channels,
            specs=specs,
            gateway=gateway,
            platforms=_subdirs(platform),
            locked_packages=locked,
            virtual_packages=virtual_packages(job.virtual_repo, platform),
            channel_relations="disabled",
        )
    except SolverError as exc:
        raise await _unsolvable(job, platform, gateway, channels, str(exc)) from None
    except GatewayError as exc:
        first_line = str(exc).splitlines()[0]
        raise ToolingError(f"Reading the channels for {platform} failed: {first_line}") from None


def _subdirs(platform: str) -> list[Subdir]:
    return [Subdir(platform), Subdir("noarch")]


def _match_spec(dep: Dependency) -> str:
    if not isinstance(dep, VersionedDependency):
        raise ToolingError(f"Conda dependency '{dep.name}' is given by URL or path; conda specs must be versions.")
    return str(_to_match_spec(dep.name, dep.version, dep.build, dep.conda_channel))


def virtual_packages(repo: FakeRepoData, platform: str) -> list[GenericVirtualPackage]:
    """The platform's virtual packages exactly as conda-lock's virtual package repo defines them."""
    entries = repo.all_repodata.get(platform, {}).get("packages", {})
    return [
        GenericVirtualPackage(PackageName(entry["name"]), Version(entry["version"]), BuildString(entry["build"]))
        for entry in entries.values()
    ]


async def _locked_records(
    job: SolveJob, platform: str, gateway: rattler.Gateway, channels: list[rattler.Channel]
) -> list[RepoDataRecord]:
    """The channel records of the previous lock's packages, except those to update: the solver keeps them if it can."""
    keep = {p.url: p for p in job.previous_packages(platform, "conda") if p.name not in job.update}
    names = sorted({p.name for p in keep.values()})
    found = await gateway.query(channels, _subdirs(platform), names, recursive=False, channel_relations="disabled")
    return [record for records in found for record in records if canonical_url(record.url, job.sources) in keep]


async def _unsolvable(
    job: SolveJob, platform: str, gateway: rattler.Gateway, channels: list[rattler.Channel], explanation: str
) -> ToolingError:
    logger.debug("The solver's explanation:\n%s", explanation)
    missing = re.search(r"No candidates were found for (\S+)(?: (.*?))?\.?$", explanation.splitlines()[0])
    if missing is None:
        return ToolingError(f"The spec cannot be solved for {platform}: {shorten_explanation(explanation)}")
    name, wanted = missing.group(1), (missing.group(2) or "*").rstrip(".")
    where = spec_line(job.spec_files, name)
    channel_names = ", ".join(source.describe() for source in job.sources)
    known = await gateway.names(channels, _subdirs(platform))
    if name not in {package.normalized for package in known}:
        return ToolingError(
            f"{where}: unknown package '{name}': not in {channel_names} for {platform} or noarch. "
            "Check the spelling (conda-forge names, e.g. matplotlib-base, not the PyPI name)."
        )
    records = await gateway.query(channels, _subdirs(platform), [name], recursive=False)
    versions = sorted({record.version for per_source in records for record in per_source})
    available = f"{versions[0]} ... {versions[-1]}" if len(versions) > 1 else str(versions[0])
    return ToolingError(
        f"{where}: no version of '{name}' matches '{wanted}' for {platform} in {channel_names} "
        f"(available: {available})."
    )


def spec_line(spec_files: Sequence[Path], name: str) -> str:
    """FILE:LINE of the dependency NAME in the spec files (or the first file when it is not listed there)."""
    pattern = re.compile(rf"^\s*-\s*['\"]?{re.escape(name)}(?![\w.-])", re.IGNORECASE)
    for spec_file in spec_files:
        for number, line in enumerate(spec_file.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.match(line):
                return f"{spec_file}:{number}"
    return str(spec_files[0])


def shorten_explanation(explanation: str) -> str:
    """The solver's explanation tree cut down to the requested specs that clash and what they clash over."""
    body = explanation.split("because of:", 1)[-1].strip()
    lines = body.splitlines()
    if not lines:
        return explanation.strip()
    # Either one requested spec heads the tree ("X cannot be installed because ..."), or several
    # incompatible ones hang off "The following packages are incompatible".
    if lines[0].startswith("The following packages are incompatible"):
        roots = [_subject(line[3:]) for line in lines if line.startswith(("├─ ", "└─ "))]
    else:
        roots = [_subject(lines[0])]
    clashes: dict[str, set[str]] = {}
    missing: list[str] = []
    for line in lines[1:]:
        subject = _subject(line.split("─ ", 1)[-1])
        if "which conflicts with the versions reported above" in line or "is locked, but another version" in line:
            name, _, version = subject.partition(" ")
            clashes.setdefault(name, set()).add(version)
        elif "for which no candidates were found" in line:
            missing.append(subject)
    specs = ", ".join(f"'{root}'" for root in dict.fromkeys(roots))
    if clashes:
        over = "; ".join(f"{name} ({', '.join(sorted(v for v in found if v))})" for name, found in clashes.items())
        return f"{specs} cannot be installed together: they need different versions of {over}."
    if missing:
        needs = ", ".join(f"'{spec}'" for spec in dict.fromkeys(missing))
        return f"{specs} cannot be installed: it needs {needs}, which the other specs or the channels rule out."
    if len(roots) > 1:
        return f"{specs} cannot be installed together (run with -v for the solver's full explanation)."
    return lines[0].rstrip(":.") + "."


def _subject(text: str) -> str:
    """The package or spec an explanation line is about: the text before its verb."""
    for marker in (
        " cannot be installed",
        " would require",
        ", for which",
        ", which",
        " is locked",
        " can be installed",
    ):
        text = text.split(marker, 1)[0]
    return text.strip().rstrip(".:")


def _locked_conda_packages(job: SolveJob, platform: str, records: list[RepoDataRecord]) -> dict[str, LockedDependency]:
    planned: dict[str, LockedDependency] = {}
    for record in records:
        if record.name.normalized.startswith("__"):
            continue
        planned[record.name.normalized] = _locked_dependency(record, platform, job.sources)
    apply_categories(requested=job.conda_specs(platform), planned=planned, mapping_url=job.mapping_url)
    return planned


def _locked_dependency(record: RepoDataRecord, platform: str, sources: Sequence[ChannelSource]) -> LockedDependency:
    if record.md5 is None:
        raise ToolingError(f"{record.url} has no md5 in its channel's repodata; a conda lock needs one.")
    return LockedDependency(
        name=record.name.normalized,
        version=str(record.version),
        manager="conda",
        platform=platform,
        dependencies=dependency_specs(tuple(record.depends)),
        url=canonical_url(record.url, sources),
        hash=HashModel(md5=record.md5.hex(), sha256=record.sha256.hex() if record.sha256 else None),
    )


@cache
def dependency_specs(depends: tuple[str, ...]) -> dict[str, str]:
    """A record's `depends` as conda-lock records them: one version spec per name, several specs merged."""
    by_name: dict[str, list[Any]] = {}
    for text in depends:
        spec = CondaMatchSpec(text)
        by_name.setdefault(spec.name, []).append(spec)
    merged = {name: specs[0] if len(specs) == 1 else CondaMatchSpec.merge(specs)[0] for name, specs in by_name.items()}
    return {name: spec.version.spec_str if spec.version is not None else "" for name, spec in merged.items()}


def _solve_pip(job: SolveJob, platform: str, conda: dict[str, LockedDependency]) -> list[LockedDependency]:
    pip_specs = job.pip_specs(platform)
    if not pip_specs:
        return []
    if "python" not in conda:
        raise ToolingError(f"{job.spec_files[0]}: a pip: section needs python among the conda dependencies.")
    repo_packages = job.virtual_repo.all_repodata.get(platform, {}).get("packages")
    with step(f"Solving {len(pip_specs)} pip requirements for {platform} against PyPI"):
        try:
            solved = solve_pypi(
                pip_specs=pip_specs,
                use_latest=list(job.update),
                pip_locked={p.name: p for p in job.previous_packages(platform, "pip")},
                conda_locked=conda,
                python_version=conda["python"].version,
                platform=platform,
                platform_virtual_packages=repo_packages,
                pip_repositories=job.spec.pip_repositories,
                allow_pypi_requests=job.spec.allow_pypi_requests,
                mapping_url=job.mapping_url,
            )
        except OSError as exc:  # requests' errors are OSErrors
            raise ToolingError(
                f"The pip section could not be locked: a package index or the PyPI-to-conda name mapping "
                f"({job.mapping_url}) could not be read ({exc}). Check the network, or pass --pypi-mapping FILE."
            ) from None
        except (SolverProblemError, PackageNotFoundError, RepositoryError) as exc:
            detail = " ".join(str(exc).split())
            raise ToolingError(f"The pip section of {job.spec_files[0]} cannot be solved: {detail}") from None
    return list(solved.values())


# --- the conda-lock command line --------------------------------------------------


def solve_with_conda_lock(job: SolveJob) -> Solution:
    """Run `conda-lock lock` on the spec files, reading channels from their mirrors, and canonicalize its lock."""
    executable = solver_executable(job.conda_exe)
    _refuse_transitive_updates(job)
    with tempfile.TemporaryDirectory(prefix="hubship-conda-lock-") as tmp:
        workdir = Path(tmp)
        lock_path = workdir / "conda-lock.yml"
        virtual_spec = workdir / "virtual-packages.yml"
        virtual_spec.write_text(job.virtual_spec_yaml, encoding="utf-8")
        if job.update and job.previous is not None:
            write_conda_lock_file(_as_read_from(job.previous, job.sources), lock_path, metadata_choices=None)
        with step(f"Locking with conda-lock (solver: {executable})") as progress:
            _run_conda_lock(_conda_lock_argv(job, executable, lock_path, virtual_spec), workdir, progress)
            solver_seconds = progress.elapsed
        result = read_lock(lock_path)
    packages = [_canonicalized(package, job.sources) for package in result.package]
    return Solution(packages, solver_seconds)


def solver_executable(explicit: str | None) -> str:
    """The conda/mamba/micromamba executable conda-lock will run; found here so a missing one fails at once."""
    candidates = [explicit] if explicit else [os.environ.get("CONDA_LOCK_CONDA"), *SOLVER_EXECUTABLES]
    for candidate in filter(None, candidates):
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return str(Path(found).absolute())
    if explicit:
        raise ToolingError(f"--conda-exe {explicit}: no such executable.")
    raise ToolingError(
        "--engine conda-lock needs a conda, mamba or micromamba executable and none is on PATH "
        "(conda-lock would try to download one). Pass --conda-exe PATH, or use the default engine (py-rattler)."
    )


def _refuse_transitive_updates(job: SolveJob) -> None:
    # conda-lock's update looks each name up among the top-level specs and fails with a KeyError otherwise.
    top_level = {dep.name for platform in job.platforms for dep in job.spec.dependencies[platform]}
    transitive = sorted(set(job.update) - top_level)
    if transitive:
        raise ToolingError(
            f"--engine conda-lock can update only top-level specs; {', '.join(transitive)} "
            "is not one. Use the default engine (py-rattler), which updates any package."
        )


def _conda_lock_argv(job: SolveJob, executable: str, lock_path: Path, virtual_spec: Path) -> list[str]:
    argv = [sys.executable, "-m", "conda_lock", "lock", "--conda", executable]
    argv += ["--lockfile", str(lock_path), "--kind", "lock"]
    argv += ["--virtual-package-spec", str(virtual_spec)]
    argv += ["--pypi_to_conda_lookup_file", job.mapping_url]
    for spec_file in job.spec_files:
        argv += ["--file", str(spec_file.resolve())]  # conda-lock runs in a scratch folder
    for platform in job.platforms:
        argv += ["--platform", platform]
    for source in job.sources:
        argv += ["--channel", source.read_from if source.mirrored else source.name]
    for name in job.update:
        argv += ["--update", name]
    return argv


def _run_conda_lock(argv: list[str], workdir: Path, progress: Step) -> None:
    # All of the output, not only the tail a failure carries: the solver's explanation can be long.
    output: list[str] = []

    def on_line(line: str) -> None:
        output.append(line)
        progress.update(line)

    try:
        proc.stream(argv, on_line=on_line, cwd=workdir)
    except CommandFailed as exc:
        raise conda_lock_failure(output, exc) from None


def conda_lock_failure(output: Sequence[str], exc: CommandFailed) -> ToolingError:
    """conda-lock's failure as one message: the solver's own explanation when it gave one."""
    for index, line in enumerate(output):
        if line.startswith("Could not lock the environment for platform"):
            message = []
            for follower in output[index + 1 :]:
                if follower.startswith("    Command:"):
                    break
                message.append(follower)
            explanation = "\n".join(message).strip()
            logger.debug("conda-lock's solver said:\n%s", explanation)
            return ToolingError(f"conda-lock: {line.strip()}: {shorten_explanation(explanation)}")
    return ToolingError(exc.message)


def _as_read_from(lock: Lockfile, sources: Sequence[ChannelSource]) -> Lockfile:
    """The lock as conda-lock must see it to update it behind mirrors: channels and URLs at the mirrors."""
    packages = []
    for package in lock.package:
        url = package.url
        for source in sources:
            if url.startswith(source.canonical + "/"):
                url = source.read_from + url[len(source.canonical) :]
        packages.append(package.model_copy(update={"url": url}))
    channels = [Channel.from_string(s.read_from if s.mirrored else s.name) for s in sources]
    metadata = lock.metadata.model_copy(update={"channels": channels})
    return Lockfile(package=packages, metadata=metadata)


def _canonicalized(package: LockedDependency, sources: Sequence[ChannelSource]) -> LockedDependency:
    if package.manager != "conda":
        return package
    return package.model_copy(update={"url": canonical_url(package.url, sources)})


def virtual_spec_yaml(virtual_packages_by_platform: Mapping[str, Mapping[str, str]]) -> str:
    """hub.toml's virtual packages as a conda-lock virtual-packages.yml."""
    subdirs = {platform: {"packages": dict(packages)} for platform, packages in virtual_packages_by_platform.items()}
    return yaml.safe_dump({"subdirs": subdirs}, sort_keys=True)
