"""What the lock stage reads (`LockRequest`) and what its check says (`LockCheck`).

1. `LockRequest` is every input of locking and of `lock --check`: the spec
   files, where the lock files are, the platforms and their virtual
   packages, channels, mirrors and the solver's options.
2. `LockRequest.checked_files` names every file the check reads, so a caller
   can tell that none changed since a check passed.
3. `LockCheck` is the check's verdict, with the lock as it read it.

They live apart from the stage (`tooling.lock`) because the build names them
on every run, and the stage imports conda-lock, whose every module imports
its whole command line and solvers first (half a second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.config import Engine, HubConfig
from tooling.errors import ConfigError
from tooling.lockfile import LOCK_NAME, explicit_name

if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import Lockfile


@dataclass(frozen=True)
class LockRequest:
    """Everything the lock stage reads: the spec files, where the lock goes, and how to solve."""

    spec_files: tuple[Path, ...]
    lock_dir: Path
    platforms: tuple[str, ...]
    virtual_packages: Mapping[str, Mapping[str, str]]
    channel_overrides: tuple[str, ...] = ()
    mirrors: Mapping[str, str] = field(default_factory=dict)
    require_singleuser: bool = True
    engine: Engine = "rattler"
    update: tuple[str, ...] = ()
    conda_exe: str | None = None
    pypi_mapping: str | None = None  # a file or URL; None: conda-lock's own mapping

    @classmethod
    def from_config(
        cls,
        config: HubConfig,
        *,
        spec_files: Sequence[Path] = (),
        mirrors: Mapping[str, str] | None = None,
        engine: Engine = "rattler",
        update: Sequence[str] = (),
        conda_exe: str | None = None,
        pypi_mapping: str | None = None,
    ) -> LockRequest:
        """hub.toml's [environment] and [mirrors]; `mirrors` given here win over hub.toml's for the same channel."""
        environment = config.environment
        missing = [p for p in environment.platforms if p not in environment.virtual_packages]
        if missing:
            raise ConfigError(
                f"{config.path}: [environment.virtual_packages.{missing[0]}] is missing; "
                "each locked platform needs its virtual packages (__glibc, __linux, ...)."
            )
        return cls(
            spec_files=tuple(spec_files) or (config.file(environment.spec),),
            lock_dir=config.file(environment.lock_dir),
            platforms=tuple(environment.platforms),
            virtual_packages={p: dict(environment.virtual_packages[p]) for p in environment.platforms},
            channel_overrides=tuple(environment.channels),
            mirrors={**config.mirrors, **(mirrors or {})},
            require_singleuser=environment.require_singleuser,
            engine=engine,
            update=tuple(update),
            conda_exe=conda_exe,
            pypi_mapping=pypi_mapping,
        )

    @property
    def lock_file(self) -> Path:
        return self.lock_dir / LOCK_NAME

    def explicit_file(self, platform: str) -> Path:
        return self.lock_dir / explicit_name(platform)

    def checked_files(self) -> tuple[Path, ...]:
        """Every file `lock --check` reads: the spec files, the lock files and a PyPI mapping given as a file."""
        files = (*self.spec_files, self.lock_file, *(self.explicit_file(p) for p in self.platforms))
        mapping = Path(self.pypi_mapping) if self.pypi_mapping and "://" not in self.pypi_mapping else None
        return (*files, mapping) if mapping is not None else files


@dataclass(frozen=True)
class LockCheck:
    current: bool
    reason: str  # one line
    lock: Lockfile | None = None  # the lock as read, when current: the build installs it without reading it again
