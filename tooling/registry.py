"""The registry client: credentials, and the Registry HTTP API v2 as far as a tag's contents go.

1. `find_credentials`: HUBSHIP_REGISTRY_USERNAME and HUBSHIP_REGISTRY_PASSWORD,
   else the user's Docker config (an `auths` entry or a credential helper),
   else none. Every secret is registered with `tooling.log.register_secret`
   as soon as it is read.
2. `RegistryClient.manifest`: what a tag (or digest) holds, answering the
   registry's auth challenge (Basic, or the Docker token flow), retrying
   transient errors within a `RetryPolicy`.
3. `docker_logged_in`: a docker CLI logged in to a temporary DOCKER_CONFIG
   for environment credentials; the user's ~/.docker is never written.

Failures are `RegistryError`s (`RegistryUnreachable`, `RegistryAccessRefused`)
that say what happened and what to check, never which command to rerun: the
stage that asked adds that. Design notes: docs/design.md#toolingregistrypy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from tooling.config import ENV_PASSWORD, ENV_USERNAME
from tooling.docker import Docker
from tooling.errors import CommandFailed, ProgramNotFound, ToolingError
from tooling.log import logger, register_secret
from tooling.proc import run

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = (
    *sorted(INDEX_TYPES),
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)

# Docker Hub answers the API on another host, and docker keys its logins by a URL.
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_LOGIN_KEY = "https://index.docker.io/v1/"

# Seconds to connect, and to wait for an answer, on each single request.
REQUEST_TIMEOUT = (10.0, 30.0)
TOO_MANY_REQUESTS = 429


# ---------------------------------------------------------------- errors


class RegistryError(ToolingError):
    """The registry could not answer a question: `summary` says what happened, without advice for any stage."""

    def __init__(self, summary: str, advice: str = "", *, reason: str = "") -> None:
        super().__init__(f"{summary}. {advice}".strip() if advice else f"{summary}.")
        self.summary = summary
        self.reason = reason or summary


class RegistryUnreachable(RegistryError):
    """No answer: the connection failed, timed out, or the registry kept answering with a transient error."""


class RegistryAccessRefused(RegistryError):
    """The registry refused the credentials (or their absence) for a repository."""


# ---------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """Who the toolkit is to the registry, and where that came from (names only, never values)."""

    source: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # Environment credentials: docker needs a login of its own (into a temporary config).
    login_needed: bool = False

    @property
    def anonymous(self) -> bool:
        return self.username is None or self.password is None


def find_credentials(registry: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """The environment's credentials, else the Docker config's for `registry`, else anonymous."""
    env = os.environ if environ is None else environ
    from_environment = _environment_credentials(env)
    if from_environment is not None:
        return from_environment
    config_file = docker_config_dir(env) / "config.json"
    from_docker_config = _docker_config_credentials(registry, config_file)
    if from_docker_config is not None:
        return from_docker_config
    return Credentials(
        source=f"none ({ENV_USERNAME} and {ENV_PASSWORD} are not set, and {config_file} holds no login for {registry})"
    )


def docker_config_dir(environ: Mapping[str, str]) -> Path:
    """Where docker keeps its logins: $DOCKER_CONFIG, else ~/.docker."""
    configured = environ.get("DOCKER_CONFIG")
    return Path(configured) if configured else Path.home() / ".docker"


def _remember(username: str, password: str) -> None:
    register_secret(password)
    register_secret(base64.b64encode(f"{username}:{password}".encode()).decode())


def _environment_credentials(environ: Mapping[str, str]) -> Credentials | None:
    username, password = environ.get(ENV_USERNAME, ""), environ.get(ENV_PASSWORD, "")
    if not username and not password:
        return None
    if not username or not password:
        present, missing = (ENV_USERNAME, ENV_PASSWORD) if username else (ENV_PASSWORD, ENV_USERNAME)
        raise ToolingError(
            f"{present} is set but {missing} is not: set both (a token goes in {ENV_PASSWORD}), "
            "or neither to use your Docker login."
        )
    _remember(username, password)
    return Credentials(f"{ENV_USERNAME} and {ENV_PASSWORD}", username, password, login_needed=True)


def _login_host(key: str) -> str:
    """docker's key for a login (`https://host:port/v1/` or `host:port`) reduced to host:port."""
    return re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]


def _docker_config_host(registry: str) -> str:
    return _login_host(DOCKER_HUB_LOGIN_KEY) if registry in DOCKER_HUB_NAMES else registry


def _read_docker_config(config_file: Path) -> dict[str, Any] | None:
    if not config_file.is_file():
        return None
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ToolingError(
            f"{config_file}: not valid JSON ({exc}); docker cannot read it either. Fix it, or set "
            f"{ENV_USERNAME} and {ENV_PASSWORD} and DOCKER_CONFIG to an empty folder."
        ) from None
    return data if isinstance(data, dict) else None


def _docker_config_credentials(registry: str, config_file: Path) -> Credentials | None:
    """Credentials the way docker finds them: credHelpers for the host, then credsStore, then auths."""
    data = _read_docker_config(config_file)
    if data is None:
        return None
    host = _docker_config_host(registry)
    helpers, logins = data.get("credHelpers"), data.get("auths")
    helper = (helpers.get(host) if isinstance(helpers, dict) else None) or data.get("credsStore")
    if helper:
        return _helper_credentials(str(helper), registry, config_file)
    entry = (
        next((value for key, value in logins.items() if _login_host(key) == host), None)
        if isinstance(logins, dict)
        else None
    )
    if not isinstance(entry, dict):
        return None
    source = f"the login for {host} in {config_file}"
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ToolingError(f"{config_file}: auths.{host}.auth is not base64 of USER:PASSWORD.") from None
    else:
        username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if not username or not password:
        if entry.get("identitytoken"):
            logger.info("%s is an identity token; docker uses it, the toolkit's own checks go anonymous", source)
        return None
    _remember(username, password)
    return Credentials(source, username, password)


def _helper_credentials(helper: str, registry: str, config_file: Path) -> Credentials | None:
    """Ask `docker-credential-HELPER get` (the protocol docker itself speaks) for the registry's login."""
    program = f"docker-credential-{helper}"
    server = DOCKER_HUB_LOGIN_KEY if registry in DOCKER_HUB_NAMES else registry
    try:
        answer = run([program, "get"], stdin_text=server, timeout=30)
    except (ProgramNotFound, CommandFailed) as exc:
        logger.info("%s (named in %s) gave no login for %s: %s", program, config_file, registry, exc.message)
        return None
    try:
        found = json.loads(answer.stdout)
        username, secret = str(found["Username"]), str(found["Secret"])
    except (ValueError, KeyError, TypeError):
        logger.info("%s (named in %s) answered something other than its JSON", program, config_file)
        return None
    if not secret:
        return None
    register_secret(secret)
    if username == "<token>":
        logger.info(
            "%s holds an identity token for %s; docker uses it, the toolkit's checks go anonymous", program, registry
        )
        return None
    _remember(username, secret)
    return Credentials(f"the credential helper {program} (named in {config_file})", username, secret)


# ---------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """How a transient registry error is retried: exponential backoff, bounded in attempts and total time."""

    attempts: int = 5
    first_delay: float = 1.0
    max_delay: float = 10.0
    total_seconds: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); a Retry-After within bounds wins."""
        backoff = min(self.max_delay, self.first_delay * 2.0 ** (attempt - 1))
        return backoff if retry_after is None else min(self.max_delay, max(backoff, retry_after))


def _transient(status: int) -> bool:
    return status == TOO_MANY_REQUESTS or status >= 500


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def _root_cause(exc: BaseException) -> str:
    """Why a request failed, in a few words: a timeout, or the innermost OS-level reason ('Connection refused')."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection within {REQUEST_TIMEOUT[0]:.0f} s"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {REQUEST_TIMEOUT[1]:.0f} s"
    # requests wraps urllib3's error, which wraps the socket's: walk the chain, breadth first, bounded.
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    os_level = ""
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, OSError) and not os_level:
            os_level = str(current)
        reason = getattr(current, "reason", None)
        linked = [reason, current.__cause__, current.__context__, *current.args]
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return os_level or str(exc) or type(exc).__name__


# ---------------------------------------------------------------- the registry API


@dataclass(frozen=True)
class RemoteManifest:
    """What a registry serves under a tag: its digest, and the image config of each platform."""

    digest: str
    config_digests: tuple[str, ...]


@dataclass(frozen=True)
class RemoteLayer:
    """One layer of an image in a registry: its blob (compressed) digest and size, and its diff id (uncompressed)."""

    digest: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class Challenge:
    """A `WWW-Authenticate` header: `Basic realm=...` or `Bearer realm=...,service=...,scope=...`."""

    scheme: str
    params: Mapping[str, str]

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            key.lower(): quoted or bare for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', rest)
        }
        return cls(scheme.lower(), params)


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_base_url(registry: str) -> str:
    if registry in DOCKER_HUB_NAMES:
        return f"https://{DOCKER_HUB_API}"
    return f"{'http' if is_loopback(registry) else 'https'}://{registry}"


class RegistryClient:
    """The Registry HTTP API v2 of one registry, as far as the push stage needs it: what does a tag hold?"""

    def __init__(self, registry: str, credentials: Credentials, retry: RetryPolicy | None = None) -> None:
        self.registry = registry
        self.base_url = api_base_url(registry)
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._session = requests.Session()
        self._authorization: str | None = None

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._session.close()

    def manifest(self, name: str, reference: str) -> RemoteManifest | None:
        """What the registry holds under NAME:REFERENCE (a tag or a digest); None when it holds nothing."""
        response = self._get_manifest(name, reference)
        if response is None:
            return None
        digest = (
            response.headers.get("Docker-Content-Digest") or f"sha256:{hashlib.sha256(response.content).hexdigest()}"
        )
        body = self._json(response, f"{name}:{reference}")
        media_type = str(body.get("mediaType") or response.headers.get("Content-Type", ""))
        if media_type in INDEX_TYPES or "manifests" in body:
            configs = tuple(self._platform_config(name, child) for child in body.get("manifests") or ())
            return RemoteManifest(digest, tuple(config for config in configs if config))
        return RemoteManifest(digest, (str((body.get("config") or {}).get("digest", "")),))

    def tags(self, name: str) -> tuple[str, ...]:
        """The tags the registry lists for NAME (its first page); none when it has no such repository."""
        response = self._get(f"/v2/{name}/tags/list", name, accept=("application/json",))
        if response.status_code == 404:
            return ()
        if not response.ok:
            status = _status(response)
            raise RegistryError(f"The registry {self.registry} answered {status} when asked for the tags of {name}")
        return tuple(str(tag) for tag in self._json(response, f"the tags of {name}").get("tags") or ())

    def layers(self, name: str, reference: str) -> tuple[RemoteLayer, ...]:
        """The layers of the image NAME:REFERENCE holds (the first platform of an index); none when it holds none."""
        response = self._get_manifest(name, reference)
        if response is None:
            return ()
        body = self._json(response, f"{name}:{reference}")
        if "manifests" in body:
            children = body.get("manifests") or ()
            return self.layers(name, str(children[0].get("digest", ""))) if children else ()
        config_digest = str((body.get("config") or {}).get("digest", ""))
        config = self._get(f"/v2/{name}/blobs/{config_digest}", name, accept=("*/*",))
        if not config.ok:
            raise RegistryError(
                f"The registry {self.registry} answered {_status(config)} for the image config of {name}:{reference}"
            )
        diff_ids = (self._json(config, f"the image config of {name}:{reference}").get("rootfs") or {}).get(
            "diff_ids"
        ) or ()
        blobs = body.get("layers") or ()
        return tuple(
            RemoteLayer(str(blob.get("digest", "")), int(blob.get("size") or 0), str(diff_id))
            for blob, diff_id in zip(blobs, diff_ids, strict=False)
        )

    def _platform_config(self, name: str, child: Mapping[str, Any]) -> str:
        response = self._get_manifest(name, str(child.get("digest", "")))
        if response is None:
            return ""
        return str((self._json(response, name).get("config") or {}).get("digest", ""))

    def _get_manifest(self, name: str, reference: str) -> requests.Response | None:
        path = f"/v2/{name}/manifests/{reference}"
        response = self._get(path, name, accept=MANIFEST_TYPES)
        if response.status_code == 404:
            return None
        if not response.ok:
            status = _status(response)
            raise RegistryError(
                f"The registry {self.registry} answered {status} when asked for {name}:{reference}",
                "Check the [image] registry and name in hub.toml.",
                reason=status,
            )
        return response

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RegistryError(f"The registry {self.registry} served something other than a JSON manifest for {what}")
        return body

    def _get(self, path: str, name: str, *, accept: Sequence[str]) -> requests.Response:
        """GET an API path, answering an auth challenge once (Basic, or a Bearer token for NAME)."""
        url = self.base_url + path
        response = self._send(url, headers=self._headers(accept))
        if response.status_code == 401:
            authorization = self._authorize(Challenge.parse(response.headers.get("WWW-Authenticate", "")), name)
            if authorization is not None:
                self._authorization = authorization
                response = self._send(url, headers=self._headers(accept))
        if response.status_code in (401, 403):
            raise self._access_refused(response, name)
        return response

    def _headers(self, accept: Sequence[str]) -> dict[str, str]:
        headers = {"Accept": ", ".join(accept)}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        return headers

    def _authorize(self, challenge: Challenge, name: str) -> str | None:
        """The Authorization header that answers `challenge`, or None when there is nothing to try."""
        if challenge.scheme == "bearer":
            return f"Bearer {self._bearer_token(challenge, name)}"
        if challenge.scheme == "basic" and self.credentials.username and self.credentials.password:
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return f"Basic {base64.b64encode(pair).decode()}"
        return None

    def _bearer_token(self, challenge: Challenge, name: str) -> str:
        """A token from the registry's token server for pulling NAME (the Docker token flow)."""
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"The registry {self.registry} asked for a bearer token without a usable realm URL")
        auth = None
        if self.credentials.username and self.credentials.password:
            if not realm.startswith("https://") and not is_loopback(_login_host(realm)):
                raise RegistryError(
                    f"The registry {self.registry} sends logins to its token server {realm} over plain http; "
                    "the toolkit does not send credentials there",
                    "Use the registry's https address.",
                )
            auth = (self.credentials.username, self.credentials.password)
        params = {"scope": challenge.params.get("scope") or f"repository:{name}:pull"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        response = self._send(realm, params=params, auth=auth)
        if response.status_code in (401, 403):
            raise self._access_refused(response, name)
        if not response.ok:
            raise RegistryError(f"The token server of {self.registry} ({realm}) answered {_status(response)}")
        body = self._json(response, f"a token for {name}")
        token = str(body.get("token") or body.get("access_token") or "")
        if not token:
            raise RegistryError(f"The token server of {self.registry} ({realm}) gave no token")
        register_secret(token)
        return token

    def _send(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        """One GET, retried on transient failures within the retry policy; other answers are returned."""
        started = time.monotonic()
        reason = ""
        for attempt in range(1, self.retry.attempts + 1):
            retry_after = None
            try:
                response = self._session.get(url, headers=headers, params=params, auth=auth, timeout=REQUEST_TIMEOUT)
            except requests.exceptions.SSLError as exc:
                cause = _root_cause(exc)
                raise RegistryUnreachable(
                    f"TLS with the registry {self.registry} failed: {cause}",
                    "If it uses a private certificate authority, point REQUESTS_CA_BUNDLE at its certificate.",
                    reason=cause,
                ) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = _root_cause(exc)
            else:
                if not _transient(response.status_code):
                    return response
                reason, retry_after = _status(response), _retry_after(response)
            delay = self.retry.delay(attempt, retry_after)
            if attempt == self.retry.attempts or time.monotonic() - started + delay > self.retry.total_seconds:
                break
            logger.warning(
                "registry %s: %s; retrying in %.1f s (attempt %d of %d)",
                self.registry,
                reason,
                delay,
                attempt + 1,
                self.retry.attempts,
            )
            time.sleep(delay)
        raise RegistryUnreachable(
            f"The registry {self.registry} could not be reached: {reason} "
            f"(gave up after {attempt} attempts in {time.monotonic() - started:.0f} s)",
            "Check that it is up and reachable from this machine (the [image] registry in hub.toml, a proxy, "
            "a firewall).",
            reason=reason,
        )

    def _access_refused(self, response: requests.Response, name: str) -> RegistryAccessRefused:
        if self.credentials.anonymous:
            todo = f"Set {ENV_USERNAME} and {ENV_PASSWORD} (a token works as the password), or `docker login`."
        else:
            todo = f"Check that they are current and may pull and push {name}."
        status = _status(response)
        return RegistryAccessRefused(
            f"The registry {self.registry} refused access to {name} ({status}); "
            f"credentials tried: {self.credentials.source}",
            todo,
            reason=status,
        )


def _status(response: requests.Response) -> str:
    """`HTTP 401 Unauthorized: UNAUTHORIZED authentication required` (the registry's own words, if any)."""
    status = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
    said = _registry_errors(response)
    return f"{status}: {said}" if said else status


def _registry_errors(response: requests.Response) -> str:
    """The first errors of a registry's JSON error body (`{"errors": [{"code", "message"}]}`)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    described = (f"{error.get('code', '')} {error.get('message', '')}".strip() for error in errors[:2])
    return "; ".join(text for text in described if text)


# ---------------------------------------------------------------- layers a registry already holds

# How many of a repository's tags are read to learn which layers the registry holds: a bound on the
# requests one build or push makes (two per tag), enough for the recent images of one hub.
SURVEYED_TAGS = 20


def held_layers(registry: RegistryClient, name: str, first: Sequence[str] = ()) -> dict[str, RemoteLayer]:
    """Diff id -> layer, for the layers of NAME's images in the registry: the tags `first`, then others.

    At most SURVEYED_TAGS tags are read; `first` names the ones most likely to share layers (the image
    pushed last), so that they are among them.
    """
    listed = registry.tags(name)
    chosen = [tag for tag in first if tag in listed]
    chosen += [tag for tag in sorted(listed, reverse=True) if tag not in chosen]
    held: dict[str, RemoteLayer] = {}
    for tag in chosen[:SURVEYED_TAGS]:
        for layer in registry.layers(name, tag):
            held.setdefault(layer.diff_id, layer)
    return held


# ---------------------------------------------------------------- docker's own login


@contextmanager
def docker_logged_in(docker: Docker, registry: str, credentials: Credentials) -> Iterator[Docker]:
    """A docker CLI that can push to `registry`: for environment credentials, logged in to a temporary config."""
    if not credentials.login_needed or credentials.username is None or credentials.password is None:
        yield docker
        return
    config_dir = Path(tempfile.mkdtemp(prefix="hubship-docker-config-"))
    try:
        logged_in = docker.with_config_dir(config_dir)
        try:
            logged_in.login(registry, credentials.username, credentials.password)
        except CommandFailed as exc:
            raise ToolingError(
                f"`docker login {registry}` with {credentials.source} failed: {exc.last_line}. "
                "Check that they are current and may push to the registry."
            ) from None
        yield logged_in
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
