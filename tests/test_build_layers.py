"""The environment's layer groups: a pure function of the lock, and a small change to the lock moves few packages.

Read from this repository's own lock and from pangeo's (real conda-forge records). Last, the installer's
split of an installed environment into the layers' folders, on a real folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import stat
from pathlib import Path

import pytest

from tests.lock_fixtures import PANGEO, PROJECT
from tooling.build import environment_layers
from tooling.buildpack import LAYERS_ROOT
from tooling.buildpack.files.install_lock import Group, LayerTrees, Package, PipPackage, split_into_layers
from tooling.buildpack.layers import (
    CORE,
    MAX_GROUPS,
    LayerGroup,
    direct_dependents,
    group_names,
    install_plan_json,
    layer_groups,
)
from tooling.buildpack.plan import InstallPlan, read_install_plan
from tooling.docker import HistoryEntry
from tooling.registry import RemoteLayer

LOCKS = {
    "hub": (PROJECT / "environments" / "conda-linux-64.lock", PROJECT / "environments" / "conda-lock.yml"),
    "pangeo": (PANGEO / "pangeo-notebook.conda-linux-64.lock", PANGEO / "pangeo-notebook.conda-lock.yml"),
}


@pytest.fixture(params=sorted(LOCKS))
def plan(request: pytest.FixtureRequest) -> InstallPlan:
    explicit, full = LOCKS[request.param]
    return read_install_plan(explicit, full)


def membership(groups: tuple[LayerGroup, ...]) -> dict[str, str]:
    return {package.name: group.name for group in groups for package in group.packages}


def plans(groups: tuple[LayerGroup, ...]) -> dict[str, str]:
    """Each group's part of the installer's plan."""
    return {group.name: install_plan_json((group,)) for group in groups}


def test_every_locked_package_is_in_exactly_one_layer_and_python_comes_first(plan: InstallPlan) -> None:
    groups = layer_groups(plan)
    installed = [package.url for group in groups for package in group.packages]
    assert sorted(installed) == sorted(package.url for package in plan.packages)
    assert len(installed) == len(set(installed))
    assert groups[0].name == CORE
    assert {package.name for package in groups[0].packages} == {package.name for package in plan.bootstrap_packages()}
    assert 3 <= len(groups) <= MAX_GROUPS
    assert all(group.count for group in groups)


def test_grouping_is_the_same_for_the_same_lock_read_twice_or_listed_in_another_order(plan: InstallPlan) -> None:
    explicit, full = plan.explicit_file, LOCKS["hub" if "environments" in str(plan.explicit_file) else "pangeo"][1]
    again = read_install_plan(explicit, full)
    shuffled = list(plan.packages)
    random.Random(7).shuffle(shuffled)

    assert plans(layer_groups(again)) == plans(layer_groups(plan))
    assert membership(layer_groups(dataclasses.replace(plan, packages=tuple(shuffled)))) == membership(
        layer_groups(plan)
    )


def changed_groups(before: tuple[LayerGroup, ...], after: tuple[LayerGroup, ...]) -> set[str]:
    """The groups whose layer would differ: new, gone, or with other packages."""
    old, new = plans(before), plans(after)
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


def without_leaf(plan: InstallPlan, leaf: str) -> InstallPlan:
    """The plan a relock gives without `leaf`: it goes, and so does every package only it needed."""
    roots = {name for name, dependents in direct_dependents(plan.packages).items() if not dependents}
    kept = tuple(package for package in plan.packages if package.name != leaf)
    while orphans := {
        name for name, dependents in direct_dependents(kept).items() if not dependents and name not in roots
    }:
        kept = tuple(package for package in kept if package.name not in orphans)
    return dataclasses.replace(plan, packages=kept)


def test_removing_a_leaf_moves_no_package_whose_direct_dependents_stay(plan: InstallPlan) -> None:
    before, before_dependents = group_names(plan), direct_dependents(plan.packages)
    leaves = [name for name, dependents in before_dependents.items() if not dependents and before[name] != CORE]
    assert leaves
    for leaf in leaves:
        smaller = without_leaf(plan, leaf)
        after, after_dependents = group_names(smaller), direct_dependents(smaller.packages)
        moved = {name for name in after if after[name] != before[name]}
        assert moved <= {name for name in after if after_dependents[name] != before_dependents[name]}, leaf
        gone = before.keys() - after.keys()
        touched = {before[name] for name in gone | moved} | {after[name] for name in moved}
        assert changed_groups(layer_groups(plan), layer_groups(smaller)) == touched, leaf


def test_removing_pytest_changes_its_bucket_what_only_it_needed_and_the_one_package_it_shared_with_anyio() -> None:
    plan = read_install_plan(*LOCKS["hub"])
    smaller = without_leaf(plan, "pytest")
    before, after = group_names(plan), group_names(smaller)

    assert before.keys() - after.keys() == {"pytest", "iniconfig", "pluggy", "colorama"}
    assert before["iniconfig"] == before["pluggy"] == before["colorama"]
    # exceptiongroup was needed by pytest and anyio; now by anyio alone, so it goes beside anyio's own.
    assert {name for name in after if after[name] != before[name]} == {"exceptiongroup"}
    assert changed_groups(layer_groups(plan), layer_groups(smaller)) == {
        before["pytest"],
        before["pluggy"],
        before["exceptiongroup"],
        after["exceptiongroup"],
    }
    assert len(layer_groups(plan)) > 30


def test_a_new_version_of_any_package_changes_its_own_layer_only(plan: InstallPlan) -> None:
    before = layer_groups(plan)
    for package in plan.packages:
        version = package.version + ".1"
        upgraded = dataclasses.replace(package, version=version, url=package.url.replace(package.version, version))
        after = layer_groups(
            dataclasses.replace(plan, packages=tuple(upgraded if p is package else p for p in plan.packages))
        )
        assert changed_groups(before, after) == {membership(before)[package.name]}, package.name


def test_environment_layers_are_named_from_the_history_and_looked_up_in_the_registry(plan: InstallPlan) -> None:
    groups = layer_groups(plan)
    # docker history lists the newest step first; a LABEL step makes no layer, a RUN step an empty one.
    steps = [HistoryEntry("RUN apt-get clean", 0), HistoryEntry("RUN apt-get install", 1_000)]
    steps += [
        HistoryEntry(f"COPY {LAYERS_ROOT}/{group.name}/ / # buildkit", 1_000 + i) for i, group in enumerate(groups)
    ]
    steps += [HistoryEntry("LABEL x=y", 0)]
    diff_ids = [f"sha256:{i:064x}" for i in range(len(groups) + 2)]
    held = {diff_ids[2]: RemoteLayer("sha256:" + "f" * 64, 10, diff_ids[2])}

    layers = environment_layers(plan, tuple(reversed(steps)), diff_ids, held)

    assert [layer.name for layer in layers] == [group.name for group in groups]
    assert [layer.packages for layer in layers] == [group.count for group in groups]
    assert [layer.diff_id for layer in layers] == diff_ids[2:]
    assert [layer.in_registry for layer in layers] == [True] + [False] * (len(groups) - 1)
    assert all(layer.in_registry is None for layer in environment_layers(plan, tuple(reversed(steps)), diff_ids, None))


def test_the_installers_plan_lists_every_group_with_its_packages_in_order(plan: InstallPlan) -> None:
    groups = layer_groups(plan)
    data = json.loads(install_plan_json(groups))
    assert [group["name"] for group in data["groups"]] == [group.name for group in groups]
    for entry, group in zip(data["groups"], groups, strict=True):
        assert [package["url"] for package in entry["packages"]] == [package.url for package in group.packages]
        assert all(package["md5"] and package["sha256"] for package in entry["packages"])


# --- the installer's split of the environment into the layers' folders, on a real folder ----------


def test_the_installer_puts_each_file_in_the_folder_of_its_packages_layer(tmp_path: Path) -> None:
    prefix = tmp_path / "srv" / "conda" / "envs" / "notebook"
    site = "lib/python3.11/site-packages"
    a = Package("https://conda.anaconda.org/conda-forge/linux-64/a-1.0-0.conda", "0" * 32, "0" * 64)
    b = Package("https://conda.anaconda.org/conda-forge/noarch/b-2.0-py_0.tar.bz2", "1" * 32, "1" * 64)
    groups = [
        Group("core", (a,), ()),
        Group("top-1", (b,), ()),
        Group("pip", (), (PipPackage("c", "https://files.example/c-1.0.whl", "2" * 64),)),
    ]
    linked = {a: (f"{site}/a/__init__.py", "bin/a"), b: (f"{site}/b.py",)}
    record = "c.py,sha256=x,1\nc-1.0.dist-info/RECORD,,\n../../../bin/c,,\n__pycache__/c.cpython-311.pyc,,\n"
    files = {
        "conda-meta/a-1.0-0.json": "{}",
        "conda-meta/b-2.0-py_0.json": "{}",
        f"{site}/a/__init__.py": "",
        "bin/a": "#!/bin/sh\n",
        f"{site}/b.py": "",
        f"{site}/__pycache__/b.cpython-311.pyc": "compiled by the installer",
        f"{site}/c.py": "",
        f"{site}/c-1.0.dist-info/RECORD": record,
        "bin/c": "#!/bin/sh\n",
        f"{site}/__pycache__/c.cpython-311.pyc": "compiled by pip",
        "CACHEDIR.TAG": "py-rattler's",
        "conda-meta/history": "",
        "etc/stray.conf": "nobody's",
    }
    for name, text in files.items():
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        (prefix / name).write_text(text)
    (prefix / "etc").chmod(0o750)
    layers = tmp_path / "layers"

    unlisted = split_into_layers(prefix, groups, linked, LayerTrees(layers, 0), owner=os.getuid())

    def in_layer(name: str) -> set[str]:
        tree = layers / name / prefix.relative_to("/")
        return {str(path.relative_to(tree)) for path in tree.rglob("*") if not path.is_dir()}

    assert in_layer("core") == {
        "conda-meta/a-1.0-0.json",
        f"{site}/a/__init__.py",
        "bin/a",
        "CACHEDIR.TAG",
        "conda-meta/history",
        "etc/stray.conf",
    }
    assert in_layer("top-1") == {"conda-meta/b-2.0-py_0.json", f"{site}/b.py", f"{site}/__pycache__/b.cpython-311.pyc"}
    assert in_layer("pip") == {
        f"{site}/c.py",
        f"{site}/c-1.0.dist-info/RECORD",
        "bin/c",
        f"{site}/__pycache__/c.cpython-311.pyc",
    }
    assert unlisted == ["etc/stray.conf"]
    assert not [path for path in prefix.rglob("*") if not path.is_dir()]
    # Each layer's folders stand for the image's: their modes, and the fixed time, whatever the build's moment.
    folders = [path for path in layers.rglob("*") if path.is_dir()]
    assert {path.stat().st_mtime for path in folders} == {0}
    assert stat.S_IMODE((layers / "core" / prefix.relative_to("/") / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((layers / "core" / "tmp").stat().st_mode) == stat.S_IMODE(Path("/tmp").stat().st_mode)
