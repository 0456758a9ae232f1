"""Fixtures for the deploy tests: a stand-in cluster (helm and kubectl stand-ins) and a KUBECONFIG for it."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.check_helpers import PROJECT
from tests.kubectl_standin import KUBECTL

# A token in the KUBECONFIG: no output and no file the toolkit writes may ever show it.
KUBE_TOKEN = "kube-token-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@dataclass(frozen=True)
class StandinCluster:
    folder: Path
    kubeconfig: Path

    def image_running(self, namespace: str) -> str:
        """The single-user image the cluster's hub in `namespace` spawns now."""
        return (self.folder / namespace / "singleuser-image").read_text(encoding="utf-8").strip()

    def use_context(self, context: str) -> None:
        text = self.kubeconfig.read_text(encoding="utf-8").splitlines()
        self.kubeconfig.write_text(
            "\n".join(f"current-context: {context}" if line.startswith("current-context:") else line for line in text)
            + "\n",
            encoding="utf-8",
        )


def kubeconfig_text(current: str) -> str:
    contexts = "".join(
        f"- name: {name}\n  context: {{cluster: {name}, user: deployer}}\n"
        for name in ("staging-cluster", "prod-cluster")
    )
    return (
        "apiVersion: v1\nkind: Config\n"
        f"current-context: {current}\n"
        "clusters:\n- name: staging-cluster\n  cluster: {server: 'https://staging.cluster.invalid'}\n"
        "- name: prod-cluster\n  cluster: {server: 'https://prod.cluster.invalid'}\n"
        f"contexts:\n{contexts}"
        f"users:\n- name: deployer\n  user: {{token: {KUBE_TOKEN}}}\n"
    )


@pytest.fixture
def standin_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandinCluster:
    """The stand-ins are the helm and kubectl the toolkit runs, against a cluster folder of this test."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    kubeconfig = tmp_path / "kube" / "config"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text(kubeconfig_text("staging-cluster"), encoding="utf-8")
    monkeypatch.setenv("HUBSHIP_STANDIN_CLUSTER", str(folder))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HUBSHIP_KUBECTL", str(KUBECTL))
    monkeypatch.setenv("HELM_STANDIN_PYTHON", sys.executable)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return StandinCluster(folder, kubeconfig)


def example_hub(root: Path, chart_repo: str, *, hub_urls: dict[str, str] | None = None) -> Path:
    """The project's own hub.toml and deploy/ files, pulling the chart from `chart_repo`."""
    shutil.copytree(PROJECT / "deploy", root / "deploy", ignore=shutil.ignore_patterns("verified"))
    text = (PROJECT / "hub.toml").read_text(encoding="utf-8")
    text = text.replace(
        'chart_repository = "https://hub.jupyter.org/helm-chart/"', f'chart_repository = "{chart_repo}"'
    )
    text = text.replace('secret_values_env = "HUBSHIP_STAGING_SECRET_VALUES"', 'secret_values_env = ""')
    text = text.replace('secret_values_env = "HUBSHIP_PROD_SECRET_VALUES"', 'secret_values_env = ""')
    for environment, url in (hub_urls or {}).items():
        marker = f"[deploy.{environment}]"
        head, tail = text.split(marker, 1)
        text = head + marker + tail.replace('hub_url = ""', f'hub_url = "{url}"', 1)
    (root / "hub.toml").write_text(text, encoding="utf-8")
    return root / "hub.toml"
