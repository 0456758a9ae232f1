"""Verification records: deploy/verified/ENV.json, committed, so promotion is decided from the repository."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tooling.errors import ToolingError
from tooling.files import write_atomic

RECORDS_DIR = Path("deploy") / "verified"


@dataclass(frozen=True)
class CheckLine:
    name: str
    passed: bool
    seconds: float
    reason: str


@dataclass(frozen=True)
class VerificationRecord:
    environment: str
    image: str  # REGISTRY/NAME:TAG the hub ran (read in the kernel), the same as the values named
    digest: str  # sha256:... of the image when this machine's last push recorded it; "" otherwise
    chart_version: str
    helm_revision: int
    passed: bool
    checks: tuple[CheckLine, ...]
    verified_at: str


def record_path(root: Path, environment: str) -> Path:
    return root / RECORDS_DIR / f"{environment}.json"


def write_record(root: Path, record: VerificationRecord) -> Path:
    path = record_path(root, record.environment)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(record), indent=2) + "\n")
    return path


def read_record(root: Path, environment: str) -> VerificationRecord | None:
    """The environment's record, or None when there is none; a damaged one is refused."""
    path = record_path(root, environment)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        checks = tuple(CheckLine(**check) for check in data.pop("checks"))
        return VerificationRecord(**data, checks=checks)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ToolingError(
            f"{path} is not a verification record; run `python -m tooling verify {environment}`."
        ) from None
