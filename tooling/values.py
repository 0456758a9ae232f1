"""The values stage: write an image into Helm values files, and nothing else.

1. `BumpRequest.from_config` names the image (hub.toml's repository with a
   tag, the last push's tag, or another environment's image) and the places
   `[deploy.ENV].image` lists.
2. `bump_image_tag` / `set_image` write it at every place through the
   byte-preserving editor (`tooling.yamledit`): every file is edited and
   verified in memory before any is written, each write atomic.
3. `read_image` reads the image a values file holds at a path.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tooling.config import HubConfig
from tooling.errors import ConfigError, ToolingError
from tooling.files import write_atomic
from tooling.images import ImageReference
from tooling.state import State
from tooling.yamledit import LocationChange, edit_image, read_image_at

# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class ImageTarget:
    """A place to write the image: a values file, a YAML path in it, and the file's name as people see it."""

    file: Path
    path: str
    label: str


@dataclass(frozen=True)
class FileChange:
    file: Path
    label: str
    diff: str  # unified diff; empty when the file already held the image

    @property
    def changed(self) -> bool:
        return bool(self.diff)


@dataclass(frozen=True)
class ImageUpdate:
    image: ImageReference
    locations: tuple[LocationChange, ...]
    files: tuple[FileChange, ...]
    written: bool  # False for a check, or when nothing needed to change

    @property
    def changed(self) -> bool:
        return any(location.changed for location in self.locations)

    @property
    def diff(self) -> str:
        return "".join(file.diff for file in self.files)


@dataclass(frozen=True)
class Bump:
    environment: str
    source: str  # where the image came from, for people
    update: ImageUpdate


# ---------------------------------------------------------------- the stage


def set_image(
    targets: Sequence[ImageTarget], image: ImageReference, *, create: bool = False, check: bool = False
) -> ImageUpdate:
    """Write `image` at every target. Every file is edited and verified in memory before any is written."""
    by_file: dict[Path, list[ImageTarget]] = {}
    for target in targets:
        by_file.setdefault(target.file.resolve(), []).append(target)
    edited: list[tuple[Path, str, str]] = []
    locations: list[LocationChange] = []
    for file, group in by_file.items():
        before, after, changes = edit_image(file, group[0].label, [target.path for target in group], image, create)
        edited.append((file, before, after))
        locations.extend(changes)
    files = tuple(
        FileChange(file, by_file[file][0].label, _unified_diff(by_file[file][0].label, before, after))
        for file, before, after in edited
    )
    written = not check and any(before != after for _, before, after in edited)
    if written:
        for file, before, after in edited:
            if before != after:
                write_atomic(file, after.encode("utf-8"))
    return ImageUpdate(image, tuple(locations), files, written)


@dataclass(frozen=True)
class BumpRequest:
    """What the bump stage writes: one image, at the places hub.toml names for an environment."""

    environment: str
    targets: tuple[ImageTarget, ...]
    image: ImageReference
    source: str  # where the image came from, for people
    create: bool = False
    check: bool = False

    @classmethod
    def from_config(
        cls,
        config: HubConfig,
        environment: str,
        *,
        tag: str | None = None,
        from_environment: str | None = None,
        create: bool = False,
        check: bool = False,
    ) -> BumpRequest:
        """[deploy.ENV].image of hub.toml, and the image: hub.toml's repository with `tag`, or with the tag
        of the last push when `tag` is None, or the image `from_environment` holds (promotion)."""
        targets = tuple(image_targets(config, environment))
        image, source = _image_for_bump(config, environment, tag, from_environment)
        return cls(environment, targets, image, source, create, check)


def bump_image_tag(request: BumpRequest) -> Bump:
    """Write the request's image into the values of its environment."""
    update = set_image(request.targets, request.image, create=request.create, check=request.check)
    return Bump(request.environment, request.source, update)


def image_targets(config: HubConfig, environment: str) -> list[ImageTarget]:
    """The places [deploy.ENV].image of hub.toml names, labelled relative to the hub's root."""
    return [
        ImageTarget(config.file(location.file), location.path, _label(config, location.file))
        for location in config.deploy_target(environment).image
    ]


def read_image(target: ImageTarget) -> ImageReference:
    """The image a values file holds at a path, refusing anything Helm would not read as that image."""
    return read_image_at(target.file, target.label, target.path)


def _image_for_bump(
    config: HubConfig, environment: str, tag: str | None, from_environment: str | None
) -> tuple[ImageReference, str]:
    if tag is not None and from_environment is not None:
        raise ConfigError("Pass either a tag or an environment to copy the image from, not both.")
    if from_environment is not None:
        if from_environment == environment:
            raise ConfigError(f"Cannot copy the image of {environment} onto itself; name another environment.")
        source = image_targets(config, from_environment)[0]
        return read_image(source), f"{from_environment} ({source.label} at {source.path})"
    if tag is not None:
        return ImageReference.parse(f"{config.image.repository}:{tag}", source="--tag"), "the command line (--tag)"
    state = State.load(config.root)
    if state.pushed is None:
        raise ToolingError(
            f"No push is recorded in {state.path}, so there is no tag to write. "
            "Run `python -m tooling push` first, or pass --tag TAG."
        )
    pushed = ImageReference.parse(state.pushed.reference, source=str(state.path))
    if pushed.name != config.image.repository:
        raise ToolingError(
            f"The last push was {pushed}, but hub.toml's image is {config.image.repository}. "
            "Push again with the current hub.toml, or pass --tag TAG."
        )
    return ImageReference(config.image.repository, pushed.tag), f"the last push ({state.pushed.pinned})"


def _label(config: HubConfig, file: Path) -> str:
    if not file.is_absolute():
        return file.as_posix()
    try:
        return file.relative_to(config.root).as_posix()
    except ValueError:
        return str(file)


def _unified_diff(label: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(_lines(before), _lines(after), fromfile=label, tofile=label, lineterm="")
    return "".join(line + "\n" for line in lines)


def _lines(text: str) -> list[str]:
    """Lines without their endings: a CRLF file diffs like any other."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if text.endswith("\n") else lines
