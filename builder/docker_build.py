"""Every Docker call the builder makes, in one place.

Builds run on the build engine (SPACEDOCK_BUILD_DOCKER_HOST, deploy/build-engine.sh): its own
image store, network namespace and limits, never the engine that runs the platform and the
spaces. They go through BuildKit on the engine's CLI (`DOCKER_BUILDKIT=1 docker build`): Hub
`sdk: docker` repos use `RUN --mount=type=secret`, which the SDK's legacy build API rejects.
A built image goes to the registry (the build engine pushes it, with the password given for that
call alone) and the runtime engine pulls it by digest. Whatever happens, a build leaves
no process, container or temporary file behind, and every engine error comes out as one BuildError.
"""

import ctypes
import io
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import requests
from django.conf import settings

from spacedock.labels import LABEL_INSTANCE, LABEL_SPACE

log = logging.getLogger(__name__)

# Pulls of a published image into the runtime engine before giving up (see publish).
PULL_ATTEMPTS = 3


class BuildError(Exception):
    """A build or an engine call failed; the text says what, for the author or the operator."""

    def __init__(self, message: str, log_tail: list[str] | None = None):
        super().__init__(message)
        self.log_tail = log_tail or []


class BuildStopped(BuildError):
    """The build was stopped on purpose: cancelled, or past its time limit."""


def engine_url(engine: str) -> str:
    """Where the worker reaches an engine ("build" or "runtime"): the Docker proxy's socket for it
    (SPACEDOCK_DOCKER_PROXY), or the engine itself."""
    if settings.DOCKER_PROXY:
        return f"unix://{settings.DOCKER_PROXY_DIR / f'{engine}.sock'}"
    if engine == "build":
        return settings.BUILD_DOCKER_HOST
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def _unreachable(engine: str, exc: Exception) -> BuildError:
    how = (
        "The operator runs `manage.py docker_proxy` beside the worker (make up does)"
        if settings.DOCKER_PROXY
        else "The operator starts it with deploy/build-engine.sh (make up does)"
    )
    return BuildError(f"The {engine} engine does not answer at {engine_url(engine)} ({exc}). {how}.")


_clients: dict[tuple[str, int], docker.DockerClient] = {}


def _engine(engine: str) -> docker.DockerClient:
    # One client per engine and process: a new client first asks the engine for its API version,
    # a round trip, and a code-only build made eight of them before its image was live.
    # Keyed by process too: Celery forks its pool, and a connection is never shared across a fork.
    key = (engine_url(engine), os.getpid())
    if (found := _clients.get(key)) is None:
        try:
            found = _clients[key] = docker.DockerClient(base_url=key[0], timeout=120)
        except docker.errors.DockerException as exc:
            raise _unreachable(engine, exc) from None
    return found


def client() -> docker.DockerClient:
    """The build engine."""
    return _engine("build")


def runtime_client() -> docker.DockerClient:
    """The engine that runs the spaces."""
    return _engine("runtime")


def docker_cli() -> str:
    # Debian's client has BuildKit built in; a newer client needs a buildx plugin.
    for candidate in (settings.DOCKER_CLI, "/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BuildError("No docker command-line client found: install docker.io (or set SPACEDOCK_DOCKER_CLI)")


def image_exists(tag: str) -> bool:
    try:
        client().images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as exc:
        raise BuildError(f"Docker could not look up image {tag}: {exc.explanation}") from None


def runtime_digest(tag: str) -> str:
    """`<repository>@sha256:...` of an image the runtime engine has under `tag`, or ""."""
    repository = tag.rpartition(":")[0]
    try:
        image = runtime_client().images.get(tag)
    except docker.errors.ImageNotFound:
        return ""
    except docker.errors.APIError as exc:
        raise BuildError(f"Docker could not look up image {tag}: {exc.explanation}") from None
    return next((d for d in image.attrs.get("RepoDigests") or [] if d.startswith(f"{repository}@")), "")


def image_id(tag: str) -> str:
    try:
        return client().images.get(tag).id
    except docker.errors.DockerException as exc:
        raise BuildError(f"Docker could not inspect image {tag}: {exc}") from None


def remove_image(ref: str) -> bool:
    """Removes an image of ours from the runtime engine, by any of its names; False when a
    container still uses it."""
    engine = runtime_client()
    try:
        image = engine.images.get(ref)
        if image.labels.get(LABEL_INSTANCE) != settings.INSTANCE:
            raise BuildError(f"refusing to remove {ref}: it is not this Spacedock's image")
        # Sparse: the list alone. A full list inspects each container, which the Docker proxy refuses
        # the worker, so an image in use (a preview's, until the runner stops it) raised instead.
        if engine.containers.list(all=True, filters={"ancestor": image.id}, sparse=True):
            return False
        # By id: the tag and the digest name go together.
        engine.images.remove(image.id, force=True, noprune=False)
        return True
    except docker.errors.ImageNotFound:
        return True
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # a container took it meanwhile
            return False
        raise BuildError(f"Docker could not remove image {ref}: {exc.explanation}") from None


def space_images(space_id: int) -> list[str]:
    """Names of this instance's images of one space on the runtime engine: each image's digest
    reference (what Build.image holds), or its tag for an image that has none."""
    filters = {"label": [f"{LABEL_INSTANCE}={settings.INSTANCE}", f"{LABEL_SPACE}={space_id}"]}
    try:
        images = runtime_client().images.list(filters=filters)
    except docker.errors.APIError as exc:
        raise BuildError(f"Docker could not list images: {exc.explanation}") from None
    names = []
    for image in images:
        digests = [d for d in image.attrs.get("RepoDigests") or [] if d.startswith(f"{settings.REGISTRY}/")]
        names += digests[:1] or image.tags[:1]
    return names


def build(
    context: Path,
    dockerfile: Path,
    tag: str,
    *,
    labels: dict[str, str],
    secrets: dict[str, Path] | None = None,
    build_args: dict[str, str] | None = None,
    no_cache: bool = False,
    deadline: float,
    on_line: Callable[[str], None],
    should_stop: Callable[[], str | None],
) -> None:
    """Runs one BuildKit build, streaming its output line by line.

    `should_stop` is asked about once a second; a reason it returns, or the deadline
    (a time.monotonic() value) passing, stops the build with BuildStopped.
    """
    command = [
        docker_cli(), "build", "--progress=plain", "--file", str(dockerfile), "--tag", tag,
    ]  # fmt: skip
    for key, value in labels.items():
        command += ["--label", f"{key}={value}"]
    for key, path in (secrets or {}).items():
        command += ["--secret", f"id={key},src={path}"]
    for key, value in (build_args or {}).items():
        command += ["--build-arg", f"{key}={value}"]
    if no_cache:
        command.append("--no-cache")
    command.append(str(context))

    env = {
        **os.environ,
        "DOCKER_BUILDKIT": "1",
        "BUILDKIT_PROGRESS": "plain",
        "DOCKER_HOST": engine_url("build"),
        # No credentials: a tenant's FROM cannot pull from the registry, nor from anywhere as us.
        "DOCKER_CONFIG": str(_empty_docker_config()),
    }
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # so a stop reaches the whole process group
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        raise BuildError(f"Could not run {command[0]}: {exc}") from None

    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    tail: list[str] = []
    stop_reason = None
    next_check = 0.0
    try:
        while True:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                on_line(line)
                tail = (tail + [line])[-40:]
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 1.0
                if now > deadline:
                    stop_reason = "timeout"
                elif reason := should_stop():
                    stop_reason = reason
                if stop_reason:
                    break
    finally:
        if proc.poll() is None:
            _stop(proc)
        reader.join(timeout=10)
        proc.wait()

    if stop_reason:
        raise BuildStopped(stop_reason, tail)
    if proc.returncode != 0:
        raise BuildError(failure_summary(tail), tail)


def _empty_docker_config() -> Path:
    path = settings.BUILD_TMP_DIR / "docker-config"
    path.mkdir(mode=0o700, exist_ok=True)
    (path / "config.json").write_text("{}\n")
    return path


def registry_auth() -> dict[str, str]:
    password = settings.REGISTRY_PASSWORD
    if not password:
        path = settings.DATA_DIR / "registry" / "password"
        try:
            password = path.read_text().strip()
        except OSError as exc:
            raise BuildError(
                f"The registry's password cannot be read ({exc}): deploy/registry.sh makes it on its "
                "first start, or set SPACEDOCK_REGISTRY_PASSWORD for the worker and the registry."
            ) from None
    return {"username": settings.REGISTRY_USER, "password": password}


def publish(built: str, tag: str) -> str:
    """Pushes a built image from the build engine to the registry as `tag`, pulls it into the
    runtime engine by digest, and drops it from the build engine (its layers stay in the cache).

    The push sends only the layers the registry lacks (a code-only change: one small layer), and
    the password goes with that one call: the build engine keeps no credential a build could use.
    `built` is the build's own name on the build engine (unguessable, so that no other build can
    start FROM it meanwhile); `tag` is `<registry>/<repository>:<tag>`; the answer is
    `<registry>/<repository>@sha256:...`.
    """
    repository, _, version = tag.rpartition(":")
    pushed = f"{settings.BUILD_REGISTRY}/{repository.split('/', 1)[1]}"
    auth = {**registry_auth(), "serveraddress": settings.BUILD_REGISTRY}
    digest = ""
    # The build engine drops its names of the image while the runtime engine pulls it: two
    # engines, so the build's end does not wait for one after the other.
    dropping = threading.Thread(target=_drop_from_build_engine, args=([f"{pushed}:{version}", built],))
    try:
        try:
            image = client().images.get(built)
            image.tag(pushed, version)
            for line in client().api.push(pushed, version, auth_config=auth, stream=True, decode=True):
                if line.get("error"):
                    raise BuildError(
                        f"The build engine could not push to the registry at {settings.BUILD_REGISTRY}: "
                        f"{line['error']} (is deploy/registry.sh running, and linked to the build engine?)"
                    )
                digest = (line.get("aux") or {}).get("Digest", digest)
        except docker.errors.APIError as exc:
            raise BuildError(f"The build engine could not push {tag}: {exc.explanation}") from None
        finally:
            dropping.start()
        if not digest:
            raise BuildError(f"The registry at {settings.BUILD_REGISTRY} gave no digest for {tag}")
        return _pull(repository, version, digest)
    finally:
        dropping.join()


def _drop_from_build_engine(names: list[str]) -> None:
    for name in names:
        try:
            client().images.remove(name, noprune=False)
        except docker.errors.APIError as exc:
            log.warning("could not remove %s from the build engine: %s", name, exc)


def _pull(repository: str, version: str, digest: str) -> str:
    """Pulls a published image into the runtime engine by digest, and tags it `version`."""
    for _ in range(PULL_ATTEMPTS):
        try:
            image = runtime_client().images.pull(repository, tag=digest, auth_config=registry_auth())
            # Tagged too: an image with a digest and no tag counts as dangling, and a prune would take it.
            image.tag(repository, version)
            return f"{repository}@{digest}"
        except docker.errors.NotFound as exc:
            # Until it is tagged it is dangling: another build's prune_dangling, finishing at that
            # moment, may take it between the pull and the tag. Pulled again, it is back at once.
            problem = exc.explanation
        except docker.errors.APIError as exc:
            problem = exc.explanation
            break
    raise BuildError(f"The runtime engine could not pull {repository}@{digest}: {problem}")


def unpublish(ref: str) -> None:
    """Deletes an image's manifest from the registry; `deploy/registry.sh garbage-collect` then
    reclaims its blobs. A name that is not in our registry, or is gone already, is fine."""
    repository, _, digest = ref.partition("@")
    registry, _, name = repository.partition("/")
    if not digest or registry != settings.REGISTRY:
        return
    scheme = "https" if settings.REGISTRY_TLS else "http"
    auth = registry_auth()
    try:
        answer = requests.delete(
            f"{scheme}://{registry}/v2/{name}/manifests/{digest}",
            auth=(auth["username"], auth["password"]),
            timeout=30,
        )
    except requests.RequestException as exc:
        raise BuildError(f"The registry {registry} does not answer: {exc}") from None
    if answer.status_code not in (202, 404):
        raise BuildError(f"The registry refused to delete {ref}: {answer.status_code} {answer.text[:200]}")


def _die_with_parent() -> None:
    # A worker killed mid-build must not leave its `docker build` running on its own.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(proc: subprocess.Popen) -> None:
    # Closing the client ends BuildKit's session, which cancels the build in the engine.
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def failure_summary(tail: list[str]) -> str:
    """The failing step and its last lines, from BuildKit's plain progress output."""
    error = next((line for line in reversed(tail) if line.startswith(("ERROR:", "error:"))), "")
    step = ""
    for line in reversed(tail):
        # "#7 [3/5] RUN pip install -r requirements.txt"
        if line.startswith("#") and "] " in line and "[" in line.split(" ", 2)[1]:
            step = line.split("] ", 1)[1]
            break
    body = [line for line in tail if not line.startswith("ERROR:")][-15:]
    parts = []
    if url := _unfetched_url(tail):
        step = ""  # BuildKit names the last step it started, which is not the one that failed
        parts.append(f"`ADD {url}` could not be fetched.")
        if any(word in line for line in tail[-5:] for word in ("connect:", "i/o timeout", "no route")):
            parts.append(
                "Builds reach the public internet only: not this server, nor private or link-local addresses."
            )
    elif image := _unavailable_image(tail):
        parts.append(
            f"The image {image} could not be pulled. Builds start from public images or this server's "
            f"base image ({settings.BASE_IMAGE}); the platform's own images and other spaces' images "
            "are not available to builds."
        )
    if step:
        parts.append(f"The step `{step}` failed.")
    if any("exit code: 137" in line for line in tail[-5:]):
        parts.append(
            "It was killed, most likely for going past the memory that builds may use "
            "(SPACEDOCK_BUILD_MEMORY_MB on the build engine)."
        )
    if error:
        parts.append(error)
    parts.append("Last lines of the build log:\n" + "\n".join(body))
    return "\n".join(parts)


def _unfetched_url(tail: list[str]) -> str:
    # BuildKit: " > http://host/path:" just before the error of an ADD from a URL.
    for line in reversed(tail):
        if line.startswith((" > http://", " > https://")) and line.endswith(":"):
            return line[3:-1]
    return ""


def _unavailable_image(tail: list[str]) -> str:
    # BuildKit: " > [internal] load metadata for NAME:" or " > FROM NAME:" just before the error.
    for line in reversed(tail):
        for marker in (" > [internal] load metadata for ", " > FROM "):
            if line.startswith(marker) and line.endswith(":"):
                return line[len(marker) : -1]
    return ""


def prune_dangling() -> None:
    """Removes this instance's untagged images, left when a rebuild takes over a tag."""
    try:
        ours = f"{LABEL_INSTANCE}={settings.INSTANCE}"
        runtime_client().images.prune(filters={"dangling": True, "label": ours})
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # another prune runs on this engine: it, or the next one, does this
            return
        raise BuildError(f"Docker could not prune images: {exc.explanation}") from None


def save_image(ref: str, out) -> None:
    """Writes one image of the runtime engine to `out` as `docker save` does, pulling it from the
    registry first when the engine no longer has it."""
    engine = runtime_client()
    try:
        try:
            image = engine.images.get(ref)
        except docker.errors.ImageNotFound:
            repository, _, digest = ref.partition("@")
            image = engine.images.pull(repository, tag=digest, auth_config=registry_auth())
        for chunk in image.save(named=False):
            out.write(chunk)
    except docker.errors.APIError as exc:
        raise BuildError(f"Docker could not save {ref}: {exc.explanation}") from None


def load_image(data, tag: str, labels: dict[str, str]) -> str:
    """Loads a `docker save` stream into the runtime engine, labels it as this install's, and
    publishes it to the registry as `tag`; returns `<registry>/<repository>@sha256:...`.

    The labels are what this install finds its images by (an image from another install carries
    that install's space and build numbers), so the loaded image gets a one-line rebuild that
    adds no layer, only the labels.
    """
    engine = runtime_client()
    repository, _, version = tag.rpartition(":")
    loaded, digest = [], ""
    try:
        loaded = engine.images.load(data)
        if len(loaded) != 1:
            raise BuildError(f"the archive holds {len(loaded)} images; an exported build holds one")
        dockerfile = io.BytesIO(f"FROM {loaded[0].id}\n".encode())
        engine.images.build(fileobj=dockerfile, tag=tag, labels=labels, rm=True, pull=False)
        digest = ""
        for line in engine.api.push(
            repository, version, auth_config=registry_auth(), stream=True, decode=True
        ):
            if line.get("error"):
                raise BuildError(f"the registry at {settings.REGISTRY} refused {tag}: {line['error']}")
            digest = (line.get("aux") or {}).get("Digest", digest)
    except docker.errors.DockerException as exc:
        raise BuildError(f"Docker could not load the image: {exc}") from None
    finally:
        for image in loaded:
            try:  # the relabelled image keeps its layers
                engine.images.remove(image.id, noprune=True)
            except docker.errors.APIError:
                pass
    if not digest:
        raise BuildError(f"The registry at {settings.REGISTRY} gave no digest for {tag}")
    return f"{repository}@{digest}"
