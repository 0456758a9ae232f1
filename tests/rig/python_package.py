"""The channel's `python` and `python_abi`: Debian's CPython 3.11 relocated into a conda package.

There is no conda `python` to be had here, but Debian's /usr/bin/python3.11
links libpython statically (it needs only libc, libm, libz and libexpat) and
finds its standard library relative to its own location, so sys.prefix
follows the binary. The package is that binary in bin/ and Debian's
lib/python3.11/ beside it, with these differences:

- Debian's `site` is frozen into the binary (editing site.py changes
  nothing). It scans PREFIX/lib/python3.11/dist-packages, not the
  site-packages/ that conda packages install into, so a .pth file in
  dist-packages adds site-packages (whose own .pth files then run).
- Debian's sysconfig makes `posix_local` the default scheme
  (PREFIX/local/lib/...), so pip in the environment would install beside
  it; the packaged sysconfig.py (not frozen) selects `posix_prefix`.
- Left out: EXTERNALLY-MANAGED (PEP 668; the environment is its owner's,
  pip may install into it), bytecode caches, the static libpython with its
  build config (config-3.11-*), and sitecustomize.py (a link into the host's
  /etc).
- site-packages/ holds a README.txt: conda packages cannot hold empty folders.

The interpreter's extension modules link Debian 12's own libraries (libssl3,
libsqlite3-0, libffi8, ...), so the environment runs on Debian bookworm
(the rig's base image installs them). The package declares no `__glibc`
floor: the hub locks for `__glibc 2.28`, and a floor above it would make
every lock unsolvable, while the image it runs in is bookworm anyway.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rattler_build import assemble_package

from tests.rig.conda_packages import COMPRESSION_LEVEL
from tests.rig.wheels import PYTHON_ABI, PYTHON_VERSION
from tooling.errors import ToolingError
from tooling.proc import run

DEBIAN_PYTHON = Path(f"/usr/bin/python{PYTHON_VERSION}")
DEBIAN_STDLIB = Path(f"/usr/lib/python{PYTHON_VERSION}")
STDLIB_LEFT_OUT = ("__pycache__", "config-*", "EXTERNALLY-MANAGED", "sitecustomize.py")
SITE_PACKAGES = f"lib/python{PYTHON_VERSION}/site-packages"
SITE_PACKAGES_PTH = (
    "# Conda packages install into site-packages; Debian's site module only scans dist-packages.\n"
    f"import os, site, sys; site.addsitedir(os.path.join(sys.prefix, {SITE_PACKAGES!r}))\n"
)
# Debian's choice of scheme when not in a virtual environment, in its sysconfig.py.
DEBIAN_DEFAULT_SCHEME = "prefix_scheme = 'posix_local'"
PYTHON_ABI_CONSTRAINT = f"python_abi {PYTHON_VERSION}.* *_{PYTHON_ABI}"


def debian_python_version() -> str:
    """The full version (e.g. 3.11.2) of the interpreter the package is made from."""
    if not DEBIAN_PYTHON.exists():
        raise ToolingError(
            f"{DEBIAN_PYTHON} is missing. The rig's conda channel makes its `python` from Debian's; "
            f"install it with `apt-get install python{PYTHON_VERSION}` (Debian 12)."
        )
    return run([str(DEBIAN_PYTHON), "-c", "import platform; print(platform.python_version())"]).stdout.strip()


def build_python_package(channel_dir: Path, version: str) -> Path:
    """Package Debian's interpreter and standard library as conda-forge's `python` into channel_dir/linux-64/."""
    out_dir = channel_dir / "linux-64"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hubship-python-") as scratch:
        files = Path(scratch)
        _stage_interpreter(files)
        output = assemble_package(
            name="python",
            version=version,
            target_platform="linux-64",
            build_string="debian_0_cpython",
            output_dir=out_dir,
            files_dir=files,
            constrains=[PYTHON_ABI_CONSTRAINT],
            license="Python-2.0",
            summary=f"Debian's CPython {version}, relocatable (made by the hubship test rig)",
            compression_level=COMPRESSION_LEVEL,
        )
    return output.path


def build_python_abi_package(channel_dir: Path) -> Path:
    """conda-forge's `python_abi 3.11 *_cp311`: no files; binary packages depend on it to pin the ABI."""
    out_dir = channel_dir / "linux-64"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hubship-python-abi-") as empty:
        output = assemble_package(
            name="python_abi",
            version=PYTHON_VERSION,
            target_platform="linux-64",
            build_string=f"8_{PYTHON_ABI}",
            output_dir=out_dir,
            files_dir=empty,
            constrains=[f"python {PYTHON_VERSION}.* *_cpython"],
            compression_level=COMPRESSION_LEVEL,
        )
    return output.path


def _stage_interpreter(files: Path) -> None:
    bin_dir = files / "bin"
    bin_dir.mkdir()
    shutil.copy2(DEBIAN_PYTHON, bin_dir / DEBIAN_PYTHON.name)
    for alias in ("python3", "python"):
        (bin_dir / alias).symlink_to(DEBIAN_PYTHON.name)
    stdlib = files / "lib" / DEBIAN_STDLIB.name
    shutil.copytree(DEBIAN_STDLIB, stdlib, symlinks=True, ignore=shutil.ignore_patterns(*STDLIB_LEFT_OUT))
    _select_posix_prefix_scheme(stdlib / "sysconfig.py")
    dist_packages = stdlib / "dist-packages"
    dist_packages.mkdir()
    (dist_packages / "conda-site-packages.pth").write_text(SITE_PACKAGES_PTH, encoding="utf-8")
    site_packages = files / SITE_PACKAGES
    site_packages.mkdir()
    (site_packages / "README.txt").write_text("Packages of this conda environment install here.\n", encoding="utf-8")


def _select_posix_prefix_scheme(sysconfig_py: Path) -> None:
    source = sysconfig_py.read_text(encoding="utf-8")
    if source.count(DEBIAN_DEFAULT_SCHEME) != 1:
        raise ToolingError(
            f"{DEBIAN_STDLIB / 'sysconfig.py'}: expected Debian's default install scheme line "
            f"`{DEBIAN_DEFAULT_SCHEME}` exactly once. Debian changed its patch; update "
            "_select_posix_prefix_scheme in tests/rig/python_package.py to make pip install into site-packages."
        )
    sysconfig_py.write_text(source.replace(DEBIAN_DEFAULT_SCHEME, "prefix_scheme = 'posix_prefix'"), encoding="utf-8")
