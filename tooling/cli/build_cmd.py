"""`build`: repo2docker builds the user image from image/ with exactly the lock installed; prints REGISTRY/NAME:TAG."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tooling.channels import parse_mirror_options
from tooling.cli.common import add_command, load, md_cell, next_command, publish_markdown
from tooling.state import reports_dir

if TYPE_CHECKING:
    from tooling.build import BuildResult, Timing

REPORT_NAME = "build.md"
SLOWEST_STEPS = 6
MEASURABLE_SECONDS = 0.05


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "build",
        summary="Build the user image with repo2docker from image/ (apt.txt, postBuild, start, ...) with exactly "
        "the explicit lock installed (py-rattler, every hash checked, no solve). The tag is derived from the "
        "inputs; an image that already has it (locally or in the registry) is not built again. Prints "
        "REGISTRY/NAME:TAG.",
        reads="hub.toml ([image], [environment], [mirrors], [docker]), environments/conda-lock.yml and "
        "conda-linux-64.lock, image/, the base image, the channels (or their mirrors) during the build",
        writes="the image to the local Docker engine, .hubship/state.json (the built image), "
        ".hubship/reports/build.md, .hubship/logs/build.log and build.Dockerfile, "
        "$XDG_CACHE_HOME/hubship (the throwaway build environment; the install plan of a lock that passed the "
        "lock check, so a build with the same lock, spec and settings skips the check)",
        example="python -m tooling build --mirror conda-forge=https://conda-mirror.example.org/conda-forge",
    )
    parser.add_argument("--force", action="store_true", help="build even if an image with the tag already exists")
    parser.add_argument(
        "--allow-stale-lock",
        action="store_true",
        help="build from the lock as it is even when `lock --check` fails (the image then differs from the spec)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="read channel NAME from URL while installing (repeatable; wins over [mirrors] in hub.toml); "
        "conda-meta still records https://conda.anaconda.org/NAME URLs",
    )
    parser.add_argument(
        "--pypi-mapping",
        metavar="FILE_OR_URL",
        help="PyPI-to-conda name mapping the lock check needs for a spec with a pip: section (as for `lock`)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.build import BuildRequest, build_image

    config = load(args)
    request = BuildRequest.from_config(
        config,
        mirrors=parse_mirror_options(args.mirror),
        force=args.force,
        allow_stale_lock=args.allow_stale_lock,
        pypi_mapping=args.pypi_mapping,
    )
    result = build_image(request)
    print(result.reference)
    print(summary(result))
    publish_markdown(markdown(result), reports_dir(config.root) / REPORT_NAME)
    return 0


def outcome(result: BuildResult) -> str:
    if result.built:
        return f"built in {result.seconds:.1f} s ({result.reason})"
    return f"not built: {result.reason}"


def human_size(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


def slowest_steps(result: BuildResult) -> list[Timing]:
    """The steps that ran (not from the cache) and took a measurable time, slowest first."""
    ran = [timing for timing in result.docker_steps if not timing.cached and timing.seconds >= MEASURABLE_SECONDS]
    return sorted(ran, key=lambda timing: timing.seconds, reverse=True)[:SLOWEST_STEPS]


def cached_count(result: BuildResult) -> str:
    cached = sum(1 for timing in result.docker_steps if timing.cached)
    return f"{cached} of {len(result.docker_steps)} Dockerfile steps came from the layer cache"


def shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def base_pin_advice(result: BuildResult) -> str:
    """How to pin an unpinned base image, so that a rebuild of the same inputs gets the same base; or ''."""
    if "@" in result.base:
        return ""
    digest = result.labels.get("org.opencontainers.image.base.digest", "")
    if digest:
        return f'The base image is not pinned: set [image] base = "{result.base}@{digest}" in hub.toml.'
    return f"The base image {result.base} is not pinned by digest, and has none from a registry (made or loaded here)."


def in_registry(held: bool | None) -> str:
    return {True: "in the registry", False: "new to the registry", None: "registry: unknown"}[held]


def environment_lines(result: BuildResult) -> list[str]:
    """One line per environment layer: group, packages, size, and whether the registry already holds it."""
    return [
        f"  {layer.name:<10} {layer.packages:>4} packages {human_size(layer.size):>9}  {in_registry(layer.in_registry)}"
        for layer in result.environment_layers
    ]


def summary(result: BuildResult) -> str:
    lines = [
        f"{result.reference} (image {result.image_id[:19]}): {outcome(result)}.",
        f"Size {human_size(result.size)} on {result.base}; {result.packages} locked packages.",
    ]
    if advice := base_pin_advice(result):
        lines.append(advice)
    if result.stale_lock:
        lines.append(f"WARNING: built from a stale lock (--allow-stale-lock): {result.stale_lock}")
    if result.docker_steps:
        lines.append(cached_count(result) + "; slowest steps:")
        lines += [f"  {timing.seconds:7.1f} s  {shorten(timing.name)}" for timing in slowest_steps(result)]
    lines.append("Largest layers:")
    lines += [f"  {human_size(layer.size):>9}  {shorten(layer.created_by)}" for layer in result.largest_layers]
    lines.append(f"Environment layers ({len(result.environment_layers)}):")
    lines += environment_lines(result)
    if result.log is not None:
        lines.append(f"Build log: {result.log}")
    lines.append(f"Next: `{next_command('build')}` smoke-tests this image the way JupyterHub starts it.")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return md_cell(shorten(text))


def markdown(result: BuildResult) -> str:
    parts = [
        f"## Build: `{result.reference}`\n",
        "| | |\n|---|---|",
        f"| Image | `{result.reference}` (id `{result.image_id}`) |",
        f"| Result | {outcome(result)} |",
        f"| Size | {human_size(result.size)} |",
        f"| Base | `{result.base}` {base_pin_advice(result)} |",
        f"| Lock | {result.packages} packages, sha256 `{result.lock_sha256[:16]}…` |",
    ]
    if result.stale_lock:
        parts.append(f"| **Stale lock** | {_cell(result.stale_lock)} |")
    parts.append("\n### Time\n\n| Phase | Seconds |\n|---|---:|")
    parts += [f"| {timing.name} | {timing.seconds:.1f} |" for timing in result.phases]
    if result.docker_steps:
        parts.append(f"\n{cached_count(result)}. Slowest steps:\n\n| Dockerfile step | Seconds |\n|---|---:|")
        parts += [f"| `{_cell(timing.name)}` | {timing.seconds:.1f} |" for timing in slowest_steps(result)]
    parts.append("\n### Largest layers\n\n| Size | Created by |\n|---:|---|")
    parts += [f"| {human_size(layer.size)} | `{_cell(layer.created_by)}` |" for layer in result.largest_layers]
    parts.append("\n### Environment layers\n\n| Group | Packages | Size | Registry |\n|---|---:|---:|---|")
    parts += [
        f"| {layer.name} | {layer.packages} | {human_size(layer.size)} | {in_registry(layer.in_registry)} |"
        for layer in result.environment_layers
    ]
    parts.append(f"\nNext: `{next_command('build')}` smoke-tests this image the way JupyterHub starts it.\n")
    return "\n".join(parts)
