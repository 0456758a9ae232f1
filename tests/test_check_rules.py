"""What the schema cannot see, and the 2020 rules, each failing and passing on small values files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.check_helpers import PROJECT, hub_toml, write_hub
from tests.helm_standin import HELM
from tests.test_check import failed, findings
from tooling import proc
from tooling.check.blind_spots import Resources
from tooling.check.capacity import capacity
from tooling.cli import main
from tooling.config import CapacitySettings

# The example hub's common values with an image: every rule passes on them.
GOOD: dict[str, Any] = yaml.safe_load((PROJECT / "deploy" / "common.yaml").read_text())
GOOD["singleuser"]["image"] = {"name": "ghcr.io/example-hub/user-image", "tag": "img-1"}


def hub_with(tmp_path: Path, values: dict[str, Any], extra: str = "") -> Path:
    return write_hub(tmp_path, {"v.yaml": yaml.safe_dump(values)}, hub_toml(staging=["v.yaml"], extra=extra))


def test_the_good_values_pass_every_rule(tmp_path: Path, standin: Path) -> None:
    found = findings(hub_with(tmp_path, GOOD))
    assert [f for f in found if f.failed] == []
    assert {f.check for f in found} >= {"idle-culling", "kernel-culling", "resources", "capacity",
                                         "high-performance-profile", "shared-data", "image-pinned"}  # fmt: skip


def edited(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return values


_DELETE = object()

BROKEN = [
    ("idle-culling", "cull.enabled", False, "cull.enabled is not true"),
    ("idle-culling", "cull.timeout", 7200, "cull.timeout 7200 s; at most 3600 s"),
    ("kernel-culling", "singleuser.extraFiles", _DELETE, "no MappingKernelManager.cull_idle_timeout"),
    ("kernel-culling", "singleuser.extraFiles.kernel-culling.data.MappingKernelManager.cull_idle_timeout", 86400,
     "idle kernels stop after 86400 s (at most 3600 s)"),
    ("resources", "singleuser.cpu.guarantee", 5, "cpu guarantee 5.0 is above its limit 4.0"),
    ("resources", "singleuser.memory.guarantee", None, "singleuser.memory.guarantee is not set"),
    ("capacity", "singleuser.memory", {"limit": "48G", "guarantee": "40G"}, "one user's guarantees do not fit a node"),
    ("high-performance-profile", "singleuser.profileList", [{"display_name": "Standard", "default": True}],
     "no profile's guarantees give one user a whole node"),
    ("shared-data", "singleuser.storage.extraVolumeMounts.shared-data.readOnly", False, "is writable by everyone"),
    ("shared-data", "hub.config.KubeSpawner", _DELETE, "no group_overrides entry gives group 'tutorial-leads'"),
    ("shared-data", "hub.config.JupyterHub", _DELETE, "group 'tutorial-leads' is not in"),
    ("image-pinned", "singleuser.image.tag", "latest", "is tagged latest"),
    ("image-pinned", "singleuser.profileList.0.kubespawner_override", {"image": "jupyter/base-notebook"},
     "jupyter/base-notebook has no tag"),
]  # fmt: skip


@pytest.mark.parametrize("case", BROKEN, ids=[f"{b[0]}:{b[1]}" for b in BROKEN])
def test_each_rule_fails_on_values_that_break_it(
    tmp_path: Path, standin: Path, case: tuple[str, str, Any, str]
) -> None:
    rule, path, value, message = case
    found = failed(findings(hub_with(tmp_path, edited(path, value))), rule)
    assert any(message in finding.message for finding in found), [f.message for f in found]
    assert all(finding.fix for finding in found)


def test_a_nightly_policy_needs_max_age(tmp_path: Path, standin: Path) -> None:
    policy = "[check]\nmax_age = 43200\n"
    [finding] = failed(findings(hub_with(tmp_path, GOOD, policy)), "idle-culling")
    assert finding.message == "cull.maxAge 0 s (nightly policy: at most 43200 s)"
    assert failed(findings(hub_with(tmp_path, edited("cull.maxAge", 43200), policy)), "idle-culling") == []


def test_a_waived_rule_shows_its_reason_and_does_not_fail(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = edited("singleuser.profileList", [{"display_name": "Standard", "default": True}])
    config = hub_with(tmp_path, values, '[check.waive]\nhigh-performance-profile = "no tutorial needs it"\n')
    assert main(["--config", str(config), "check", "staging", "--no-render"]) == 0
    out = capsys.readouterr().out
    assert "high-performance-profile  waived" in out
    assert "(waived in hub.toml: no tutorial needs it)" in out


BLIND = [
    ("kubespawner-option", "singleuser.profileList.1.kubespawner_override.mem_limt", "30G",
     "singleuser.profileList[1].kubespawner_override.mem_limt: KubeSpawner 7.1.0 has no option 'mem_limt'; "
     "did you mean 'mem_limit'?"),
    ("kubespawner-option", "hub.config.KubeSpawner.start_timout", 600, "did you mean 'start_timeout'?"),
    ("volume-field", "singleuser.storage.extraVolumeMounts.shared-data.readonly", True,
     "Kubernetes' VolumeMount has no field 'readonly'; did you mean 'readOnly'?"),
    ("volume-field", "singleuser.storage.extraVolumes.shared-data.persistentVolumeClaim.claimname", "x",
     "PersistentVolumeClaimVolumeSource has no field 'claimname'; did you mean 'claimName'?"),
    ("volume-field", "singleuser.profileList.1.kubespawner_override.volume_mounts",
     [{"name": "shared-data", "mountPath": "/x", "readOnly": "yes"}], "'yes' is not true or false"),
    ("quantity", "singleuser.memory.limit", "8 GB", "'8 GB' is not a size such as 8G"),
    ("quantity", "singleuser.profileList.1.kubespawner_override.cpu_limit", "500m", "'500m' is not a number of cores"),
    ("quantity", "singleuser.profileList.1.kubespawner_override.mem_guarantee", "28Gi", "is not a size"),
]  # fmt: skip


@pytest.mark.parametrize("case", BLIND, ids=[b[1] for b in BLIND])
def test_what_the_schema_cannot_see_is_caught(tmp_path: Path, standin: Path, case: tuple[str, str, Any, str]) -> None:
    kind, path, value, message = case
    found = findings(hub_with(tmp_path, edited(path, value)))
    assert failed(found, "schema") == []  # the chart's schema lets every one of these through
    assert any(message in finding.message for finding in failed(found, kind)), [f.message for f in found]


def test_a_blind_spot_names_the_line_that_set_it(tmp_path: Path, standin: Path) -> None:
    common = (PROJECT / "deploy" / "common.yaml").read_text().replace("        mem_limit: 30G", "        mem_limt: 30G")
    staging = (PROJECT / "deploy" / "staging.yaml").read_text()
    toml = hub_toml(staging=["common.yaml", "staging.yaml"])
    config = write_hub(tmp_path, {"common.yaml": common, "staging.yaml": staging}, toml)
    [finding] = failed(findings(config), "kubespawner-option")
    line = common.splitlines().index("        mem_limt: 30G") + 1
    assert finding.where == f"common.yaml:{line}"


def test_the_2020_resources_give_4_users_per_node_and_20_nodes_for_80() -> None:
    gib = 1024**3
    server = Resources("2020", 4.0, 1.75, 8 * gib, 7 * gib, {})
    sizes = capacity(CapacitySettings(), [server])
    assert (sizes.rows[0].by_cpu, sizes.rows[0].by_memory, sizes.rows[0].per_node) == (4, 4, 4)
    assert sizes.nodes == 20
    assert sizes.node_hours_per_day == 160
    priced = capacity(CapacitySettings(price_per_node_hour=0.384, users=81), [server])
    assert priced.nodes == 21
    assert priced.cost_per_day == pytest.approx(21 * 8 * 0.384)


@pytest.mark.parametrize(
    ("reserved_cpu", "reserved_memory", "per_node"),
    [(0.0, "0G", 4), (1.0, "4G", 4), (1.01, "2G", 3), (0.5, "4097M", 3)],
)
def test_what_the_node_keeps_decides_users_per_node(reserved_cpu: float, reserved_memory: str, per_node: int) -> None:
    gib = 1024**3
    server = Resources("2020", 4.0, 1.75, 8 * gib, 7 * gib, {})
    settings = CapacitySettings(reserved_cpu=reserved_cpu, reserved_memory=reserved_memory)
    assert capacity(settings, [server]).rows[0].per_node == per_node


def test_an_image_that_lands_other_than_the_values_say_fails_the_render(tmp_path: Path, standin: Path) -> None:
    values = {"singleuser": {"image": {"name": "ghcr.io/example-hub/user-image", "tag": "img-new"}}}
    later = {"singleuser": {"image": {"tag": "img-old"}}}
    files = {"v.yaml": yaml.safe_dump(values), "late.yaml": yaml.safe_dump(later)}
    toml = hub_toml(staging=["v.yaml", "late.yaml"]).replace('file = "late.yaml"', 'file = "v.yaml"')
    config = write_hub(tmp_path, files, toml)
    bad = failed(findings(config, render=True), "render")
    messages = [finding.message for finding in bad]
    assert "hub Secret singleuser.image: ghcr.io/example-hub/user-image:img-old, but the values name " \
        "ghcr.io/example-hub/user-image:img-new" in messages  # fmt: skip
    assert bad[0].where == "v.yaml:2"  # the `image:` key hub.toml names


def test_profile_images_land_in_the_pullers(tmp_path: Path, standin: Path) -> None:
    values = edited("singleuser.profileList.1.kubespawner_override.image", "ghcr.io/example-hub/big:img-2")
    found = findings(hub_with(tmp_path, values), render=True)
    assert [f for f in found if f.failed] == []
    pulled = [f.message for f in found if f.check == "render"]
    assert "hook-image-puller image-pull-singleuser-profilelist-1 pulls ghcr.io/example-hub/big:img-2" in pulled


@pytest.mark.parametrize(("major", "expected"), [("3", "v3."), ("4", "v4.")])
def test_the_standin_answers_as_helm_3_or_4(
    standin: Path, monkeypatch: pytest.MonkeyPatch, major: str, expected: str
) -> None:
    monkeypatch.setenv("HELM_STANDIN_MAJOR", major)
    completed = proc.run([str(HELM), "version", "--template", "{{.Version}}"])
    assert completed.stdout.startswith(expected)


def test_the_standin_lints_the_real_chart_and_refuses_bad_values(standin: Path, tmp_path: Path) -> None:
    from tests.check_helpers import CHART_TGZ  # noqa: PLC0415

    good = proc.run([str(HELM), "lint", str(CHART_TGZ)])
    assert "1 chart(s) linted, 0 chart(s) failed" in good.stdout
    bad_values = tmp_path / "bad.yaml"
    bad_values.write_text("singleuser:\n  memory:\n    guarante: 1G\n")
    bad = proc.run([str(HELM), "template", "hub", str(CHART_TGZ), "-f", str(bad_values)], check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: values don't meet the specifications of the schema(s)")
    assert "additional properties 'guarante' not allowed" in bad.stderr


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-a-secret}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.mark.parametrize(("groups", "read_only"), [(["tutorial-leads"], False), (["participants"], True), ([], True)])
def test_the_example_gives_tutorial_leads_and_only_them_the_shared_data_read_write_in_kubespawner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: list[str], read_only: bool
) -> None:
    """The real KubeSpawner applies the example hub's group_overrides as JupyterHub 5 does before a spawn.

    KubeSpawner reads a kubeconfig when it is created; this one names a port on 127.0.0.1 nothing listens
    on, and nothing here asks the API anything.
    """
    import asyncio  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    from kubernetes_asyncio.config import kube_config  # noqa: PLC0415
    from kubespawner import KubeSpawner  # noqa: PLC0415
    from traitlets.config import Config  # noqa: PLC0415

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    # kubernetes_asyncio reads $KUBECONFIG once, when imported.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    values = yaml.safe_load((PROJECT / "deploy" / "common.yaml").read_text())
    config = Config()
    # What the chart's jupyterhub_config.py does with these values.
    config.KubeSpawner.volume_mounts = copy.deepcopy(values["singleuser"]["storage"]["extraVolumeMounts"])
    config.KubeSpawner.group_overrides = values["hub"]["config"]["KubeSpawner"]["group_overrides"]
    user = SimpleNamespace(name="ann", id=1, url="/user/ann/", escaped_name="ann", server=None, spawners={},
                           groups=[SimpleNamespace(name=group) for group in groups])  # fmt: skip

    async def mounts_at_spawn() -> dict[str, Any]:
        spawner = KubeSpawner(config=config, user=user)  # it makes its API client in the running loop
        await spawner.apply_group_overrides()
        mounts: dict[str, Any] = spawner.volume_mounts
        return mounts

    mounts = asyncio.run(mounts_at_spawn())
    assert mounts["shared-data"]["readOnly"] is read_only
    assert mounts["shared-data"]["mountPath"] == "/home/jovyan/shared"


def test_a_failing_check_exits_1_and_writes_the_tables_to_the_job_summary(
    tmp_path: Path, standin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    config = hub_with(tmp_path, edited("cull.timeout", 7200))
    assert main(["--config", str(config), "check", "staging", "--no-render"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("check staging (chart ")
    assert "1 failed (render skipped)" in out.splitlines()[0]
    assert "    fix: cull:\n           enabled: true\n           timeout: 3600" in out
    markdown = summary.read_text()
    assert markdown == (tmp_path / ".hubship" / "reports" / "check-staging.md").read_text() + "\n"
    assert "| `idle-culling` | FAIL | v.yaml:" in markdown
    assert "<pre>cull:<br>  enabled: true<br>  timeout: 3600<br>  every: 300</pre>" in markdown
    assert "| Capacity | cpu guarantee | memory guarantee | users/node by cpu | by memory | users/node |" in markdown
    assert "80 users: 20 nodes, 160 node-hours a day." in markdown


@pytest.mark.parametrize("size", ["32", "1.2.3G", "32GiB"])
def test_a_node_size_kubespawner_cannot_read_is_a_hub_toml_problem(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str], size: str
) -> None:
    config = hub_with(tmp_path, GOOD, f'[capacity]\nnode_memory = "{size}"\n')
    assert main(["--config", str(config), "check", "staging"]) == 2
    assert "'capacity.node_memory': string should match pattern" in capsys.readouterr().err
