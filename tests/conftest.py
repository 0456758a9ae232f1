import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    # lock_fixtures first: hub_fixtures imports from it, and pytest rewrites asserts only in plugins it loads itself.
    "tests.lock_fixtures",
    "tests.rig.channel_fixtures",
    "tests.rig.docker_fixtures",
    "tests.rig.hub_fixtures",
    "tests.rig.engine_guard",
    "pytester",
    "tests.check_helpers",
    "tests.deploy_helpers",
]

# Set where the tests may run (a GitHub job, a shell that pushed an image): a job summary the tests
# would append to, registry credentials they would log in with. Tests that want one set it themselves.
CALLERS_SETTINGS = ("GITHUB_", "HUBSHIP_REGISTRY_")


@pytest.fixture(autouse=True)
def _no_callers_ci_settings_or_credentials() -> Iterator[None]:
    # Its own MonkeyPatch, not the `monkeypatch` fixture: requesting that here would set it up before
    # every other autouse fixture and undo a test's patches (a dead DOCKER_HOST) only after their teardown.
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(CALLERS_SETTINGS):
                patch.delenv(name)
        yield
