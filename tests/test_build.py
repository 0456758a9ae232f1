"""The build stage on the rig: this repository's hub, locked against the rig's channel, built on the rig's base image.

The image is built once per session (`rig_built_image`); the tests run it
the way a hub does (repo2docker's entrypoint, a login shell, uid 1000) with
no network and no pull, and read what is in it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import re
import tarfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO

import pytest

from tests.lock_fixtures import CliResult
from tests.rig.docker import local_image_id
from tests.rig.hub_fixtures import HubCopies, RigHub, in_image
from tests.rig.registry import RunningRegistry
from tooling.build import BuildResult
from tooling.cli import build_cmd, main
from tooling.docker import Docker
from tooling.files import sha256_file
from tooling.lockfile import read_lock
from tooling.state import State

pytestmark = [pytest.mark.docker, pytest.mark.rig]

PREFIX = "/srv/conda/envs/notebook"
PYTHON = f"{PREFIX}/bin/python"


def image_labels(docker: Docker, reference: str) -> dict[str, str]:
    labels: dict[str, str] = json.loads(
        docker.run("image", "inspect", "--format", "{{json .Config.Labels}}", reference).stdout
    )
    return labels


def build_cli(hub: RigHub, capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    capsys.readouterr()
    code = main(["--config", str(hub.config), "build", *args])
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def test_build_records_the_image_under_a_tag_derived_from_its_inputs(
    rig_hub: RigHub, rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    result = rig_built_image
    assert re.fullmatch(r"img-[0-9a-f]{12}", result.tag)
    assert result.reference == f"{rig_hub.registry}/rig-hub/user-image:{result.tag}"
    assert local_image_id(docker_cli, result.reference) == result.image_id
    recorded = State.load(rig_hub.root).built
    assert recorded is not None
    assert (recorded.reference, recorded.image_id) == (result.reference, result.image_id)
    assert recorded.lock_sha256 == sha256_file(rig_hub.explicit_lock)
    assert result.packages == len(read_lock(rig_hub.explicit_lock).package)


def test_container_runs_as_jovyan_with_uid_1000(rig_built_image: BuildResult, docker_cli: Docker) -> None:
    assert in_image(docker_cli, rig_built_image.reference, "id", "-u").strip() == "1000"
    assert in_image(docker_cli, rig_built_image.reference, "id", "-un").strip() == "jovyan"


def test_installed_packages_are_exactly_the_lock(
    rig_hub: RigHub, rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    read_meta = (
        "import glob, json\n"
        f"records = [json.load(open(p)) for p in sorted(glob.glob('{PREFIX}/conda-meta/*.json'))]\n"
        "print(json.dumps([[r[k] for k in ('name', 'version', 'build', 'md5', 'sha256', 'url')] for r in records]))"
    )
    installed = json.loads(in_image(docker_cli, rig_built_image.reference, "-c", read_meta, entrypoint=PYTHON))
    locked = read_lock(rig_hub.explicit_lock).package
    full = {p.url: p for p in read_lock(rig_hub.lock).package}
    expected = sorted(
        [p.name, p.version, p.build, p.hash.md5, full[p.url].hash.sha256, p.url] for p in locked if p.manager == "conda"
    )
    assert sorted(installed) == expected
    assert all(url.startswith("https://conda.anaconda.org/conda-forge/") for *_, url in installed)


def test_jupyterhub_singleuser_and_the_scientific_stack_run(rig_built_image: BuildResult, docker_cli: Docker) -> None:
    version = in_image(docker_cli, rig_built_image.reference, "jupyterhub-singleuser", "--version")
    assert re.search(r"^5\.\d+\.\d+$", version, re.MULTILINE), version
    imported = in_image(
        docker_cli,
        rig_built_image.reference,
        "python",
        "-c",
        "import numpy, pandas, xarray, h5py, matplotlib, sys; print('imported', sys.executable)",
    )
    assert f"imported {PYTHON}" in imported


def test_hub_environment_variables_are_set_and_path_survives_the_login_shell(
    rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    shown = in_image(
        docker_cli,
        rig_built_image.reference,
        "bash",
        "-c",
        'echo "NB=$NB_PYTHON_PREFIX KERNEL=$KERNEL_PYTHON_PREFIX CONDA_DIR=$CONDA_DIR"; echo "PATH=$PATH"; '
        "command -v python jupyter",
    )
    assert f"NB={PREFIX} KERNEL={PREFIX} CONDA_DIR=/srv/conda" in shown
    path = next(line for line in shown.splitlines() if line.startswith("PATH=")).removeprefix("PATH=").split(":")
    assert path.index(f"{PREFIX}/bin") < path.index("/usr/bin")
    assert f"{PREFIX}/bin/python\n{PREFIX}/bin/jupyter" in shown


def test_image_holds_no_package_cache_no_build_environment_and_compiled_bytecode(
    rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    survey = (
        "import os, pathlib\n"
        "leftovers = os.path.exists('/opt/hubship')\n"
        "archives = [str(p) for top in ('/home', '/opt', '/srv', '/tmp', '/var', '/root')\n"
        "            for p in pathlib.Path(top).rglob('*') if p.name.endswith(('.conda', '.tar.bz2', '.whl'))]\n"
        f"sources = list(pathlib.Path('{PREFIX}/lib').rglob('*.py'))\n"
        "uncompiled = [p for p in sources if not list(p.parent.glob(f'__pycache__/{p.stem}.cpython-*.pyc'))]\n"
        "print(leftovers, archives, os.path.exists('/home/jovyan/.cache'), len(sources), len(uncompiled))\n"
    )
    shown = in_image(docker_cli, rig_built_image.reference, "-c", survey, entrypoint=PYTHON).split()
    leftovers, archives, home_cache, sources, uncompiled = shown
    assert (leftovers, archives, home_cache) == ("False", "[]", "False")
    assert int(sources) > 1000
    assert int(uncompiled) < int(sources) // 100


def test_labels_name_the_source_revision_base_lock_and_tag(
    rig_hub: RigHub, rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    labels = json.loads(
        docker_cli.run("image", "inspect", "--format", "{{json .Config.Labels}}", rig_built_image.reference).stdout
    )
    assert labels["org.opencontainers.image.version"] == rig_built_image.tag
    assert labels["org.opencontainers.image.revision"] == rig_hub.git("rev-parse", "HEAD")
    assert labels["org.opencontainers.image.base.name"] == load_base(rig_hub)
    assert labels["hubship.lock.sha256"] == sha256_file(rig_hub.explicit_lock)
    assert labels["hubship.version"] == importlib.metadata.version("hubship")
    assert datetime.fromisoformat(labels["org.opencontainers.image.created"]).tzinfo is not None


def load_base(hub: RigHub) -> str:
    return hub.request().base


def test_report_shows_size_layers_and_step_times(rig_built_image: BuildResult) -> None:
    result = rig_built_image
    env_layer = max(result.largest_layers, key=lambda layer: layer.size)
    assert "install_lock.py" in env_layer.created_by
    assert result.size > env_layer.size > 100e6
    assert any("install_lock.py" in step.name for step in result.docker_steps)
    assert [phase.name for phase in result.phases][:2] == ["check the lock", "check Docker and the base image"]
    # What a person reads: the report (build.md) and the printed summary name the environment layer and
    # every phase.
    report = build_cmd.markdown(result)
    largest = report[report.index("### Largest layers") :]
    assert "install_lock.py" in largest
    assert all(f"| {phase.name} |" in report for phase in result.phases)
    printed = build_cmd.summary(result)
    assert "install_lock.py" in printed[printed.index("Largest layers:") :]


def test_second_build_without_change_is_skipped(
    rig_hub: RigHub, rig_built_image: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    again = build_cli(rig_hub, capsys)

    assert again.code == 0, again.err
    assert again.out.splitlines()[0] == rig_built_image.reference
    assert "not built: the local Docker engine already has an image with this tag" in again.out
    report = (rig_hub.root / ".hubship" / "reports" / "build.md").read_text()
    assert f"`{rig_built_image.reference}` (id `{rig_built_image.image_id}`)" in report
    recorded = State.load(rig_hub.root).built
    assert recorded is not None and recorded.image_id == rig_built_image.image_id


def test_mirror_at_another_address_gives_the_same_tag(
    rig_hub: RigHub, rig_built_image: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = load_mirror(rig_hub).replace("127.0.0.1", "localhost")

    again = build_cli(rig_hub, capsys, "--mirror", f"conda-forge={channel}")

    assert again.code == 0, again.err
    assert again.out.splitlines()[0] == rig_built_image.reference
    assert "not built" in again.out


def load_mirror(hub: RigHub) -> str:
    return dict(hub.request().mirrors)["conda-forge"]


def test_changing_a_notebook_reuses_the_environment_layer(
    copy_rig_hub: HubCopies, rig_built_image: BuildResult, docker_cli: Docker, tmp_path: Path
) -> None:
    hub = copy_rig_hub()
    notebook = hub.image_dir / "notebooks" / "intro.ipynb"
    document = json.loads(notebook.read_text())
    # New text in every run: a later step cached by an earlier run would say nothing about this one.
    new_cell = f"One more cell ({uuid.uuid4()})."
    document["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [new_cell]})
    notebook.write_text(json.dumps(document, indent=1) + "\n")

    result = copy_rig_hub.build(hub)

    assert result.built and result.tag != rig_built_image.tag
    install_step = next(step for step in result.docker_steps if "install_lock.py" in step.name)
    assert install_step.cached
    before = set(layer_ids(docker_cli, rig_built_image.reference))
    sizes = saved_layer_sizes(docker_cli, result.reference, tmp_path / "image.tar")
    environment_layer = max(sizes, key=lambda layer: sizes[layer])
    assert sizes[environment_layer] > 100e6
    assert environment_layer in before
    new_layers = [size for layer, size in sizes.items() if layer not in before]
    assert new_layers
    assert sum(new_layers) < sum(sizes.values()) / 100
    assert new_cell in in_image(docker_cli, result.reference, "cat", "notebooks/intro.ipynb")


def layer_ids(docker: Docker, reference: str) -> list[str]:
    shown = docker.run("image", "inspect", "--format", "{{json .RootFS.Layers}}", reference).stdout
    layers: list[str] = json.loads(shown)
    return layers


def saved_layer_sizes(docker: Docker, reference: str, archive: Path) -> dict[str, int]:
    """Each layer's diff id and size in bytes (its tar), from `docker save`: what a push would send, uncompressed."""
    docker.run("save", "--output", str(archive), reference)
    with tarfile.open(archive) as saved:
        manifest = json.load(extracted(saved, "manifest.json"))[0]
        diff_ids = json.load(extracted(saved, manifest["Config"]))["rootfs"]["diff_ids"]
        sizes = [saved.getmember(layer).size for layer in manifest["Layers"]]
    archive.unlink()
    return dict(zip(diff_ids, sizes, strict=True))


def extracted(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    member = archive.extractfile(name)
    assert member is not None, name
    return member


def test_registry_holding_the_tag_skips_the_build_and_pulls_it(
    copy_rig_hub: HubCopies,
    rig_built_image: BuildResult,
    registry: RunningRegistry,
    docker_cli: Docker,
    tmp_path: Path,
) -> None:
    # A tag names one image forever, so the stage trusts what the registry holds under it; a one-file
    # image stands in for the real one here, which saves compressing and pushing 800 MB.
    hub = copy_rig_hub(registry=registry.address)
    pushed = f"{registry.address}/rig-hub/user-image:{rig_built_image.tag}"
    tiny = tmp_path / "tiny.tar"
    with tarfile.open(tiny, "w") as archive:
        member = tarfile.TarInfo("hello.txt")
        member.size = 6
        archive.addfile(member, io.BytesIO(b"hello\n"))
    docker_cli.run("import", str(tiny), pushed)
    tiny_id = local_image_id(docker_cli, pushed)
    docker_cli.run("push", pushed)
    docker_cli.run("rmi", pushed)

    result = copy_rig_hub.build(hub)

    assert (result.built, result.reference) == (False, pushed)
    assert result.reason == f"{registry.address} already has an image with this tag (pulled it)"
    assert local_image_id(docker_cli, pushed) == tiny_id == result.image_id
    recorded = State.load(hub.root).built
    assert recorded is not None and recorded.image_id == tiny_id


def test_force_builds_again_from_the_layer_cache(copy_rig_hub: HubCopies, rig_built_image: BuildResult) -> None:
    hub = copy_rig_hub()
    first = copy_rig_hub.build(hub)

    forced = copy_rig_hub.build(hub, force=True)

    assert first.tag == forced.tag == rig_built_image.tag
    assert forced.built and forced.reason == "--force"
    assert forced.docker_steps
    assert all(step.cached for step in forced.docker_steps if not step.name.startswith("FROM"))


def test_missing_base_image_is_pulled_and_its_digest_labelled(
    copy_rig_hub: HubCopies, registry: RunningRegistry, rig_base_image: str, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()
    base = f"{registry.address}/hubship-rig/base:pushed"
    docker_cli.run("tag", rig_base_image, base)
    digest = re.findall(r"digest: (sha256:[0-9a-f]{64})", docker_cli.run("push", base).stdout)[0]
    docker_cli.run("rmi", base)
    hub.set_hub_toml("image", "base", base)
    try:
        result = copy_rig_hub.build(hub)
    finally:
        docker_cli.run("rmi", base, check=False)

    labels = image_labels(docker_cli, result.reference)
    assert labels["org.opencontainers.image.base.name"] == base
    assert labels["org.opencontainers.image.base.digest"] == digest


def test_present_base_image_is_never_resolved_at_its_registry(
    copy_rig_hub: HubCopies, rig_built_image: BuildResult, rig_base_image: str, docker_cli: Docker
) -> None:
    # Nothing listens at this address: a build that asked the registry for the base image would fail.
    hub = copy_rig_hub()
    base = f"{hub.registry}/hubship-rig/base:present"
    docker_cli.run("tag", rig_base_image, base)
    hub.set_hub_toml("image", "base", base)
    try:
        result = copy_rig_hub.build(hub)
    finally:
        docker_cli.run("rmi", base)

    assert result.built
    labels = json.loads(
        docker_cli.run("image", "inspect", "--format", "{{json .Config.Labels}}", result.reference).stdout
    )
    assert labels["org.opencontainers.image.base.name"] == base
    assert "org.opencontainers.image.base.digest" not in labels
    assert Path(result.log or "").read_text().count(f"load metadata for {base}") == 1


def test_source_label_has_no_credentials_and_revision_marks_changes(
    copy_rig_hub: HubCopies, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()  # its hub.toml now names another registry: an uncommitted change
    hub.git("remote", "add", "origin", "https://hub-admin:s3cret-token@git.example.org/hub-team/hub.git")

    result = copy_rig_hub.build(hub)

    labels = image_labels(docker_cli, result.reference)
    assert labels["org.opencontainers.image.source"] == "https://git.example.org/hub-team/hub.git"
    assert labels["org.opencontainers.image.revision"] == hub.git("rev-parse", "HEAD") + "-dirty"
    assert not [value for value in labels.values() if "s3cret" in value]


def test_unreachable_registry_and_unused_environment_files_give_warnings_and_a_build(
    copy_rig_hub: HubCopies, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = copy_rig_hub()  # its registry address has nothing listening
    (hub.image_dir / "requirements.txt").write_text("requests\n")

    built = build_cli(hub, capsys)
    copy_rig_hub.built.append(built.out.splitlines()[0])

    assert built.code == 0, built.err
    assert f"could not ask {hub.registry} whether it has rig-hub/user-image:img-" in built.err
    assert "so building it (The registry" in built.err and "Connection refused" in built.err
    assert f"{hub.image_dir / 'requirements.txt'} is not used: the image's environment is the lock" in built.err
    assert "built in" in built.out


def test_post_build_may_change_the_environment_and_activation_scripts_run_at_start(
    copy_rig_hub: HubCopies, docker_cli: Docker
) -> None:
    hub = copy_rig_hub()
    # postBuild runs as jovyan, who owns the environment; the script it adds is what a package's activate.d holds.
    (hub.image_dir / "postBuild").write_text(
        '#!/bin/bash\nset -e\nmkdir -p "$NB_PYTHON_PREFIX/etc/conda/activate.d"\n'
        "echo 'export TUTORIAL_DATA=/home/jovyan/shared/data' > \"$NB_PYTHON_PREFIX/etc/conda/activate.d/data.sh\"\n"
    )

    result = copy_rig_hub.build(hub)

    shown = in_image(docker_cli, result.reference, "sh", "-c", 'echo "$TUTORIAL_DATA $CONDA_PREFIX"')
    assert shown.strip().endswith(f"/home/jovyan/shared/data {PREFIX}")


def test_summary_says_how_to_pin_an_unpinned_base(rig_built_image: BuildResult) -> None:
    digest = "sha256:" + "ab" * 32
    pulled = dataclasses.replace(
        rig_built_image,
        base="registry.example.org/base:jammy",
        labels={**rig_built_image.labels, "org.opencontainers.image.base.digest": digest},
    )
    assert f'set [image] base = "registry.example.org/base:jammy@{digest}" in hub.toml' in build_cmd.summary(pulled)
    pinned = dataclasses.replace(pulled, base=f"registry.example.org/base:jammy@{digest}")
    assert "pinned" not in build_cmd.summary(pinned)
    assert "not pinned by digest, and has none from a registry" in build_cmd.summary(rig_built_image)
