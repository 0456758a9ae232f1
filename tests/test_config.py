"""hub.toml: the committed file loads, defaults are filled, mistakes get one clear line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tooling.cli import main
from tooling.config import CONFIG_ENV, find_config, load_config
from tooling.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[deploy.staging]
values = ["deploy/staging.yaml"]
image = [{ file = "deploy/staging.yaml", path = "singleuser.image" }]
release = "s"
namespace = "s"
chart_version = "4.3.3"

[deploy.prod]
values = ["deploy/prod.yaml"]
image = [{ file = "deploy/prod.yaml", path = "singleuser.image" }]
release = "p"
namespace = "p"
chart_version = "4.3.3"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_committed_hub_toml_loads_with_paths_resolved_against_its_folder() -> None:
    config = load_config(ROOT / "hub.toml")
    assert config.root == ROOT
    assert config.file(config.environment.spec) == ROOT / "environments" / "environment.yml"
    assert config.file(config.environment.spec).is_file()
    for name in ("staging", "prod"):
        target = config.deploy_target(name)
        for location in target.image:
            assert config.file(location.file).is_file()


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL))
    assert config.environment.platforms == ["linux-64"]
    assert config.environment.virtual_packages["linux-64"]["__glibc"] == "2.28"
    assert "__cuda" not in config.environment.virtual_packages["linux-64"]
    assert config.smoke.size_budget == 6_000_000_000
    assert config.deploy_target("prod").chart == "jupyterhub/jupyterhub"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('[image]\nnmae = "x"\n', "unknown key 'image.nmae'; expected one of: registry, name, context, base."),
        ('[smoke]\ntimeout = "soon"\n', "'smoke.timeout': input should be a valid integer"),
        ("[smoke]\ntimeout = 0\n", "'smoke.timeout': input should be greater than 0"),
        ('[image]\nname = "My Image"\n', "'image.name': string should match pattern"),
        ('[environment]\nplatforms = ["linux-32"]\n', "'environment.platforms.0'"),
        ('[mirrors]\nconda-forge = "ftp://x"\n', "'mirrors.conda-forge'"),
        ('[smoke]\nsize_budget = "lots"\n', "'smoke.size_budget'"),
    ],
)
def test_wrong_key_type_or_value_names_file_and_key(tmp_path: Path, extra: str, expected: str) -> None:
    path = write_config(tmp_path, extra + MINIMAL)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = raised.value.message
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_chart_version_written_as_a_number_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL.replace('chart_version = "4.3.3"', "chart_version = 4.3", 1))
    with pytest.raises(ConfigError, match=r"'deploy\.staging\.chart_version': input should be a valid string"):
        load_config(path)


def test_missing_environment_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL.split("[deploy.prod]", maxsplit=1)[0])
    with pytest.raises(ConfigError, match=r"\[deploy\.prod\] is missing"):
        load_config(path)


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[image\nname = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_config(path)


def test_config_is_found_in_parent_folders_or_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, MINIMAL)
    nested = tmp_path / "deploy" / "charts"
    nested.mkdir(parents=True)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert find_config(nested) == path
    elsewhere = tmp_path / "other.toml"
    shutil.copy(path, elsewhere)
    monkeypatch.setenv(CONFIG_ENV, str(elsewhere))
    assert find_config(nested) == elsewhere


def test_config_command_prints_effective_configuration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL)
    assert main(["--config", str(path), "config", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["smoke"]["size_budget"] == "6.0 GB"
    assert printed["deploy"]["staging"]["image"] == [{"file": "deploy/staging.yaml", "path": "singleuser.image"}]
    assert main(["--config", str(path), "config"]) == 0
    assert '[deploy.prod]\nvalues = ["deploy/prod.yaml"]' in capsys.readouterr().out


def test_broken_config_exits_2_with_one_line_and_no_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_config(tmp_path, '[image]\nnmae = "x"\n' + MINIMAL)
    assert main(["--config", str(path), "config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith(f"error: {path}: unknown key 'image.nmae'")


def test_a_config_file_of_another_name_is_named_as_it_is(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "staging-hub.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    config = load_config(path)
    assert config.path == path.resolve()
    assert config.root == tmp_path.resolve()
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path.resolve()))}: no \[deploy\.qa\] table"):
        config.deploy_target("qa")
    assert main(["--config", str(path), "config"]) == 0
    assert capsys.readouterr().out.startswith(f"# Effective configuration of {path.resolve()}\n")


def test_a_hub_that_does_not_lock_the_image_platform_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[environment]\nplatforms = ["osx-arm64"]\n' + MINIMAL)
    config = load_config(path)
    with pytest.raises(
        ConfigError, match=r"\[environment\] platforms has no linux-64, the platform of the image"
    ) as raised:
        config.require_platform("linux-64")
    assert raised.value.message.startswith(f"{path}: ")
    load_config(write_config(tmp_path, MINIMAL)).require_platform("linux-64")
