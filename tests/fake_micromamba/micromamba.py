"""A stand-in for micromamba, for tests only: answers what conda-lock asks of it, with py-rattler.

No micromamba binary can be had on these machines, and conda-lock's CLI needs one.
`conda-lock lock` runs (see conda_lock/conda_solver.py and invoke_conda.py):

    micromamba --version
    micromamba create --prefix P --dry-run --json --override-channels --channel C ... SPEC ...
    micromamba list --no-pip -p PREFIX --json                          (for --update)
    micromamba update --override-channels --channel C ... -p PREFIX --json --dry-run SPEC ...

with CONDA_SUBDIR naming the target platform and CONDA_OVERRIDE_<NAME> the
virtual packages; these are solved with py-rattler. Like micromamba with
--json, it prints {"actions": {"FETCH": [repodata records], "LINK": [...]},
"success": true, ...}, or {"success": false, "message": ...} and exits 1 when
it cannot solve.

`conda-lock install --conda micromamba --prefix P LOCK` runs (conda_lock.py,
do_conda_install) on the explicit file it renders from LOCK:

    micromamba --version
    micromamba create --quiet --file EXPLICIT --yes --prefix P
    micromamba run --prefix P pip install --no-deps -r REQUIREMENTS    (only with `# pip` lines)

`create --file` installs exactly the file's `URL#MD5` lines, no solve: py-rattler
fetches each URL, refuses a file whose md5 differs from the line's (exit 1;
packages linked before it stay in the prefix), and links the packages into a
new prefix. conda-meta records each package as its line names it (name,
version, build, md5, URL; no dependencies). `run` activates the prefix (PATH,
CONDA_PREFIX, its etc/conda/activate.d scripts) and runs the command there.

conda-lock install has no way to redirect a channel (only --auth), so a test
behind a mirror sets FAKE_MICROMAMBA_MIRRORS to `NAME=URL ...` (test-only): a
URL under https://conda.anaconda.org/NAME is fetched from URL instead, as the
toolkit's [mirrors] redirect a channel.

Whatever else conda-lock could ask (`--name`, `--copy`, an environment.yml
for --file, an existing prefix) fails with a message and a non-zero exit.
It is never shipped and the toolkit never runs it by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn
from urllib.parse import urlsplit

import rattler
from rattler import BuildString, GenericVirtualPackage, PackageName, PackageRecord, RepoDataRecord, Subdir, Version
from rattler.exceptions import GatewayError, InstallerError, SolverError
from rattler.networking import Client, MirrorMiddleware
from rattler.shell import ActivationVariables, Shell, activate

VERSION = "2.0.5"
OVERRIDES = {"GLIBC": "__glibc", "LINUX": "__linux", "CUDA": "__cuda", "OSX": "__osx", "WIN": "__win"}
MIRRORS_VARIABLE = "FAKE_MICROMAMBA_MIRRORS"
CANONICAL_CHANNELS = "https://conda.anaconda.org"
PACKAGE_SUFFIXES = (".conda", ".tar.bz2")


class Unsupported(Exception):
    """A request the stand-in does not implement, or input it cannot read: it says so and exits 2."""


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(VERSION)
        return 0
    commands = {"create": create, "update": update, "list": list_prefix}
    try:
        if argv[:1] == ["run"]:
            return run(argv[1:])
        if not argv or argv[0] not in commands:
            raise Unsupported(f"unsupported command {argv[:1]}")
        return commands[argv[0]](parse(argv[1:]))
    except Unsupported as exc:
        print(f"fake micromamba: {exc}", file=sys.stderr)
        return 2


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake micromamba")
    parser.add_argument("-p", "--prefix")
    parser.add_argument("-c", "--channel", action="append", default=[])
    parser.add_argument("-f", "--file")
    for flag in ("--dry-run", "--json", "--override-channels", "--no-pip", "--yes", "--quiet"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("specs", nargs="*")
    return parser.parse_args(argv)


def platform() -> str:
    return os.environ.get("CONDA_SUBDIR") or "linux-64"


def subdirs() -> list[Subdir]:
    return [Subdir(platform()), Subdir("noarch")]


def virtual_packages() -> list[GenericVirtualPackage]:
    """The target's virtual packages, from the CONDA_OVERRIDE_* variables conda-lock sets."""
    found = []
    if not platform().startswith("win"):
        found.append(("__unix", "0", "0"))
    for variable, name in OVERRIDES.items():
        value = os.environ.get(f"CONDA_OVERRIDE_{variable}")
        if value:
            found.append((name, value, "0"))
    archspec = os.environ.get("CONDA_OVERRIDE_ARCHSPEC")
    if archspec:
        found.append(("__archspec", "1", archspec))
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString(b)) for n, v, b in found]


async def solve(channels: list[str], specs: list[str], locked: list[RepoDataRecord]) -> list[RepoDataRecord]:
    return await rattler.solve(
        sources=[rattler.Channel(channel) for channel in channels],
        specs=specs,
        platforms=subdirs(),
        locked_packages=locked,
        virtual_packages=virtual_packages(),
        channel_relations="disabled",
    )


def fetch_entry(record: RepoDataRecord) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(record.to_json())
    return entry


def link_entry(record: RepoDataRecord) -> dict[str, Any]:
    dist_name = record.file_name.removesuffix(".conda").removesuffix(".tar.bz2")
    return {
        "base_url": record.channel.rstrip("/"),
        "channel": record.channel.rstrip("/"),
        "dist_name": dist_name,
        "name": record.name.normalized,
        "platform": record.subdir,
        "version": str(record.version),
    }


def answer(prefix: str, fetch: list[RepoDataRecord], link: list[RepoDataRecord], unlink: list[str]) -> int:
    actions = {
        "FETCH": [fetch_entry(r) for r in fetch],
        "LINK": [link_entry(r) for r in link],
        "UNLINK": [{"name": name} for name in unlink],
        "PREFIX": prefix,
    }
    print(json.dumps({"actions": actions, "dry_run": True, "prefix": prefix, "success": True}, indent=2))
    return 0


def failure(message: str) -> int:
    print(json.dumps({"success": False, "message": message}))
    return 1


def real(records: list[RepoDataRecord]) -> list[RepoDataRecord]:
    # micromamba never fetches or links virtual packages, though conda-lock's fake channel lists them.
    return [r for r in records if not r.name.normalized.startswith("__")]


def create(args: argparse.Namespace) -> int:
    if args.file is not None:
        return create_from_file(args)
    if not args.dry_run:
        raise Unsupported("create without --dry-run installs only from an explicit --file")
    try:
        records = real(asyncio.run(solve(args.channel, args.specs, [])))
    except (SolverError, GatewayError) as exc:
        return failure(str(exc))
    return answer(args.prefix, records, records, [])


def installed_entries(prefix: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((Path(prefix) / "conda-meta").glob("*.json"))]


def list_prefix(args: argparse.Namespace) -> int:
    listing = [
        {
            "base_url": entry["channel"],
            "build_number": entry["build_number"],
            "build_string": entry["build"],
            "channel": entry["channel"],
            "dist_name": entry["fn"].removesuffix(".conda").removesuffix(".tar.bz2"),
            "name": entry["name"],
            "platform": entry["subdir"],
            "version": entry["version"],
        }
        for entry in installed_entries(args.prefix)
    ]
    print(json.dumps(listing, indent=2))
    return 0


def update(args: argparse.Namespace) -> int:
    """Update the named specs to their newest fit, keeping the installed packages where the solver can."""
    installed = {entry["name"]: entry for entry in installed_entries(args.prefix)}
    targets = {rattler.MatchSpec(spec).name.normalized for spec in args.specs}
    keep = {name: entry for name, entry in installed.items() if name not in targets}
    try:
        locked = asyncio.run(installed_records(args.channel, keep))
        solved = real(asyncio.run(solve(args.channel, [*args.specs, *keep, *python_pin(installed)], locked)))
    except (SolverError, GatewayError) as exc:
        return failure(str(exc))
    changed = [r for r in solved if installed.get(r.name.normalized, {}).get("fn") != r.file_name]
    solved_names = {r.name.normalized for r in solved}
    unlink = [name for name in installed if name not in solved_names or name in {r.name.normalized for r in changed}]
    return answer(args.prefix, changed, changed, unlink)


def python_pin(installed: dict[str, dict[str, Any]]) -> list[str]:
    """micromamba keeps an environment's Python minor version on update unless told --no-py-pin."""
    if "python" not in installed:
        return []
    major, minor = installed["python"]["version"].split(".")[:2]
    return [f"python {major}.{minor}.*"]


async def installed_records(channels: list[str], keep: dict[str, dict[str, Any]]) -> list[RepoDataRecord]:
    gateway = rattler.Gateway()
    found = await gateway.query(
        [rattler.Channel(channel) for channel in channels],
        subdirs(),
        sorted(keep),
        recursive=False,
        channel_relations="disabled",
    )
    files = {entry["fn"] for entry in keep.values()}
    return [record for records in found for record in records if record.file_name in files]


# --- conda-lock install ---------------------------------------------------------------------


def create_from_file(args: argparse.Namespace) -> int:
    """`create --file EXPLICIT --prefix P`: link exactly the file's packages into a new prefix."""
    if args.dry_run or args.specs or args.channel:
        raise Unsupported("create --file takes no --dry-run, channels or specs here")
    prefix = new_prefix(args.prefix)
    records = explicit_records(Path(args.file))
    with tempfile.TemporaryDirectory(prefix="fake-micromamba-pkgs-") as package_cache:
        try:
            asyncio.run(
                rattler.install(
                    records,
                    target_prefix=prefix,
                    cache_dir=Path(package_cache),
                    platform=Subdir(platform()),
                    client=mirrored_client(),
                    execute_link_scripts=True,  # micromamba runs packages' post-link scripts
                    show_progress=False,
                )
            )
        except InstallerError as exc:
            print(f"fake micromamba: installing {args.file} into {prefix} failed: {exc}", file=sys.stderr)
            return 1
    print(f"Transaction finished: {len(records)} packages linked into {prefix}")
    return 0


def new_prefix(prefix: str | None) -> Path:
    if prefix is None:
        raise Unsupported("create --file needs --prefix (environments by --name are not implemented)")
    path = Path(prefix)
    if path.exists() and any(path.iterdir()):
        raise Unsupported(f"{path} exists and is not empty (replacing an environment is not implemented)")
    return path


def explicit_records(path: Path) -> list[RepoDataRecord]:
    """The `URL#MD5` lines of an explicit file, as records named by their URLs."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    if "@EXPLICIT" not in lines:
        raise Unsupported(f"{path} is not an @EXPLICIT file (installing from other files is not implemented)")
    return [explicit_record(line) for line in lines if line and not line.startswith(("#", "@"))]


def explicit_record(line: str) -> RepoDataRecord:
    url, _, md5 = line.partition("#")
    if len(md5) != 32 or not all(c in "0123456789abcdef" for c in md5):
        raise Unsupported(f"{line!r}: expected URL#MD5 (other forms are not implemented)")
    location = PurePosixPath(urlsplit(url).path)
    stem = next((location.name.removesuffix(s) for s in PACKAGE_SUFFIXES if location.name.endswith(s)), None)
    if stem is None or stem.count("-") < 2:
        raise Unsupported(f"{url}: not a conda package file NAME-VERSION-BUILD{PACKAGE_SUFFIXES}")
    name, version, build = stem.rsplit("-", 2)
    record = PackageRecord(
        name=name,
        version=version,
        build=BuildString(build),
        build_number=0,
        subdir=location.parent.name,
        md5=bytes.fromhex(md5),
    )
    channel = url.removesuffix(f"{location.parent.name}/{location.name}")
    return RepoDataRecord(record, location.name, url, channel)


def mirrored_client() -> Client:
    """A client that fetches https://conda.anaconda.org/NAME/... from the mirrors FAKE_MICROMAMBA_MIRRORS names."""
    mirrors: dict[str, list[str]] = {}
    for entry in os.environ.get(MIRRORS_VARIABLE, "").split():
        name, separator, url = entry.partition("=")
        if not (name and separator and url):
            raise Unsupported(f"{MIRRORS_VARIABLE}: {entry!r} is not NAME=URL")
        mirrors[f"{CANONICAL_CHANNELS}/{name}"] = [url.rstrip("/")]
    return Client([MirrorMiddleware(mirrors)]) if mirrors else Client()


def run(argv: list[str]) -> NoReturn:
    """`run --prefix P COMMAND...`: COMMAND in the activated prefix (PATH, CONDA_PREFIX, activation scripts)."""
    parser = argparse.ArgumentParser(prog="fake micromamba run")
    parser.add_argument("-p", "--prefix", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if not args.command:
        raise Unsupported("run needs a command")
    script = activate(Path(args.prefix), ActivationVariables(), Shell.bash, Subdir(platform())).script
    os.execvp("bash", ["bash", "-c", f'{script}\nexec "$@"', "micromamba-run", *args.command])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
