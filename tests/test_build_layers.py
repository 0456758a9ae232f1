"""The environment's layer groups: a pure function of the lock, and a small change to the lock moves few packages.

Read from this repository's own lock and from pangeo's (real conda-forge records).
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from tests.lock_fixtures import PANGEO, PROJECT
from tooling.build import environment_layers
from tooling.buildpack.layers import CORE, LIBRARY_BUCKETS, PYTHON_BUCKETS, LayerGroup, group_name, layer_groups
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
    return {group.name: group.to_json() for group in groups}


def test_every_locked_package_is_in_exactly_one_layer_and_python_comes_first(plan: InstallPlan) -> None:
    groups = layer_groups(plan)
    installed = [package.url for group in groups for package in group.packages]
    assert sorted(installed) == sorted(package.url for package in plan.packages)
    assert len(installed) == len(set(installed))
    assert groups[0].name == CORE
    assert {package.name for package in groups[0].packages} == {package.name for package in plan.bootstrap_packages()}
    assert 3 <= len(groups) <= 1 + LIBRARY_BUCKETS + PYTHON_BUCKETS + 1
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


def test_removing_any_package_changes_its_own_layer_only(plan: InstallPlan) -> None:
    core = {package.name for package in plan.bootstrap_packages()}
    before = layer_groups(plan)
    for package in plan.packages:
        if package.name in core:
            continue
        after = layer_groups(dataclasses.replace(plan, packages=tuple(p for p in plan.packages if p is not package)))
        assert changed_groups(before, after) == {group_name(package)}, package.name


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
        HistoryEntry(f"RUN python install_lock.py --layer {group.name}", 1_000 + i) for i, group in enumerate(groups)
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


def test_each_layer_plan_is_the_installer_input_for_its_packages(plan: InstallPlan) -> None:
    for group in layer_groups(plan):
        data = json.loads(group.to_json())
        assert [entry["url"] for entry in data["packages"]] == [package.url for package in group.packages]
        assert all(entry["md5"] and entry["sha256"] for entry in data["packages"])
