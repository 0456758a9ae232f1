"""What a small change to the lock costs with the environment in layers, on the rig; and what the layers cost.

    python benchmarks/layer_reuse.py

Needs the rig's Docker engine (DOCKER_HOST, HUBSHIP_DOCKER; see
tests/rig/start-dockerd.sh). It locks this repository's hub against the rig's
channel, builds it on a base image no build has seen, and pushes it to a
registry of its own (127.0.0.1). Then, from the same hub, three changed locks,
each built and pushed after the first image:

- a leaf removed: `pytest` (a package of environment.yml nothing depends on)
  left out of environment.yml, relocked;
- a top-level package upgraded: `xarray` in a new version, in a copy of the
  rig's channel (the same files, a higher version in its record), relocked;
- a package deep in the tree changed: `numpy` (pandas, h5py, matplotlib and
  xarray depend on it) in a new build, in that channel copy, relocked.

For each it prints the bytes of the layers the first image lacks (uncompressed,
as `docker history` counts them) and the bytes the push uploaded (compressed, as
the registry stores them), each also as a share of the environment (its layers'
bytes in the first image, uncompressed and compressed). Budget: at most 10%
for the first two.

Last, a cold build (every Dockerfile step run, the package downloads cached) of
the first lock with the environment in one layer, as the toolkit built it before
(commit ONE_LAYER_COMMIT, run from an export of that commit), against the
current build: at most 20% slower, image at most 2% larger. CPU may be shared
with other work on the machine; run it on a quiet one for figures to compare.
The images it builds are removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import tomlkit  # noqa: E402
from conda_package_handling.api import create, extract  # noqa: E402
from rattler.index import index_fs  # noqa: E402

from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import CHANNEL_NAME, ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.docker import build_with_buildkit, rig_docker  # noqa: E402
from tests.rig.hub_fixtures import RigHub, copy_hub, make_rig_hub  # noqa: E402
from tests.rig.registry import serve_registry  # noqa: E402
from tooling.build import BuildResult, build_image  # noqa: E402
from tooling.buildpack.layers import layer_groups  # noqa: E402
from tooling.buildpack.plan import InstallPlan, read_install_plan  # noqa: E402
from tooling.config import load_config  # noqa: E402
from tooling.docker import Docker  # noqa: E402
from tooling.lock import lock_environment  # noqa: E402
from tooling.lockrequest import LockRequest  # noqa: E402
from tooling.push import PushRequest, PushResult, push_image  # noqa: E402
from tooling.registry import Credentials, RegistryClient  # noqa: E402
from tooling.state import State, TestedImage  # noqa: E402

# The toolkit before the environment was split into layers: its build installs the lock in one step.
ONE_LAYER_COMMIT = "498af0ba4997135f431cbaad6e1b4f26f8ffb124"
# The tables of hub.toml a build reads.
BUILD_TABLES = ("image", "environment", "mirrors", "docker")
LEAF = "pytest"
TOP_LEVEL = "xarray"
DEEP = "numpy"
BUDGET_SHARE = 0.10
SLOWER_BUDGET = 1.20
LARGER_BUDGET = 1.02


@dataclass(frozen=True)
class Cost:
    new_bytes: int
    uploaded_bytes: int


def fresh_base_image(docker: Docker, folder: Path) -> str:
    """The rig's base image with one more small file, new in every run: a base no build has cached steps for."""
    token = secrets.token_hex(8)
    context = folder / f"base-{token}"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {ensure_base_image(docker)}\nRUN echo {token} > /etc/hubship-bench\n")
    reference = f"hubship-bench/base:{token}"
    build_with_buildkit(docker, "--network", "none", "--tag", reference, str(context))
    return reference


# --- a copy of the rig's channel with one package changed ---------------------------------------


def variant_channel(source: Path, target: Path, changes: dict[str, Callable[[dict[str, object]], None]]) -> Path:
    """`source` (a conda-forge folder) copied to `target`, plus, for each named package, a changed record of it."""
    shutil.copytree(source, target, copy_function=os.link)
    for subdir in ("linux-64", "noarch"):
        for name in ("repodata.json", "repodata_shards.msgpack.zst", "repodata.json.zst", "shards"):
            path = target / subdir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    for package, change in changes.items():
        archive = next(path for path in sorted(target.glob(f"*/{package}-*.conda")) if path.name.count("-") >= 2)
        _repack(archive, change)
    asyncio.run(index_fs(target))
    return target


def _repack(archive: Path, change: Callable[[dict[str, object]], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="hubship-bench-repack-") as scratch:
        tree = Path(scratch) / "tree"
        extract(str(archive), dest_dir=str(tree))
        index_file = tree / "info" / "index.json"
        index = json.loads(index_file.read_text())
        change(index)
        index_file.write_text(json.dumps(index, indent=2, sort_keys=True))
        files = sorted(str(path.relative_to(tree)) for path in tree.rglob("*") if not path.is_dir())
        name = f"{index['name']}-{index['version']}-{index['build']}.conda"
        create(str(tree), files, name, out_folder=str(archive.parent))


def new_version(index: dict[str, object]) -> None:
    index["version"] = f"{index['version']}.1"


def new_build(index: dict[str, object]) -> None:
    number = int(str(index["build_number"])) + 1
    index["build_number"] = number
    index["build"] = str(index["build"]).rsplit("_", 1)[0] + f"_{number}"


# --- builds and pushes ------------------------------------------------------------------------


def relock(hub: RigHub, *, drop: str = "", channel_url: str = "") -> None:
    if drop:
        environment = hub.root / "environments" / "environment.yml"
        lines = environment.read_text().splitlines(keepends=True)
        environment.write_text("".join(line for line in lines if line.strip() != f"- {drop}"))
    if channel_url:
        hub.set_hub_toml("mirrors", "conda-forge", channel_url)
    lock_environment(LockRequest.from_config(load_config(hub.config)))


def build_and_push(hub: RigHub) -> tuple[BuildResult, PushResult]:
    result = build_image(hub.request())
    report = str(hub.root / ".hubship" / "reports" / "test.md")
    # The push stage's gate; what is measured here is the build and the push.
    State.load(hub.root).record_test(TestedImage(result.reference, result.image_id, passed=True, report=report))
    return result, push_image(PushRequest.from_config(load_config(hub.config)))


def cost(first: BuildResult, changed: BuildResult, pushed: PushResult) -> Cost:
    held = {layer.diff_id for layer in first.environment_layers}
    new = sum(layer.size for layer in changed.environment_layers if layer.diff_id not in held)
    return Cost(new, pushed.uploaded_bytes)


def only_needed_by(plan: InstallPlan) -> dict[str, set[str]]:
    """Each root (a package nothing depends on) -> itself and the packages no other root needs."""
    names = {package.name for package in plan.packages}
    needs = {p.name: {d.split()[0] for d in p.depends} & names - {p.name} for p in plan.packages}
    roots = sorted(names - set().union(*needs.values()))
    reached: dict[str, set[str]] = {}
    for root in roots:
        pending, seen = [root], {root}
        while pending:
            for name in needs[pending.pop()] - seen:
                seen.add(name)
                pending.append(name)
        reached[root] = seen
    return {
        root: seen - set().union(*(reached[other] for other in roots if other != root))
        for root, seen in reached.items()
    }


def leaf_removal_bounds(hub: RigHub, first: BuildResult) -> dict[str, int]:
    """Each root -> the bytes of the layers its removal (with what only it needs) touches: an upper bound."""
    plan = read_install_plan(hub.explicit_lock, hub.root / "environments" / "conda-lock.yml")
    group_of = {package.name: group.name for group in layer_groups(plan) for package in group.packages}
    size_of = {layer.name: layer.size for layer in first.environment_layers}
    return {
        root: sum(size_of[group] for group in {group_of[name] for name in gone})
        for root, gone in only_needed_by(plan).items()
    }


def compressed_environment(registry: str, name: str, first: BuildResult) -> int:
    environment = {layer.diff_id for layer in first.environment_layers}
    with RegistryClient(registry, Credentials("none")) as client:
        return sum(layer.size for layer in client.layers(name, first.tag) if layer.diff_id in environment)


def cold_build_seconds(hub: RigHub, toolkit: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "tooling", "--config", str(hub.config), "build"],
        check=True,
        cwd=hub.root,
        env={**os.environ, "PYTHONPATH": str(toolkit)},
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def with_one_layer_hub_toml(hub: RigHub) -> None:
    """ONE_LAYER_COMMIT's hub.toml with this hub's build tables: that toolkit refuses the keys added since."""
    shown = subprocess.run(
        ["git", "-C", str(PROJECT), "show", f"{ONE_LAYER_COMMIT}:hub.toml"], check=True, capture_output=True, text=True
    )
    document = tomlkit.parse(shown.stdout)
    current = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
    for table in BUILD_TABLES:
        document[table] = current[table]
    hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")


def built_size(docker: Docker, hub: RigHub) -> int:
    reference = State.load(hub.root).require_built().reference
    image = docker.inspect_image(reference)
    assert image is not None, reference
    return image.size


def one_layer_toolkit(folder: Path) -> Path:
    """ONE_LAYER_COMMIT's toolkit, exported from git."""
    archive = subprocess.run(
        ["git", "-C", str(PROJECT), "archive", ONE_LAYER_COMMIT, "tooling"], check=True, capture_output=True
    ).stdout
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def remove_images(docker: Docker, *repositories: str) -> None:
    """Every image of these repositories (the ones this run built and pushed), by reference."""
    listed = docker.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    for reference in listed:
        if reference.rsplit(":", 1)[0] in repositories:
            docker.run("rmi", reference, check=False)


def share(part: int, whole: int) -> str:
    return f"{part / 1e6:8.1f} MB ({100 * part / whole:5.1f}%)"


def main() -> int:
    docker = rig_docker()
    rig = ensure_channel()
    with tempfile.TemporaryDirectory(prefix="hubship-bench-layers-") as scratch:
        work = Path(scratch)
        upgraded = variant_channel(rig / CHANNEL_NAME, work / "upgraded" / CHANNEL_NAME, {TOP_LEVEL: new_version})
        rebuilt = variant_channel(rig / CHANNEL_NAME, work / "rebuilt" / CHANNEL_NAME, {DEEP: new_build})
        with (
            serve_channel(rig) as served,
            serve_channel(upgraded.parent) as served_upgraded,
            serve_channel(rebuilt.parent) as served_rebuilt,
            serve_registry() as registry,
        ):
            base = fresh_base_image(docker, work)
            hub = make_rig_hub(
                work / "hub", base_image=base, channel_url=served.channel_url(CHANNEL_NAME), registry=registry.address
            )
            name = hub.request().name
            started = time.monotonic()
            first, first_push = build_and_push(hub)
            layered_seconds = time.monotonic() - started - first_push.seconds
            environment = sum(layer.size for layer in first.environment_layers)
            compressed = compressed_environment(registry.address, name, first)
            scenarios = {
                f"remove the leaf {LEAF}": {"drop": LEAF},
                f"upgrade the top-level {TOP_LEVEL}": {"channel_url": served_upgraded.channel_url(CHANNEL_NAME)},
                f"change {DEEP}, deep in the tree": {"channel_url": served_rebuilt.channel_url(CHANNEL_NAME)},
            }
            print(f"environment: {len(first.environment_layers)} layers, {environment / 1e6:.1f} MB")
            print(f"             {compressed / 1e6:.1f} MB compressed in the registry")
            print(f"{'change':<36} {'new layers':>22}   {'uploaded by the push':>22}")
            for number, (title, change) in enumerate(scenarios.items()):
                changed_hub = copy_hub(hub, work / f"changed-{number}", registry.address)
                relock(changed_hub, **change)
                result, pushed = build_and_push(changed_hub)
                spent = cost(first, result, pushed)
                verdict = ""
                if number < 2:  # the budget holds for the first two; the third is reported as it is
                    fits = (
                        spent.new_bytes <= BUDGET_SHARE * environment
                        and spent.uploaded_bytes <= BUDGET_SHARE * compressed
                    )
                    verdict = "  within 10%" if fits else "  OVER 10%"
                new, uploaded = share(spent.new_bytes, environment), share(spent.uploaded_bytes, compressed)
                print(f"{title:<36} {new}   {uploaded}{verdict}")
            bounds = leaf_removal_bounds(hub, first)
            print("removing any one root of the lock (with what only it needs), layers it touches at most:")
            for root, touched in sorted(bounds.items(), key=lambda item: item[1]):
                print(f"  {root:<34} {share(touched, environment)}")
            one_layer = one_layer_toolkit(work / "one-layer")
            cold = {}
            for label, toolkit in (("one layer", one_layer), ("layers", PROJECT)):
                cold_hub = copy_hub(hub, work / f"cold-{label.replace(' ', '-')}", registry.address)
                cold_hub.set_hub_toml("image", "base", fresh_base_image(docker, work))
                if toolkit is one_layer:
                    with_one_layer_hub_toml(cold_hub)
                cold[label] = (cold_build_seconds(cold_hub, toolkit), built_size(docker, cold_hub))
            remove_images(docker, f"{registry.address}/{name}", "hubship-bench/base")
    (one_s, one_size), (many_s, many_size) = cold["one layer"], cold["layers"]
    print(f"first build with push skipped from the figure: {layered_seconds:.1f} s")
    print(f"cold build, one layer: {one_s:6.1f} s, image {one_size / 1e6:8.1f} MB")
    print(f"cold build, layers:    {many_s:6.1f} s, image {many_size / 1e6:8.1f} MB")
    slower, larger = many_s / one_s, many_size / one_size
    print(
        f"layers vs one layer: {100 * (slower - 1):+.1f}% time (budget +20%), {100 * (larger - 1):+.2f}% size", end=""
    )
    print(" (budget +2%)")
    print(f"within budget: time {slower <= SLOWER_BUDGET}, size {larger <= LARGER_BUDGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
