"""The push stage: a smoke-tested image goes to the registry in hub.toml under a tag that never changes.

`push_image` reads as the process it performs:

1. Which image: the one the build stage recorded in .hubship/state.json, or
   `--image NAME:TAG`. It must be in the local engine; a recorded build must
   still have the id the build recorded (not re-tagged behind our back).
2. The gate: the smoke-test stage must have recorded a pass for that image id.
3. Credentials: HUBSHIP_REGISTRY_USERNAME and HUBSHIP_REGISTRY_PASSWORD, else
   the user's Docker config (an `auths` entry or a credential helper), else
   none. A token (a GitHub token for ghcr.io, a Docker Hub access token, a
   quay robot token) goes in HUBSHIP_REGISTRY_PASSWORD: registries take it
   as a password, so no separate token variable exists.
4. Tags are immutable: the registry is asked (Registry HTTP API v2) what the
   tag holds. Nothing: push. The same image: nothing to upload, the digest is
   recorded all the same. Another image: refused.
5. After `docker push`, the registry is asked again; the digest it serves is
   what is recorded and printed (NAME:TAG@DIGEST), and only after checking
   that it really is the local image (a concurrent push would show here).
6. What the push cost: before it, the layers of the repository's images in
   the registry are surveyed (`registry.held_layers`, the image pushed last
   first); after it, each layer of the pushed manifest counts as uploaded
   unless the registry already held its blob. So the result says how many
   bytes went up and how many the registry already had.

Design notes: docs/design.md#toolingpushpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tooling.config import HubConfig
from tooling.docker import Docker, LocalImage
from tooling.errors import CommandFailed, ToolingError
from tooling.images import ImageReference, repository
from tooling.log import logger, step
from tooling.registry import (
    Credentials,
    RegistryClient,
    RegistryError,
    RemoteLayer,
    RemoteManifest,
    RetryPolicy,
    docker_logged_in,
    find_credentials,
    held_layers,
)
from tooling.state import PushedImage, State

RERUN = "Then rerun `python -m tooling push`."


@dataclass(frozen=True)
class PushRequest:
    """What the push stage reads: the hub's folder (its state), the registry and name, the CLI, which image."""

    root: Path
    registry: str
    name: str
    docker_cli: str
    image: str | None = None  # a local NAME:TAG; None: the image the build stage recorded
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_config(cls, config: HubConfig, *, image: str | None = None) -> PushRequest:
        return cls(config.root, config.image.registry, config.image.name, config.docker_cli, image)

    @property
    def repository(self) -> str:
        return repository(self.registry, self.name)


@dataclass(frozen=True)
class PushResult:
    """What the push stage did: which local image went where, under which digest."""

    source: str  # the local NAME:TAG pushed
    reference: str  # REGISTRY/NAME:TAG in the registry
    digest: str  # sha256:... of the manifest the registry serves
    image_id: str
    pushed: bool  # False: the registry already held this image under the tag; nothing was uploaded
    credentials: str  # where credentials came from (never their values)
    seconds: float
    uploaded_bytes: int  # compressed bytes of the layers the registry did not hold before the push
    reused_bytes: int  # compressed bytes of the image's layers the registry already held
    uploaded_layers: int
    layers: int

    @property
    def pinned(self) -> str:
        """REGISTRY/NAME:TAG@DIGEST: the reference that can never mean other contents."""
        return f"{self.reference}@{self.digest}"


def push_image(request: PushRequest) -> PushResult:
    """Push the smoke-tested image under its immutable tag; record and return the digest the registry serves."""
    started = time.monotonic()
    state = State.load(request.root)
    source = _source_reference(request, state)
    docker = Docker(request.docker_cli)
    docker.require_engine()
    image = _local_image(docker, source, state, recorded=request.image is None)
    _require_passed_smoke_test(state, source, image)
    target = f"{request.repository}:{source.tag}"
    credentials = find_credentials(request.registry)
    with RegistryClient(request.registry, credentials, request.retry) as registry:
        with step(f"ask {request.registry} what {request.name}:{source.tag} holds"):
            held = _ask(registry, request.name, source.tag)
        pushed = held is None
        if held is None:
            before = _held_blobs(registry, request.name, state)
            _docker_push(docker, str(source), target, request.registry, credentials)
            held = _require_pushed(_ask(registry, request.name, source.tag), image, request.repository, target)
        else:
            _require_same_image(held, image, request, target)
            logger.info("%s already holds this image (%s); nothing to upload", target, held.digest)
            before = None
        layers = _remote_layers(registry, request.name, held.digest)
    uploaded = [layer for layer in layers if before is not None and layer.digest not in before]
    state.record_push(PushedImage(target, held.digest, image.image_id))
    return PushResult(
        source=str(source),
        reference=target,
        digest=held.digest,
        image_id=image.image_id,
        pushed=pushed,
        credentials=credentials.source,
        seconds=time.monotonic() - started,
        uploaded_bytes=sum(layer.size for layer in uploaded),
        reused_bytes=sum(layer.size for layer in layers) - sum(layer.size for layer in uploaded),
        uploaded_layers=len(uploaded),
        layers=len(layers),
    )


def _held_blobs(registry: RegistryClient, name: str, state: State) -> frozenset[str]:
    """The layer blobs the registry holds for NAME's images before the push (the image pushed last first)."""
    first = [state.pushed.reference.rsplit(":", 1)[1]] if state.pushed is not None else []
    with step(f"ask {registry.registry} which layers of {name} it holds"):
        try:
            return frozenset(layer.digest for layer in held_layers(registry, name, first).values())
        except RegistryError as exc:
            raise ToolingError(f"{exc.message} {RERUN}") from None


def _remote_layers(registry: RegistryClient, name: str, digest: str) -> tuple[RemoteLayer, ...]:
    try:
        return registry.layers(name, digest)
    except RegistryError as exc:
        raise ToolingError(f"{exc.message} {RERUN}") from None


def _ask(registry: RegistryClient, name: str, tag: str) -> RemoteManifest | None:
    """What the registry holds under NAME:TAG; its failure says to rerun the push once fixed."""
    try:
        return registry.manifest(name, tag)
    except RegistryError as exc:
        raise ToolingError(f"{exc.message} {RERUN}") from None


def _source_reference(request: PushRequest, state: State) -> ImageReference:
    if request.image is not None:
        if "@" in request.image:
            raise ToolingError(f"--image {request.image}: name a local image by NAME:TAG, not by digest.")
        return ImageReference.parse(request.image, source="--image")
    return ImageReference.parse(state.require_built().reference, source=f"{state.path} (built.reference)")


def _local_image(docker: Docker, source: ImageReference, state: State, *, recorded: bool) -> LocalImage:
    image = docker.inspect_image(str(source))
    if image is None:
        raise ToolingError(
            f"The Docker engine at {docker.engine} has no image {source}. Build it on this machine "
            "(`python -m tooling build`) and smoke-test it (`python -m tooling test`) before pushing."
        )
    if recorded and state.built is not None and image.image_id != state.built.image_id:
        raise ToolingError(
            f"{source} is now the image {image.image_id}, not {state.built.image_id} that the build stage "
            f"recorded in {state.path}: it was rebuilt or re-tagged outside the toolkit. Rebuild "
            "(`python -m tooling build`) and smoke-test it (`python -m tooling test`), then push."
        )
    return image


def _require_passed_smoke_test(state: State, source: ImageReference, image: LocalImage) -> None:
    if state.passed_smoke_test(image.image_id):
        return
    recorded = state.tested.get(image.image_id)
    if recorded is None:
        raise ToolingError(
            f"{source} (image {image.image_id}) has not passed the smoke test: {state.path} has no test "
            "result for it. Run `python -m tooling test`, then push."
        )
    raise ToolingError(
        f"{source} (image {image.image_id}) failed its smoke test (report: {recorded.report}). Fix the "
        "image, rebuild it, and run `python -m tooling test` until it passes, then push."
    )


def _holds(manifest: RemoteManifest, image: LocalImage, repository: str) -> bool:
    return (
        image.image_id in manifest.config_digests
        or image.image_id == manifest.digest
        or f"{repository}@{manifest.digest}" in image.repo_digests
    )


def _require_same_image(held: RemoteManifest, image: LocalImage, request: PushRequest, target: str) -> None:
    if _holds(held, image, request.repository):
        return
    registry_image = ", ".join(held.config_digests) or "unknown"
    raise ToolingError(
        f"The registry {request.registry} already holds the tag {target} with another image: "
        f"manifest {held.digest} (image {registry_image}); the local image is {image.image_id}. "
        "A tag never changes contents, so nothing was pushed. If the image's inputs changed, rebuild "
        "(`python -m tooling build`): new inputs give a new tag. If they did not, use the image already "
        f"pushed, {request.repository}@{held.digest}."
    )


def _require_pushed(held: RemoteManifest | None, image: LocalImage, repository: str, target: str) -> RemoteManifest:
    """The manifest the registry serves after the push, checked to be the local image."""
    if held is None:
        raise ToolingError(
            f"`docker push {target}` succeeded, but the registry does not serve the tag afterwards. "
            "Check the registry's storage and logs, then rerun `python -m tooling push`."
        )
    if not _holds(held, image, repository):
        raise ToolingError(
            f"After pushing, {target} holds manifest {held.digest}, not the local image {image.image_id}: "
            "someone pushed the same tag at the same time. Find out who, then rebuild for a new tag."
        )
    return held


def _docker_push(docker: Docker, source: str, target: str, registry: str, credentials: Credentials) -> None:
    if source != target:
        docker.tag(source, target)
    with docker_logged_in(docker, registry, credentials) as pusher, step(f"push {target}") as progress:
        try:
            pusher.push(target, progress.update)
        except CommandFailed as exc:
            raise ToolingError(
                f"`docker push {target}` to {registry} failed: {exc.last_line}\n"
                f"Credentials: {credentials.source}. The engine retried each layer already; check that the "
                "registry is up and that these credentials may push there, then rerun `python -m tooling push`."
            ) from None
