"""The push stage: a smoke-tested image goes to the registry in hub.toml under a tag that never changes.

`push_image` reads as the process it performs:

1. Which image: the one the build stage recorded in .hubship/state.json, or
   `--image NAME:TAG`. It must be in the local engine; a recorded build must
   still have the id the build recorded (not re-tagged behind our back).
2. The gate: the smoke-test stage must have recorded a pass for that image id.
3. Credentials: HUBSHIP_REGISTRY_USERNAME and HUBSHIP_REGISTRY_PASSWORD, else
   the user's Docker config (an `auths` entry or a credential helper), else
   none. A token (a GitHub token for ghcr.io, a Docker Hub access token, a
   quay robot token) goes in HUBSHIP_REGISTRY_PASSWORD: registries take it
   as a password, so no separate token variable exists.
4. Tags are immutable: the registry is asked (Registry HTTP API v2) what the
   tag holds. Nothing: push. The same image: nothing to upload, the digest is
   recorded all the same. Another image: refused.
5. After `docker push`, the registry is asked again; the digest it serves is
   what is recorded and printed (NAME:TAG@DIGEST), and only after checking
   that it really is the local image (a concurrent push would show here).

Design decisions:

- "The same image" means the manifest's config digest is the local image id
  (the classic engine's image id is that digest), or the manifest digest is
  the local id (the containerd image store) or one of its RepoDigests. For an
  index (multi-platform), each platform's config is compared.
- Environment credentials are used with `docker login --password-stdin` into
  a temporary DOCKER_CONFIG, removed afterwards: the user's ~/.docker is never
  written. Docker-config credentials are the user's own login: docker uses
  them itself, so no login happens; the toolkit's own API calls read the same
  `auths` entry or ask the same credential helper. An identity-token entry
  (an OAuth refresh token) is left to docker; the API calls then go anonymous
  and say so when refused.
- Every secret (password, its base64 form, bearer tokens) is registered with
  `tooling.log.register_secret` as soon as it is read, never goes on a
  command line, and messages name where credentials came from, never them.
- The API speaks https, except to loopback registries (127.0.0.0/8,
  localhost), which dockerd itself treats as insecure (plain http) by
  default. Credentials are sent to a bearer-token server only over https or
  on loopback.
- Transient errors of the toolkit's own API calls (connection refused or
  reset, timeouts, 429, 5xx) are retried with exponential backoff, bounded in
  attempts and total time, honouring Retry-After within those bounds.
  `docker push` is not rerun: the engine already retries each layer upload.
- Between the tag check and the push, someone else could push the same tag;
  the check after the push notices it, but the registry itself cannot be
  made to refuse an overwrite from here.
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

from tooling.config import HubConfig
from tooling.docker import Docker, LocalImage
from tooling.errors import CommandFailed, ToolingError
from tooling.images import ImageReference, repository
from tooling.log import logger, register_secret, step
from tooling.proc import run
from tooling.state import PushedImage, State

ENV_USERNAME = "HUBSHIP_REGISTRY_USERNAME"
ENV_PASSWORD = "HUBSHIP_REGISTRY_PASSWORD"  # noqa: S105 (a variable name; it holds a password or a token)

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
    except ToolingError as exc:
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
    media_type: str
    config_digests: tuple[str, ...]


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
            return RemoteManifest(digest, media_type, tuple(config for config in configs if config))
        return RemoteManifest(digest, media_type, (str((body.get("config") or {}).get("digest", "")),))

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
            raise ToolingError(
                f"The registry {self.registry} answered {_status(response)} when asked for {name}:{reference}. "
                "Check the [image] registry and name in hub.toml."
            )
        return response

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ToolingError(f"The registry {self.registry} served something other than a JSON manifest for {what}.")
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
            raise ToolingError(f"The registry {self.registry} asked for a bearer token without a usable realm URL.")
        auth = None
        if self.credentials.username and self.credentials.password:
            if not realm.startswith("https://") and not is_loopback(_login_host(realm)):
                raise ToolingError(
                    f"The registry {self.registry} sends logins to its token server {realm} over plain http; "
                    "the toolkit does not send credentials there. Use the registry's https address."
                )
            auth = (self.credentials.username, self.credentials.password)
        params = {"scope": challenge.params.get("scope") or f"repository:{name}:pull"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        response = self._send(realm, params=params, auth=auth)
        if response.status_code in (401, 403):
            raise self._access_refused(response, name)
        if not response.ok:
            raise ToolingError(f"The token server of {self.registry} ({realm}) answered {_status(response)}.")
        body = self._json(response, f"a token for {name}")
        token = str(body.get("token") or body.get("access_token") or "")
        if not token:
            raise ToolingError(f"The token server of {self.registry} ({realm}) gave no token.")
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
                raise ToolingError(
                    f"TLS with the registry {self.registry} failed: {_root_cause(exc)}. If it uses a private "
                    "certificate authority, point REQUESTS_CA_BUNDLE at its certificate."
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
        raise ToolingError(
            f"The registry {self.registry} could not be reached: {reason} "
            f"(gave up after {attempt} attempts in {time.monotonic() - started:.0f} s). Check that it is up and "
            "reachable from this machine (the [image] registry in hub.toml, a proxy, a firewall), "
            "then rerun `python -m tooling push`."
        )

    def _access_refused(self, response: requests.Response, name: str) -> ToolingError:
        if self.credentials.anonymous:
            todo = f"Set {ENV_USERNAME} and {ENV_PASSWORD} (a token works as the password), or `docker login`"
        else:
            todo = f"Check that they are current and may pull and push {name}"
        return ToolingError(
            f"The registry {self.registry} refused access to {name} ({_status(response)}); "
            f"credentials tried: {self.credentials.source}. {todo}, then rerun `python -m tooling push`."
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


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class PushRequest:
    """What the push stage reads: the hub's folder (its state), the registry and name, the CLI, which image."""

    root: Path
    registry: str
    name: str
    docker_cli: str
    image: str | None = None  # a local NAME:TAG; None: the image the build stage recorded
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def from_config(cls, config: HubConfig, *, image: str | None = None) -> PushRequest:
        return cls(config.root, config.image.registry, config.image.name, config.docker_cli, image)

    @property
    def repository(self) -> str:
        return repository(self.registry, self.name)


@dataclass(frozen=True)
class PushResult:
    """What the push stage did: which local image went where, under which digest."""

    source: str  # the local NAME:TAG pushed
    reference: str  # REGISTRY/NAME:TAG in the registry
    digest: str  # sha256:... of the manifest the registry serves
    image_id: str
    pushed: bool  # False: the registry already held this image under the tag; nothing was uploaded
    credentials: str  # where credentials came from (never their values)
    seconds: float

    @property
    def pinned(self) -> str:
        """REGISTRY/NAME:TAG@DIGEST: the reference that can never mean other contents."""
        return f"{self.reference}@{self.digest}"


def push_image(request: PushRequest) -> PushResult:
    """Push the smoke-tested image under its immutable tag; record and return the digest the registry serves."""
    started = time.monotonic()
    state = State.load(request.root)
    source = _source_reference(request, state)
    docker = Docker(request.docker_cli)
    docker.require_engine()
    image = _local_image(docker, source, state, recorded=request.image is None)
    _require_passed_smoke_test(state, source, image)
    target = f"{request.repository}:{source.tag}"
    credentials = find_credentials(request.registry)
    with RegistryClient(request.registry, credentials, request.retry) as registry:
        with step(f"ask {request.registry} what {request.name}:{source.tag} holds"):
            held = registry.manifest(request.name, source.tag)
        pushed = held is None
        if held is None:
            _docker_push(docker, str(source), target, request.registry, credentials)
            held = _require_pushed(registry.manifest(request.name, source.tag), image, request.repository, target)
        else:
            _require_same_image(held, image, request, target)
            logger.info("%s already holds this image (%s); nothing to upload", target, held.digest)
    state.record_push(PushedImage(target, held.digest, image.image_id))
    return PushResult(
        source=str(source),
        reference=target,
        digest=held.digest,
        image_id=image.image_id,
        pushed=pushed,
        credentials=credentials.source,
        seconds=time.monotonic() - started,
    )


def _source_reference(request: PushRequest, state: State) -> ImageReference:
    if request.image is not None:
        if "@" in request.image:
            raise ToolingError(f"--image {request.image}: name a local image by NAME:TAG, not by digest.")
        return ImageReference.parse(request.image, source="--image")
    return ImageReference.parse(state.require_built().reference, source=f"{state.path} (built.reference)")


def _local_image(docker: Docker, source: ImageReference, state: State, *, recorded: bool) -> LocalImage:
    image = docker.inspect_image(str(source))
    if image is None:
        raise ToolingError(
            f"The Docker engine at {docker.engine} has no image {source}. Build it on this machine "
            "(`python -m tooling build`) and smoke-test it (`python -m tooling test`) before pushing."
        )
    if recorded and state.built is not None and image.image_id != state.built.image_id:
        raise ToolingError(
            f"{source} is now the image {image.image_id}, not {state.built.image_id} that the build stage "
            f"recorded in {state.path}: it was rebuilt or re-tagged outside the toolkit. Rebuild "
            "(`python -m tooling build`) and smoke-test it (`python -m tooling test`), then push."
        )
    return image


def _require_passed_smoke_test(state: State, source: ImageReference, image: LocalImage) -> None:
    if state.passed_smoke_test(image.image_id):
        return
    recorded = state.tested.get(image.image_id)
    if recorded is None:
        raise ToolingError(
            f"{source} (image {image.image_id}) has not passed the smoke test: {state.path} has no test "
            "result for it. Run `python -m tooling test`, then push."
        )
    raise ToolingError(
        f"{source} (image {image.image_id}) failed its smoke test (report: {recorded.report}). Fix the "
        "image, rebuild it, and run `python -m tooling test` until it passes, then push."
    )


def _holds(manifest: RemoteManifest, image: LocalImage, repository: str) -> bool:
    return (
        image.image_id in manifest.config_digests
        or image.image_id == manifest.digest
        or f"{repository}@{manifest.digest}" in image.repo_digests
    )


def _require_same_image(held: RemoteManifest, image: LocalImage, request: PushRequest, target: str) -> None:
    if _holds(held, image, request.repository):
        return
    registry_image = ", ".join(held.config_digests) or "unknown"
    raise ToolingError(
        f"The registry {request.registry} already holds the tag {target} with another image: "
        f"manifest {held.digest} (image {registry_image}); the local image is {image.image_id}. "
        "A tag never changes contents, so nothing was pushed. If the image's inputs changed, rebuild "
        "(`python -m tooling build`): new inputs give a new tag. If they did not, use the image already "
        f"pushed, {request.repository}@{held.digest}."
    )


def _require_pushed(held: RemoteManifest | None, image: LocalImage, repository: str, target: str) -> RemoteManifest:
    """The manifest the registry serves after the push, checked to be the local image."""
    if held is None:
        raise ToolingError(
            f"`docker push {target}` succeeded, but the registry does not serve the tag afterwards. "
            "Check the registry's storage and logs, then rerun `python -m tooling push`."
        )
    if not _holds(held, image, repository):
        raise ToolingError(
            f"After pushing, {target} holds manifest {held.digest}, not the local image {image.image_id}: "
            "someone pushed the same tag at the same time. Find out who, then rebuild for a new tag."
        )
    return held


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


def _docker_push(docker: Docker, source: str, target: str, registry: str, credentials: Credentials) -> None:
    if source != target:
        docker.tag(source, target)
    with docker_logged_in(docker, registry, credentials) as pusher, step(f"push {target}") as progress:
        try:
            pusher.push(target, progress.update)
        except CommandFailed as exc:
            raise ToolingError(
                f"`docker push {target}` to {registry} failed: {exc.last_line}\n"
                f"Credentials: {credentials.source}. The engine retried each layer already; check that the "
                "registry is up and that these credentials may push there, then rerun `python -m tooling push`."
            ) from None
