"""Registry retries stop at the policy's total time even when attempts remain (no timing is asserted)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tooling.errors import ToolingError
from tooling.registry import RegistryClient, RetryPolicy, find_credentials


def test_retries_stop_when_the_total_time_is_spent_before_the_attempts(tmp_path: Path) -> None:
    # Bound but not listening: every connection is refused, and no other program can take the port meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        registry = f"127.0.0.1:{held.getsockname()[1]}"
        credentials = find_credentials(registry, environ={"DOCKER_CONFIG": str(tmp_path)})
        policy = RetryPolicy(attempts=1000, first_delay=0.01, max_delay=0.01, total_seconds=0.2)
        with RegistryClient(registry, credentials, policy) as client, pytest.raises(ToolingError) as raised:
            client.manifest("hub/user-image", "img-1")
    message = raised.value.message
    assert message.startswith(f"The registry {registry} could not be reached: Connection refused")
    gave_up = re.search(r"gave up after (\d+) attempts", message)
    assert gave_up, message
    assert 1 < int(gave_up[1]) < policy.attempts
