"""Bad input to `lock` and `lock --check`: one clear message, a non-zero exit, the previous lock untouched."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.lock_fixtures import PROJECT, CliResult, Hub, hub_toml_with, loopback_server
from tooling.channels import register_url_secrets
from tooling.log import redact
from tooling.proc import free_port

Cli = Callable[..., CliResult]
SPEC = PROJECT.joinpath("environments", "environment.yml").read_text()
PIP_MAPPING = {"pip": {"pypi_name": "pip", "conda_name": "pip", "import_name": "pip", "mapping_source": "test"}}


@pytest.fixture
def locked_hub(make_hub: Callable[..., Hub], cli: Cli) -> Hub:
    """A hub with a current lock, whose bytes each test checks are left as they were."""
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    return hub


def fails_cleanly(result: CliResult, *fragments: str) -> str:
    """The run failed with one `error:` line (after any progress lines) holding every fragment; returns that line."""
    assert result.code != 0
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    assert result.err.rstrip().endswith(errors[0]), result.err
    for fragment in fragments:
        assert fragment in errors[0], result.err
    return errors[0]


def with_spec(hub: Hub, text: str) -> Hub:
    hub.spec.write_text(text)
    return hub


def test_malformed_yaml_names_file_line_and_column(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - numpy\n - pandas: [\n"))
    line = SPEC.splitlines().index("  - numpy") + 2
    fails_cleanly(cli(locked_hub, "lock"), f"{locked_hub.spec}:{line}:", "not valid YAML")
    assert locked_hub.snapshot() == before


def test_control_character_in_spec_is_located(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - num\x07py\n"))
    line = SPEC.splitlines().index("  - numpy") + 1
    fails_cleanly(cli(locked_hub, "lock"), f"{locked_hub.spec}:{line}:8: not valid YAML: character 0x0007")
    assert locked_hub.snapshot() == before


def test_spec_that_is_not_utf8_is_named(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    locked_hub.spec.write_bytes(SPEC.encode() + b"# caf\xe9\n")
    fails_cleanly(cli(locked_hub, "lock"), f"{locked_hub.spec}: not UTF-8 text")
    assert locked_hub.snapshot() == before


def test_unknown_package_names_it_and_its_line(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - numpy\n  - nosuchpackage-xyz\n"))
    line = SPEC.splitlines().index("  - numpy") + 2
    fails_cleanly(cli(locked_hub, "lock"), "unknown package 'nosuchpackage-xyz'", f"environment.yml:{line}")
    assert locked_hub.snapshot() == before


def test_no_matching_version_lists_what_there_is(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - numpy<1.0\n"))
    fails_cleanly(cli(locked_hub, "lock"), "no version of 'numpy' matches '<1.0'", "available: ")
    assert locked_hub.snapshot() == before


def test_unsatisfiable_spec_names_the_conflicting_packages(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    conflicting = (
        "channels:\n  - conda-forge\ndependencies:\n  - jupyterhub-singleuser\n  - numpy<1.24\n  - pandas>=2.3\n"
    )
    fails_cleanly(
        cli(with_spec(locked_hub, conflicting), "lock"),
        "cannot be installed together",
        "'numpy <1.24'",
        "'pandas >=2.3'",
        "different versions of python_abi",
    )
    assert locked_hub.snapshot() == before


def test_spec_ruled_out_by_another_says_what_it_needs(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - numpy<1.24\n"))
    fails_cleanly(cli(locked_hub, "lock"), "'numpy <1.24' cannot be installed: it needs 'python >=3.10,<3.11.0a0'")
    assert locked_hub.snapshot() == before


def test_unreachable_mirror_names_the_url(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    mirror = f"http://127.0.0.1:{free_port()}/conda-forge"
    fails_cleanly(cli(locked_hub, "lock", "--mirror", f"conda-forge={mirror}"), "Cannot reach", mirror)
    assert locked_hub.snapshot() == before


def test_unreachable_mirror_with_credentials_keeps_the_password_out(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    password = "unreachable-pw-52e1"
    mirror = f"http://robot:{password}@127.0.0.1:{free_port()}/conda-forge"
    error = fails_cleanly(cli(locked_hub, "lock", "--mirror", f"conda-forge={mirror}"), "Cannot reach")
    assert password not in error
    assert mirror.replace(password, "********") in error
    assert locked_hub.snapshot() == before


def test_channel_passwords_and_tokens_are_hidden_but_file_paths_are_not() -> None:
    register_url_secrets("https://robot:pw-one-2@mirror.example/t/tk-9d2f-77/conda-forge")
    register_url_secrets("file:///srv/t/local-channel")
    said = redact("https://robot:pw-one-2@mirror.example/t/tk-9d2f-77/conda-forge; file:///srv/t/local-channel")
    assert said == "https://robot:********@mirror.example/t/********/conda-forge; file:///srv/t/local-channel"


def test_channel_without_linux_64_data(locked_hub: Hub, cli: Cli, snapshot_channel: str, tmp_path: Path) -> None:
    before = locked_hub.snapshot()
    noarch_only = tmp_path / "noarch-only" / "conda-forge"
    (noarch_only / "noarch").mkdir(parents=True)
    source = Path(snapshot_channel.removeprefix("file://")) / "noarch" / "repodata.json"
    shutil.copy(source, noarch_only / "noarch" / "repodata.json")
    result = cli(locked_hub, "lock", "--mirror", f"conda-forge={noarch_only.as_uri()}")
    fails_cleanly(result, "has no linux-64 data", f"{noarch_only.as_uri()}/linux-64/repodata.json")
    assert locked_hub.snapshot() == before


def test_mirror_option_needs_name_and_url(locked_hub: Hub, cli: Cli) -> None:
    result = cli(locked_hub, "lock", "--mirror", "conda-forge")
    assert result.code == 2
    assert "--mirror conda-forge: expected NAME=URL" in result.err


@pytest.mark.parametrize(
    ("requirement", "fragment"),
    [
        ("mypkg @ git+https://example.org/mypkg.git@main", "is not pinned to a commit"),
        ("mypkg @ git+https://example.org/mypkg.git", "is not pinned to a commit"),
        ("mypkg @ https://example.org/mypkg-1.0-py3-none-any.whl", "has no hash"),
        ("-e ./mypkg", "editable pip requirement"),
        ("mypkg @ file:///srv/mypkg", "is a local path"),
    ],
)
def test_unpinned_pip_requirements_are_refused(
    locked_hub: Hub, cli: Cli, tmp_path: Path, requirement: str, fragment: str
) -> None:
    before = locked_hub.snapshot()
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(PIP_MAPPING))
    with_spec(locked_hub, SPEC + f"  - pip:\n    - {requirement}\n")
    line = len(SPEC.splitlines()) + 2
    err = fails_cleanly(cli(locked_hub, "lock", "--pypi-mapping", str(mapping)), fragment, f"environment.yml:{line}")
    assert "mypkg" in err
    assert locked_hub.snapshot() == before


def test_unreadable_pypi_mapping_is_named(locked_hub: Hub, cli: Cli) -> None:
    before = locked_hub.snapshot()
    with_spec(locked_hub, SPEC + "  - pip:\n    - tomli-w\n")
    mapping = f"http://127.0.0.1:{free_port()}/mapping.json"
    fails_cleanly(cli(locked_hub, "lock", "--pypi-mapping", mapping), "PyPI-to-conda name mapping", mapping)
    assert locked_hub.snapshot() == before


# --- lock --check --------------------------------------------------------------------------------


def check_fails(cli: Cli, hub: Hub, *fragments: str) -> str:
    result = cli(hub, "lock", "--check")
    assert result.code == 1
    assert result.err.startswith("lock --check: ")
    assert len(result.err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in result.err, result.err
    return result.err


def test_check_passes_on_a_fresh_lock(locked_hub: Hub, cli: Cli) -> None:
    result = cli(locked_hub, "lock", "--check")
    assert result.code == 0
    assert result.out.startswith("ok: ") and "packages for linux-64" in result.out


def test_check_tells_a_stale_lock(locked_hub: Hub, cli: Cli) -> None:
    with_spec(locked_hub, SPEC.replace("  - numpy\n", "  - numpy<2\n"))
    check_fails(cli, locked_hub, "is stale")


def test_check_tells_a_hand_edited_version(locked_hub: Hub, cli: Cli) -> None:
    text = locked_hub.lock.read_text()
    start = text.index("- name: numpy\n")
    version_line = text[start:].split("\n")[1]
    edited = text[:start] + text[start:].replace(version_line, "  version: 9.9.9", 1)
    locked_hub.lock.write_text(edited)
    check_fails(cli, locked_hub, "edited by hand")


def test_check_tells_a_reformatted_line(locked_hub: Hub, cli: Cli) -> None:
    locked_hub.lock.write_text(locked_hub.lock.read_text().replace("  version: '0.1'", '  version: "0.1"', 1))
    check_fails(cli, locked_hub, "edited by hand", "conda-lock writes this line differently")


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_check_tells_a_truncated_lock(locked_hub: Hub, cli: Cli, cut: str) -> None:
    text = locked_hub.lock.read_text()
    half = len(text) // 2
    end = text.index("\n- name:", half) + 1 if cut == "line" else half
    locked_hub.lock.write_text(text[:end])
    check_fails(cli, locked_hub, str(locked_hub.lock))


def test_check_tells_an_incomplete_lock_without_our_checksum(locked_hub: Hub, cli: Cli) -> None:
    # A lock conda-lock wrote itself has no checksum; a missing dependency still shows it was cut short.
    lines = locked_hub.lock.read_text().splitlines(keepends=True)
    lines = [line for line in lines if "hubship-packages-sha256" not in line]
    text = "".join(lines)
    locked_hub.lock.write_text(text[: text.index("- name: zstd\n")])
    check_fails(cli, locked_hub, "incomplete", "not in the lock")


def test_check_tells_a_missing_platform(locked_hub: Hub, cli: Cli, snapshot_channel: str) -> None:
    two_platforms = hub_toml_with(
        snapshot_channel,
        {
            'platforms = ["linux-64"]': 'platforms = ["linux-64", "osx-arm64"]',
            "[mirrors]": '[environment.virtual_packages.osx-arm64]\n__unix = "0"\n__osx = "11.0"\n'
            '__archspec = "1 arm64"\n\n[mirrors]',
        },
    )
    locked_hub.config.write_text(two_platforms)
    check_fails(cli, locked_hub, "no solution for platform osx-arm64")


def test_check_tells_a_missing_or_edited_explicit_lock(locked_hub: Hub, cli: Cli) -> None:
    text = locked_hub.explicit.read_text()
    locked_hub.explicit.write_text("".join(text.splitlines(keepends=True)[:-1]))
    check_fails(cli, locked_hub, "conda-linux-64.lock does not match")
    locked_hub.explicit.unlink()
    check_fails(cli, locked_hub, "conda-linux-64.lock does not exist")


def test_check_without_a_lock(make_hub: Callable[..., Hub], cli: Cli) -> None:
    check_fails(cli, make_hub(), "conda-lock.yml does not exist")


def test_lock_files_that_are_not_utf8_are_named_by_check_and_replaced_by_lock(locked_hub: Hub, cli: Cli) -> None:
    for path in (locked_hub.lock, locked_hub.explicit):
        path.write_bytes(path.read_bytes() + b"\xff\xfe")
    check_fails(cli, locked_hub, f"{locked_hub.lock}: not UTF-8 text")
    locked_hub.lock.write_bytes(locked_hub.lock.read_bytes()[:-2])
    check_fails(cli, locked_hub, "conda-linux-64.lock does not match")
    relocked = cli(locked_hub, "lock")
    assert relocked.code == 0, relocked.err
    assert "Traceback" not in relocked.err
    assert cli(locked_hub, "lock", "--check").code == 0


# --- an interrupted run ------------------------------------------------------------------------


@contextmanager
def hanging_channel() -> Iterator[tuple[str, threading.Event]]:
    """An HTTP 'mirror' on 127.0.0.1 that never answers; the event is set once a request arrived."""
    arrived, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            arrived.set()
            release.wait(timeout=60)

        do_GET = do_HEAD

        def log_message(self, format: str, *args: object) -> None:
            return

    with loopback_server(Handler) as port:
        try:
            yield f"http://127.0.0.1:{port}/conda-forge", arrived
        finally:
            release.set()


def test_interrupted_run_leaves_the_previous_lock(locked_hub: Hub) -> None:
    before = locked_hub.snapshot()
    with hanging_channel() as (mirror, arrived):
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tooling",
                "--config",
                str(locked_hub.config),
                "lock",
                "--mirror",
                f"conda-forge={mirror}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert arrived.wait(timeout=60), "the lock never read the channel"
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    assert run.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert locked_hub.snapshot() == before
    assert not list(locked_hub.lock.parent.glob(".*.tmp"))
