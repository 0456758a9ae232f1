"""The PyPI side of the rig's channel: the pinned wheel closure, its download, and what each wheel declares.

The channel holds the Jupyter and scientific stack of the hub image as PyPI
wheels converted to conda packages. Which wheels is decided once, by pip, for
the image's target: CPython 3.11 on linux x86_64 with glibc no newer than the
lock's `__glibc` virtual package (2.28), and written with exact versions and
sha256 hashes to `channel-requirements.txt`. Regenerate that file (after
changing ROOT_REQUIREMENTS) with

    python -m tests.rig.wheels

A build downloads exactly those files (`pip download --require-hashes`), so
every machine builds the same channel. pip's `--platform` accepts only the
tags it is given, so the target is spelled out as every manylinux tag from
the glibc ceiling down to manylinux_2_5, plus the legacy aliases.
"""

from __future__ import annotations

import configparser
import email.parser
import json
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from tooling.config import DEFAULT_VIRTUAL_PACKAGES
from tooling.errors import ToolingError
from tooling.files import sha256_file, write_atomic
from tooling.log import logger, step
from tooling.proc import stream

REQUIREMENTS_FILE = Path(__file__).with_name("channel-requirements.txt")

# What the hub image's environment.yml asks for, as PyPI projects. The
# deployed chart (4.3.3) runs JupyterHub 5.4.x, so the singleuser server must
# be 5.4.x too.
ROOT_REQUIREMENTS = (
    "jupyterlab>=4,<5",
    "jupyterhub>=5.4,<5.5",
    "ipykernel",
    "nbgitpuller",
    "numpy",
    "pandas",
    "xarray",
    "h5py",
    "matplotlib",
    "pytest",
    "pip",
)

PYTHON_VERSION = "3.11"
PYTHON_ABI = "cp311"
GLIBC_CEILING = tuple(int(part) for part in DEFAULT_VIRTUAL_PACKAGES["linux-64"]["__glibc"].split("."))
# The legacy manylinux names and the glibc each one stands for (PEP 600).
LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
_MANYLINUX_TAG = re.compile(r"^manylinux_(\d+)_(\d+)_x86_64$")
_LEGACY_MANYLINUX_TAG = re.compile(r"^(manylinux2014|manylinux2010|manylinux1)_x86_64$")


def manylinux_platform_tags() -> list[str]:
    """Every x86_64 manylinux tag a wheel may carry to run on the target, newest glibc first."""
    major, ceiling = GLIBC_CEILING
    tags = [f"manylinux_{major}_{minor}_x86_64" for minor in range(ceiling, 4, -1)]
    tags += [f"{legacy}_x86_64" for legacy, glibc in LEGACY_MANYLINUX.items() if glibc <= GLIBC_CEILING]
    return tags


def pip_target_arguments() -> list[str]:
    """pip options that resolve and download for the image's target instead of this machine."""
    arguments = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    arguments += ["--abi", PYTHON_ABI]
    for tag in manylinux_platform_tags():
        arguments += ["--platform", tag]
    return arguments


def glibc_floor(tags: Iterable[Tag]) -> tuple[int, int] | None:
    """The oldest glibc a wheel with these tags runs on; None for a wheel without manylinux tags."""
    floors: list[tuple[int, int]] = []
    for tag in tags:
        if match := _MANYLINUX_TAG.match(tag.platform):
            floors.append((int(match[1]), int(match[2])))
        elif match := _LEGACY_MANYLINUX_TAG.match(tag.platform):
            floors.append(LEGACY_MANYLINUX[match[1]])
    return min(floors) if floors else None


@dataclass(frozen=True)
class PinnedWheel:
    """One line of channel-requirements.txt."""

    name: NormalizedName
    version: str
    sha256: str


_PIN_LINE = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha256>[0-9a-f]{64})$")


def read_pins(path: Path = REQUIREMENTS_FILE) -> list[PinnedWheel]:
    """The pinned closure; every line must be `NAME==VERSION --hash=sha256:HEX`."""
    pins: list[PinnedWheel] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = _PIN_LINE.match(text)
        if match is None:
            raise ToolingError(
                f"{path}:{number}: expected `NAME==VERSION --hash=sha256:HEX`, found {text!r}. "
                "Regenerate the file with `python -m tests.rig.wheels`."
            )
        pins.append(PinnedWheel(canonicalize_name(match["name"]), match["version"], match["sha256"]))
    return pins


def pin_requirements(path: Path = REQUIREMENTS_FILE) -> list[PinnedWheel]:
    """Resolve ROOT_REQUIREMENTS for the target with pip and write the closure, hashed, to `path`."""
    with tempfile.TemporaryDirectory(prefix="hubship-pin-") as scratch:
        report = Path(scratch) / "report.json"
        with step(f"resolve {len(ROOT_REQUIREMENTS)} requirements for CPython {PYTHON_VERSION} manylinux") as progress:
            stream(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--dry-run",
                    "--ignore-installed",
                    "--quiet",
                    "--report",
                    str(report),
                    "--target",
                    str(Path(scratch) / "target"),
                    *pip_target_arguments(),
                    *ROOT_REQUIREMENTS,
                ],
                on_line=progress.update,
                hint="pip resolves against the package index; check that `pip download pip` works here.",
            )
        installs = json.loads(report.read_text(encoding="utf-8"))["install"]
    pins = sorted(
        (
            PinnedWheel(
                canonicalize_name(item["metadata"]["name"]),
                item["metadata"]["version"],
                item["download_info"]["archive_info"]["hashes"]["sha256"],
            )
            for item in installs
        ),
        key=lambda pin: pin.name,
    )
    header = [
        "# The wheels of the rig's conda channel (tests/rig/channel.py), resolved for",
        f"# CPython {PYTHON_VERSION} on manylinux x86_64 with glibc <= {'.'.join(map(str, GLIBC_CEILING))}.",
        "# Written by `python -m tests.rig.wheels` from ROOT_REQUIREMENTS in tests/rig/wheels.py;",
        "# do not edit by hand.",
    ]
    lines = [f"{pin.name}=={pin.version} --hash=sha256:{pin.sha256}" for pin in pins]
    write_atomic(path, "\n".join(header + lines) + "\n")
    logger.info("pinned %d wheels in %s", len(pins), path)
    return pins


def download_wheels(requirements: Path, wheel_dir: Path) -> list[Path]:
    """The pinned wheels, in `wheel_dir`: pip downloads those not already there with the pinned hash."""
    pins = read_pins(requirements)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    present = _pinned_files(pins, wheel_dir)
    missing = [pin for pin in pins if pin not in present]
    if not missing:
        logger.info("all %d pinned wheels are in %s", len(pins), wheel_dir)
        return [present[pin] for pin in pins]
    with tempfile.TemporaryDirectory(prefix="hubship-download-") as scratch:
        subset = Path(scratch) / "requirements.txt"
        subset.write_text(
            "".join(f"{pin.name}=={pin.version} --hash=sha256:{pin.sha256}\n" for pin in missing), encoding="utf-8"
        )
        with step(f"download {len(missing)} of {len(pins)} pinned wheels") as progress:
            stream(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--require-hashes",
                    "--progress-bar",
                    "off",
                    "--dest",
                    str(wheel_dir),
                    "--requirement",
                    str(subset),
                    *pip_target_arguments(),
                ],
                on_line=progress.update,
                hint="pip downloads from the package index; check that `pip download pip` works here.",
            )
    present = _pinned_files(pins, wheel_dir)
    for pin in pins:
        if pin not in present:
            raise ToolingError(
                f"{wheel_dir}: pip reported success but holds no wheel of {pin.name}=={pin.version} with sha256 "
                f"{pin.sha256} (pinned in {requirements}). Delete that folder and run again."
            )
    return [present[pin] for pin in pins]


def _pinned_files(pins: Iterable[PinnedWheel], wheel_dir: Path) -> dict[PinnedWheel, Path]:
    # The folder is shared between recipes: it may hold other versions or builds of a project.
    wanted = {(pin.name, pin.version): pin for pin in pins}
    found: dict[PinnedWheel, Path] = {}
    for path in wheel_dir.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(path.name)
        pin = wanted.get((name, str(version)))
        if pin is not None and sha256_file(path) == pin.sha256:
            found[pin] = path
    return found


def marker_environment(python_full_version: str) -> dict[str, str]:
    """PEP 508 marker values of the channel's interpreter: CPython `python_full_version` on linux x86_64."""
    return {
        "implementation_name": "cpython",
        "implementation_version": python_full_version,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": python_full_version,
        "python_version": ".".join(python_full_version.split(".")[:2]),
        "sys_platform": "linux",
    }


def requirement_applies(requirement: Requirement, environment: Mapping[str, str], extra: str = "") -> bool:
    """Whether `requirement` is installed on the target when the extra `extra` (or none) is requested."""
    if requirement.marker is None:
        return not extra
    return requirement.marker.evaluate({**environment, "extra": extra})


def extra_requirements(
    requires: Iterable[Requirement], extra: str, environment: Mapping[str, str]
) -> list[Requirement]:
    """What requesting `extra` adds on the target to what the project requires anyway."""
    return [
        requirement
        for requirement in requires
        if requirement_applies(requirement, environment, extra) and not requirement_applies(requirement, environment)
    ]


def conda_version_spec(specifier: SpecifierSet) -> str:
    """A PEP 440 specifier set written as a conda version spec (`~=1.2.3` is `>=1.2.3,1.2.*`)."""
    clauses: list[str] = []
    for spec in sorted(specifier, key=str):
        operator, version = spec.operator, spec.version
        if operator == "~=":
            release = version.split(".")
            clauses += [f">={version}", ".".join(release[:-1]) + ".*"]
        elif operator == "==" and version.endswith(".*"):
            # rattler reads `==1.2.*` inside a list of clauses as `==1.2`; the bare glob means what PEP 440 says.
            clauses.append(version)
        elif operator == "===":
            clauses.append(f"=={version}")
        else:
            clauses.append(f"{operator}{version}")
    return ",".join(dict.fromkeys(clauses))


@dataclass(frozen=True)
class WheelInfo:
    """What a wheel declares: its project, version, tags, requirements and console scripts."""

    path: Path
    name: NormalizedName
    version: str
    tags: frozenset[Tag]
    requires_python: SpecifierSet
    requires: tuple[Requirement, ...]
    scripts: tuple[tuple[str, str], ...]
    data_folders: frozenset[str]
    """The folders under the wheel's .data/ (`data`, `scripts`, `purelib`, ...)."""

    @classmethod
    def read(cls, path: Path) -> WheelInfo:
        name, version, _build, tags = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as archive:
            dist_info = f"{_dist_info_dir(archive, path)}/"
            metadata = email.parser.BytesParser().parsebytes(archive.read(dist_info + "METADATA"))
            members = archive.namelist()
            entry_points = (
                archive.read(dist_info + "entry_points.txt").decode("utf-8")
                if dist_info + "entry_points.txt" in members
                else ""
            )
        data_folders = {
            parts[1] for parts in (member.split("/") for member in members) if parts[0].endswith(".data") and parts[2:]
        }
        return cls(
            path=path,
            name=name,
            version=str(version),
            tags=tags,
            requires_python=SpecifierSet(metadata.get("Requires-Python") or ""),
            requires=tuple(Requirement(line) for line in metadata.get_all("Requires-Dist") or ()),
            scripts=_scripts(entry_points),
            data_folders=frozenset(data_folders),
        )

    @property
    def is_pure(self) -> bool:
        return all(tag.platform == "any" for tag in self.tags)

    @property
    def is_abi3(self) -> bool:
        return any(tag.abi == "abi3" for tag in self.tags)

    @property
    def glibc_floor(self) -> tuple[int, int] | None:
        return glibc_floor(self.tags)


def _dist_info_dir(archive: zipfile.ZipFile, path: Path) -> str:
    for member in archive.namelist():
        top, _, rest = member.partition("/")
        if top.endswith(".dist-info") and rest == "METADATA":
            return top
    raise ToolingError(f"{path}: no *.dist-info/METADATA inside; the file is not a wheel. Delete it and run again.")


def _scripts(entry_points: str) -> tuple[tuple[str, str], ...]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(entry_points)
    return tuple(
        (script, target.strip())
        for section in ("console_scripts", "gui_scripts")
        if parser.has_section(section)
        for script, target in parser.items(section)
    )


if __name__ == "__main__":
    from tooling import log

    log.configure()
    pin_requirements()
