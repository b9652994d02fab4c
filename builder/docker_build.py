"""Every Docker call the builder makes, in one place.

Builds go through BuildKit on the engine's CLI (`DOCKER_BUILDKIT=1 docker build`):
Hub `sdk: docker` repos use `RUN --mount=type=secret`, which the SDK's legacy build
API rejects. Images are inspected and removed through the Docker SDK. Whatever
happens, a build leaves no process, container or temporary file behind, and every
engine error comes out as one BuildError.
"""

import ctypes
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
from django.conf import settings

from spacedock.labels import LABEL_INSTANCE, LABEL_SPACE


class BuildError(Exception):
    """A build or an engine call failed; the text says what, for the author or the operator."""

    def __init__(self, message: str, log_tail: list[str] | None = None):
        super().__init__(message)
        self.log_tail = log_tail or []


class BuildStopped(BuildError):
    """The build was stopped on purpose: cancelled, or past its time limit."""


def client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=120)
    except docker.errors.DockerException as exc:
        raise BuildError(f"The Docker engine does not answer: {exc}") from None


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


def image_id(tag: str) -> str:
    try:
        return client().images.get(tag).id
    except docker.errors.DockerException as exc:
        raise BuildError(f"Docker could not inspect image {tag}: {exc}") from None


def remove_image(tag: str) -> bool:
    """Removes a tag of ours; False when a container still uses it."""
    try:
        image = client().images.get(tag)
    except docker.errors.ImageNotFound:
        return True
    if image.labels.get(LABEL_INSTANCE) != settings.INSTANCE:
        raise BuildError(f"refusing to remove {tag}: it is not this Spacedock's image")
    try:
        client().images.remove(tag, noprune=False)
        return True
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # in use by a container
            return False
        raise BuildError(f"Docker could not remove image {tag}: {exc.explanation}") from None


def space_images(space_id: int) -> list[str]:
    """Tags of this instance's images of one space."""
    filters = {"label": [f"{LABEL_INSTANCE}={settings.INSTANCE}", f"{LABEL_SPACE}={space_id}"]}
    try:
        images = client().images.list(filters=filters)
    except docker.errors.APIError as exc:
        raise BuildError(f"Docker could not list images: {exc.explanation}") from None
    return [tag for image in images for tag in image.tags]


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

    env = {**os.environ, "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
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
    if step:
        parts.append(f"The step `{step}` failed.")
    if error:
        parts.append(error)
    parts.append("Last lines of the build log:\n" + "\n".join(body))
    return "\n".join(parts)


def prune_dangling() -> None:
    """Removes this instance's untagged images, left when a rebuild takes over a tag."""
    try:
        client().images.prune(filters={"dangling": True, "label": f"{LABEL_INSTANCE}={settings.INSTANCE}"})
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # another prune runs on this engine: it, or the next one, does this
            return
        raise BuildError(f"Docker could not prune images: {exc.explanation}") from None
