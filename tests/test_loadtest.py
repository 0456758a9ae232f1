"""The load test's pieces without a hub: percentiles, arrival schedules, the progress stream, kernel messages.

Most of it is parsing and arithmetic on fixed inputs (and the scheduler's
own clock for the concurrency cap). A fake hub (tests/loadtest_fake_hub.py)
stands in only for what the rig's real hub cannot send: KubeSpawner's
Kubernetes events and a failed image pull. The real hub is in
tests/test_loadtest_rig.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import statistics
import time
from pathlib import Path

import jsonschema
import pytest
import tomlkit

from tests.loadtest_fake_hub import serve_fake_kube_hub
from tests.lock_fixtures import PROJECT
from tooling.cli import main
from tooling.cli.loadtest_cmd import user_options
from tooling.config import load_config
from tooling.errors import ConfigError, ToolingError
from tooling.loadtest import LoadtestRequest, loadtest
from tooling.loadtest.kernel import CellExecution, execute_request, parse_frame
from tooling.loadtest.monitor import GeneratorLoad, Monitor
from tooling.loadtest.progress import EventStreamDecoder, SpawnProgress, spawn_phases
from tooling.loadtest.results import Report, schema_path, to_json
from tooling.loadtest.schedule import Arrival, Launched, launch, offsets
from tooling.loadtest.stats import Summary, percentile
from tooling.proc import free_port

# --- percentiles -----------------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks_like_numpy() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 90) == pytest.approx(3.7)
    # The standard library's "inclusive" method is the same definition.
    assert percentile(samples, 95) == pytest.approx(statistics.quantiles(samples, n=20, method="inclusive")[-1])


def test_one_sample_is_every_percentile_and_ties_stay_put() -> None:
    assert Summary.of([7.5]) == Summary(1, 0, 7.5, 7.5, 7.5, 7.5)
    assert Summary.of([2.0, 2.0, 2.0, 9.0]).p50 == 2.0


def test_no_samples_is_n_zero_with_the_failures_counted() -> None:
    summary = Summary.of([], failed=3)
    assert (summary.n, summary.failed, summary.p95, summary.max) == (0, 3, None, None)
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


# --- schedules -------------------------------------------------------------------------------------


def test_a_burst_starts_everyone_at_once_and_a_ramp_spreads_them_evenly() -> None:
    assert offsets(Arrival("burst"), 3) == [0.0, 0.0, 0.0]
    assert offsets(Arrival("ramp", ramp=60), 4) == [0.0, 20.0, 40.0, 60.0]
    assert offsets(Arrival("ramp", ramp=60), 1) == [0.0]


def test_poisson_arrivals_are_reproducible_from_their_seed_and_keep_the_rate() -> None:
    first = offsets(Arrival("poisson", rate=2.0, seed=7), 2000)
    assert first == offsets(Arrival("poisson", rate=2.0, seed=7), 2000)
    assert first != offsets(Arrival("poisson", rate=2.0, seed=8), 2000)
    assert first == sorted(first)
    gaps = [later - earlier for earlier, later in itertools.pairwise(first)]
    assert statistics.mean(gaps) == pytest.approx(0.5, rel=0.1)


def test_an_arrival_without_its_parameter_is_refused() -> None:
    with pytest.raises(ToolingError, match="--ramp"):
        Arrival("ramp")
    with pytest.raises(ToolingError, match="--rate"):
        Arrival("poisson", rate=0)


def test_a_concurrency_cap_delays_actual_starts_but_never_the_schedule() -> None:
    schedule = [0.0, 0.01, 0.02, 0.03]
    running: list[int] = []
    at_once = 0

    async def journey(index: int, launched: Launched) -> None:
        nonlocal at_once
        at_once += 1
        running.append(at_once)
        await asyncio.sleep(0.2)  # longer than the schedule: users 2-4 arrive while the one slot is taken
        at_once -= 1

    launched = asyncio.run(launch(schedule, journey, max_concurrent=1))

    assert [item.intended for item in launched] == schedule
    assert all(item.actual >= item.intended for item in launched)
    assert running == [1, 1, 1, 1]  # never two journeys at once
    # The later users waited for the slot: their actual starts are far behind their intended ones.
    assert all(item.actual > schedule[-1] for item in launched[1:])


# --- the progress stream ---------------------------------------------------------------------------

READY = {"progress": 100, "ready": True, "message": "Server ready at /user/a/", "url": "/user/a/"}


def test_events_split_across_chunks_with_crlf_and_keepalives_are_decoded() -> None:
    decoder = EventStreamDecoder()
    stream = (
        b":keepalive\r\n\r\n" + b'data: {"progress": 0, "message": "Server requested"}\r\n\r\n\n\n'
        b"event: progress\nid: 3\ndata: " + json.dumps(READY).encode() + b"\n\n"
    )
    events = []
    for start in range(0, len(stream), 7):  # 7-byte chunks cut lines and events anywhere
        events += decoder.feed(stream[start : start + 7])
    assert events == [{"progress": 0, "message": "Server requested"}, READY]


def test_a_long_raw_event_line_and_a_multiline_data_field_are_decoded() -> None:
    big = {"progress": 50, "message": "x" * 200_000, "raw_event": {"reason": "Pulling"}}
    decoder = EventStreamDecoder()
    assert decoder.feed(b"data: " + json.dumps(big).encode() + b"\n\n") == [big]
    assert decoder.feed(b'data: {"progress":\ndata: 1}\n\n') == [{"progress": 1}]
    assert decoder.feed(b"data: not json\n\n") == []
    assert decoder.feed(b'data: {"incomplete": ') == []


def test_kubespawner_events_split_a_spawn_into_node_wait_pull_and_start() -> None:
    progress = SpawnProgress()
    progress.add(1.0, {"progress": 0, "message": "Server requested"})
    progress.add(31.0, {"message": "Successfully assigned", "raw_event": {"reason": "Scheduled"}})
    progress.add(32.0, {"message": "Pulling image", "raw_event": {"reason": "Pulling"}})
    progress.add(92.0, {"message": "Pulled image", "raw_event": {"reason": "Pulled"}})
    progress.add(100.0, READY)
    assert spawn_phases(progress, accepted=1.0, ready=100.0) == {
        "node_wait": 30.0,
        "image_pull": 60.0,
        "server_start": 8.0,
    }


def test_a_spawner_without_kubernetes_events_has_no_breakdown_and_pull_failures_are_seen() -> None:
    plain = SpawnProgress()
    plain.add(1.0, {"progress": 50, "message": "Spawning server..."})
    assert spawn_phases(plain, accepted=0.0, ready=5.0) == {}
    pulling = SpawnProgress()
    pulling.add(3.0, {"message": "Back-off pulling image", "raw_event": {"reason": "ImagePullBackOff"}})
    pulling.add(9.0, {"failed": True, "message": "Spawn failed: Timeout"})
    assert pulling.pull_failed()
    assert not plain.pull_failed()


# --- kernel messages -------------------------------------------------------------------------------


def _message(kind: str, parent: str, **content: object) -> dict[str, object]:
    return {"header": {"msg_type": kind}, "msg_type": kind, "parent_header": {"msg_id": parent}, "content": content}


def test_a_cell_is_done_at_its_reply_and_idle_whichever_comes_first() -> None:
    request = execute_request("print(1)", "session")
    msg_id = request["header"]["msg_id"]
    assert request["content"]["code"] == "print(1)" and request["channel"] == "shell"
    cell = CellExecution(msg_id)
    cell.feed(_message("status", msg_id, execution_state="busy"))
    cell.feed(_message("stream", msg_id, name="stdout", text="1\n"))
    cell.feed(_message("stream", msg_id, name="stdout", text="2\n"))
    cell.feed(_message("execute_reply", msg_id, status="ok"))
    assert not cell.done  # output may still come until the kernel is idle
    cell.feed(_message("status", msg_id, execution_state="idle"))
    assert cell.done and cell.status == "ok" and "".join(cell.stdout) == "1\n2\n"


def test_messages_of_other_requests_are_ignored() -> None:
    cell = CellExecution("mine")
    cell.feed(_message("execute_reply", "other", status="ok"))
    cell.feed(_message("status", "other", execution_state="idle"))
    cell.feed(_message("error", "other", ename="KeyError", evalue="x"))
    assert not cell.done and cell.ename == ""


def test_an_error_names_its_exception_and_a_dead_kernel_ends_the_cell() -> None:
    cell = CellExecution("m")
    cell.feed(_message("error", "m", ename="ZeroDivisionError", evalue="division by zero", traceback=[]))
    cell.feed(_message("status", "m", execution_state="idle"))
    cell.feed(_message("execute_reply", "m", status="error", ename="ZeroDivisionError", evalue="division by zero"))
    assert cell.done and cell.status == "error" and cell.ename == "ZeroDivisionError"
    dying = CellExecution("m")
    dying.feed({"msg_type": "status", "parent_header": {}, "content": {"execution_state": "restarting"}})
    assert dying.done and dying.status == "died"


def test_frames_are_json_text_and_binary_or_garbage_frames_are_skipped() -> None:
    assert parse_frame('{"msg_type": "status"}') == {"msg_type": "status"}
    assert parse_frame(b"\x00\x01binary") is None
    assert parse_frame("[1, 2]") is None
    assert parse_frame("not json") is None


# --- the request: what the command refuses ---------------------------------------------------------


def _hub_toml(tmp_path: Path, hub_url: str = "http://127.0.0.1:9/") -> Path:
    document = tomlkit.parse((PROJECT / "hub.toml").read_text(encoding="utf-8"))
    for environment in ("staging", "prod"):
        document["deploy"][environment]["hub_url"] = hub_url
    config = tmp_path / "hub.toml"
    config.write_text(tomlkit.dumps(document), encoding="utf-8")
    (tmp_path / "image" / "notebooks").mkdir(parents=True)
    notebook = PROJECT / "image" / "notebooks" / "intro.ipynb"
    (tmp_path / "image" / "notebooks" / "intro.ipynb").write_bytes(notebook.read_bytes())
    return config


def test_prod_is_refused_without_allow_prod_and_n_above_the_cap(tmp_path: Path) -> None:
    config = load_config(_hub_toml(tmp_path))
    with pytest.raises(ToolingError, match="--allow-prod"):
        LoadtestRequest.from_config(config, "prod", users=2)
    assert LoadtestRequest.from_config(config, "prod", users=2, allow_prod=True).environment == "prod"
    with pytest.raises(ConfigError, match=r"max_users"):
        LoadtestRequest.from_config(config, "staging", users=config.loadtest.max_users + 1)


def test_the_tutorial_cells_and_spawn_options_make_the_plan(tmp_path: Path) -> None:
    config = load_config(_hub_toml(tmp_path))
    request = LoadtestRequest.from_config(
        config, "staging", users=3, profile="small", user_options={"cpu": 2}, read_file="/data/a.nc"
    )
    (notebook,) = request.plan.notebooks
    assert notebook.label == "image/notebooks/intro.ipynb"
    assert len(notebook.cells) == 3 and notebook.cells[0].startswith("import numpy as np")
    assert dict(request.plan.user_options) == {"cpu": 2, "profile": "small"}
    assert request.baseline and request.hub_url == "http://127.0.0.1:9/"
    # One user is its own baseline.
    assert not LoadtestRequest.from_config(config, "staging", users=1).baseline


def test_an_environment_without_a_hub_url_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _hub_toml(tmp_path, hub_url="")
    assert main(["--config", str(config), "loadtest", "staging", "-n", "2"]) == 2
    assert "[deploy.staging] hub_url is not set" in capsys.readouterr().err


def test_a_missing_token_is_one_line_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBSHIP_API_TOKEN", raising=False)
    assert main(["--config", str(_hub_toml(tmp_path)), "loadtest", "staging"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: $HUBSHIP_API_TOKEN is empty") and err.count("\n") == 1


def test_cleanup_of_an_unknown_run_names_the_runs_it_knows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _hub_toml(tmp_path)
    assert main(["--config", str(config), "loadtest", "--cleanup", "hubship-lt-20260101t000000-abcd"]) == 1
    assert "no record of run hubship-lt-20260101t000000-abcd (runs recorded here: none)" in capsys.readouterr().err
    assert main(["--config", str(config), "loadtest", "--cleanup", "../etc"]) == 1


# --- what only a cluster produces: KubeSpawner's events (a fake hub) ------------------------------


def test_kubespawner_events_give_the_spawn_phases_and_failed_pulls_and_streams_are_classified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_fake_kube_hub(pull_fails=("-u2",), streams_end=("-u3",)) as hub:
        config = load_config(_hub_toml(tmp_path, hub_url=hub.url))
        monkeypatch.setenv("HUBSHIP_API_TOKEN", "fake-token-for-the-fake-hub")
        request = LoadtestRequest.from_config(config, "staging", users=3, baseline=False, profile="gpu")

        result = loadtest(request)

        report = Report.of(result)
        ok, pull_failed, stream_ended = result.users
        assert set(ok.spawn_phases) == {"node_wait", "image_pull", "server_start"}
        assert ok.spawn_phases["image_pull"] > 0 and ok.ok
        assert [cell.status for cell in ok.cells] == ["ok", "ok", "ok"]
        assert [failure.kind for failure in pull_failed.failures] == ["image_pull"]
        assert pull_failed.failures[0].message == "Spawn failed: pod did not start in 300 seconds!"
        assert {"FailedScheduling", "Scheduled", "Pulling"} <= {event["reason"] for event in pull_failed.progress}
        assert [failure.kind for failure in stream_ended.failures] == ["progress_stream"]
        assert report.failures == {"image_pull": 1, "progress_stream": 1}
        assert report.measures["image_pull"].n == 1 and report.measures["node_wait"].n == 1
        assert hub.spawn_options == {user.name: {"profile": "gpu"} for user in result.users}
        assert hub.users == {}  # all removed
        assert result.cleanup.complete
        document = to_json(result, report)
        schema = json.loads(schema_path().read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)
        assert "fake-token-for-the-fake-hub" not in json.dumps(document)


# --- the generator watches itself ------------------------------------------------------------------


def test_a_blocked_event_loop_marks_the_run_contended() -> None:
    async def blocked() -> GeneratorLoad:
        monitor = Monitor(contended_cpu=10.0, contended_lag=0.25)
        monitor.start()
        await asyncio.sleep(0.15)
        time.sleep(0.6)  # the loop cannot tick: the next probe is at least 0.45 s late
        await asyncio.sleep(0.15)
        return await monitor.stop()

    load = asyncio.run(blocked())
    assert load.lag_max >= 0.45
    assert load.contended
    assert any(reason.startswith("event-loop lag") for reason in load.reasons)
    assert load.peak_rss_mb > 0


def test_an_unreachable_hub_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSHIP_API_TOKEN", "some-token")
    config = _hub_toml(tmp_path, hub_url=f"http://127.0.0.1:{free_port()}/")
    assert main(["--config", str(config), "loadtest", "staging"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the hub does not answer: GET /hub/api/ got no answer") and err.count("\n") == 1
    assert not (tmp_path / ".hubship" / "loadtest").exists()  # nothing was created, nothing to clean


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("hub_url", "hub.example.org", "'deploy.staging.hub_url': string should match pattern"),
        ("api_token_env", "MY-TOKEN", "'deploy.staging.api_token_env': string should match pattern"),
    ],
)
def test_a_wrong_hub_url_or_token_variable_names_the_key(tmp_path: Path, key: str, value: str, expected: str) -> None:
    config = _hub_toml(tmp_path)
    document = tomlkit.parse(config.read_text(encoding="utf-8"))
    document["deploy"]["staging"][key] = value
    config.write_text(tomlkit.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(config)


def test_the_run_deadline_stops_every_journey_and_still_removes_the_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_fake_kube_hub() as hub:
        config_path = _hub_toml(tmp_path, hub_url=hub.url)
        document = tomlkit.parse(config_path.read_text(encoding="utf-8"))
        document["loadtest"]["run_deadline"] = 0.2  # the fake's progress stream alone takes 0.4 s
        config_path.write_text(tomlkit.dumps(document), encoding="utf-8")
        monkeypatch.setenv("HUBSHIP_API_TOKEN", "fake-token-for-the-fake-hub")
        request = LoadtestRequest.from_config(load_config(config_path), "staging", users=3, baseline=False)

        result = loadtest(request)

        assert result.deadline_hit and not result.interrupted
        assert [[failure.kind for failure in user.failures] for user in result.users] == [["run_deadline"]] * 3
        assert all("ready" not in user.moments for user in result.users)
        assert hub.users == {} and result.cleanup.complete
        assert len(result.cleanup.removed) == 3  # the journeys were cut short: the cleanup removed them
        assert Report.of(result).failures == {"run_deadline": 3}


def test_user_options_are_json_when_they_parse_and_strings_otherwise() -> None:
    assert user_options(["cpu=2", "image=example/img:1", "gpu=true", 'env={"A": "b"}']) == {
        "cpu": 2,
        "image": "example/img:1",
        "gpu": True,
        "env": {"A": "b"},
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        user_options(["no-equals-sign"])
