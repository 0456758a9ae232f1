"""verify ENV: the hub at ENV's URL spawns a server of the image ENV's values name, and the tutorials run in it.

Through the hub's REST API with a service token (README: "Deploy, verify, promote, rollback"):
the hub spawn check (`tooling.hubcheck`), then in that server's kernel the
image's own reference (IMAGE_REFERENCE_ENV, baked in by the build) must be
the image of ENV's values, then every code cell of the `[smoke]` notebooks
runs in turn; then the server stops and the check user is removed. A hub
that does not answer, or a spawn that fails, is tried again up to
`verify_attempts` times; a wrong image or a failing cell is not. A pass
writes deploy/verified/ENV.json.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tooling.checkresult import CheckResult
from tooling.config import HubConfig
from tooling.deploy.failure import failed
from tooling.deploy.records import CheckLine, VerificationRecord, write_record
from tooling.deploy.target import Target
from tooling.errors import ConfigError, ToolingError
from tooling.hubcheck import HubCheckSettings, KernelRunner, WorkFailed, check_hub_spawn
from tooling.images import IMAGE_REFERENCE_ENV
from tooling.log import logger, register_secret
from tooling.state import State

CHECK_USER = "hubship-verify"
IMAGE_CODE = f'import os\nprint(os.environ.get("{IMAGE_REFERENCE_ENV}", ""))'
IMAGE_CODE_TIMEOUT = 30.0
# Seconds between attempts: long enough for a restarting hub pod or proxy to come back.
RETRY_PAUSE = 5.0


@dataclass(frozen=True)
class VerifyRequest:
    target: Target
    hub_url: str
    token_env: str
    notebooks: tuple[Path, ...]
    cell_timeout: int
    settings: HubCheckSettings
    attempts: int

    @classmethod
    def from_config(cls, config: HubConfig, environment: str) -> VerifyRequest:
        target = Target.from_config(config, environment)
        deploy = target.settings
        if not deploy.hub_url:
            raise ConfigError(
                f"{config.path}: [deploy.{environment}] hub_url is not set; verify needs the hub's public URL."
            )
        settings = HubCheckSettings(
            user=CHECK_USER,
            spawn_timeout=float(deploy.verify_spawn_timeout),
            request_timeout=float(deploy.verify_request_timeout),
        )
        notebooks = tuple(config.file(path) for path in config.smoke.notebooks)
        return cls(
            target, deploy.hub_url, deploy.api_token_env, notebooks, config.smoke.notebook_timeout, settings,
            deploy.verify_attempts,
        )  # fmt: skip


@dataclass(frozen=True)
class VerifyResult:
    environment: str
    image: str
    check: CheckResult
    attempts: int
    record: Path
    helm_revision: int
    seconds: float


def verify(request: VerifyRequest) -> VerifyResult:
    """The check, retried as hub.toml says; a record on a pass, `DeployFailed` (or one line) on a failure."""
    target = request.target
    started = time.monotonic()
    token = os.environ.get(request.token_env, "")
    if not token:
        raise ToolingError(
            f"verify {target.environment}: ${request.token_env} is not set; it must hold the API token of the "
            'hub\'s verify service (README: "Deploy, verify, promote, rollback").'
        )
    register_secret(token)
    expected = str(target.image())
    target.require_context()
    status = target.helm.status(target.release)
    work = _Work(expected, request.notebooks, request.cell_timeout)
    result, attempt = _attempts(request, token, work)
    if not result.passed:
        if not work.reached_kernel and result.reason.startswith("GET /hub/api/ got no answer"):
            raise ToolingError(
                f"verify {target.environment}: the hub at {request.hub_url} did not answer in {attempt} attempts: "
                f"{result.reason}"
            )
        raise failed(target, "verify", [result.reason, *result.details])
    record = VerificationRecord(
        environment=target.environment,
        image=expected,
        digest=_digest(target.root, expected),
        chart_version=str(status.get("chart", {}).get("metadata", {}).get("version", "")),
        helm_revision=int(status.get("version", 0)),
        passed=True,
        checks=(CheckLine(result.name, result.passed, round(result.seconds, 1), result.reason), *work.lines),
        verified_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = write_record(target.root, record)
    return VerifyResult(
        target.environment, expected, result, attempt, path, record.helm_revision, time.monotonic() - started
    )


def _attempts(request: VerifyRequest, token: str, work: _Work) -> tuple[CheckResult, int]:
    result: CheckResult | None = None
    for attempt in range(1, request.attempts + 1):
        work.reset()
        result = check_hub_spawn(request.hub_url, token, request.settings, work=work)
        if result.passed or work.definitive:
            return result, attempt
        logger.warning("verify attempt %d of %d failed: %s", attempt, request.attempts, result.reason)
        if attempt < request.attempts:
            time.sleep(RETRY_PAUSE)
    assert result is not None
    return result, request.attempts


class _Work:
    """What verify runs in the kernel: the image's own reference, then the tutorials, cell by cell."""

    def __init__(self, expected: str, notebooks: Sequence[Path], cell_timeout: int) -> None:
        self.expected = expected
        self.notebooks = notebooks
        self.cell_timeout = cell_timeout
        self.reset()

    def reset(self) -> None:
        self.reached_kernel = False
        self.definitive = False  # a failure that another attempt would only repeat
        self.lines: list[CheckLine] = []

    def __call__(self, run: KernelRunner) -> list[str]:
        self.reached_kernel = True
        self.definitive = True
        steps = [self.image(run)]
        for notebook in self.notebooks:
            steps.append(self.notebook(run, notebook))
        self.definitive = False
        return steps

    def image(self, run: KernelRunner) -> str:
        started = time.monotonic()
        running = run(IMAGE_CODE, IMAGE_CODE_TIMEOUT).strip()
        if running != self.expected:
            said = running or f"an image without {IMAGE_REFERENCE_ENV} (not built by this toolkit)"
            raise WorkFailed(f"the hub runs {said}, but the values name {self.expected}")
        reason = f"the server runs {running}, the image the values name"
        self.lines.append(CheckLine("image", True, round(time.monotonic() - started, 1), reason))
        return reason

    def notebook(self, run: KernelRunner, path: Path) -> str:
        started = time.monotonic()
        cells = _code_cells(path)
        for number, code in cells:
            try:
                run(code, float(self.cell_timeout))
            except WorkFailed as exc:
                raise WorkFailed(f"{path.name} cell {number}: {exc}") from None
        reason = f"{path.name}: {len(cells)} code cells ran"
        self.lines.append(CheckLine(f"notebook {path.name}", True, round(time.monotonic() - started, 1), reason))
        return reason


def _code_cells(path: Path) -> list[tuple[int, str]]:
    """(number, source) of every non-empty code cell of a notebook, numbered from 1 as Jupyter shows cells."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise ToolingError(f"{path}: not a notebook that can be read ({exc}).") from None
    found = []
    for number, cell in enumerate(cells, start=1):
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "code" and source.strip():
            found.append((number, source))
    return found


def _digest(root: Path, image: str) -> str:
    """The digest this machine's last push recorded for `image`; empty when it pushed another image or none."""
    pushed = State.load(root).pushed
    return pushed.digest if pushed is not None and pushed.reference == image else ""
