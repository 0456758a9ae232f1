"""promote: staging's image may go to prod only when staging's record says that very image passed verify."""

from __future__ import annotations

from dataclasses import dataclass

from tooling.config import HubConfig
from tooling.deploy.records import read_record, record_path
from tooling.deploy.target import Target
from tooling.errors import ToolingError

SOURCE = "staging"


@dataclass(frozen=True)
class PromoteRequest:
    staging: Target

    @classmethod
    def from_config(cls, config: HubConfig) -> PromoteRequest:
        return cls(Target.from_config(config, SOURCE))


@dataclass(frozen=True)
class Promotion:
    image: str
    verified_at: str
    helm_revision: int


def may_promote(request: PromoteRequest) -> Promotion:
    """The image staging verified, when it is the one staging's values hold now; a refusal otherwise."""
    staging = request.staging
    image = str(staging.image())
    record = read_record(staging.root, SOURCE)
    shown = record_path(staging.root, SOURCE).relative_to(staging.root)
    if record is None:
        raise ToolingError(
            f"promote refused: {shown} does not exist; staging has not passed `python -m tooling verify staging`."
        )
    if not record.passed:
        raise ToolingError(f"promote refused: {shown} says {record.image} did not pass verify on staging.")
    if record.image != image:
        raise ToolingError(
            f"promote refused: staging's values name {image}, but staging last verified {record.image} ({shown}, "
            f"{record.verified_at}); deploy and verify staging first."
        )
    return Promotion(record.image, record.verified_at, record.helm_revision)
