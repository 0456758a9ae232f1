"""What earlier stages recorded, so a later stage can refuse input that did not pass.

The build stage records the image it built, the smoke-test stage records
which image (by id) passed, the push stage records the digest it pushed.
They live in `.hubship/state.json` beside hub.toml (not committed: an image
id means something only on the machine that built it). The file is rewritten
atomically on every change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tooling.errors import ToolingError
from tooling.files import write_atomic

STATE_DIR = ".hubship"
STATE_FILE = "state.json"
REPORTS_DIR = "reports"


def reports_dir(root: Path) -> Path:
    """Where the stages write their Markdown reports, in the hub repository at `root`."""
    return root / STATE_DIR / REPORTS_DIR


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class BuiltImage:
    reference: str  # REGISTRY/NAME:TAG
    image_id: str  # sha256:... of the local image
    lock_sha256: str
    built_at: str = field(default_factory=now)


@dataclass(frozen=True)
class TestedImage:
    reference: str
    image_id: str
    passed: bool
    report: str  # path of the Markdown report
    tested_at: str = field(default_factory=now)


@dataclass(frozen=True)
class PushedImage:
    reference: str  # REGISTRY/NAME:TAG
    digest: str  # sha256:... of the manifest in the registry
    image_id: str
    pushed_at: str = field(default_factory=now)

    @property
    def pinned(self) -> str:
        """NAME:TAG@DIGEST, the reference that can never mean other contents."""
        return f"{self.reference}@{self.digest}"


@dataclass
class State:
    path: Path
    built: BuiltImage | None = None
    tested: dict[str, TestedImage] = field(default_factory=dict)  # by image id
    pushed: PushedImage | None = None

    @classmethod
    def load(cls, root: Path) -> State:
        path = root / STATE_DIR / STATE_FILE
        if not path.exists():
            return cls(path)
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                path,
                built=BuiltImage(**data["built"]) if data.get("built") else None,
                tested={key: TestedImage(**value) for key, value in data.get("tested", {}).items()},
                pushed=PushedImage(**data["pushed"]) if data.get("pushed") else None,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ToolingError(
                f"{path}: unreadable ({exc}). It only holds records of earlier runs: delete it and rerun the stages."
            ) from None

    def save(self) -> None:
        data = {
            "built": asdict(self.built) if self.built else None,
            "tested": {key: asdict(value) for key, value in self.tested.items()},
            "pushed": asdict(self.pushed) if self.pushed else None,
        }
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def require_built(self) -> BuiltImage:
        """The image the build stage recorded; a stage that needs one says how to get one."""
        if self.built is None:
            raise ToolingError(
                f"No built image is recorded in {self.path}. Build one first (`python -m tooling build`), "
                "or name a local image with `--image NAME:TAG`."
            )
        return self.built

    def record_build(self, image: BuiltImage) -> None:
        self.built = image
        self.save()

    def record_test(self, result: TestedImage) -> None:
        self.tested[result.image_id] = result
        self.save()

    def record_push(self, image: PushedImage) -> None:
        self.pushed = image
        self.save()

    def passed_smoke_test(self, image_id: str) -> bool:
        result = self.tested.get(image_id)
        return result is not None and result.passed
