"""Fixtures for the check tests: the helm stand-in, a chart repository on 127.0.0.1, small hubs to check."""

from __future__ import annotations

import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import helm_python
import pytest

from tests.helm_standin import HELM

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data"
CHART_TGZ = SHARED / "charts" / "jupyterhub-4.3.3.tgz"
ICESAT = SHARED / "icesat-2020" / "hub"


@pytest.fixture(scope="session")
def names_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session, so KubeSpawner's names are read once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session", autouse=True)
def never_a_helm_from_path() -> Iterator[None]:
    """Every test that reaches helm reaches the stand-in, never a helm found on PATH.

    Session-wide and without `monkeypatch`, so it does not change the order in which other tests'
    fixtures are torn down; a test's own monkeypatch still overrides it.
    """
    saved = {name: os.environ.get(name) for name in ("HUBSHIP_HELM", "HELM_STANDIN_PYTHON")}
    os.environ["HUBSHIP_HELM"] = str(HELM)
    os.environ["HELM_STANDIN_PYTHON"] = sys.executable
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch, names_cache: Path) -> Path:
    """The stand-in is the helm the toolkit runs; never a helm (or kubectl) from PATH."""
    monkeypatch.setenv("HUBSHIP_HELM", str(HELM))
    monkeypatch.setenv("HELM_STANDIN_PYTHON", sys.executable)
    monkeypatch.setenv("XDG_CACHE_HOME", str(names_cache))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return HELM


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving the real z2jh 4.3.3 archive with an index.yaml."""
    folder = tmp_path_factory.mktemp("chart-repo")
    shutil.copy(CHART_TGZ, folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    helm_python.repo_index_generate(folder, base_url=url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def hub_toml(
    *,
    staging: list[str],
    prod: list[str] | None = None,
    image: str = "singleuser.image",
    chart: str = str(CHART_TGZ),
    extra: str = "",
    version_line: str = 'chart_version = "4.3.3"',
    repository: str = "",
) -> str:
    def table(name: str, files: list[str]) -> str:
        values = ", ".join(f'"{file}"' for file in files)
        repo = f'chart_repository = "{repository}"\n' if repository else ""
        return (
            f"[deploy.{name}]\nvalues = [{values}]\n"
            f'image = [{{ file = "{files[-1]}", path = "{image}" }}]\n'
            f'release = "hub-{name}"\nnamespace = "hub-{name}"\nchart = "{chart}"\n{version_line}\n{repo}\n'
        )

    return table("staging", staging) + table("prod", prod or staging) + extra


def write_hub(root: Path, files: dict[str, str], toml: str) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    config = root / "hub.toml"
    config.write_text(toml, encoding="utf-8")
    return config


def unwrap(text: str, key: str = "jupyterhub") -> str:
    """A wrapper chart's values for the chart itself: the `key:` block dedented, every line kept in place."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            inside = True
            lines.append("#")
            continue
        if line and not line.startswith((" ", "#")):
            inside = False
        lines.append(line[2:] if inside and line.startswith("  ") else (line if inside else "#"))
    return "\n".join(lines) + "\n"
