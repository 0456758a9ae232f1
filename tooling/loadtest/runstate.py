"""The record of a run's test users, so a cleanup a kill interrupted can be finished later.

`.hubship/loadtest/RUN.json` is written (atomically) before the first user
is created and names every user the run may create, the environment and
the hub. `loadtest --cleanup RUN` reads it, removes those users (and any
other user of the hub whose name starts with the run's id), and marks it
clean. It holds no token: only the name of the variable that does.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from tooling.errors import ToolingError
from tooling.files import write_atomic
from tooling.state import STATE_DIR, now

RUNS_DIR = "loadtest"
RUN_ID = re.compile(r"^[a-z][a-z0-9-]+-\d{8}t\d{6}-[0-9a-f]{4}$")


@dataclass(frozen=True)
class RunState:
    run: str
    environment: str
    hub_url: str
    token_env: str
    users: tuple[str, ...]
    status: str = "running"  # running, cleaning, clean, cleanup-incomplete
    updated: str = ""

    def with_status(self, status: str) -> RunState:
        return RunState(self.run, self.environment, self.hub_url, self.token_env, self.users, status)


def runs_dir(root: Path) -> Path:
    return root / STATE_DIR / RUNS_DIR


def save(root: Path, state: RunState) -> Path:
    path = runs_dir(root) / f"{state.run}.json"
    data = asdict(state) | {"users": list(state.users), "updated": now()}
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def load(root: Path, run: str) -> RunState:
    if not RUN_ID.match(run):
        raise ToolingError(f"'{run}' is not a load-test run id (such as hubship-lt-20260301t101500-ab12).")
    path = runs_dir(root) / f"{run}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunState(
            data["run"], data["environment"], data["hub_url"], data["token_env"], tuple(data["users"]), data["status"]
        )
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in runs_dir(root).glob("*.json"))) or "none"
        raise ToolingError(f"{path}: no record of run {run} (runs recorded here: {known}).") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolingError(f"{path}: unreadable ({exc}); remove the run's users by hand (names start {run}).") from None
