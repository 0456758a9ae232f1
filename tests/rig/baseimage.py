"""The rig's base image: Debian bookworm made here with debootstrap, never pulled.

There is no Docker Hub here, so the image repo2docker builds on is made from
Debian's archive: `debootstrap --variant=minbase bookworm DIR`, a short
script run in that root, then `docker import` of its tarball.

Design decisions:

- What goes in is what the rig's builds and containers use, nothing else:
  the packages repo2docker's Dockerfile template installs at build time
  (`locales` for its locale step, `BaseImage.get_base_packages()`: less,
  unzip, gettext-base; its user setup needs only required packages), the
  shared libraries a Python assembled from Debian's python3.11 loads (found
  with ldd on the interpreter and its lib-dynload modules), time zone data,
  CA certificates, MIME types, and git for tutorials that pull. The host's
  own CAs (its TLS proxy's) stay out: containers only talk to loopback.
- Documentation and message translations are deleted (a quarter of the
  size, about 190 MB left): every push of an image built on this one in the
  tests carries the base layer.
- The image has NO apt sources and clean apt lists. Containers never reach
  the network, so `apt-get update` has nothing to fetch and succeeds, and
  `apt-get install` of a package already present succeeds, exactly as
  repo2docker's template expects, while an unknown package fails loudly
  instead of being fetched behind the test's back.
- Debian's `/etc/profile` resets PATH for login shells; repo2docker's
  entrypoint runs one, which would drop every `ENV PATH` of the image. The
  image's `/etc/profile` keeps an incoming PATH (as Ubuntu's does).
- Host details debootstrap copies in (resolv.conf, hostname) are blanked, so
  the image carries nothing of the machine that made it.
- The mirror is the one the host's apt uses (its deb822 sources), so no
  archive host name is written in code.
- Two caches, both keyed by a hash of the recipe (suite, packages, script,
  import changes): the root file system's tarball on disk under
  `${HUBSHIP_RIG_CACHE:-$XDG_CACHE_HOME/hubship-rig}` (survives a fresh Docker
  data root) and the imported image in the engine (its tag carries the hash).
  A changed recipe gets a new tag; nothing stale is reused, and tarballs of
  earlier recipes are deleted (their images are left: some may be in use).
  Builds happen under a file lock, into temporary names that are renamed
  when complete, so concurrent or interrupted runs never see half an image.
- Making the root file system needs root (debootstrap, chroot); the error
  says so instead of failing half-way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import filelock

from tooling.docker import Docker
from tooling.errors import ToolingError
from tooling.log import logger, step
from tooling.proc import run, stream

SUITE = "bookworm"
IMAGE_REPOSITORY = "hubship-rig/base"
HOST_APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")

# What repo2docker's Dockerfile template installs at build time: `locales`
# (its locale step) and BuildPack.get_base_packages(). Its user setup uses
# groupadd/useradd/usermod (passwd) and getent (libc-bin), always present.
TEMPLATE_PACKAGES = ("gettext-base", "less", "locales", "unzip")

# Libraries Debian's python3.11 and its lib-dynload modules link (checked with
# ldd), plus the data its standard library reads (zoneinfo, ssl, mimetypes,
# socket.getservbyname).
PYTHON_RUNTIME_PACKAGES = (
    "ca-certificates",
    "libbz2-1.0",
    "libcrypt1",
    "libdb5.3",
    "libexpat1",
    "libffi8",
    "libgdbm6",
    "liblzma5",
    "libncursesw6",
    "libnsl2",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libtinfo6",
    "libuuid1",
    "media-types",
    "netbase",
    "tzdata",
    "zlib1g",
)

# Tutorials clone or pull repositories.
TUTORIAL_PACKAGES = ("git",)

# Runs in the new root (chroot) after debootstrap.
CUSTOMIZE_SCRIPT = r"""
set -eu

# Debian's /etc/profile resets PATH; keep the one the container starts with.
cat > /etc/profile <<'PROFILE'
# /etc/profile of the hubship rig's base image: keeps an incoming PATH, so
# images built on it (repo2docker runs a login shell) keep their ENV PATH.
if [ -z "${PATH:-}" ]; then
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fi
export PATH

if [ "${PS1:-}" ] && [ "${BASH:-}" ] && [ "$BASH" != /bin/sh ] && [ -f /etc/bash.bashrc ]; then
  . /etc/bash.bashrc
fi

if [ -d /etc/profile.d ]; then
  for profile_script in /etc/profile.d/*.sh; do
    if [ -r "$profile_script" ]; then
      . "$profile_script"
    fi
  done
  unset profile_script
fi
PROFILE

# No apt sources: containers never reach the network, and everything the
# rig needs is installed.
rm -f /etc/apt/sources.list.d/*
echo '# Empty on purpose: the hubship rig runs offline.' > /etc/apt/sources.list
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Documentation and message translations (a quarter of the image): nothing
# in the rig reads them, and every push of an image built on this one would
# carry them. locale.alias stays: locale-gen reads it.
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/*

# Nothing of the host that made the image.
: > /etc/resolv.conf
echo localhost > /etc/hostname
rm -f /var/log/bootstrap.log
"""

IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)

# Seconds to wait for another process building the same image.
LOCK_TIMEOUT = 30 * 60.0


def rig_cache_dir() -> Path:
    """Where the rig keeps what outlives a run (as `tests/rig/start-dockerd.sh` computes it)."""
    configured = os.environ.get("HUBSHIP_RIG_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubship-rig"


@dataclass(frozen=True)
class BaseImageRecipe:
    """Everything that decides the base image's contents; its hash names the caches."""

    suite: str
    packages: tuple[str, ...]
    script: str
    changes: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()

    @property
    def tag(self) -> str:
        return f"{self.suite}-{self.digest[:16]}"

    @property
    def reference(self) -> str:
        # The benchmark of a cold rig start names its own repository, so it never removes the image tests use.
        repository = os.environ.get("HUBSHIP_RIG_BASE_REPOSITORY") or IMAGE_REPOSITORY
        return f"{repository}:{self.tag}"


RECIPE = BaseImageRecipe(
    suite=SUITE,
    packages=tuple(sorted({*TEMPLATE_PACKAGES, *PYTHON_RUNTIME_PACKAGES, *TUTORIAL_PACKAGES})),
    script=CUSTOMIZE_SCRIPT,
    changes=IMPORT_CHANGES,
)


def ensure_base_image(docker: Docker, *, recipe: BaseImageRecipe = RECIPE, cache_dir: Path | None = None) -> str:
    """The base image's reference, importing (and first making) it only when the engine lacks it."""
    if docker.inspect_image(recipe.reference) is not None:
        logger.info("base image %s: present in the engine", recipe.reference)
        return recipe.reference
    cache = (cache_dir or rig_cache_dir()) / "base-image"
    cache.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(cache / f"{recipe.tag}.lock")
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT):
            if docker.inspect_image(recipe.reference) is not None:
                return recipe.reference
            tarball = cache / f"{recipe.tag}.tar"
            if tarball.exists():
                logger.info("base image %s: using the cached root file system %s", recipe.reference, tarball)
            else:
                make_rootfs_tarball(recipe, tarball)
                remove_stale_tarballs(cache, keep=tarball)
            import_rootfs_tarball(docker, tarball, recipe)
    except filelock.Timeout as exc:
        raise ToolingError(
            f"Waited {LOCK_TIMEOUT / 60:.0f} min for {lock.lock_file}, held by another process making the rig's "
            "base image. If no such process runs, delete that file and retry."
        ) from exc
    return recipe.reference


def debian_mirror(sources: Path = HOST_APT_SOURCES, suite: str = SUITE) -> str:
    """The archive URI the host's apt uses for `suite` (from its deb822 sources file)."""
    try:
        text = sources.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolingError(
            f"{sources}: cannot read it ({exc.strerror}). The rig's base image is made with debootstrap from the "
            "Debian archive this machine's apt uses; run on Debian 12 with its default apt sources."
        ) from exc
    for stanza in text.split("\n\n"):
        fields = _deb822_fields(stanza)
        if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
            uris = fields.get("URIs", "").split()
            if uris:
                return uris[0]
    raise ToolingError(
        f"{sources}: no `Types: deb` entry with `Suites: {suite}` and a URI. The rig's base image is made with "
        f"debootstrap from that archive; add the {suite} entry (as Debian 12 installs it) and retry."
    )


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line.startswith(("#", " ", "\t")) or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip()] = value.strip()
    return fields


def make_rootfs_tarball(recipe: BaseImageRecipe, tarball: Path) -> None:
    """debootstrap the recipe into a temporary root, customize it, and tar it to `tarball`."""
    if os.geteuid() != 0:
        raise ToolingError(
            f"Making the rig's base image ({recipe.reference}) runs debootstrap and chroot, which need root. "
            "Run the tests as root (as `bash .ci/run` does), or once as root to fill the cache."
        )
    mirror = debian_mirror(suite=recipe.suite)
    workdir = Path(tempfile.mkdtemp(prefix=f".{recipe.tag}.", dir=tarball.parent))
    root = workdir / "root"
    partial = workdir / "rootfs.tar"
    try:
        with step(f"base image: debootstrap {recipe.suite} ({len(recipe.packages)} packages)") as progress:
            stream(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(recipe.packages)}",
                    recipe.suite,
                    str(root),
                    mirror,
                ],
                on_line=progress.update,
                hint="debootstrap fetches from the archive the host's apt uses: check that `apt-get update` works.",
            )
        with step("base image: customize the root file system"):
            run(["chroot", str(root), "/bin/sh", "-c", recipe.script])
        with step("base image: tar the root file system"):
            run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.replace(tarball)
        logger.info("base image: root file system cached at %s (%.0f MB)", tarball, tarball.stat().st_size / 1e6)
    finally:
        _remove_workdir(workdir)


def _remove_workdir(workdir: Path) -> None:
    """Delete a temporary root, unless debootstrap left a file system mounted inside it."""
    mounted = [line.split()[4] for line in _mountinfo_lines() if line.split()[4].startswith(f"{workdir}/")]
    if mounted:
        logger.warning("left %s in place: %s still mounted there; unmount, then delete it", workdir, mounted)
        return
    shutil.rmtree(workdir)


def _mountinfo_lines() -> list[str]:
    return Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()


def remove_stale_tarballs(cache: Path, *, keep: Path) -> None:
    """Delete root file systems of earlier recipes: a few hundred MB each, never used again."""
    for stale in sorted(cache.glob("*.tar")):
        if stale != keep:
            logger.info("base image: removing %s (an earlier recipe)", stale)
            stale.unlink()


def import_rootfs_tarball(docker: Docker, tarball: Path, recipe: BaseImageRecipe) -> None:
    """`docker import` the tarball under a temporary tag, then tag it as the recipe's reference."""
    temporary = f"{IMAGE_REPOSITORY}:importing-{recipe.tag}-{os.getpid()}"
    changes = [arg for change in recipe.changes for arg in ("--change", change)]
    with step(f"base image: docker import {recipe.reference}"):
        docker.run("import", *changes, str(tarball), temporary)
        try:
            docker.tag(temporary, recipe.reference)
        finally:
            docker.run("rmi", temporary)
