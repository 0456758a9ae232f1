"""The lessons of the 2020 hub as rules: each has an id, one line of why, and the YAML that fixes it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tooling.check.blind_spots import Resources
from tooling.check.capacity import Capacity, gib
from tooling.check.findings import Finding, failure, passed
from tooling.check.kubespawner_names import SpawnerNames
from tooling.check.values_files import KeyPath, MergedValues, dotted, value_at
from tooling.config import CheckSettings

CHART_DEFAULT = "chart default"
# One line a rule reports: whether it passed, the file:line (or "chart default"), and what was found.
Outcome = tuple[bool, object, str]


@dataclass(frozen=True)
class RuleContext:
    values: MergedValues
    settings: CheckSettings
    names: SpawnerNames
    resources: list[Resources]
    capacity: Capacity


@dataclass(frozen=True)
class Rule:
    id: str
    why: str
    fix: str
    check: Callable[[RuleContext], list[Outcome]]

    def run(self, context: RuleContext) -> list[Finding]:
        return [
            passed(self.id, where, what) if ok else failure(self.id, where, what, self.fix)
            for ok, where, what in self.check(context)
        ]


def _where(values: MergedValues, path: KeyPath) -> object:
    return values.origin(path) or CHART_DEFAULT


def _idle_culling(context: RuleContext) -> list[Outcome]:
    values, limit = context.values, context.settings.max_idle_timeout
    timeout = values.get(("cull", "timeout"))
    results: list[Outcome] = []
    if values.get(("cull", "enabled")) is not True:
        results.append((False, _where(values, ("cull", "enabled")), "cull.enabled is not true: idle servers run on"))
    elif not isinstance(timeout, int) or timeout <= 0 or timeout > limit:
        results.append((False, _where(values, ("cull", "timeout")), f"cull.timeout {timeout!r} s; at most {limit} s"))
    else:
        results.append((True, _where(values, ("cull", "timeout")), f"idle servers stop after {timeout} s"))
    if context.settings.max_age:
        max_age = values.get(("cull", "maxAge"))
        ok = isinstance(max_age, int) and 0 < max_age <= context.settings.max_age
        what = f"cull.maxAge {max_age!r} s (nightly policy: at most {context.settings.max_age} s)"
        results.append((ok, _where(values, ("cull", "maxAge")), what))
    return results


_CULL_ARG = re.compile(r"--MappingKernelManager\.cull_idle_timeout=(\d+)")


def _kernel_culling(context: RuleContext) -> list[Outcome]:
    values, limit = context.values, context.settings.max_idle_timeout
    files = values.get(("singleuser", "extraFiles")) or {}
    for key, spec in files.items() if isinstance(files, dict) else ():
        if not isinstance(spec, dict) or not isinstance(spec.get("data"), dict):
            continue
        mount = str(spec.get("mountPath", ""))
        manager = spec["data"].get("MappingKernelManager")
        if re.search(r"jupyter_server_config(\.d/[^/]+)?\.json$", mount) and isinstance(manager, dict):
            timeout = manager.get("cull_idle_timeout")
            where = _where(
                values, ("singleuser", "extraFiles", key, "data", "MappingKernelManager", "cull_idle_timeout")
            )
            ok = isinstance(timeout, int) and 0 < timeout <= limit
            return [
                (
                    ok,
                    where,
                    f"set through the values ({mount}): idle kernels stop after {timeout!r} s (at most {limit} s)",
                )
            ]
    for key in ("cmd", "args"):
        words = values.get(("singleuser", key))
        found = _CULL_ARG.search(" ".join(map(str, words)) if isinstance(words, list) else str(words or ""))
        if found:
            ok = 0 < int(found.group(1)) <= limit
            return [(ok, _where(values, ("singleuser", key)), f"set through singleuser.{key}: {found.group(0)}")]
    return [
        (
            False,
            None,
            "no MappingKernelManager.cull_idle_timeout in singleuser.extraFiles or args: "
            "kernels of closed tabs keep running (and keep the server from looking idle)",
        )
    ]


def _resources(context: RuleContext) -> list[Outcome]:
    values = context.values
    results: list[Outcome] = []
    for server in context.resources:
        pairs = (
            ("cpu", server.cpu_guarantee, server.cpu_limit, "cpu_guarantee", "cpu_limit", str),
            ("memory", server.mem_guarantee, server.mem_limit, "mem_guarantee", "mem_limit", gib),
        )
        for kind, guarantee, limit, guarantee_key, limit_key, show in pairs:
            where = _where(values, server.where[guarantee_key])
            if guarantee is None or limit is None:
                unset = dotted(server.where[guarantee_key] if guarantee is None else server.where[limit_key])
                results.append((False, where, f"{server.label}: {unset} is not set"))
            elif guarantee > limit:
                results.append(
                    (
                        False,
                        where,
                        f"{server.label}: {kind} guarantee {show(guarantee)} is above its limit {show(limit)}",
                    )
                )
            else:
                results.append(
                    (True, where, f"{server.label}: {kind} {show(guarantee)} guaranteed, limit {show(limit)}")
                )
    return results


def _capacity(context: RuleContext) -> list[Outcome]:
    capacity, values = context.capacity, context.values
    results: list[Outcome] = []
    for row, server in zip(capacity.rows, context.resources, strict=True):
        where = _where(values, server.where["mem_guarantee"])
        if row.per_node is None:
            results.append((False, where, f"{row.label}: no cpu or memory guarantee, so nothing bounds users per node"))
        elif row.per_node == 0:
            results.append(
                (
                    False,
                    where,
                    f"{row.label}: one user's guarantees do not fit a node "
                    f"({capacity.allocatable_cpu:g} cpu, {gib(capacity.allocatable_memory)} allocatable)",
                )
            )
        else:
            results.append((True, where, f"{row.label}: {row.per_node} users per node"))
    return results


def _high_performance(context: RuleContext) -> list[Outcome]:
    if not context.settings.high_performance_profile:
        return [(True, None, "not asked for in hub.toml [check]")]
    for row, server in zip(context.capacity.rows[1:], context.resources[1:], strict=True):
        if row.per_node == 1:
            return [(True, _where(context.values, server.where["cpu_guarantee"]), f"{row.label} gets a node to itself")]
    return [
        (
            False,
            _where(context.values, ("singleuser", "profileList")),
            "no profile's guarantees give one user a whole node",
        )
    ]


def _mounts(values: MergedValues) -> list[tuple[str, KeyPath, dict[str, Any]]]:
    """The extra mounts as KubeSpawner gets them from the chart: (key in volume_mounts, values path, mount)."""
    path: KeyPath = ("singleuser", "storage", "extraVolumeMounts")
    mounts = values.get(path)
    if isinstance(mounts, dict):
        return [(str(key), (*path, key), mount) for key, mount in mounts.items() if isinstance(mount, dict)]
    if isinstance(mounts, list):
        return [
            (f"{index}-{mount.get('name')}", (*path, index), mount)
            for index, mount in enumerate(mounts)
            if isinstance(mount, dict)
        ]
    return []


def _shared_data(context: RuleContext) -> list[Outcome]:
    values, volume, group = context.values, context.settings.shared_data_volume, context.settings.tutorial_leads_group
    mounts = [(key, path, mount) for key, path, mount in _mounts(values) if mount.get("name") == volume]
    if not mounts:
        return [(False, None, f"no singleuser.storage.extraVolumeMounts entry mounts volume '{volume}'")]
    results: list[Outcome] = []
    for key, path, mount in mounts:
        read_only = mount.get("readOnly", mount.get("read_only")) is True
        results.append(
            (
                read_only,
                _where(values, path),
                f"{dotted(path)} ({mount.get('mountPath')}) is "
                + ("read-only for everyone" if read_only else "writable by everyone"),
            )
        )
        results.append(_leads_write(context, key))
    results.append(_leads_defined(values, group))
    return results


def _leads_defined(values: MergedValues, group: str) -> Outcome:
    path: KeyPath = ("hub", "config", "JupyterHub", "load_groups")
    loaded = values.get(path)
    managed = values.get(("hub", "config", "Authenticator", "manage_groups")) is True
    if managed or (isinstance(loaded, dict) and group in loaded):
        return (True, _where(values, path), f"group '{group}' is defined")
    return (
        False,
        _where(values, path),
        f"group '{group}' is not in {dotted(path)} (nor does the authenticator manage groups)",
    )


def _leads_write(context: RuleContext, mount_key: str) -> Outcome:
    values, group = context.values, context.settings.tutorial_leads_group
    if "group_overrides" not in context.names.traits:
        return (False, None, f"KubeSpawner {context.names.kubespawner_version} has no group_overrides")
    path: KeyPath = ("hub", "config", "KubeSpawner", "group_overrides")
    overrides = values.get(path)
    for name, override in overrides.items() if isinstance(overrides, dict) else ():
        if not isinstance(override, dict) or group not in (override.get("groups") or []):
            continue
        mount = value_at(override, ("spawner_override", "volume_mounts", mount_key))
        if isinstance(mount, dict) and mount.get("readOnly", mount.get("read_only")) is False:
            return (True, _where(values, (*path, name)), f"group '{group}' gets volume mount '{mount_key}' read-write")
    return (
        False,
        _where(values, path),
        f"no group_overrides entry gives group '{group}' volume mount '{mount_key}' with readOnly: false",
    )


def _image_problem(image: str) -> str | None:
    tag = image.rpartition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
    if "@sha256:" in image:
        return None
    if not tag:
        return "has no tag (it means latest)"
    return "is tagged latest" if tag == "latest" else None


def _image_pinned(context: RuleContext) -> list[Outcome]:
    values = context.values
    name, tag = values.get(("singleuser", "image", "name")), values.get(("singleuser", "image", "tag"))
    images: list[tuple[KeyPath, str]] = [(("singleuser", "image", "tag"), f"{name}:{tag}" if tag else str(name))]
    for index, profile in enumerate(values.get(("singleuser", "profileList")) or []):
        image = ((profile or {}).get("kubespawner_override") or {}).get("image")
        if image:
            images.append((("singleuser", "profileList", index, "kubespawner_override", "image"), str(image)))
    results: list[Outcome] = []
    for path, image in images:
        problem = _image_problem(image)
        results.append((problem is None, _where(values, path), f"{dotted(path)}: {image} " + (problem or "is pinned")))
    return results


RULES: tuple[Rule, ...] = (
    Rule(
        "idle-culling",
        "2020: idle servers were not culled and 5-10 nodes ran all night.",
        "cull:\n  enabled: true\n  timeout: 3600\n  every: 300",
        _idle_culling,
    ),
    Rule(
        "kernel-culling",
        "2020: kernels kept running after their tabs closed, so servers never looked idle.",
        "singleuser:\n  extraFiles:\n    kernel-culling:\n"
        "      mountPath: /usr/local/etc/jupyter/jupyter_server_config.json\n"
        "      data:\n        MappingKernelManager:\n          cull_idle_timeout: 3600\n          cull_interval: 300",
        _kernel_culling,
    ),
    Rule(
        "resources",
        "A user without guarantees is packed onto a full node; a guarantee above its limit never schedules.",
        "singleuser:\n  cpu: {limit: 4, guarantee: 1.75}\n  memory: {limit: 8G, guarantee: 7G}",
        _resources,
    ),
    Rule(
        "capacity",
        "2020: resources were sized for 4 users per node; a user who fits no node never starts.",
        "lower the guarantees in singleuser.cpu/memory, or use bigger nodes ([capacity] in hub.toml)",
        _capacity,
    ),
    Rule(
        "high-performance-profile",
        "2020: some tutorials needed a whole node; a profile gives it without raising everyone's share.",
        "singleuser:\n  profileList:\n    - display_name: Whole node\n      kubespawner_override:\n"
        "        cpu_guarantee: 7\n        mem_guarantee: 28G",
        _high_performance,
    ),
    Rule(
        "shared-data",
        "2020: the shared data was writable by everyone; only tutorial leads should write it.",
        "singleuser.storage.extraVolumeMounts: {shared-data: {name: shared-data, mountPath: ..., readOnly: true}}\n"
        "hub.config.KubeSpawner.group_overrides: {leads: {groups: [tutorial-leads], spawner_override: "
        "{volume_mounts: {shared-data: {readOnly: false}}}}}",
        _shared_data,
    ),
    Rule(
        "image-pinned",
        "An image without a tag (or latest) changes under the hub without a deploy.",
        "singleuser:\n  image:\n    name: REGISTRY/NAME\n    tag: img-...   # written by `python -m tooling bump`",
        _image_pinned,
    ),
)
