"""`check` on the real z2jh 4.3.3 chart: schema findings with file and line, duplicates, YAML errors, the pull.

Every chart read is the real published chart; every render is Helm's own
engine through the stand-in (tests/helm_standin), never a helm from PATH.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.check_helpers import CHART_TGZ, ICESAT, PROJECT, hub_toml, unwrap, write_hub
from tooling.check import CheckRequest, check_values
from tooling.check.findings import Finding
from tooling.cli import main
from tooling.config import load_config


def findings(config: Path, environment: str = "staging", *, render: bool = False) -> list[Finding]:
    request = CheckRequest.from_config(load_config(config), environment, render=render)
    return list(check_values(request).findings)


def failed(found: list[Finding], check: str) -> list[Finding]:
    return [finding for finding in found if finding.failed and finding.check == check]


def example_hub(root: Path, chart_toml: str) -> Path:
    """The project's own hub.toml and deploy/ files, with the chart taken from `chart_toml`."""
    shutil.copytree(PROJECT / "deploy", root / "deploy")
    text = (PROJECT / "hub.toml").read_text(encoding="utf-8")
    text = text.replace('chart = "jupyterhub/jupyterhub"', chart_toml)
    text = text.replace('chart_repository = "https://hub.jupyter.org/helm-chart/"\n', "")
    (root / "hub.toml").write_text(text, encoding="utf-8")
    return root / "hub.toml"


def test_example_hub_passes_every_check_pulled_from_a_chart_repository(
    tmp_path: Path, standin: Path, chart_repo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = example_hub(tmp_path, f'chart = "jupyterhub/jupyterhub"\nchart_repository = "{chart_repo}"')
    assert main(["--config", str(config), "check", "--all"]) == 0
    out = capsys.readouterr().out
    assert "check staging (chart jupyterhub/jupyterhub 4.3.3): all passed" in out
    assert "check prod (chart jupyterhub/jupyterhub 4.3.3): all passed" in out
    assert "default (singleuser): guarantees 1.75 cpu / 7 GiB; users per node 4 by cpu, 4 by memory -> 4" in out
    assert "80 users: 20 nodes, 160 node-hours a day" in out
    assert "continuous-image-puller image-pull-singleuser pulls ghcr.io/example-hub/user-image:img-000000000000" in out
    cached = list((tmp_path / "cache" / "hubship" / "charts").glob("*/jupyterhub-4.3.3.tgz"))
    assert len(cached) == 1
    assert cached[0].read_bytes() == CHART_TGZ.read_bytes()
    report = (tmp_path / ".hubship" / "reports" / "check-prod.md").read_text()
    assert "| `shared-data` | pass |" in report
    assert "| default (singleuser) | 1.75 | 7 GiB | 4 | 4 | 4 |" in report

    # The cached chart is used as it is: no helm needed without the render.
    monkeypatch.setenv("HUBSHIP_HELM", str(tmp_path / "no-helm-here"))
    assert main(["--config", str(config), "check", "staging", "--no-render"]) == 0


def test_a_chart_version_the_repository_lacks_is_one_line(
    tmp_path: Path, standin: Path, chart_repo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = example_hub(tmp_path, f'chart = "jupyterhub/jupyterhub"\nchart_repository = "{chart_repo}"')
    config.write_text(config.read_text().replace('chart_version = "4.3.3"', 'chart_version = "9.9.9"'))
    assert main(["--config", str(config), "check", "staging"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: helm could not pull jupyterhub/jupyterhub 9.9.9 from {chart_repo}:")
    assert "9.9.9" in err.splitlines()[0] and len(err.splitlines()) == 1


def test_helm_missing_is_one_line(
    tmp_path: Path, standin: Path, chart_repo: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HUBSHIP_HELM", str(tmp_path / "bin" / "helm"))
    config = example_hub(tmp_path, f'chart = "jupyterhub/jupyterhub"\nchart_repository = "{chart_repo}"')
    assert main(["--config", str(config), "check", "staging"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: `{tmp_path / 'bin' / 'helm'}` was not found on this machine. "
        "Install Helm 3.13+ or 4, or name it in hub.toml ([helm] cli) or HUBSHIP_HELM."
    )


def test_a_missing_chart_version_is_a_hub_toml_problem(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_hub(tmp_path, {"v.yaml": "{}\n"}, hub_toml(staging=["v.yaml"], version_line=""))
    assert main(["--config", str(config), "check", "staging"]) == 2
    assert "'deploy.staging.chart_version' is required" in capsys.readouterr().err


def test_a_local_chart_of_another_version_is_refused(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = hub_toml(staging=["v.yaml"], version_line='chart_version = "4.2.0"')
    config = write_hub(tmp_path, {"v.yaml": "{}\n"}, toml)
    assert main(["--config", str(config), "check", "staging", "--no-render"]) == 2
    assert "is version 4.3.3, but hub.toml pins chart_version 4.2.0" in capsys.readouterr().err


def test_schema_findings_name_file_line_and_the_nearest_key(tmp_path: Path, standin: Path) -> None:
    values = "singleuser:\n  memory:\n    limit: 8G\n    guarante: 7G\n  cpu:\n    limit: four\n"
    config = write_hub(tmp_path, {"v.yaml": values}, hub_toml(staging=["v.yaml"]))
    found = failed(findings(config), "schema")
    assert [(f.where, f.message.split(" (")[0]) for f in found] == [
        ("v.yaml:6", "singleuser.cpu.limit: the schema wants type ['number', 'null']; got 'four'"),
        ("v.yaml:4", "singleuser.memory.guarante: unknown key; did you mean 'guarantee'?"),
    ]


def test_duplicate_keys_name_both_lines(tmp_path: Path, standin: Path) -> None:
    values = "cull:\n  timeout: 600\nsingleuser:\n  startTimeout: 300\ncull:\n  every: 60\n"
    config = write_hub(tmp_path, {"v.yaml": values}, hub_toml(staging=["v.yaml"]))
    [duplicate] = failed(findings(config), "duplicate-key")
    assert duplicate.where == "v.yaml:1, v.yaml:5"
    assert "cull is set twice in v.yaml: Helm keeps only the second" in duplicate.message


def test_a_yaml_error_names_file_line_and_column(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_hub(tmp_path, {"v.yaml": "cull:\n  timeout: [600\n"}, hub_toml(staging=["v.yaml"]))
    assert main(["--config", str(config), "check", "staging"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: v.yaml:3:1: not valid YAML:")


def test_icesat_2020_values_unwrapped_report_the_duplicate_and_what_moved(tmp_path: Path, standin: Path) -> None:
    files = {name: unwrap((ICESAT / name).read_text()) for name in ("chart-values.yaml", "common.yaml")}
    config = write_hub(tmp_path, files, hub_toml(staging=["chart-values.yaml", "common.yaml"]))
    found = findings(config)
    [duplicate] = failed(found, "duplicate-key")
    assert duplicate.where == "common.yaml:6, common.yaml:18"
    assert duplicate.message.startswith("singleuser.memory is set twice")
    schema = {(f.where, f.message.split(":")[0]) for f in failed(found, "schema")}
    assert schema == {("common.yaml:24", "auth"), ("chart-values.yaml:26", "singleuser.cloudMetadata.enabled")}


def test_the_wrapped_example_stops_at_the_schema_and_in_helm_too(tmp_path: Path, standin: Path) -> None:
    wrapped = "jupyterhub:\n  singleuser:\n    image:\n      name: a/b\n      tag: img-1\n"
    config = write_hub(tmp_path, {"v.yaml": wrapped}, hub_toml(staging=["v.yaml"]))
    found = findings(config, render=True)
    [schema] = failed(found, "schema")
    assert (schema.where, schema.message.split(" (")[0]) == ("v.yaml:1", "jupyterhub: unknown key")
    [render] = failed(found, "render")
    assert "additional properties 'jupyterhub' not allowed" in render.message


def test_a_wrong_secret_is_reported_without_its_value(tmp_path: Path, standin: Path) -> None:
    values = "proxy:\n  secretToken: 123456789\n"
    config = write_hub(tmp_path, {"v.yaml": values}, hub_toml(staging=["v.yaml"]))
    [finding] = failed(findings(config), "schema")
    assert finding.where == "v.yaml:2"
    assert "123456789" not in finding.message
    assert "got int (not shown: the key may hold a secret)" in finding.message


def test_check_needs_an_environment_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check"])
    assert exited.value.code == 2
    assert "one of the arguments ENV --all is required" in capsys.readouterr().err


def test_an_unknown_environment_is_a_hub_toml_problem(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_hub(tmp_path, {"v.yaml": "{}\n"}, hub_toml(staging=["v.yaml"]))
    assert main(["--config", str(config), "check", "qa"]) == 2
    assert "no [deploy.qa] table (environments: prod, staging)" in capsys.readouterr().err


def test_values_merge_over_the_chart_defaults_exactly_as_helm_coalesces_them() -> None:
    import helm_python  # noqa: PLC0415 (Helm's own engine, a test dependency)

    from tooling.check.chart import read_chart  # noqa: PLC0415
    from tooling.check.values_files import merge_files, parse_values  # noqa: PLC0415

    text = (
        "cull:\n  timeout: null\n  maxAge: 43200\n"  # null deletes a default; a value replaces one
        "singleuser:\n  cpu: {limit: 4, guarantee: 1.75}\n  image: {tag: img-1}\n"  # maps merge deeply
        "  profileList: [{display_name: A, kubespawner_override: {image: x:1, mem_limit: null}}]\n"
        "hub:\n  extraEnv: {A: null, B: '2'}\n"
    )
    ours = merge_files(read_chart(CHART_TGZ).defaults, [parse_values(text, "v.yaml")]).data
    helms = helm_python.Chart.load(str(CHART_TGZ)).merge_values(helm_python.values_from_yaml(text))
    assert ours == helms
    assert "timeout" not in ours["cull"]
    assert ours["singleuser"]["image"]["name"] == "quay.io/jupyterhub/k8s-singleuser-sample"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "v.yaml:1:1: Helm values must be a mapping of keys, not list."),
        ("a: 1\n---\nb: 2\n", "v.yaml:2:1: a second YAML document starts here; Helm reads only the first"),
        ("a:\n\tb: 1\n", "v.yaml:2:1: not valid YAML: found character that cannot start any token."),
    ],
)
def test_values_that_are_not_a_values_mapping_are_one_line(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    config = write_hub(tmp_path, {"v.yaml": text}, hub_toml(staging=["v.yaml"]))
    assert main(["--config", str(config), "check", "staging", "--no-render"]) == 1
    assert capsys.readouterr().err.startswith(f"error: {expected}")


def test_odd_but_valid_values_are_checked_without_a_crash(tmp_path: Path, standin: Path) -> None:
    text = (
        "custom: &loop {self: *loop}\n"  # a YAML cycle
        "singleuser:\n  extraFiles:\n    notes: {mountPath: /etc/notes.txt, stringData: hello}\n"
    )
    config = write_hub(tmp_path, {"v.yaml": text}, hub_toml(staging=["v.yaml"]))
    found = findings(config)
    [kernels] = failed(found, "kernel-culling")
    assert kernels.message.startswith("no MappingKernelManager")


@pytest.mark.parametrize(
    ("chart", "expected"),
    [
        ("charts/jupyterhub/jupyterhub", "is neither REPO/NAME, an oci:// reference nor a local path"),
        ("./charts/missing", "charts/missing: no such folder or .tgz (hub.toml [deploy] chart)"),
    ],
)
def test_a_chart_hub_toml_cannot_name_is_a_hub_toml_problem(
    tmp_path: Path, standin: Path, capsys: pytest.CaptureFixture[str], chart: str, expected: str
) -> None:
    config = write_hub(tmp_path, {"v.yaml": "{}\n"}, hub_toml(staging=["v.yaml"], chart=chart))
    assert main(["--config", str(config), "check", "staging"]) == 2
    assert expected in capsys.readouterr().err


def test_a_local_chart_folder_is_used_as_it_is(tmp_path: Path, standin: Path) -> None:
    folder = tmp_path / "wrapper"
    shutil.copytree(CHART_TGZ.parent / "jupyterhub-4.3.3" / "jupyterhub", folder)
    values = "singleuser:\n  image: {name: a/b, tag: img-1}\n  memory: {limit: 8G, guarantee: 9G}\n"
    config = write_hub(tmp_path, {"v.yaml": values}, hub_toml(staging=["v.yaml"], chart="./wrapper"))
    found = findings(config, render=True)
    memory = [f for f in failed(found, "resources") if "memory" in f.message]
    assert [(f.where, f.message) for f in memory] == [
        ("v.yaml:3", "default (singleuser): memory guarantee 9 GiB is above its limit 8 GiB")
    ]
    assert [f.message for f in found if f.check == "render" and f.where] == ["hub Secret singleuser.image: a/b:img-1"]
