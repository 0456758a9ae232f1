"""Conda packages of the rig's channel made from PyPI wheels, plus the metapackages conda-forge has.

whl2conda lays a wheel's files out as a conda package (site-packages/ and
link.json entry points for a pure wheel, lib/python3.11/site-packages/ for a
binary one) and writes its info/ files. As shipped it gives a channel that
does not solve as conda-forge, so this module converts to an unpacked tree
(`CondaPackageFormat.TREE`) and fixes the tree before packing it:

- the name is conda-forge's (see conda_names.py); whl2conda would hyphenate it;
- `depends` is computed here from the wheel's Requires-Dist with every
  environment marker evaluated for CPython 3.11 on linux x86_64 (whl2conda
  drops every marked requirement of a pure wheel, ptyprocess and
  typing_extensions among them), and with extras as conda-forge's
  metapackages (whl2conda drops `jsonschema[format-nongpl]`'s extra);
- a binary wheel gets a `__glibc >=X` floor from its manylinux tags, and,
  unless it is abi3, `python_abi 3.11.* *_cp311`;
- console scripts of binary, non-abi3 wheels (numpy's f2py, fonttools' ttx)
  are written into bin/, and `#!python` shebangs of scripts a wheel ships
  are pointed at the environment's python, through conda's prefix
  placeholder, which the installer replaces with the environment's path.

Packing uses conda-package-handling at a fast zstd level: the channel is
rebuilt cold in CI, where packing at conda's default level 19 dominates.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conda_package_handling.api import create as create_conda_package
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from rattler_build import assemble_package
from whl2conda.api.converter import CondaPackageFormat, Wheel2CondaConverter

from tests.rig.conda_names import OUTPUT_EXTRA_DEPENDS, CondaForgeNames
from tests.rig.wheels import PYTHON_ABI, PYTHON_VERSION, WheelInfo, conda_version_spec, requirement_applies
from tooling.errors import ToolingError
from tooling.files import sha256_file

# conda's prefix placeholder: the installer writes the environment's path over it in text files.
PREFIX_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"
# zstd level for packing: level 3 packs several times faster than conda's default 19, for a larger channel.
COMPRESSION_LEVEL = 3
PYTHON_SHEBANG = f"#!{PREFIX_PLACEHOLDER}/bin/python"
# The .data/ folders of a wheel whl2conda copies into the package (it skips purelib, platlib, headers).
WHL2CONDA_DATA_FOLDERS = frozenset({"data", "scripts"})
# Many wheels put the whole license text in their License field (matplotlib's is 73 kB); repodata
# wants the license's name, and the text is in info/licenses/ anyway.
LICENSE_NAME_LIMIT = 100


@dataclass(frozen=True)
class ConversionPlan:
    """How one wheel becomes one conda package: decided in the parent, carried out by a worker process."""

    wheel: Path
    name: str
    depends: tuple[str, ...]
    scripts: tuple[tuple[str, str], ...]
    """Console scripts (name, `module:attr`) to write into bin/; whl2conda writes them only for noarch."""


def plan_conversion(wheel: WheelInfo, names: CondaForgeNames, environment: Mapping[str, str]) -> ConversionPlan:
    unsupported = sorted(wheel.data_folders - WHL2CONDA_DATA_FOLDERS)
    if unsupported:
        raise ToolingError(
            f"{wheel.path.name} installs files from .data/{unsupported[0]}/, which whl2conda leaves out of the "
            "package. Pin another version of it in tests/rig/channel-requirements.txt, or convert it here."
        )
    return ConversionPlan(
        wheel=wheel.path,
        name=names.for_project(wheel.name),
        depends=conda_dependencies(wheel, names, environment),
        scripts=() if wheel.is_pure or wheel.is_abi3 else wheel.scripts,
    )


def conda_dependencies(wheel: WheelInfo, names: CondaForgeNames, environment: Mapping[str, str]) -> tuple[str, ...]:
    """The package's `depends`: its requirements on the target, by conda-forge name, plus python and glibc."""
    depends = [
        spec
        for requirement in wheel.requires
        if requirement_applies(requirement, environment)
        for spec in requirement_depends(requirement, names)
    ]
    depends += python_dependencies(wheel)
    depends += OUTPUT_EXTRA_DEPENDS.get(wheel.name, ())
    if (floor := wheel.glibc_floor) is not None:
        depends.append(f"__glibc >={floor[0]}.{floor[1]}")
    return tuple(depends)


def requirement_depends(requirement: Requirement, names: CondaForgeNames) -> list[str]:
    """`requests>=2` as `requests >=2`; `bleach[css]` as `bleach-with-css`, conda-forge's package for the extra."""
    spec = conda_version_spec(requirement.specifier)
    targets = [names.for_extra(requirement.name, extra) for extra in sorted(requirement.extras)]
    return [f"{target} {spec}".rstrip() for target in targets or [names.for_project(requirement.name)]]


def python_dependencies(wheel: WheelInfo) -> list[str]:
    """Pure: its Requires-Python. abi3: at least the Python it was built for. Otherwise: exactly this ABI."""
    if wheel.is_pure:
        return [f"python {conda_version_spec(wheel.requires_python)}".rstrip()]
    if wheel.is_abi3:
        oldest_minor = min(int(tag.interpreter[3:]) for tag in wheel.tags if tag.interpreter.startswith("cp3"))
        floor = SpecifierSet(f">=3.{oldest_minor}") & wheel.requires_python
        return [f"python {conda_version_spec(floor)}"]
    major, minor = PYTHON_VERSION.split(".")
    return [f"python >={PYTHON_VERSION},<{major}.{int(minor) + 1}.0a0", f"python_abi {PYTHON_VERSION}.* *_{PYTHON_ABI}"]


def convert_wheel(plan: ConversionPlan, channel_dir: Path) -> Path:
    """Convert, fix and pack one wheel into `channel_dir/<subdir>/`; returns the package file."""
    # whl2conda warns about every requirement it skips; the requirements here are computed without it.
    logging.getLogger("whl2conda").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="hubship-whl2conda-") as scratch:
        converter = Wheel2CondaConverter(plan.wheel, Path(scratch))
        converter.out_format = CondaPackageFormat.TREE
        converter.allow_impure = True
        tree = converter.convert()
        index = _rewrite_index(tree, plan)
        _write_console_scripts(tree, plan.scripts)
        _point_shebangs_at_prefix(tree)
        subdir: str = index["subdir"]
        out_dir = channel_dir / subdir
        out_dir.mkdir(parents=True, exist_ok=True)
        file_name = f"{plan.name}-{index['version']}-{index['build']}.conda"
        create_conda_package(str(tree), None, file_name, out_folder=str(out_dir), compression_level=COMPRESSION_LEVEL)
    return out_dir / file_name


def _rewrite_index(tree: Path, plan: ConversionPlan) -> dict[str, Any]:
    path = tree / "info" / "index.json"
    index: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    index["name"] = plan.name
    index["depends"] = list(plan.depends)
    if len(index.get("license") or "") > LICENSE_NAME_LIMIT:
        del index["license"]
    path.write_text(json.dumps(index, indent=2), encoding="utf-8")
    return index


def _write_console_scripts(tree: Path, scripts: Sequence[tuple[str, str]]) -> None:
    for script, target in scripts:
        module, _, attribute = target.partition(":")
        attribute = attribute.split("[")[0].strip()
        top, _, rest = attribute.partition(".")
        call = f"{top}.{rest}()" if rest else f"{top}()"
        path = tree / "bin" / script
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f"{PYTHON_SHEBANG}\n"
            f"# The `{script}` console script ({target}).\n"
            "import sys\n\n"
            f"from {module.strip()} import {top}\n\n"
            'if __name__ == "__main__":\n'
            f"    sys.exit({call})\n",
            encoding="utf-8",
        )
        path.chmod(0o755)
        _register_text_file(tree, path)


def _point_shebangs_at_prefix(tree: Path) -> None:
    # Scripts in a wheel's .data/scripts start with `#!python`, for the installer to point at an interpreter.
    for folder in ("bin", "python-scripts"):
        for path in sorted((tree / folder).glob("*")):
            content = path.read_bytes()
            first_line, newline, rest = content.partition(b"\n")
            if first_line.rstrip() in (b"#!python", b"#!pythonw"):
                path.write_bytes(PYTHON_SHEBANG.encode() + newline + rest)
                _register_text_file(tree, path)


def _register_text_file(tree: Path, path: Path) -> None:
    """Record `path` in info/paths.json and info/files as a text file holding the prefix placeholder."""
    relative = path.relative_to(tree).as_posix()
    paths_file = tree / "info" / "paths.json"
    paths = json.loads(paths_file.read_text(encoding="utf-8"))
    entries = [entry for entry in paths["paths"] if entry["_path"] != relative]
    entries.append(
        {
            "_path": relative,
            "path_type": "hardlink",
            "sha256": sha256_file(path),
            "size_in_bytes": path.stat().st_size,
            "prefix_placeholder": PREFIX_PLACEHOLDER,
            "file_mode": "text",
        }
    )
    paths["paths"] = sorted(entries, key=lambda entry: entry["_path"])
    paths_file.write_text(json.dumps(paths, indent=2), encoding="utf-8")
    files_file = tree / "info" / "files"
    listed = files_file.read_text(encoding="utf-8").splitlines()
    if relative not in listed:
        files_file.write_text("\n".join([*listed, relative]) + "\n", encoding="utf-8")


def build_metapackage(
    name: str,
    version: str,
    depends: Sequence[str],
    channel_dir: Path,
) -> Path:
    """A noarch package without files, as conda-forge's `bleach-with-css` or `jupyterhub-singleuser`."""
    out_dir = channel_dir / "noarch"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hubship-meta-") as empty:
        output = assemble_package(
            name=name,
            version=version,
            target_platform="noarch",
            build_string="meta_0",
            output_dir=out_dir,
            files_dir=empty,
            depends=list(depends),
            noarch="generic",
            compression_level=COMPRESSION_LEVEL,
        )
    return output.path
