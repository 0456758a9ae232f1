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
from tooling.buildpack.layers import CORE, MAX_GROUPS, LayerGroup, direct_dependents, group_names, layer_groups
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
