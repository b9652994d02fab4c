"""What every fault test checks afterwards, and workers that a test may kill."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import requests
from django.conf import settings

from builder.images import image_tag
from spacedock.spaces.models import Build
from tests.conftest import ROOT, _wait_for_log, process_env, wait_until


def docker_space(dockerfile: str, port: int = 8000) -> dict[str, str]:
    return {
        "README.md": f"---\ntitle: Docker demo\nsdk: docker\napp_port: {port}\n---\n",
        "Dockerfile": dockerfile.replace("BASE", settings.BASE_IMAGE),
    }


def slow_dockerfile(seconds: int = 300) -> str:
    # A fresh token defeats the layer cache, so the sleep really runs.
    return f'FROM BASE\nRUN echo {uuid.uuid4().hex} && sleep {seconds}\nCMD ["sleep", "1"]\n'


def leftovers(build: Build, docker_client) -> list[str]:
    """What a stopped build could leave: its temp folder, its image, its `docker build` process."""
    tag = image_tag(build.space, build.commit_sha)
    found = [str(p) for p in Path(settings.BUILD_TMP_DIR).glob(f"build-{build.pk}-*")]
    found += [t for image in docker_client.images.list() for t in image.tags if t == tag]
    processes = subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout
    found += [line for line in processes.splitlines() if "docker" in line and "pgrep" not in line]
    return found


def log_text(build: Build) -> str:
    return "\n".join(build.lines.order_by("number").values_list("text", flat=True))


def assert_platform_sound(server, docker_client) -> None:
    """After a fault: the platform answers, no build is stuck, nothing of a build is left over."""
    health = requests.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    assert requests.get(f"{server.url}/", timeout=10).status_code == 200
    stuck = list(Build.objects.filter(state__in=Build.ACTIVE).values_list("pk", "state"))
    assert not stuck, f"builds still active: {stuck}"
    # A finished build's worker removes its folder just after it records the outcome; a superseded
    # build that was already publishing its image to the registry finishes that first.
    wait_until(
        lambda: not list(Path(settings.BUILD_TMP_DIR).glob("build-*")),
        120,
        f"build folders to go: {[p.name for p in Path(settings.BUILD_TMP_DIR).glob('build-*')]}",
    )
    for build in Build.objects.exclude(state="succeeded"):
        assert not leftovers(build, docker_client), build


class KillableWorker:
    """A Celery build worker in its own process group, so a test can kill -9 all of it."""

    def __init__(self, log: Path, **env: str):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "spacedock", "worker",
                    "--queues", "builds,celery", "--concurrency", "1", "--prefetch-multiplier", "1",
                    "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
                ],
                cwd=ROOT, env=process_env(**env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _wait_for_log(log, "ready.", self.proc)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


def purge_queues() -> None:
    from spacedock.celery import app

    with app.connection_for_write() as conn:
        for queue in ("builds", "celery"):
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that was never declared has nothing in it
                pass
