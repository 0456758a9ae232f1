"""Image references: NAME:TAG and NAME@DIGEST, checked the way Docker's reference grammar reads them.

1. `ImageReference.parse` reads NAME:TAG and names the problem Docker would
   find in it.
2. `split_reference` takes NAME:TAG apart, keeping a registry's port in the
   name.
3. `IMAGE_NAME_PART` is one part of a name between slashes; hub.toml's
   `[image] name` is checked with it.
4. `repository` is REGISTRY/NAME, the reference of `[image]` without a tag.
5. What every hub user image is: its conda platform and Docker platform, and
   the notebook user (the build makes it, the smoke test checks it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tooling.errors import ToolingError

# Docker's reference grammar (distribution/reference): a registry host[:port]
# first if it has a dot or a port or is localhost, then lowercase path parts.
IMAGE_NAME_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_NAME = rf"^{IMAGE_NAME_PART}(?:/{IMAGE_NAME_PART})*$"
_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?")
_NAME_PART = re.compile(IMAGE_NAME_PART)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_NAME_LENGTH = 255

# The user image: a linux-64 environment, run by the notebook user z2jh's chart runs servers as.
IMAGE_PLATFORM = "linux-64"
DOCKER_PLATFORM = "linux/amd64"
NB_USER = "jovyan"
# The environment variable the build sets in the image to the image's own REGISTRY/NAME:TAG (verify reads it).
IMAGE_REFERENCE_ENV = "HUBSHIP_IMAGE"
NB_UID = 1000


def repository(registry: str, name: str) -> str:
    """REGISTRY/NAME, an image reference without a tag."""
    return f"{registry}/{name}"


@dataclass(frozen=True)
class ImageReference:
    """NAME:TAG; NAME may start with a registry host and port (127.0.0.1:5000/hub/image)."""

    name: str
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @classmethod
    def parse(cls, text: str, *, source: str) -> ImageReference:
        """Check `text` the way Docker would; `source` says where it came from, for the message."""
        name, tag = split_reference(text)
        problem = _reference_problem(text, name, tag)
        if problem is not None or tag is None:
            raise ToolingError(f"{source}: {text!r} is not an image NAME:TAG: {problem}.")
        return cls(name, tag)


def split_reference(text: str) -> tuple[str, str | None]:
    """NAME and TAG of NAME:TAG. The tag follows the last colon after the last slash, so a port stays in NAME."""
    slash, colon = text.rfind("/"), text.rfind(":")
    if colon <= slash:
        return text, None
    return text[:colon], text[colon + 1 :]


def _reference_problem(text: str, name: str, tag: str | None) -> str | None:
    if "@" in text:
        return "a digest (@sha256:...) is not written into values; pass NAME:TAG"
    if tag is None:
        return "it has no tag (expected e.g. ghcr.io/org/image:img-3f2a)"
    if not _TAG.fullmatch(tag):
        return (
            f"Docker rejects the tag {tag!r} (up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-')"
        )
    return _name_problem(name)


def _name_problem(name: str) -> str | None:
    if not name:
        return "the name before the tag is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than Docker's {MAX_NAME_LENGTH} characters"
    parts = name.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        if not _DOMAIN.fullmatch(first):
            return f"{first!r} is not a registry host[:port]"
        parts = parts[1:]
    bad = next((part for part in parts if not _NAME_PART.fullmatch(part)), None)
    if bad is not None:
        return f"Docker rejects the name part {bad!r} (lowercase letters and digits, joined by '.', '_' or '-')"
    return None
