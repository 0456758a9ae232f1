"""`helm template` with the same files and pinned chart, and where the single-user image lands in it.

The image a hub runs is the one in the rendered manifests, not the one a
values file names: a later file, a profile or a wrong path can put another
image there. The hub reads its settings from the `values.yaml` key of the
rendered hub Secret; the image pullers (when enabled) pull the images
named in their init containers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tooling import proc
from tooling.check.chart import HELM_HINT
from tooling.check.findings import Finding, failure, passed
from tooling.check.values_files import KeyPath, dotted, value_at

RENDER_TIMEOUT = 300
PULLERS = ("continuous-image-puller", "hook-image-puller")


@dataclass(frozen=True)
class NamedImage:
    """An image a values file names, at a path hub.toml gives (where `bump` writes it)."""

    where: str  # file:line
    path: KeyPath
    image: str


def parse_key_path(text: str) -> KeyPath:
    """'singleuser.profileList[0].kubespawner_override.image' as a key path."""
    steps: list[str | int] = []
    for part in text.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        if name:
            steps.append(name)
        steps.extend(int(index) for index in indexes if index)
    return tuple(steps)


def image_text(value: Any) -> str:
    """An image value as one reference: a map with name and tag (the chart's form) or a string."""
    if isinstance(value, dict):
        tag = value.get("tag")
        digest = value.get("digest")
        text = f"{value.get('name')}:{tag}" if tag not in (None, "") else str(value.get("name"))
        return f"{text}@{digest}" if digest else text
    return "" if value is None else str(value)


def render(
    helm: str, chart: Path, release: str, namespace: str, *, files: Sequence[Path], cwd: Path
) -> tuple[list[dict[str, Any]], str]:
    """The rendered manifests, or an empty list and helm's error."""
    argv = [helm, "template", release, str(chart), "--namespace", namespace]
    for file in files:
        argv += ["--values", str(file)]
    completed = proc.run(argv, cwd=cwd, timeout=RENDER_TIMEOUT, check=False, hint=HELM_HINT)
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines()
        return [], " / ".join(line.strip() for line in lines[-3:]) or f"exit code {completed.returncode}"
    documents = yaml.load_all(completed.stdout, Loader=yaml.CSafeLoader)
    return [document for document in documents if isinstance(document, dict)], ""


def hub_values(manifests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The values the hub reads: the hub Secret's values.yaml."""
    for manifest in manifests:
        data = manifest.get("data") or {}
        if manifest.get("kind") == "Secret" and "values.yaml" in data:
            loaded = yaml.load(base64.b64decode(data["values.yaml"]), Loader=yaml.CSafeLoader)
            return loaded if isinstance(loaded, dict) else {}
    return None


def puller_images(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per image-puller DaemonSet, its init containers' images by container name."""
    found: dict[str, dict[str, str]] = {}
    for manifest in manifests:
        name = str((manifest.get("metadata") or {}).get("name", ""))
        if manifest.get("kind") == "DaemonSet" and name in PULLERS:
            containers = value_at(manifest, ("spec", "template", "spec", "initContainers")) or []
            found[name] = {str(c.get("name")): str(c.get("image")) for c in containers if isinstance(c, dict)}
    return found


def image_findings(manifests: list[dict[str, Any]], named: Sequence[NamedImage]) -> list[Finding]:
    """Every place the single-user image lands holds the image the values name."""
    settings = hub_values(manifests)
    if settings is None:
        return [failure("render", None, "the render has no hub Secret with values.yaml", "render the z2jh chart")]
    findings: list[Finding] = []
    for image in named:
        landed = image_text(value_at(settings, image.path))
        ok = landed == image.image
        what = f"hub Secret {dotted(image.path)}: {landed}" + ("" if ok else f", but the values name {image.image}")
        findings.append(
            passed("render", image.where, what)
            if ok
            else failure(
                "render", image.where, what, "remove the later value that overrides it, or bump the file that wins"
            )
        )
    findings += _puller_findings(manifests, settings)
    return findings


def _puller_findings(manifests: list[dict[str, Any]], settings: dict[str, Any]) -> list[Finding]:
    wanted = {"image-pull-singleuser": image_text(value_at(settings, ("singleuser", "image")))}
    for index, profile in enumerate(value_at(settings, ("singleuser", "profileList")) or []):
        image = value_at(profile, ("kubespawner_override", "image"))
        if image:
            wanted[f"image-pull-singleuser-profilelist-{index}"] = str(image)
    findings: list[Finding] = []
    for puller, containers in sorted(puller_images(manifests).items()):
        for container, image in wanted.items():
            pulled = containers.get(container)
            ok = pulled == image
            what = f"{puller} {container} pulls {pulled}" + ("" if ok else f", the hub runs {image}")
            findings.append(
                passed("render", "", what)
                if ok
                else failure(
                    "render", "", what, "users wait for an image no node pre-pulled: render with the same values"
                )
            )
    return findings
