"""deploy.yml, read as data: one deploy per environment, never cancelled; prod behind its environment; secrets
in files only the job reads, removed whatever happened; the promotion PR carries staging's record."""

from __future__ import annotations

from typing import Any

from tests.test_workflows import WORKFLOW_DIR, jobs, load, steps

DEPLOY = WORKFLOW_DIR / "deploy.yml"


def runs(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) for step in steps(job)]


def test_each_environment_deploys_one_at_a_time_and_is_never_cancelled_midway() -> None:
    workflow = dict(jobs(DEPLOY))
    for environment in ("staging", "prod"):
        job = workflow[environment]
        assert job["environment"] == environment
        assert job["concurrency"] == {"group": f"deploy-{environment}", "cancel-in-progress": False}
        assert runs(job).index(f"python -m nox -s deploy -- {environment}") < runs(job).index(
            f"python -m nox -s verify -- {environment}"
        )


def test_the_kubeconfig_is_a_file_only_the_job_reads_and_is_removed_after() -> None:
    for name in ("staging", "prod"):
        job = dict(jobs(DEPLOY))[name]
        writing = next(step for step in steps(job) if "KUBECONFIG_TEXT" in step.get("env", {}))
        assert writing["run"].startswith("umask 077\n")
        assert writing["env"]["KUBECONFIG_TEXT"] == "${{ secrets.KUBECONFIG }}"
        removing = next(step for step in steps(job) if str(step.get("run", "")).startswith("rm -f"))
        assert removing["if"] == "always()"
        assert '"$RUNNER_TEMP/kubeconfig"' in removing["run"]


def test_a_verified_staging_opens_the_promotion_with_its_record() -> None:
    workflow = dict(jobs(DEPLOY))
    promote = workflow["promote-pr"]
    assert promote["needs"] == "staging"
    assert "python -m nox -s promote" in runs(promote)
    opened = next(step for step in steps(promote) if "create-pull-request" in str(step.get("uses", "")))
    assert set(opened["with"]["add-paths"].split()) == {"deploy/*.yaml", "deploy/verified/*.json"}
    assert load(DEPLOY)["on"]["push"]["branches"] == ["main"]
