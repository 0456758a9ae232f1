"""The stand-ins' "cluster": a folder (HUBSHIP_STANDIN_CLUSTER) holding each namespace's Helm releases.

Layout: CLUSTER/NAMESPACE/releases/RELEASE/N.json, one file per revision
(status, values as given, chart, rendered manifests), and
CLUSTER/NAMESPACE/singleuser-image: the single-user image the last
upgrade or rollback rendered into Secret `hub` (`values.yaml` key), the one
the rig's hub spawns (tests/rig/cluster_hub.py). The kube context must be
one the KUBECONFIG file names, as with a real cluster.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CLUSTER_ENV = "HUBSHIP_STANDIN_CLUSTER"
IMAGE_FILE = "singleuser-image"


class ClusterError(Exception):
    """What the program prints as its error, exit code 1."""


def kubeconfig() -> dict[str, Any]:
    path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError:
        return {}
    return data if isinstance(data, dict) else {}


def contexts() -> list[str]:
    return [str(entry.get("name")) for entry in kubeconfig().get("contexts") or []]


def current_context() -> str:
    return str(kubeconfig().get("current-context") or "")


def require_context(context: str) -> str:
    """The context to use (the current one when empty); a context the KUBECONFIG lacks cannot reach a cluster."""
    chosen = context or current_context()
    if not chosen or chosen not in contexts():
        raise ClusterError(f'Kubernetes cluster unreachable: context "{chosen}" does not exist')
    return chosen


def root() -> Path:
    folder = os.environ.get(CLUSTER_ENV, "")
    if not folder:
        raise ClusterError('Kubernetes cluster unreachable: Get "https://cluster.invalid/version": no such host')
    return Path(folder)


def namespace_dir(namespace: str) -> Path:
    return root() / namespace


def release_dir(namespace: str, release: str) -> Path:
    return namespace_dir(namespace) / "releases" / release


def revisions(namespace: str, release: str) -> list[dict[str, Any]]:
    """Every stored revision of a release, oldest first."""
    folder = release_dir(namespace, release)
    found = [json.loads(path.read_text(encoding="utf-8")) for path in folder.glob("*.json")]
    return sorted(found, key=lambda revision: int(revision["version"]))


def save(revision: dict[str, Any]) -> None:
    folder = release_dir(revision["namespace"], revision["name"])
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".{revision['version']}.json"
    scratch.write_text(json.dumps(revision, indent=1), encoding="utf-8")
    scratch.replace(folder / f"{revision['version']}.json")


def forget(namespace: str, release: str, version: int) -> None:
    (release_dir(namespace, release) / f"{version}.json").unlink(missing_ok=True)


def documents(manifest: str) -> Iterator[dict[str, Any]]:
    for document in yaml.safe_load_all(manifest):
        if isinstance(document, dict):
            yield document


def deployed_objects(namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of every object the deployed revisions of the namespace's releases created."""
    objects: set[tuple[str, str]] = set()
    releases = namespace_dir(namespace) / "releases"
    for folder in sorted(releases.iterdir()) if releases.is_dir() else []:
        deployed = [r for r in revisions(namespace, folder.name) if r["info"]["status"] == "deployed"]
        for revision in deployed[-1:]:
            objects |= {
                (d.get("kind", ""), d.get("metadata", {}).get("name", "")) for d in documents(revision["manifest"])
            }
    return objects


def apply(namespace: str, manifest: str) -> None:
    """What the cluster's hub runs from now on: the single-user image of the rendered Secret `hub`."""
    for document in documents(manifest):
        if document.get("kind") == "Secret" and document.get("metadata", {}).get("name") == "hub":
            values = yaml.safe_load(base64.b64decode(document["data"]["values.yaml"]))
            image = values["singleuser"]["image"]
            target = namespace_dir(namespace) / IMAGE_FILE
            scratch = target.with_suffix(".tmp")
            scratch.write_text(f"{image['name']}:{image['tag']}\n", encoding="utf-8")
            scratch.replace(target)
            return
    raise ClusterError("the rendered chart has no Secret hub")
