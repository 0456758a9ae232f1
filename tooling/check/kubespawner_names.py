"""What KubeSpawner and Kubernetes accept, read from the installed packages, never from a hand-kept list.

Option names are KubeSpawner's configurable traits (the names a profile's
`kubespawner_override` and `hub.config.KubeSpawner` may use); volume and
mount fields are the Kubernetes models KubeSpawner builds pods from
(kubernetes_asyncio's `attribute_map`/`openapi_types`). Importing
kubespawner takes about a second, so what it says is kept in the toolkit's
cache, keyed by the versions of both packages: a new KubeSpawner is read
again on its first check.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tooling.files import write_atomic

ROOT_MODELS = ("V1Volume", "V1VolumeMount")
_MODEL_IN_TYPE = re.compile(r"V1[A-Za-z0-9]+")


@dataclass(frozen=True)
class ModelField:
    json_name: str
    kind: str  # kubernetes_asyncio's type string: 'bool', 'str', 'V1KeyToPath', 'list[V1KeyToPath]', ...


@dataclass(frozen=True)
class SpawnerNames:
    kubespawner_version: str
    key: str  # the versions of both packages, the cache's key
    traits: dict[str, str]  # option name -> trait type (ByteSpecification, Float, Unicode, ...)
    models: dict[str, dict[str, ModelField]]  # model -> python attribute -> field

    def fields(self, model: str) -> dict[str, ModelField]:
        """A model's fields by every name KubeSpawner accepts for them: camelCase and snake_case."""
        by_attribute = self.models[model]
        return by_attribute | {field.json_name: field for field in by_attribute.values()}


def installed_versions() -> tuple[str, str]:
    """KubeSpawner's version, and the cache key naming it and kubernetes_asyncio's."""
    kubespawner = version("jupyterhub-kubespawner")
    return kubespawner, f"kubespawner-{kubespawner}-kubernetes_asyncio-{version('kubernetes_asyncio')}"


def spawner_names(cache_root: Path) -> SpawnerNames:
    """KubeSpawner's option names and the Volume/VolumeMount fields, from the cache or the installed packages."""
    kubespawner, key = installed_versions()
    cached = cache_root / "kubespawner" / f"{key}.json"
    try:
        return _from_json(json.loads(cached.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        names = _read_installed(kubespawner, key)
        write_atomic(cached, json.dumps(_to_json(names), sort_keys=True))
        return names


def _read_installed(kubespawner: str, key: str) -> SpawnerNames:
    spawner = importlib.import_module("kubespawner").KubeSpawner
    traits = {name: type(trait).__name__ for name, trait in spawner.class_traits(config=True).items()}
    models_module = importlib.import_module("kubernetes_asyncio.client.models")
    models: dict[str, dict[str, ModelField]] = {}
    pending = list(ROOT_MODELS)
    while pending:
        name = pending.pop()
        if name in models:
            continue
        model = getattr(models_module, name)
        models[name] = {
            attribute: ModelField(model.attribute_map[attribute], kind)
            for attribute, kind in model.openapi_types.items()
        }
        pending.extend(found for kind in model.openapi_types.values() for found in _MODEL_IN_TYPE.findall(kind))
    return SpawnerNames(kubespawner, key, traits, models)


def _to_json(names: SpawnerNames) -> dict[str, Any]:
    return {
        "kubespawner_version": names.kubespawner_version,
        "key": names.key,
        "traits": names.traits,
        "models": {
            model: {attribute: [field.json_name, field.kind] for attribute, field in fields.items()}
            for model, fields in names.models.items()
        },
    }


def _from_json(data: dict[str, Any]) -> SpawnerNames:
    return SpawnerNames(
        data["kubespawner_version"],
        data["key"],
        dict(data["traits"]),
        {
            model: {attribute: ModelField(*pair) for attribute, pair in fields.items()}
            for model, fields in data["models"].items()
        },
    )
