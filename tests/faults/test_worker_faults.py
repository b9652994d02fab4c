"""Faults of the build worker: killed -9 mid-build, and a build that never ends.

Each test starts its own worker (the module never uses the shared `worker` fixture), so that
it can kill it or give it its own time limit.
"""

import pytest
import requests

from builder import tasks
from spacedock.spaces.models import Build, Space
from tests.conftest import wait_until
from tests.faults.helpers import (
    KillableWorker,
    assert_platform_sound,
    docker_space,
    leftovers,
    log_text,
    purge_queues,
    slow_dockerfile,
)


@pytest.fixture
def workers(tmp_path):
    purge_queues()
    started = []

    def start(**env: str) -> KillableWorker:
        worker = KillableWorker(tmp_path / f"worker{len(started)}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    purge_queues()


def test_worker_killed_mid_build_is_reaped_and_the_next_push_builds(
    live, workers, token_for, make_repo, docker_client
):
    token = token_for("alice")
    repo = make_repo(docker_space(slow_dockerfile()))
    first = repo.git("rev-parse", "HEAD").stdout.strip()
    doomed = workers()
    assert repo.push(live.git_url("alice", "killed", token)).returncode == 0
    wait_until(
        lambda: Build.objects.filter(commit_sha=first, lines__text__contains="sleep 300").exists(),
        120,
        "the slow step to start",
    )

    doomed.kill9()
    build = Build.objects.get(commit_sha=first)
    assert build.state == "building"  # nobody is left to say otherwise
    # The `docker build` client dies with its worker, and BuildKit cancels the build with it.
    wait_until(
        lambda: not [x for x in leftovers(build, docker_client) if "docker" in x], 30, "docker build to end"
    )

    # The reaper (celery beat runs it every minute) sees the heartbeat stop.
    assert tasks.reap_stuck_builds(stale_after=0) == 1
    build.refresh_from_db()
    assert build.state == "failed" and "worker was killed" in build.error
    space = Space.objects.get(name="killed")
    assert space.stage == "BUILD_ERROR" and "Push again" in space.stage_message
    assert "worker was killed" in requests.get(f"{live.url}/alice/killed", timeout=10).text
    assert live.api("spaces/alice/killed/runtime").json()["stage"] == "BUILD_ERROR"
    assert not leftovers(build, docker_client)

    # A new worker and a new push: it builds, and the killed build's redelivered task does nothing.
    workers()
    repo.write(docker_space('FROM BASE\nCMD ["sleep", "1"]\n'))
    second = repo.commit("quick now")
    assert repo.push(live.git_url("alice", "killed", token)).returncode == 0
    rebuilt = wait_until(
        lambda: Build.objects.filter(commit_sha=second).exclude(state__in=Build.ACTIVE).first(),
        120,
        "the rebuild",
    )
    assert rebuilt.state == "succeeded", rebuilt.error + log_text(rebuilt)
    build.refresh_from_db()
    assert build.state == "failed"
    assert_platform_sound(live, docker_client)


def test_a_build_that_never_ends_is_stopped_by_the_workers_time_limit(
    live, workers, token_for, make_repo, docker_client
):
    workers(SPACEDOCK_BUILD_TIMEOUT="6")
    repo = make_repo(docker_space(slow_dockerfile(100000)))
    sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "forever", token_for("alice"))).returncode == 0

    build = wait_until(
        lambda: Build.objects.filter(commit_sha=sha).exclude(state__in=Build.ACTIVE).first(),
        120,
        "the time limit",
    )
    assert build.state == "failed"
    assert "stopped after 6 seconds, the time limit (SPACEDOCK_BUILD_TIMEOUT)" in build.error
    runtime = live.api("spaces/alice/forever/runtime").json()
    assert runtime["stage"] == "BUILD_ERROR" and "time limit" in runtime["errorMessage"]
    assert "time limit" in log_text(build)
    wait_until(lambda: not leftovers(build, docker_client), 30, "the stopped build to clean up")
    assert_platform_sound(live, docker_client)
