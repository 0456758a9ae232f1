"""The environment's layers on the rig: the same lock gives the same layers, and a push skips the ones held.

The second build runs on a base image no build has seen (the rig's base plus
one new file), so no Dockerfile step comes from the layer cache: the
environment is installed again and every group copied again, after an
earlier layer changed. Its environment layers must be the very layers of the
first build, and pushing it after the first must upload none of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.rig.docker import build_with_buildkit
from tests.rig.hub_fixtures import HubCopies, RigHub
from tests.rig.registry import RunningRegistry
from tooling.build import BuildResult
from tooling.buildpack import ENVIRONMENT_STAGE, INSTALLER, LAYERS_ROOT
from tooling.config import load_config
from tooling.docker import Docker
from tooling.push import PushRequest, PushResult, push_image
from tooling.registry import Credentials, RegistryClient, RemoteLayer
from tooling.state import State
from tooling.state import TestedImage as SmokeTestRecord  # a name pytest does not take for a test class

pytestmark = [pytest.mark.docker, pytest.mark.rig]


def base_no_build_has_seen(docker: Docker, base: str, folder: Path) -> str:
    token = secrets.token_hex(8)
    context = folder / "base"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN echo {token} > /etc/hubship-layers-test\n")
    reference = f"hubship-test/base:{token}"
    build_with_buildkit(docker, "--network", "none", "--tag", reference, str(context))
    return reference


def pass_smoke_test(hub: RigHub, result: BuildResult) -> None:
    """The push stage's gate; the smoke test itself has tests of its own (tests/test_smoke_rig.py)."""
    report = str(hub.root / ".hubship" / "reports" / "test.md")
    State.load(hub.root).record_test(SmokeTestRecord(result.reference, result.image_id, passed=True, report=report))


def login_layer(layers: Sequence[RemoteLayer], result: BuildResult) -> str:
    """The diff id of the layer just before the environment's first layer: the login script's."""
    diff_ids = [layer.diff_id for layer in layers]
    return diff_ids[diff_ids.index(result.environment_layers[0].diff_id) - 1]


def push(hub: RigHub, result: BuildResult) -> PushResult:
    pass_smoke_test(hub, result)
    return push_image(PushRequest.from_config(load_config(hub.config)))


def test_rebuilt_groups_are_the_same_layers_and_are_not_uploaded_again(
    copy_rig_hub: HubCopies, registry: RunningRegistry, docker_cli: Docker, rig_base_image: str, tmp_path: Path
) -> None:
    first_hub = copy_rig_hub("first", registry.address)
    first = copy_rig_hub.build(first_hub)
    first_push = push(first_hub, first)

    second_hub = copy_rig_hub("second", registry.address)
    second_hub.set_hub_toml("image", "base", base_no_build_has_seen(docker_cli, rig_base_image, tmp_path))
    second = copy_rig_hub.build(second_hub)

    install = [step for step in second.docker_steps if INSTALLER in step.name]
    copies = [
        step for step in second.docker_steps if step.name.startswith(f"COPY --from={ENVIRONMENT_STAGE} {LAYERS_ROOT}/")
    ]
    assert len(install) == 1 and len(copies) == len(first.environment_layers) > 5
    assert not any(step.cached for step in (*install, *copies))
    assert second.image_id != first.image_id
    first_layers = {layer.name: (layer.diff_id, layer.packages) for layer in first.environment_layers}
    second_layers = {layer.name: (layer.diff_id, layer.packages) for layer in second.environment_layers}
    assert second_layers == first_layers
    assert all(diff_id.startswith("sha256:") for diff_id, _ in first_layers.values())
    assert all(layer.in_registry for layer in second.environment_layers)
    assert not any(layer.in_registry for layer in first.environment_layers)

    second_push = push(second_hub, second)

    assert first_push.reused_bytes == 0 and first_push.uploaded_bytes > 50e6
    with RegistryClient(registry.address, Credentials("none")) as client:
        layers = client.layers(second_hub.request().name, second.tag)
        first_layers_pushed = client.layers(first_hub.request().name, first.tag)
    # The login script's layer, copied in just before the environment's first, is the same layer too.
    assert login_layer(layers, second) == login_layer(first_layers_pushed, first)
    environment = {layer.diff_id for layer in layers} & {diff_id for diff_id, _ in first_layers.values()}
    environment_bytes = sum(layer.size for layer in layers if layer.diff_id in environment)
    assert len(environment) == len(first_layers)
    assert second_push.reused_bytes >= environment_bytes > 30e6
    assert second_push.uploaded_bytes == sum(layer.size for layer in layers) - second_push.reused_bytes
    assert second_push.uploaded_layers <= second_push.layers - len(environment)
