"""Time the `build` command on this repository's hub, on the rig (its conda channel and base image), and size the image.

    python benchmarks/build_image.py

Needs the rig's Docker engine (DOCKER_HOST, HUBSHIP_DOCKER; see
tests/rig/start-dockerd.sh). In a scratch copy of the hub, locked against
the rig's channel as the tests do, it runs `python -m tooling build` as a
subprocess, as a person would, and prints:

- cold build: on the rig's base image plus one file holding a fresh token,
  so no Dockerfile step can come from Docker's layer cache (`--no-cache`
  would also do that, but would leave a second cache record for every step
  of the usual chain, which later builds may mix). The
  host's cache of the throwaway build environment and BuildKit's cache mount
  of downloaded packages stay warm, as on a CI runner that keeps its caches
  (the packages come over loopback anyway);
- no-op build: the same inputs again (budget: at most 5 s);
- rebuild after changing one notebook (budget: at most 20% of the cold
  build), and the size of the layers it made that the previous image lacks
  (budget: under 1% of the image);
- image size against the base image plus the installed environment (the
  bytes of its files in the image, each file once; budget: at most 5%
  above).

The images it builds are removed at the end.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the rig lives in the project's tests package

from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.docker import build_with_buildkit, rig_docker  # noqa: E402
from tests.rig.hub_fixtures import RigHub, make_rig_hub  # noqa: E402
from tooling.docker import Docker  # noqa: E402
from tooling.proc import free_port  # noqa: E402

PREFIX = "/srv/conda/envs/notebook"
NO_OP_RUNS = 3


@dataclass(frozen=True)
class Run:
    seconds: float
    reference: str
    output: str


def build(hub: RigHub, *args: str) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tooling", "--config", str(hub.config), "build", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"build {' '.join(args)} failed:\n{done.stderr}")
    return Run(seconds, done.stdout.splitlines()[0], done.stdout)


def change_a_notebook(hub: RigHub) -> None:
    notebook = hub.image_dir / "notebooks" / "intro.ipynb"
    document = json.loads(notebook.read_text())
    document["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [f"Changed at {time.time()}."]})
    notebook.write_text(json.dumps(document, indent=1) + "\n")


def image_size(docker: Docker, reference: str) -> int:
    return int(docker.run("image", "inspect", "--format", "{{.Size}}", reference).stdout)


def layer_ids(docker: Docker, reference: str) -> set[str]:
    shown = docker.run("image", "inspect", "--format", "{{range .RootFS.Layers}}{{println .}}{{end}}", reference)
    return set(shown.stdout.split())


def saved_layer_sizes(docker: Docker, reference: str, folder: Path) -> dict[str, int]:
    """Each layer's diff id and uncompressed size, from `docker save`."""
    archive = folder / "image.tar"
    docker.run("save", "--output", str(archive), reference)
    with tarfile.open(archive) as saved:
        manifest_file = saved.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)[0]
        config_file = saved.extractfile(manifest["Config"])
        assert config_file is not None
        diff_ids = json.load(config_file)["rootfs"]["diff_ids"]
        sizes = [saved.getmember(layer).size for layer in manifest["Layers"]]
    archive.unlink()
    return dict(zip(diff_ids, sizes, strict=True))


ENVIRONMENT_SIZE = f"""
import os
seen, total = set(), 0
for folder, _, names in os.walk("{PREFIX}"):
    for name in names:
        info = os.lstat(os.path.join(folder, name))
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
print(total)
"""


def environment_size(docker: Docker, reference: str) -> int:
    """Bytes of the environment's files (each file once, folders not counted), as the image holds them."""
    shown = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "never",
        "--entrypoint",
        f"{PREFIX}/bin/python",
        reference,
        "-c",
        ENVIRONMENT_SIZE,
    )
    return int(shown.stdout.split()[0])


def verdict(ok: bool) -> str:
    return "within budget" if ok else "OVER BUDGET"


def fresh_base_image(docker: Docker, folder: Path) -> str:
    """The rig's base image with one more small file, new in every run: a base no build has cached steps for."""
    token = secrets.token_hex(8)
    context = folder / "base"
    context.mkdir()
    dockerfile = f"FROM {ensure_base_image(docker)}\nRUN echo {token} > /etc/hubship-benchmark\n"
    (context / "Dockerfile").write_text(dockerfile)
    reference = f"hubship-bench/base:{token}"
    build_with_buildkit(docker, "--network", "none", "--tag", reference, str(context))
    return reference


def main() -> int:
    docker = rig_docker()
    built: list[str] = []
    with serve_channel(ensure_channel()) as channel, tempfile.TemporaryDirectory(prefix="hubship-bench-") as scratch:
        base_image = fresh_base_image(docker, Path(scratch))
        built.append(base_image)
        hub = make_rig_hub(
            Path(scratch) / "hub",
            base_image=base_image,
            channel_url=channel.channel_url("conda-forge"),
            registry=f"127.0.0.1:{free_port()}",
        )
        try:
            cold = build(hub)
            built.append(cold.reference)
            no_ops = [build(hub) for _ in range(NO_OP_RUNS)]
            assert all("not built" in run.output for run in no_ops), no_ops[0].output
            change_a_notebook(hub)
            rebuild = build(hub)
            built.append(rebuild.reference)
            before = layer_ids(docker, cold.reference)
            sizes = saved_layer_sizes(docker, rebuild.reference, Path(scratch))
            new_layers = sum(size for layer, size in sizes.items() if layer not in before)
            total = image_size(docker, rebuild.reference)
            base_size = image_size(docker, base_image)
            env_size = environment_size(docker, rebuild.reference)
        finally:
            for reference in reversed(built):
                docker.run("rmi", reference, check=False)

    no_op = sorted(run.seconds for run in no_ops)[NO_OP_RUNS // 2]
    share = rebuild.seconds / cold.seconds
    layer_share = new_layers / sum(sizes.values())
    overhead = total / (base_size + env_size) - 1
    print(f"cold build (fresh base image):    {cold.seconds:7.1f} s")
    print(f"no-op build (median of {NO_OP_RUNS}):       {no_op:7.1f} s   budget 5 s: {verdict(no_op <= 5)}")
    print(
        f"rebuild after a notebook change:  {rebuild.seconds:7.1f} s   {share:.1%} of cold, "
        f"budget 20%: {verdict(share <= 0.2)}"
    )
    print(
        f"  its new layers:                 {new_layers / 1e3:7.1f} kB  {layer_share:.3%} of the image, "
        f"budget 1%: {verdict(layer_share < 0.01)}"
    )
    print(
        f"image {total / 1e6:.0f} MB; base {base_size / 1e6:.0f} MB + environment {env_size / 1e6:.0f} MB "
        f"= {(base_size + env_size) / 1e6:.0f} MB; image is {overhead:+.2%} of that, budget +5%: "
        f"{verdict(overhead <= 0.05)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
