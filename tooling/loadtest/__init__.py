"""The load test: N temporary users spawn, run the tutorial notebooks and go, at once, against a hub.

`LoadtestRequest.from_config(config, ENV, users=N, ...)` -> `loadtest(request)`
-> `LoadtestResult`. Through the hub's REST API with the API token the
environment names (any authenticator: nobody logs in through a form):

1. A one-user baseline: one user's full journey alone (see `journey`).
2. The load: N users arriving on a schedule (burst, ramp, seeded Poisson;
   `schedule`), each one's journey under its own deadlines, the whole run
   under `[loadtest] run_deadline`.
3. Cleanup, always (success, failure, Ctrl-C, SIGTERM): every user of the run
   is stopped and deleted; only users whose name starts with the run's id
   are touched. `.hubship/loadtest/RUN.json` (`runstate`) names them before
   the first is created, so `loadtest --cleanup RUN` finishes a cleanup that
   a kill interrupted (`cleanup_run`).

The generator measures itself (`monitor`) and marks a contended run. The
result carries the raw samples; `results` writes the table, JSON (checked
against the shipped schema in tests), CSV, Markdown and the PNG (`plot`).
The limits of `[loadtest]` (p95 time to ready, failure rate) decide
`passed`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tooling.config import HubConfig, LoadtestSettings
from tooling.errors import ConfigError, ToolingError
from tooling.loadtest import runstate
from tooling.loadtest.client import HubClient, HubUnreachable
from tooling.loadtest.journey import Journey, Limits, Plan, ReadGate, remove_user
from tooling.loadtest.monitor import GeneratorLoad, Monitor
from tooling.loadtest.notebooks import read_notebook
from tooling.loadtest.records import UserRecord
from tooling.loadtest.schedule import Arrival, Launched, launch, offsets
from tooling.log import logger, register_secret
from tooling.state import reports_dir

PROD = "prod"
# Users removed at once during cleanup: enough to be quick, few enough not to flood the hub.
CLEANUP_CONCURRENCY = 16
CLEANUP_PASSES = 3
LIST_PAGE = 200
LIST_PAGES = 50


@dataclass(frozen=True)
class LoadtestRequest:
    root: Path  # the folder of hub.toml (state and reports go under it)
    environment: str
    hub_url: str
    token_env: str
    users: int
    arrival: Arrival
    plan: Plan
    settings: LoadtestSettings
    baseline: bool
    max_concurrent: int
    output: Path

    @classmethod
    def from_config(
        cls,
        config: HubConfig,
        environment: str,
        *,
        users: int,
        arrival: Arrival | None = None,
        profile: str = "",
        user_options: Mapping[str, Any] | None = None,
        read_file: str = "",
        baseline: bool = True,
        max_concurrent: int | None = None,
        output: Path | None = None,
        allow_prod: bool = False,
    ) -> LoadtestRequest:
        target = config.deploy_target(environment)
        if environment == PROD and not allow_prod:
            raise ToolingError(
                "refusing to load-test prod: its users would wait behind the test's. "
                "Run it against staging, or pass --allow-prod when prod is idle."
            )
        if not target.hub_url:
            raise ConfigError(
                f"{config.path}: [deploy.{environment}] hub_url is not set; set it to the hub's public URL."
            )
        settings = config.loadtest
        if not 1 <= users <= settings.max_users:
            raise ConfigError(
                f"{users} users is outside 1..{settings.max_users} ([loadtest] max_users in {config.path}); "
                "raise max_users to run more."
            )
        options = dict(user_options or {})
        if profile:
            options["profile"] = profile
        notebooks = tuple(read_notebook(config.file(path), str(path)) for path in config.smoke.notebooks)
        limits = Limits(settings.spawn_timeout, settings.kernel_timeout, settings.cell_timeout, settings.stop_timeout)
        return cls(
            root=config.root,
            environment=environment,
            hub_url=target.hub_url,
            token_env=target.api_token_env,
            users=users,
            arrival=arrival or Arrival(),
            plan=Plan(notebooks, limits, options, read_file),
            settings=settings,
            baseline=baseline and users > 1,
            max_concurrent=settings.max_concurrent if max_concurrent is None else max_concurrent,
            output=output or reports_dir(config.root),
        )


@dataclass(frozen=True)
class CleanupOutcome:
    removed: tuple[str, ...]
    left: tuple[str, ...]  # users of the run the hub still lists afterwards
    problems: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.left and not self.problems


@dataclass(frozen=True)
class LoadtestResult:
    run: str
    request: LoadtestRequest
    hub_version: str
    started_at: str
    baseline: tuple[UserRecord, ...]
    users: tuple[UserRecord, ...]
    generator: GeneratorLoad
    cleanup: CleanupOutcome
    interrupted: bool
    deadline_hit: bool
    state_file: Path  # the run's record, for --cleanup


def new_run_id(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def read_token(variable: str) -> str:
    token = os.environ.get(variable, "")
    if not token:
        raise ToolingError(
            f"${variable} is empty: set it to an API token of the hub's loadtest service "
            "(see the README's load-test section for the service and its scopes)."
        )
    register_secret(token)
    return token


def loadtest(request: LoadtestRequest) -> LoadtestResult:
    """Run the load test; cleanup always runs. Output files are written by `results.write_outputs`."""
    token = read_token(request.token_env)
    return asyncio.run(_Run(request, token).main())


class _Run:
    def __init__(self, request: LoadtestRequest, token: str) -> None:
        self.request = request
        self.token = token
        self.run = new_run_id(request.settings.run_prefix)
        self.t0 = time.monotonic()
        self.baseline = [UserRecord(f"{self.run}-b0", "baseline", 0.0)] if request.baseline else []
        self.users = [UserRecord(f"{self.run}-u{index}", "load", 0.0) for index in range(1, request.users + 1)]
        self.completed: set[str] = set()
        self.interrupted = False
        self.deadline_hit = False
        self._cleanup: asyncio.Task[CleanupOutcome] | None = None

    def clock(self) -> float:
        return time.monotonic() - self.t0

    async def main(self) -> LoadtestResult:
        request = self.request
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        async with HubClient(request.hub_url, self.token, request.settings.request_timeout) as hub:
            version = await preflight(hub, self.run)
            names = tuple(record.name for record in (*self.baseline, *self.users))
            state = runstate.RunState(self.run, request.environment, request.hub_url, request.token_env, names)
            state_file = runstate.save(request.root, state)
            logger.info("loadtest %s: %d users against %s (JupyterHub %s)", self.run, request.users, hub.hub, version)
            monitor = Monitor(request.settings.contended_cpu, request.settings.contended_lag)
            monitor.start()
            work = asyncio.create_task(self.work(hub))
            self._install_signals(work)
            try:
                await work
            except asyncio.CancelledError:
                if not self.interrupted:
                    raise
            finally:
                # Whatever ended the journeys (the end, a signal, the deadline, a bug), the users go.
                generator = await monitor.stop()
                self.mark_unfinished()
                cleanup = await self.remove_everyone(hub, state)
        return LoadtestResult(
            run=self.run,
            request=request,
            hub_version=version,
            started_at=started_at,
            baseline=tuple(self.baseline),
            users=tuple(self.users),
            generator=generator,
            cleanup=cleanup,
            interrupted=self.interrupted,
            deadline_hit=self.deadline_hit,
            state_file=state_file,
        )

    async def remove_everyone(self, hub: HubClient, state: runstate.RunState) -> CleanupOutcome:
        settings = self.request.settings
        runstate.save(self.request.root, state.with_status("cleaning"))
        logger.info("loadtest %s: removing the run's users", self.run)
        try:
            self._cleanup = asyncio.create_task(
                clean_up(hub, self.run, state.users, settings.cleanup_timeout, settings.stop_timeout)
            )
            cleanup = await self._cleanup
        except asyncio.CancelledError:
            problem = f"cleanup interrupted; finish it with --cleanup {self.run}"
            cleanup = CleanupOutcome((), state.users, (problem,))
        finally:
            self._remove_signals()
        runstate.save(self.request.root, state.with_status("clean" if cleanup.complete else "cleanup-incomplete"))
        return cleanup

    def _install_signals(self, work: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            # First signal: stop the journeys, then clean up. A second one during cleanup abandons it.
            if not self.interrupted:
                self.interrupted = True
                logger.warning("interrupted: stopping the journeys, then removing the run's users")
                work.cancel()
            elif self._cleanup is not None:
                self._cleanup.cancel()

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, interrupt)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)

    async def work(self, hub: HubClient) -> None:
        try:
            async with asyncio.timeout(self.request.settings.run_deadline):
                if self.baseline:
                    await self.wave(hub, self.baseline, [0.0], 0)
                schedule = offsets(self.request.arrival, len(self.users))
                await self.wave(hub, self.users, schedule, self.request.max_concurrent)
        except TimeoutError:
            self.deadline_hit = True

    async def wave(self, hub: HubClient, records: Sequence[UserRecord], schedule: Sequence[float], cap: int) -> None:
        # The shared file is read by all users at once; under a cap smaller than the wave, users waiting for
        # a slot could never join the ones holding the slots, so each then reads when it gets there.
        together = cap == 0 or cap >= len(records)
        gate = ReadGate(len(records)) if self.request.plan.read_file and together else None
        wave_start = self.clock()

        async def journey(index: int, launched: Launched) -> None:
            record = records[index]
            record.intended = wave_start + launched.intended
            await Journey(hub, self.request.plan, record, self.clock, gate).run()
            self.completed.add(record.name)

        await launch(schedule, journey, max_concurrent=cap)

    def mark_unfinished(self) -> None:
        """A journey cut short by a signal or the run's deadline is a failure of that kind."""
        for record in (*self.baseline, *self.users):
            if record.name in self.completed:
                continue
            if self.deadline_hit:
                record.fail("run_deadline", f"the run's deadline ({self.request.settings.run_deadline:g} s) passed")
            else:
                record.fail("interrupted", "the run was interrupted")


async def preflight(hub: HubClient, run: str) -> str:
    """The hub's version; a `ToolingError` when the hub or the token's rights are not what the test needs."""
    try:
        info = await hub.call("GET", hub.api(""))
        if info.status != 200 or not isinstance(info.body, dict):
            raise ToolingError(f"{hub.hub}hub/api/ answered {info.status}: is {hub.hub} a JupyterHub?")
        listing = await hub.call("GET", hub.api(f"users?name_filter={run}"))
    except HubUnreachable as exc:
        raise ToolingError(f"the hub does not answer: {exc.message}") from None
    if listing.status in (401, 403):
        raise ToolingError(
            f"the API token cannot list users ({listing.status}: {listing.message}); it needs the scopes "
            "admin:users, admin:servers and access:servers (see the README's load-test section)."
        )
    return str(info.body.get("version", "?"))


async def list_run_users(hub: HubClient, run: str) -> list[str]:
    """Users of the hub whose name starts with the run's id (the hub filters by substring: checked again here)."""
    found: list[str] = []
    for page in range(LIST_PAGES):
        answer = await hub.call("GET", hub.api(f"users?name_filter={run}&offset={page * LIST_PAGE}&limit={LIST_PAGE}"))
        if answer.status != 200 or not isinstance(answer.body, list):
            raise HubUnreachable(f"listing the run's users answered {answer.status}: {answer.message}")
        found += [str(user["name"]) for user in answer.body if str(user.get("name", "")).startswith(f"{run}-")]
        if len(answer.body) < LIST_PAGE:
            break
    return found


async def clean_up(
    hub: HubClient, run: str, names: Sequence[str], timeout: float, stop_timeout: float
) -> CleanupOutcome:
    """Stop and delete every user of the run the hub lists, within `timeout`; named users when it cannot list.

    A request cancelled by an interruption may still create a user or start
    a server on the hub after the first listing: the hub is listed again
    after each pass, up to CLEANUP_PASSES passes.
    """
    problems: list[str] = []
    removed: list[str] = []
    slots = asyncio.Semaphore(CLEANUP_CONCURRENCY)

    async def one(name: str) -> None:
        async with slots:
            problem = await remove_user(hub, name, stop_timeout)
        if problem:
            problems.append(problem)
        else:
            removed.append(name)

    try:
        targets = await list_run_users(hub, run)
    except HubUnreachable as exc:
        # Without the hub's list, every user the run may have created is asked for (gone counts as done).
        targets, problems = [name for name in names if name.startswith(f"{run}-")], [exc.message]
    try:
        async with asyncio.timeout(timeout):
            for _ in range(CLEANUP_PASSES):
                if not targets:
                    break
                await asyncio.gather(*(one(name) for name in targets))
                targets = await list_run_users(hub, run)
    except TimeoutError:
        problems.append(f"cleanup did not finish within {timeout:g} s")
    except HubUnreachable as exc:
        problems.append(exc.message)
    return CleanupOutcome(tuple(sorted(set(removed))), tuple(targets), tuple(problems))


@dataclass(frozen=True)
class CleanupRequest:
    root: Path
    state: runstate.RunState
    settings: LoadtestSettings

    @classmethod
    def from_config(cls, config: HubConfig, run: str) -> CleanupRequest:
        return cls(config.root, runstate.load(config.root, run), config.loadtest)


def cleanup_run(request: CleanupRequest) -> CleanupOutcome:
    """Finish the cleanup of a recorded run: remove its users, mark the record clean when none is left."""
    state = request.state
    token = read_token(state.token_env)

    async def main() -> CleanupOutcome:
        async with HubClient(state.hub_url, token, request.settings.request_timeout) as hub:
            return await clean_up(
                hub, state.run, state.users, request.settings.cleanup_timeout, request.settings.stop_timeout
            )

    outcome = asyncio.run(main())
    runstate.save(request.root, state.with_status("clean" if outcome.complete else "cleanup-incomplete"))
    return outcome
