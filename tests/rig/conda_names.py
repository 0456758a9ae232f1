"""conda-forge's names for PyPI projects, so the rig's channel answers the specs people write for conda-forge.

conda packages are looked up by exact name: rattler does not fold `-` and
`_`, so `jupyter_server` solves where `jupyter-server` does not, and a
package converted from a wheel must carry the name conda-forge gives the
project. The names come from data, in this order:

1. Projects conda-forge splits into several outputs (PROJECT_OUTPUTS): the
   wheel's files go into the `-base`/`-core` output, and the other outputs
   are metapackages (SPLIT_METAPACKAGES), as conda-forge's own records are.
2. conda-forge's published PyPI-to-conda name mapping (the copy bundled with
   whl2conda), where it names a package that exists in the snapshot
   (`tzdata` is `python-tzdata` there: conda-forge's `tzdata` is the IANA
   database).
3. The snapshot of conda-forge's repodata
   (`../shared/data/conda-forge-snapshot`): the package whose name
   normalises (PEP 503) to the project's. Where two do (`typing_extensions`
   and its alias `typing-extensions`), the one more records depend on.
4. Otherwise the normalised PyPI name, as conda-forge names new packages.

A requirement with an extra (`jsonschema[format-nongpl]`) becomes the
conda-forge metapackage for that extra (EXTRA_PACKAGES).
"""

from __future__ import annotations

import collections
import gzip
import importlib.resources
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from tooling.errors import ToolingError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_DIR = PROJECT_ROOT.parent / "shared" / "data" / "conda-forge-snapshot"
SNAPSHOT_SUBDIRS = ("noarch", "linux-64")

# PyPI project -> the conda-forge output that holds the wheel's files.
PROJECT_OUTPUTS = {
    "jupyterhub": "jupyterhub-base",
    "matplotlib": "matplotlib-base",
    "nbconvert": "nbconvert-core",
}


@dataclass(frozen=True)
class SplitMetapackage:
    """A conda-forge output of a split PyPI project that holds no files of its own."""

    name: str
    depends: tuple[str, ...]


# Besides `<base output> ==<version>`, as in conda-forge's jupyterhub-singleuser
# 5.4.x records (noarch generic, depends on jupyterlab and __unix).
SPLIT_METAPACKAGES = {
    "jupyterhub": (SplitMetapackage("jupyterhub-singleuser", ("jupyterlab >=3.1", "__unix")),),
}

# Dependencies conda-forge adds to a base output beyond the wheel's (jupyterhub-base does not run on Windows).
OUTPUT_EXTRA_DEPENDS = {"jupyterhub": ("__unix",)}

# (PyPI project, extra) -> conda-forge metapackage that installs the project with that extra.
EXTRA_PACKAGES = {
    ("bleach", "css"): "bleach-with-css",
    ("jsonschema", "format-nongpl"): "jsonschema-with-format-nongpl",
}


class CondaForgeNames:
    """Maps PyPI project names (and extras) to the names conda-forge uses."""

    def __init__(self, dependents: Mapping[str, int], published_renames: Mapping[str, str]) -> None:
        self._dependents = dict(dependents)
        self._published_renames = dict(published_renames)
        self._by_normalised: dict[str, list[str]] = collections.defaultdict(list)
        for name in self._dependents:
            self._by_normalised[canonicalize_name(name)].append(name)

    @classmethod
    def from_snapshot(cls, snapshot_dir: Path = SNAPSHOT_DIR) -> CondaForgeNames:
        """Names known from the repodata snapshot, with how many records depend on each."""
        dependents: collections.Counter[str] = collections.Counter()
        for subdir in SNAPSHOT_SUBDIRS:
            path = snapshot_dir / subdir / "repodata.json.gz"
            try:
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    repodata = json.load(handle)
            except OSError as exc:
                raise ToolingError(
                    f"{path}: cannot read conda-forge's repodata snapshot ({exc}). The rig's channel takes "
                    "conda-forge's package names from it; it lives beside the project in ../shared/data."
                ) from exc
            for records in (repodata.get("packages", {}), repodata.get("packages.conda", {})):
                for record in records.values():
                    dependents[record["name"]] += 0  # known, even if nothing depends on it
                    dependents.update(spec.split()[0] for spec in record.get("depends", ()))
        return cls(dependents, _published_renames())

    def is_known(self, conda_name: str) -> bool:
        return conda_name in self._dependents

    def for_project(self, pypi_name: str) -> str:
        """conda-forge's name for the package that holds the project's files."""
        normalised = canonicalize_name(pypi_name)
        if normalised in PROJECT_OUTPUTS:
            return PROJECT_OUTPUTS[normalised]
        renamed = self._published_renames.get(normalised)
        if renamed is not None and self.is_known(renamed):
            return renamed
        candidates = self._by_normalised.get(normalised)
        if candidates:
            return max(candidates, key=lambda name: (self._dependents[name], name))
        return normalised

    def for_extra(self, pypi_name: str, extra: str) -> str:
        """conda-forge's metapackage for `pypi_name[extra]`."""
        key = (canonicalize_name(pypi_name), canonicalize_name(extra))
        if key not in EXTRA_PACKAGES:
            raise ToolingError(
                f"The rig's channel needs a package for the requirement {key[0]}[{key[1]}], and conda-forge's "
                "name for it is not known. Add it to EXTRA_PACKAGES in tests/rig/conda_names.py (look for "
                f"'{key[0]}-with-...' in the repodata snapshot)."
            )
        return EXTRA_PACKAGES[key]


def _published_renames() -> dict[str, str]:
    # whl2conda bundles conda-forge's PyPI name mapping; its `$`-keys are download metadata, not names.
    text = importlib.resources.files("whl2conda.api").joinpath("stdrename.json").read_text(encoding="utf-8")
    return {name: conda for name, conda in json.loads(text).items() if not name.startswith("$")}
