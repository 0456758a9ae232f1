"""Conda channels: their canonical URLs, the mirrors they are read from, and the credentials those URLs carry.

1. `channel_sources` pairs each channel of a spec with its canonical URL (what
   a lock records: `https://conda.anaconda.org/NAME` for a named channel) and
   the URL to read it from (a mirror, or the canonical URL).
2. `check_channels` probes each channel (or mirror) for the locked platforms.
3. `canonical_url` turns a URL the solver read back into the lock's URL.
4. `is_mirror_url` is the one rule for a valid mirror URL, and
   `mirror_prefixes` the build's view of the mirrors (BUILD_MIRROR_SCHEMES
   only: the build refuses others before it starts).
5. `register_url_secrets` keeps a URL's password and channel token out of
   every message.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from tooling.errors import ConfigError, ToolingError
from tooling.log import logger, register_secret

if TYPE_CHECKING:
    import urllib.request

    from conda_lock.models.channel import Channel

CANONICAL_CHANNEL_HOST = "https://conda.anaconda.org"
PROBE_TIMEOUT_SECONDS = 20
# conda's channel token: https://HOST/t/TOKEN/CHANNEL
_CHANNEL_TOKEN = re.compile(r"/t/([^/]+)")

# A mirror is read over http(s), or from a folder (file://) by the lock stage; the build reads packages from
# inside its container, which cannot see the host's files, so it takes http(s) mirrors only.
MIRROR_URL_PATTERN = r"^(https?|file)://"
BUILD_MIRROR_SCHEMES = ("http://", "https://")


def is_mirror_url(url: str) -> bool:
    """The one rule for a mirror URL, which hub.toml's [mirrors] (as a pattern) and --mirror share."""
    return re.match(MIRROR_URL_PATTERN, url) is not None


def parse_mirror_options(values: Sequence[str]) -> dict[str, str]:
    """`--mirror NAME=URL` options as channel name -> mirror URL."""
    mirrors = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not is_mirror_url(url):
            raise ConfigError(f"--mirror {value}: expected NAME=URL with an http(s):// or file:// URL.")
        mirrors[name] = url
    return mirrors


def mirror_prefixes(mirrors: Mapping[str, str]) -> dict[str, str]:
    """Channel name (or URL) -> mirror, as canonical URL prefix -> mirror URL (the build's: http(s) ones)."""
    return {canonical_channel_url(name): url.rstrip("/") for name, url in sorted(mirrors.items())}


def canonical_channel_url(name: str) -> str:
    """A channel's canonical base URL: a URL stays itself, a name is on conda.anaconda.org."""
    canonical = name if "://" in name else f"{CANONICAL_CHANNEL_HOST}/{name}"
    return canonical.rstrip("/")


@dataclass(frozen=True)
class ChannelSource:
    """A channel of the spec: where the lock says packages come from, and where they are read from."""

    channel: Channel  # conda-lock's model, as the spec names it
    canonical: str  # base URL recorded in the lock
    read_from: str  # base URL the solver reads (a mirror, or the canonical URL)
    mirrored: bool

    @property
    def name(self) -> str:
        return str(self.channel.url)

    def describe(self) -> str:
        return f"{self.name} (mirror: {self.read_from})" if self.mirrored else self.name


def channel_sources(channels: Sequence[Channel], mirrors: Mapping[str, str]) -> tuple[ChannelSource, ...]:
    """Each channel with its canonical URL and the URL to read it from; mirrors are keyed by channel name."""
    sources: list[ChannelSource] = []
    mirror_keys: set[str] = set()  # the names `mirrors` can key a channel by
    for channel in channels:
        if channel.url == "defaults":
            raise ToolingError(
                "The 'defaults' channel has no single URL to lock against; list its channels explicitly "
                "(e.g. https://repo.anaconda.com/pkgs/main) or use --engine conda-lock."
            )
        url = str(channel.url).rstrip("/")
        if "://" in url:
            canonical = url
            name = url.removeprefix(CANONICAL_CHANNEL_HOST + "/") if url.startswith(CANONICAL_CHANNEL_HOST) else url
            default_read = channel.env_replaced_url().rstrip("/")
        else:
            canonical = canonical_channel_url(url)
            name = url
            default_read = canonical
        mirror = mirrors.get(name)
        read_from = mirror.rstrip("/") if mirror else default_read
        register_url_secrets(read_from)
        sources.append(ChannelSource(channel=channel, canonical=canonical, read_from=read_from, mirrored=bool(mirror)))
        mirror_keys.add(name)
    unused = sorted(set(mirrors) - mirror_keys)
    if unused:
        names = ", ".join(source.name for source in sources)
        logger.warning("Mirror(s) for %s match no channel of the spec (channels: %s).", ", ".join(unused), names)
    return tuple(sources)


def register_url_secrets(url: str) -> None:
    """Keep a channel URL's password and token (from hub.toml, --mirror or the environment) out of every message."""
    parts = urlsplit(url)
    tokens = _CHANNEL_TOKEN.findall(parts.path) if parts.scheme in ("http", "https") else []
    for secret in (parts.password, unquote(parts.password or ""), *tokens):
        if secret:
            register_secret(secret)


def check_channels(sources: Sequence[ChannelSource], platforms: Sequence[str]) -> None:
    """Fail with the URL when a channel (or its mirror) cannot be reached or has no data for a platform."""
    for source in sources:
        for subdir in (*platforms, "noarch"):
            _probe_subdir(source, subdir)


def _probe_subdir(source: ChannelSource, subdir: str) -> None:
    # Imported here: only the lock stage probes, and every command imports this module through hub.toml's model.
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    url = f"{source.read_from}/{subdir}/repodata.json"
    if url.startswith("file://"):
        if not Path(urllib.request.url2pathname(url.removeprefix("file://"))).is_file():
            raise _no_subdir(source, subdir, url, "no such file")
        return
    try:
        with urllib.request.urlopen(_head_request(url), timeout=PROBE_TIMEOUT_SECONDS):  # noqa: S310 (http(s) only)
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise _no_subdir(source, subdir, url, "HTTP 404") from None
        # Some servers refuse HEAD; the solver will fetch the data itself and report a real failure.
        logger.debug("HEAD %s answered %s; leaving the check to the solver", url, exc.code)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        what = "mirror" if source.mirrored else "channel"
        raise ToolingError(
            f"Cannot reach the {what} of channel '{source.name}' at {source.read_from} ({reason}). "
            "Check the URL and the network, or read the channel from a mirror: "
            "--mirror NAME=URL or [mirrors] in hub.toml."
        ) from None


def _head_request(url: str) -> urllib.request.Request:
    """HEAD of `url`; USER:PASSWORD@ in it goes in a Basic Authorization header, as the solver sends it."""
    import urllib.request  # noqa: PLC0415 (see _probe_subdir)

    parts = urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url, method="HEAD")  # noqa: S310 (http(s) only: file:// is handled above)
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return urllib.request.Request(bare, method="HEAD", headers={"Authorization": authorization})  # noqa: S310


def _no_subdir(source: ChannelSource, subdir: str, url: str, why: str) -> ToolingError:
    return ToolingError(
        f"Channel '{source.describe()}' has no {subdir} data: {url} ({why}). "
        f"Lock only platforms the channel serves, or point its mirror at a channel with {subdir} packages."
    )


def canonical_url(url: str, sources: Sequence[ChannelSource]) -> str:
    """The lock's URL for a package the solver read from one of `sources`."""
    from conda_lock.models.channel import normalize_url_with_placeholders  # noqa: PLC0415 (costly import)

    for source in sorted(sources, key=lambda s: len(s.read_from), reverse=True):
        if url.startswith(source.read_from + "/"):
            recorded = source.canonical + url[len(source.read_from) :]
            return str(normalize_url_with_placeholders(recorded, channels=[s.channel for s in sources]))
    raise ToolingError(f"The solver returned {url}, which belongs to none of the channels: a solver bug.")
