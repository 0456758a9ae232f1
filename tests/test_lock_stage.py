"""The lock stage with its default engine (py-rattler) on real conda-forge repodata, checked by conda-lock itself."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file
from conda_lock.lockfile.v1 import models as v1_models

from tests.lock_fixtures import PANGEO, PANGEO_SPECS, PROJECT, CliResult, Hub, hub_toml_with, loopback_server
from tooling.lock import content_hashes, parse_spec_files, virtual_package_repo
from tooling.lockfile import (
    KEPT_RENDERINGS,
    RENDERINGS_FOLDER,
    read_lock,
    remember_rendering,
    render_conda_lock_yml,
    rendered_data,
)
from tooling.lockrequest import LockRequest

CANONICAL = "https://conda.anaconda.org/conda-forge/"
Cli = Callable[..., CliResult]


def conda_lock(*args: str, cwd: Path, path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real conda-lock command line."""
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "conda_lock", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_lock_writes_a_conda_forge_lock_that_conda_lock_reads(
    make_hub: Callable[..., Hub], cli: Cli, snapshot_channel: str, snapshot_records: dict[str, dict[str, Any]]
) -> None:
    hub = make_hub()
    result = cli(hub, "lock")
    assert result.code == 0, result.err
    assert "Wrote" in result.out

    lock = parse_conda_lock_file(hub.lock)  # conda-lock's own reader
    assert lock.metadata.platforms == ["linux-64"]
    assert [c.url for c in lock.metadata.channels] == ["conda-forge"]
    assert lock.metadata.sources == ["environment.yml"]
    names = {p.name for p in lock.package}
    assert {"python", "jupyterhub-singleuser", "jupyterlab", "numpy", "xarray"} <= names
    for package in lock.package:
        assert package.url.startswith(CANONICAL), package.url
        record = snapshot_records[package.url.rsplit("/", 1)[1]]
        assert (package.hash.md5, package.hash.sha256) == (record["md5"], record["sha256"])
    text = hub.lock.read_text()
    assert snapshot_channel not in text and "file://" not in text

    schema_path = Path(v1_models.__file__).with_name("conda-lock-v1.schema.json")
    jsonschema.validate(yaml.safe_load(text), json.loads(schema_path.read_text()))


def test_explicit_lock_is_what_conda_lock_render_writes(make_hub: Callable[..., Hub], cli: Cli, tmp_path: Path) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    rendered = conda_lock("render", "--kind", "explicit", "--platform", "linux-64", str(hub.lock), cwd=render_dir)
    assert rendered.returncode == 0, rendered.stderr
    assert (render_dir / "conda-linux-64.lock").read_text() == hub.explicit.read_text()
    lines = hub.explicit.read_text().splitlines()
    assert "@EXPLICIT" in lines
    urls = [line for line in lines if line.startswith("https://")]
    assert len(urls) == len(read_lock(hub.lock).package)
    assert all(line.startswith(CANONICAL) and "#" in line for line in urls)


@pytest.mark.parametrize("virtual_packages", ["spec-file", "--without-cuda"])
def test_conda_lock_check_input_hash_sees_our_lock_as_current(
    make_hub: Callable[..., Hub], cli: Cli, fake_micromamba: Path, virtual_packages: str
) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    before = hub.lock.read_bytes()
    if virtual_packages == "spec-file":
        (hub.root / "virtual-packages.yml").write_text(
            "subdirs:\n  linux-64:\n    packages:\n      __unix: '0'\n      __linux: '5.10'\n"
            "      __glibc: '2.28'\n      __archspec: '1 x86_64'\n"
        )
        flags = ["--virtual-package-spec", "virtual-packages.yml"]
    else:
        flags = ["--without-cuda"]
    checked = conda_lock(
        "lock", "--check-input-hash", "--conda", str(fake_micromamba), "--platform", "linux-64",
        "--file", "environments/environment.yml", "--lockfile", "environments/conda-lock.yml", *flags,
        cwd=hub.root,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Spec hash already locked for ['linux-64']. Skipping solve." in checked.stderr
    assert hub.lock.read_bytes() == before


def test_content_hash_is_the_one_conda_lock_wrote_for_pangeo() -> None:
    # pangeo locked these two files with conda-lock's default virtual packages (which include __cuda 11.4).
    spec = parse_spec_files(PANGEO_SPECS, platforms=["linux-64"], mapping_url="unused-without-pip")
    request = LockRequest(
        spec_files=PANGEO_SPECS,
        lock_dir=PANGEO,
        platforms=("linux-64",),
        virtual_packages={
            "linux-64": {
                "__unix": "0",
                "__linux": "5.10",
                "__glibc": "2.28",
                "__archspec": "1 x86_64",
                "__cuda": "11.4",
            }
        },
    )
    repo, _ = virtual_package_repo(request)
    recorded = read_lock(PANGEO / "pangeo-notebook.conda-linux-64.lock").metadata.content_hash["linux-64"]
    assert content_hashes(spec, repo) == {"linux-64": recorded}


def test_committed_lock_is_current(cli: Cli) -> None:
    result = cli(Hub(PROJECT), "lock", "--check")
    assert result.code == 0, result.err
    assert result.out.startswith("ok: ")


def test_committed_lock_reads_the_same_with_conda_locks_reader() -> None:
    ours = read_lock(PROJECT / "environments" / "conda-lock.yml")
    theirs = parse_conda_lock_file(PROJECT / "environments" / "conda-lock.yml")
    assert ours == theirs


@pytest.mark.parametrize(
    "lock_file",
    [PANGEO / "pangeo-notebook.conda-lock.yml", PROJECT / "environments" / "conda-lock.yml"],
    ids=["pangeo, three platforms", "this hub"],
)
def test_lock_renders_as_conda_locks_own_writer_writes_it(lock_file: Path, tmp_path: Path) -> None:
    lock = read_lock(lock_file)
    theirs = tmp_path / "conda-lock.yml"
    write_conda_lock_file(lock.model_copy(deep=True), theirs, metadata_choices=None)

    rendering = render_conda_lock_yml(lock)

    assert rendering.text == theirs.read_text(encoding="utf-8")
    assert rendering.data == yaml.safe_load(rendering.text)  # what the next read takes instead of the YAML


def test_a_lock_read_from_its_kept_data_is_the_lock_its_yaml_holds(
    make_hub: Callable[..., Hub], cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    text = hub.lock.read_text(encoding="utf-8")
    kept = rendered_data(text)
    assert kept is not None
    from_kept = read_lock(hub.lock)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    from_yaml = read_lock(hub.lock)

    assert from_kept == from_yaml
    assert kept == yaml.safe_load(text)


def test_damaged_kept_data_is_read_again_from_the_yaml(
    make_hub: Callable[..., Hub], cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    (kept,) = (cache / "hubship" / RENDERINGS_FOLDER).iterdir()
    kept.write_text('{"package": [')

    checked = cli(hub, "lock", "--check")

    assert checked.code == 0, checked.err
    assert rendered_data(hub.lock.read_text(encoding="utf-8")) == yaml.safe_load(hub.lock.read_text(encoding="utf-8"))


def test_only_the_newest_kept_renderings_stay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "hubship" / RENDERINGS_FOLDER
    seen: set[Path] = set()
    for number in range(KEPT_RENDERINGS + 2):
        remember_rendering(f"lock {number}\n", {"number": number})
        (new,) = set(folder.iterdir()) - seen
        os.utime(new, (1_000_000 + number, 1_000_000 + number))  # the file clock is too coarse to order them
        seen.add(new)

    assert len(list(folder.iterdir())) == KEPT_RENDERINGS
    assert rendered_data("lock 0\n") is None
    assert rendered_data("lock 1\n") is None
    assert rendered_data("lock 2\n") == {"number": 2}
    assert rendered_data(f"lock {KEPT_RENDERINGS + 1}\n") == {"number": KEPT_RENDERINGS + 1}


def test_relock_after_a_spec_change_reports_why(
    make_hub: Callable[..., Hub], cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    first = {p.name: p.version for p in read_lock(hub.lock).package}
    assert first["numpy"].startswith("2.")
    hub.spec.write_text(hub.spec.read_text().replace("  - numpy\n", "  - numpy<2\n"))
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = cli(hub, "lock")

    assert result.code == 0, result.err
    second = {p.name: p.version for p in read_lock(hub.lock).package}
    assert second["numpy"].startswith("1.")
    row = next(line for line in result.out.splitlines() if line.startswith("downgraded"))
    assert row.split()[:5] == ["downgraded", "numpy", "*", first["numpy"], second["numpy"]]
    assert "spec changed: `numpy` → `numpy <2`" in row
    markdown = hub.report.read_text()
    assert f"| downgraded | **numpy** | {first['numpy']} | {second['numpy']} | spec changed" in markdown
    assert summary.read_text().strip() == markdown.strip()


def test_locking_again_without_changes_keeps_the_files(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    stamps = {path: path.stat().st_mtime_ns for path in (hub.lock, hub.explicit)}
    again = cli(hub, "lock")
    assert again.code == 0
    assert "no changes" in again.out and "Unchanged:" in again.out
    assert {path: path.stat().st_mtime_ns for path in (hub.lock, hub.explicit)} == stamps


def test_locking_again_rewrites_a_hand_edited_comment_of_the_same_lock(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    written = hub.lock.read_text()
    hub.lock.write_text(written.replace("# This lock file was generated", "# This lock file was once generated", 1))

    again = cli(hub, "lock")

    assert again.code == 0, again.err
    assert hub.lock.read_text() == written


def test_update_relocks_only_the_named_package(make_hub: Callable[..., Hub], cli: Cli) -> None:
    spec = PROJECT.joinpath("environments", "environment.yml").read_text()
    hub = make_hub(spec=spec.replace("  - numpy\n", "  - numpy<2\n").replace("  - pandas\n", "  - pandas<2.2\n"))
    assert cli(hub, "lock").code == 0
    before = {p.name: p for p in read_lock(hub.lock).package}
    hub.spec.write_text(spec)  # both caps lifted: a fresh lock would move numpy and pandas

    result = cli(hub, "lock", "--update", "pandas")

    assert result.code == 0, result.err
    after = {p.name: p for p in read_lock(hub.lock).package}
    assert after["pandas"].version != before["pandas"].version
    assert after["numpy"].version == before["numpy"].version
    moved = {name for name in before.keys() & after.keys() if before[name].url != after[name].url}
    assert moved == {"pandas"}, moved
    assert "--update asked for it" in result.out


def test_update_of_a_package_not_in_the_lock_is_refused(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    before = hub.snapshot()
    result = cli(hub, "lock", "--update", "numpyy")
    assert result.code == 1
    assert "numpyy" in result.err and "not in" in result.err
    assert hub.snapshot() == before


def test_spec_without_jupyterhub_singleuser_is_refused_unless_waived(
    make_hub: Callable[..., Hub], cli: Cli, snapshot_channel: str
) -> None:
    spec = PROJECT.joinpath("environments", "environment.yml").read_text().replace("  - jupyterhub-singleuser=5\n", "")
    hub = make_hub(spec=spec)
    refused = cli(hub, "lock")
    assert refused.code == 1
    assert "jupyterhub-singleuser" in refused.err and "require_singleuser = false" in refused.err
    assert not hub.lock.exists()

    waived = make_hub(
        spec=spec,
        hub_toml=hub_toml_with(snapshot_channel, {"require_singleuser = true": "require_singleuser = false"}),
    )
    result = cli(waived, "lock")
    assert result.code == 0, result.err
    assert "jupyterhub-singleuser" not in {p.name for p in read_lock(waived.lock).package}


def test_a_package_that_provides_singleuser_is_enough(make_hub: Callable[..., Hub], cli: Cli) -> None:
    # pangeo-notebook depends on jupyterhub-singleuser: the spec need not name it.
    spec = "channels:\n  - conda-forge\ndependencies:\n  - python=3.12\n  - pangeo-notebook=2026.01.21\n"
    hub = make_hub(spec=spec)
    result = cli(hub, "lock")
    assert result.code == 0, result.err
    assert "jupyterhub-singleuser" in {package.name for package in read_lock(hub.lock).package}


@contextmanager
def channel_behind_basic_auth(channel: Path, username: str, password: str) -> Iterator[tuple[str, list[bool]]]:
    """`channel` served on 127.0.0.1 only to USER:PASSWORD; yields its base URL (credentials in it) and,
    per request, whether it carried them."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    authorized: list[bool] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(channel.parent), **kwargs)

        def send_head(self) -> Any:
            authorized.append(self.headers.get("Authorization") == expected)
            if not authorized[-1]:
                self.send_error(401)
                return None
            return super().send_head()

        def log_message(self, format: str, *args: object) -> None:
            return

    with loopback_server(Handler) as port:
        yield f"http://{username}:{password}@127.0.0.1:{port}/{channel.name}", authorized


def test_a_mirror_behind_basic_auth_gives_the_same_lock_and_keeps_its_password_out(
    make_hub: Callable[..., Hub], cli: Cli, snapshot_channel: str
) -> None:
    reference = make_hub()
    assert cli(reference, "lock").code == 0
    hub = make_hub()
    password = "mirror-pw-7f3a9c"
    channel = Path(snapshot_channel.removeprefix("file://"))
    with channel_behind_basic_auth(channel, "robot", password) as (mirror, authorized):
        result = cli(hub, "lock", "--mirror", f"conda-forge={mirror}")
    assert result.code == 0, result.err
    assert authorized and all(authorized)
    assert hub.lock.read_text() == reference.lock.read_text()
    assert password not in result.out + result.err + hub.report.read_text()
