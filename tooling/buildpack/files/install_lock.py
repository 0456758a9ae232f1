"""Install an explicit conda lock into a prefix inside the image build, with py-rattler, and split it into layers.

This script runs in the environment stage of the image build (see
`tooling/buildpack/`), as root, with the throwaway build environment's Python
(the lock's own `python`, plus a py-rattler wheel on PYTHONPATH). Nothing it
runs with reaches the image: the build environment, this script and the
install plan are bind mounts, the downloaded packages live in a BuildKit
cache mount, and the mirror list is a BuildKit secret. The image's own stage
then copies each layer group's folder (`--layers`/NAME) in one step each, so
each group becomes one image layer (tooling/buildpack/layers.py).

What it does, in order:

1. Fetch: every package of the plan (the explicit lock's `URL#MD5` lines, in
   their order, with the sha256 conda-lock.yml records for each) is
   downloaded by py-rattler's HTTP client, which sends requests for the
   canonical https://conda.anaconda.org/... URLs to the mirrors it is given.
   Each file's md5 AND sha256 are checked against the lock, also for a file
   found in the cache (which is keyed by both hashes). py-rattler's installer
   checks only one hash (sha256 when it has one), so both are checked here,
   before anything is linked: one mismatch and nothing is installed.
2. Link: py-rattler installs the verified files (no solve: exactly these
   records) into the prefix, extracting them into a package cache beside the
   prefix (so files are hard-linked, with the times their archive gives them)
   that is deleted at the end, so no package cache stays in the image. Link
   scripts are not run (py-rattler's default).
3. Record: conda-meta gets the lock's canonical URL of every package (the
   installer read local files) and no path of the deleted package cache.
4. pip: the lock's `# pip NAME @ URL#sha256=...` lines are installed with the
   environment's own pip, `--no-deps --require-hashes --no-index`.
5. Fixed times: every file this run wrote (conda-meta, entry points, files
   with the prefix patched in, pip's, the .pyc below) gets the same time
   (`--fixed-time`); files linked from package archives keep the archive's
   times. So the files are the same bytes and times whenever their package
   is, and the .pyc files packages ship stay valid.
6. Bytecode: py-rattler writes no .pyc for noarch packages, so the
   environment's own Python compiles every module that has none (after the
   times are fixed: a .pyc records its source's time); a hub starts a server
   per user, and each start would otherwise compile them.
7. Check: conda-meta holds every package of the plan.
8. Layers: every file of the environment moves to its group's folder, at its
   path in the image: what a package's conda-meta record lists (or, for a
   pip package, its RECORD), the record itself, and the .pyc of those
   modules go with the package; files no package lists (py-rattler's
   CACHEDIR.TAG and conda-meta/history) go with the first group, which
   changes least, and the summary names any others. Every folder of a
   group's tree has the owner and mode of the folder it stands for and the
   fixed time, and every file the owner `--owner`, so copying the tree into
   the image makes the same layer whenever the group's packages are the same.

Errors are printed as `hubship-install: error: ...` lines, which the build
stage shows as they are; the exit status is 3 for a hash mismatch, 1 for
any other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rattler import RepoDataRecord, install
from rattler.networking import AddHeadersMiddleware, Client, MirrorMiddleware
from rattler.package_streaming import download_to_path
from rattler.platform import Subdir

MARK = "hubship-install:"
HASH_MISMATCH_EXIT = 3
# Downloads at once: enough to fill a fast link, few enough for a small mirror.
CONCURRENT_DOWNLOADS = 8
CHUNK = 1 << 20
# How far behind time_ns() a file's time may be: the kernel stamps files from a clock that ticks
# every few milliseconds. Package archives' own file times are far older.
CLOCK_MARGIN_NS = 1_000_000_000
# What py-rattler writes into every prefix besides the packages' files; they go with the first group.
PREFIX_FILES = frozenset({"CACHEDIR.TAG", "conda-meta/history"})
# How many of the other files no package lists the summary names.
UNLISTED_SHOWN = 5


class InstallError(Exception):
    """A failure this script explains in its own words."""

    exit_code = 1


class HashMismatch(InstallError):
    exit_code = HASH_MISMATCH_EXIT


@dataclass(frozen=True)
class Package:
    url: str
    md5: str
    sha256: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def channel(self) -> str:
        """The channel's base URL: the package URL without SUBDIR/FILE."""
        return self.url.rsplit("/", 2)[0] + "/"


@dataclass(frozen=True)
class PipPackage:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Group:
    """One layer's packages (tooling/buildpack/layers.py), in install order."""

    name: str
    packages: tuple[Package, ...]
    pip: tuple[PipPackage, ...]


def say(message: str) -> None:
    print(f"{MARK} {message}", flush=True)


def read_plan(path: Path) -> list[Group]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [
        Group(
            group["name"],
            tuple(Package(entry["url"], entry["md5"], entry["sha256"]) for entry in group["packages"]),
            tuple(PipPackage(entry["name"], entry["url"], entry["sha256"]) for entry in group["pip"]),
        )
        for group in data["groups"]
    ]


def read_mirrors(path: Path) -> dict[str, list[str]]:
    """Canonical channel URL -> mirror URLs; an absent secret means no mirrors."""
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8") or "{}")
    return {canonical: [mirror] for canonical, mirror in data.items()}


def mirror_client(mirrors: dict[str, list[str]]) -> Client:
    """py-rattler's HTTP client, sending each canonical channel URL to its mirrors.

    py-rattler's mirror rewrite drops a USER:PASSWORD@ written in a mirror's
    URL, so a mirror behind basic auth would answer 401. The credentials are
    taken out of the URL and sent as an Authorization header, by a middleware
    that runs after the rewrite and only for that mirror's host and path.
    """
    if not mirrors:
        return Client()
    logins: list[tuple[str, str, str]] = []
    bare: dict[str, list[str]] = {}
    for canonical, urls in mirrors.items():
        bare[canonical] = []
        for url in urls:
            parts = urlsplit(url)
            if parts.username is not None:
                pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
                header = "Basic " + base64.b64encode(pair.encode()).decode()
                logins.append((parts.hostname or "", parts.path.rstrip("/") + "/", header))
            bare[canonical].append(urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])))

    def authorization(host: str, path: str) -> dict[str, str] | None:
        for login_host, prefix, header in logins:
            if host == login_host and path.startswith(prefix):
                return {"Authorization": header}
        return None

    return Client([MirrorMiddleware(bare), AddHeadersMiddleware(authorization)])


# --- fetch and verify --------------------------------------------------------------------


def file_hashes(path: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def mismatch(package: Package, path: Path) -> str:
    """What differs between the file and the lock, or '' when both hashes match."""
    md5, sha256 = file_hashes(path)
    problems = [
        f"{kind} expected {expected}, got {actual}"
        for kind, expected, actual in (("md5", package.md5, md5), ("sha256", package.sha256, sha256))
        if expected != actual
    ]
    return "; ".join(problems)


def cached_archive(archives: Path, package: Package) -> Path:
    """Where a verified file is kept: a folder per (sha256, md5), so an edited lock never matches an old file."""
    return archives / f"{package.sha256}.{package.md5}" / package.file_name


async def fetch(client: Client, package: Package, archives: Path, slots: asyncio.Semaphore) -> Path:
    """The package's file, downloaded unless the cache has it, checked against both hashes of the lock."""
    target = cached_archive(archives, package)
    if target.is_file():
        if not mismatch(package, target):
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    async with slots:
        await download_to_path(client, package.url, partial)
    problem = mismatch(package, partial)
    if problem:
        partial.unlink()
        raise HashMismatch(f"{package.file_name} ({package.url}) does not match the lock: {problem}")
    partial.replace(target)
    return target


async def fetch_all(packages: Sequence[Package], mirrors: dict[str, list[str]], archives: Path) -> list[Path]:
    client = mirror_client(mirrors)
    slots = asyncio.Semaphore(CONCURRENT_DOWNLOADS)
    results = await asyncio.gather(
        *(fetch(client, package, archives, slots) for package in packages), return_exceptions=True
    )
    mismatches = [str(result) for result in results if isinstance(result, HashMismatch)]
    if mismatches:
        raise HashMismatch("; ".join(mismatches) + ". Nothing was installed.")
    for package, result in zip(packages, results, strict=True):
        if isinstance(result, BaseException):
            raise InstallError(f"downloading {package.url} failed: {result}")
    return [result for result in results if isinstance(result, Path)]


# --- link --------------------------------------------------------------------------------


async def local_records(packages: Sequence[Package], files: Sequence[Path]) -> list[RepoDataRecord]:
    """Records read from the verified files themselves (index.json), linked from there, named by the lock's channel."""
    records = []
    for package, path in zip(packages, files, strict=True):
        record = await RepoDataRecord.from_package_archive(path)
        record.channel = package.channel
        record.md5 = bytes.fromhex(package.md5)
        record.sha256 = bytes.fromhex(package.sha256)
        records.append(record)
    return records


def link(records: list[RepoDataRecord], prefix: Path) -> None:
    # The package cache is beside the prefix, on the same file system, so files are hard-linked with
    # the times the package archive gives them; it is gone before the layers are made, and at a fixed
    # path because conda-meta records it (link.source).
    package_cache = package_cache_of(prefix)
    try:
        asyncio.run(
            install(
                records,
                target_prefix=prefix,
                cache_dir=package_cache,
                installed_packages=[],
                platform=Subdir("linux-64"),
                execute_link_scripts=False,
                show_progress=False,
            )
        )
    finally:
        shutil.rmtree(package_cache, ignore_errors=True)


def package_cache_of(prefix: Path) -> Path:
    return prefix.parent / ".hubship-package-cache"


def meta_path(package: Package) -> str:
    """Where py-rattler records an installed package: conda-meta/NAME-VERSION-BUILD.json, as the archive is named."""
    stem = package.file_name.removesuffix(".conda").removesuffix(".tar.bz2")
    return f"conda-meta/{stem}.json"


def meta_file(prefix: Path, package: Package) -> Path:
    return prefix / meta_path(package)


def record_canonical_urls(prefix: Path, packages: Sequence[Package]) -> dict[Package, tuple[str, ...]]:
    """conda-meta says where each package comes from: the lock's URL, not the local file it was linked from.

    Returns, for each package, the paths its record lists (relative to the prefix): every file it linked.
    """
    linked = {}
    for package in packages:
        meta = meta_file(prefix, package)
        if not meta.exists():
            continue  # check_installed names it
        data = json.loads(meta.read_text(encoding="utf-8"))
        data["url"] = package.url
        data.pop("extracted_package_dir", None)
        partial = meta.with_name(f".{meta.name}.partial")
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        partial.replace(meta)
        linked[package] = tuple(data.get("files", []))
    return linked


# --- pip, bytecode, check ----------------------------------------------------------------


def run(argv: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(list(argv), check=False, env=env)
    if completed.returncode != 0:
        raise InstallError(f"{what} failed with exit code {completed.returncode} (its output is above)")


def install_pip(prefix: Path, pip: Sequence[PipPackage]) -> None:
    python = prefix / "bin" / "python"
    if not (python.exists() and any((prefix / "conda-meta").glob("pip-*.json"))):
        raise InstallError("the lock has `# pip` lines but no conda `pip` package: add pip to environment.yml")
    # The build runs this as root, on purpose (the layers' folders get the image's owners); pip warns of it.
    quiet_as_root = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    with tempfile.TemporaryDirectory(prefix="hubship-pip-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(
            "".join(f"{entry.name} @ {entry.url} --hash=sha256:{entry.sha256}\n" for entry in pip), encoding="utf-8"
        )
        run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--require-hashes",
                "--no-index",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--no-warn-script-location",
                "--progress-bar",
                "off",
                "--requirement",
                str(requirements),
            ],
            "pip install of the lock's pip packages",
            quiet_as_root,
        )


def written_since(folder: Path, since_ns: int) -> list[str]:
    """Every path under `folder` (itself included) created or changed at `since_ns` or later, sorted.

    A folder changes when an entry is added to it, so this holds every folder a step added or
    changed; files hard-linked from package archives keep the archive's (older) times.
    """
    found = [str(folder)] if folder.lstat().st_mtime_ns >= since_ns else []
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                if entry.stat(follow_symlinks=False).st_mtime_ns >= since_ns:
                    found.append(entry.path)
    return sorted(found)


def compile_bytecode(prefix: Path, paths: Sequence[str]) -> None:
    """.pyc files for the modules this step added that have none, in one worker per core, in a fixed order."""
    sources = [path for path in paths if path.endswith(".py") and "/lib/python3" in path]
    if not sources:
        return
    workers = max(1, min(os.cpu_count() or 1, len(sources)))
    with tempfile.TemporaryDirectory(prefix="hubship-compile-") as scratch:
        running = []
        for worker in range(workers):
            listing = Path(scratch) / f"sources-{worker}.txt"
            listing.write_text("".join(f"{path}\n" for path in sources[worker::workers]), encoding="utf-8")
            # A few files of some packages are not Python 3 on purpose (test data, templates):
            # compileall reports them and exits non-zero; they stay source, as with conda.
            compileall = [str(prefix / "bin" / "python"), "-m", "compileall", "-qq", "-i", str(listing)]
            running.append(subprocess.Popen(compileall))
        for process in running:
            process.wait()


def written_among(paths: Sequence[str], since_ns: int) -> list[str]:
    """The paths of `paths` created or changed at `since_ns` or later (files with the prefix patched in, say)."""
    return [path for path in paths if os.path.lexists(path) and os.lstat(path).st_mtime_ns >= since_ns]


def fix_times(paths: Sequence[str], fixed_time: int) -> None:
    for path in paths:
        os.utime(path, (fixed_time, fixed_time), follow_symlinks=False)


def check_installed(prefix: Path, packages: Sequence[Package]) -> None:
    missing = sorted(package.file_name for package in packages if not meta_file(prefix, package).exists())
    if missing:
        raise InstallError(f"conda-meta lacks {len(missing)} of the lock's packages after the install: {missing[:5]}")


def size_of(paths: Sequence[str]) -> int:
    return sum(Path(path).lstat().st_size for path in paths if Path(path).is_file() and not Path(path).is_symlink())


# --- layers ------------------------------------------------------------------------------


def group_of_each_file(prefix: Path, groups: Sequence[Group], linked: dict[Package, tuple[str, ...]]) -> dict[str, str]:
    """Path relative to the prefix -> the group of the package whose record lists it (or is it).

    A conda package's record lists its files; a pip package's RECORD (in its .dist-info) lists its own.
    """
    owners = {}
    for group in groups:
        for package in group.packages:
            for path in (meta_path(package), *linked.get(package, ())):
                owners[path] = group.name
    pip_group = next((group.name for group in groups if group.pip), None)
    if pip_group is not None:
        for path in pip_installed(prefix, owners):
            owners.setdefault(path, pip_group)
    return owners


def pip_installed(prefix: Path, conda_files: Container[str]) -> list[str]:
    """The files pip's RECORDs list, relative to the prefix, for the .dist-info folders no conda record lists."""
    found = []
    for record in sorted(prefix.glob("lib/python3*/site-packages/*.dist-info/RECORD")):
        if str(record.relative_to(prefix)) in conda_files:
            continue
        site_packages = record.parent.parent
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if row:
                    found.append(os.path.relpath(os.path.normpath(site_packages / row[0]), prefix))
    return found


def compiled_from(path: str) -> str:
    """The module a .pyc in a __pycache__ folder was compiled from (a/__pycache__/b.cpython-311.pyc: a/b.py)."""
    folder, _, name = path.rpartition("/")
    parent, _, cache = folder.rpartition("/")
    if cache != "__pycache__" or not name.endswith(".pyc"):
        return ""
    module = name.split(".", 1)[0] + ".py"
    return f"{parent}/{module}" if parent else module


def environment_entries(prefix: Path) -> tuple[list[Path], list[Path]]:
    """The folders (the prefix included) and the other paths (files, links) under the prefix."""
    folders, others = [prefix], []
    pending = [prefix]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                    pending.append(Path(entry.path))
                else:
                    others.append(Path(entry.path))
    return folders, others


class LayerTrees:
    """One folder per group under `root`, each a tree of the image's paths, to be copied onto `/`.

    A tree's folders stand for the image's: each has the owner and mode of the folder it stands for, and
    the fixed time (set once every file is in place: adding a file changes its folder's time).
    """

    def __init__(self, root: Path, fixed_time: int) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.fixed_time = fixed_time
        self.made: list[Path] = []
        self.known: set[Path] = set()
        self.sizes: dict[str, int] = {}

    def place(self, group: str, path: Path) -> None:
        """Move `path` into `group`'s tree, at the same path."""
        self.folder(group, path.parent)
        size = path.lstat().st_size
        path.rename(self.root / group / path.relative_to("/"))
        self.sizes[group] = self.sizes.get(group, 0) + size

    def folder(self, group: str, folder: Path) -> None:
        target = self.root / group / folder.relative_to("/")
        if target in self.known:
            return
        if folder != folder.parent:
            self.folder(group, folder.parent)
        info = folder.lstat()
        target.mkdir()
        os.chown(target, info.st_uid, info.st_gid)
        target.chmod(stat.S_IMODE(info.st_mode))
        self.known.add(target)
        self.made.append(target)

    def fix_times(self) -> None:
        fix_times([str(folder) for folder in self.made], self.fixed_time)


def split_into_layers(
    prefix: Path, groups: Sequence[Group], linked: dict[Package, tuple[str, ...]], trees: LayerTrees, owner: int
) -> list[str]:
    """Every file of the environment into its group's tree, owned by `owner`; the files no package lists.

    py-rattler's own files (PREFIX_FILES) go with the first group unnamed; any other is named.
    """
    owners = group_of_each_file(prefix, groups, linked)
    first = groups[0].name
    folders, files = environment_entries(prefix)
    for path in (*folders, *files):
        os.lchown(path, owner, owner)
    unlisted = []
    for path in files:
        relative = str(path.relative_to(prefix))
        group = owners.get(relative) or owners.get(compiled_from(relative))
        if group is None:
            group = first
            if relative not in PREFIX_FILES:
                unlisted.append(relative)
        trees.place(group, path)
    trees.fix_times()
    return unlisted


# --- main --------------------------------------------------------------------------------


def install_lock(
    groups: Sequence[Group], prefix: Path, cache: Path, mirrors: Path, fixed_time: int
) -> dict[Package, tuple[str, ...]]:
    """Install every group's packages into the prefix; what each conda package linked."""
    # File times come from the kernel's coarse clock, which may be a tick behind time_ns().
    since_ns = time.time_ns() - CLOCK_MARGIN_NS
    packages = [package for group in groups for package in group.packages]
    pip = [entry for group in groups for entry in group.pip]
    linked: dict[Package, tuple[str, ...]] = {}
    if packages:
        say(f"fetching and verifying {len(packages)} packages (md5 and sha256 of each)")
        files = asyncio.run(fetch_all(packages, read_mirrors(mirrors), cache / "archives"))
        say(f"linking {len(packages)} packages into {prefix}")
        link(asyncio.run(local_records(packages, files)), prefix)
        linked = record_canonical_urls(prefix, packages)
    if pip:
        say(f"installing {len(pip)} pip packages with the environment's pip")
        install_pip(prefix, pip)
    envs = prefix.parent
    # conda-meta lists what the packages linked; pip's files are found by their times.
    listed = [str(prefix / path) for paths in linked.values() for path in paths]
    added = sorted({*listed, *(written_since(envs, since_ns) if pip else [])})
    # Fixed times before compiling: a .pyc records its source's time.
    fix_times(written_among(added, since_ns), fixed_time)
    say("compiling bytecode")
    compile_bytecode(prefix, added)
    check_installed(prefix, packages)
    fix_times(written_since(envs, since_ns), fixed_time)
    return linked


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install an explicit conda lock into a prefix, split into layers.")
    parser.add_argument("--plan", type=Path, required=True, help="the install plan (JSON) the build stage wrote")
    parser.add_argument("--prefix", type=Path, required=True, help="the environment to create (an empty folder)")
    parser.add_argument("--cache", type=Path, required=True, help="where verified package files are kept")
    parser.add_argument("--mirrors", type=Path, required=True, help="JSON: canonical channel URL -> mirror URL")
    parser.add_argument("--fixed-time", type=int, required=True, help="seconds since the epoch for every path")
    parser.add_argument("--layers", type=Path, required=True, help="where each layer group's tree is made")
    parser.add_argument("--owner", type=int, required=True, help="uid and gid of the environment's files")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        groups = read_plan(args.plan)
        linked = install_lock(groups, args.prefix, args.cache, args.mirrors, args.fixed_time)
        trees = LayerTrees(args.layers, args.fixed_time)
        unlisted = split_into_layers(args.prefix, groups, linked, trees, args.owner)
    except InstallError as exc:
        say(f"error: {exc}")
        return exc.exit_code
    except Exception as exc:  # rattler's and the OS's errors: one line, which the build stage shows
        say(f"error: {type(exc).__name__}: {exc}".replace("\n", " / "))
        return 1
    for line in summary(groups, trees, unlisted, time.monotonic() - started):
        say(line)
    return 0


def summary(groups: Sequence[Group], trees: LayerTrees, unlisted: Sequence[str], seconds: float) -> list[str]:
    conda, pip = sum(len(group.packages) for group in groups), sum(len(group.pip) for group in groups)
    size, layers = sum(trees.sizes.values()) / 1e6, len(trees.sizes)
    lines = [f"installed {conda} conda and {pip} pip packages ({size:.0f} MB) in {layers} layers in {seconds:.1f} s"]
    if unlisted:
        named = ", ".join(sorted(unlisted)[:UNLISTED_SHOWN])
        lines.append(f"{len(unlisted)} files no package lists are in layer {groups[0].name}, for example {named}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
