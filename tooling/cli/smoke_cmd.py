"""`test`: the smoke test of the built image, the way JupyterHub starts it; exits 1 when any check fails."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.cli.common import add_command, load, md_cell, next_command, publish_markdown, stage_command
from tooling.files import write_atomic

if TYPE_CHECKING:
    from tooling.checkresult import CheckResult
    from tooling.smoke import SmokeResult


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "test",
        summary="Smoke-test the built image: it runs as uid 1000 without sudo, its environment is exactly the "
        "lock, environment.yml's packages import, jupyterhub-singleuser suits the deployed hub, the server "
        "starts as a spawner starts it, a real JupyterHub (DockerSpawner, configurable-http-proxy, all on "
        "127.0.0.1) spawns it and runs code in a kernel, the tutorials and image/tests pass inside it, and "
        "it fits the size budget. Records whether this image passed; push refuses one that did not.",
        reads="hub.toml ([smoke], [environment], [deploy.*] chart_version, [docker]), .hubship/state.json (the "
        "built image), environments/environment.yml and conda-lock.yml, the notebooks and tests [smoke] names, "
        "the image in the local Docker engine (never pulled)",
        writes=".hubship/state.json (the result, by image id), .hubship/reports/smoke-test.md and smoke-test.xml "
        "(JUnit); containers it starts are removed",
        example="python -m tooling test --junit reports/smoke.xml",
    )
    parser.add_argument(
        "--image",
        metavar="NAME:TAG",
        help="test this local image instead of the one the build stage recorded (it is never pulled)",
    )
    parser.add_argument(
        "--junit", type=Path, metavar="PATH", help="write the JUnit XML report here (default .hubship/reports/)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.smoke import SmokeRequest, smoke_test

    config = load(args)
    result = smoke_test(SmokeRequest.from_config(config, image=args.image, junit=args.junit))
    print(summary(result))
    # The report goes where the stage's record in the state says, and to GitHub's job summary.
    publish_markdown(markdown(result), result.report)
    write_atomic(result.junit, junit_xml(result))
    return 0 if result.passed else 1


def summary(result: SmokeResult) -> str:
    verdict = "passed" if result.passed else f"FAILED: {len(result.failed)} of {len(result.checks)} checks"
    lines = [summary_table(result.checks)]
    for check in result.failed:
        lines.append(f"\n{check.name}: {check.reason}")
        lines += [f"  {line}" for line in check.details]
    lines.append(f"\n{result.reference} (image {result.image_id[:19]}): {verdict}, in {result.seconds:.1f} s.")
    lines.append(f"Report: {result.report}; JUnit: {result.junit}")
    lines.append(next_step(result))
    return "\n".join(lines)


def markdown(result: SmokeResult) -> str:
    verdict = "passed" if result.passed else f"FAILED ({len(result.failed)} of {len(result.checks)} checks)"
    lines = [
        f"## Smoke test: `{result.reference}` {verdict}\n",
        f"Image `{result.reference}` (id `{result.image_id}`): {len(result.checks)} checks, {result.seconds:.1f} s.\n",
        "| Check | Result | Seconds | Why |",
        "|---|---|---:|---|",
    ]
    for check in result.checks:
        mark = "pass" if check.passed else "**FAIL**"
        lines.append(f"| {md_cell(check.name)} | {mark} | {check.seconds:.1f} | {md_cell(check.reason)} |")
    for check in result.failed:
        if check.details:
            lines += ["", f"<details><summary>{md_cell(check.name)}: details</summary>\n", "```"]
            lines += [line.replace("```", "'''") for line in check.details]
            lines += ["```", "</details>"]
    lines.append("")
    lines.append(next_step(result))
    return "\n".join(lines) + "\n"


def next_step(result: SmokeResult) -> str:
    if result.passed:
        return f"Next: `{next_command('test')}` pushes this image; the push stage checks that it passed."
    return (
        f"Fix the image (or hub.toml), rebuild it with `{stage_command('build')}`, "
        f"then run `{stage_command('test')}` again."
    )


def junit_xml(result: SmokeResult) -> str:
    """A JUnit XML report: one testsuite, one testcase per check, the details as the failure's text."""
    totals = {
        "tests": str(len(result.checks)),
        "failures": str(len(result.failed)),
        "errors": "0",
        "skipped": "0",
        "time": f"{result.seconds:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "hubship smoke test", **totals})
    suite = ET.SubElement(suites, "testsuite", {"name": "smoke-test", **totals})
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "image", "value": result.reference})
    ET.SubElement(properties, "property", {"name": "image_id", "value": result.image_id})
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", {"classname": "hubship.smoke", "name": check.name})
        case.set("time", f"{check.seconds:.3f}")
        if not check.passed:
            failure = ET.SubElement(case, "failure", {"message": check.reason, "type": "SmokeCheckFailed"})
            failure.text = "\n".join((check.reason, *check.details))
        else:
            ET.SubElement(case, "system-out").text = "\n".join((check.reason, *check.details))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def summary_table(checks: Sequence[CheckResult], width: int = 110) -> str:
    """One line per check: PASS/FAIL, name, seconds, reason (shortened to fit `width`)."""
    name_width = max((len(check.name) for check in checks), default=0)
    lines = []
    for check in checks:
        head = f"{'PASS' if check.passed else 'FAIL'}  {check.name:<{name_width}}  {check.seconds:5.1f} s  "
        room = max(20, width - len(head))
        reason = check.reason if len(check.reason) <= room else check.reason[: room - 1] + "…"
        lines.append(head + reason)
    return "\n".join(lines)
