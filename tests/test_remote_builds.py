"""Builders anywhere (docs/cluster.md): a build worker with no repositories of its own fetches the
commit from the platform over git's smart HTTP with a token made for that one build, and builds go
to the queue of the space's node label while a worker takes it."""

import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command

from builder import source, tasks
from builder.buildlog import BuildLog
from builder.docker_build import BuildError
from runner.models import Runtime
from spacedock import buildqueues
from spacedock.gitserver import buildtoken
from spacedock.gitserver import repo as gitrepo
from spacedock.spaces.models import Build, BuildState, Space
from tests.conftest import ROOT, _queue_exists, _wait_for_log, process_env, wait_until

BIN = os.urandom(100_000)
SITE = {"README.md": "---\ntitle: Remote\nsdk: static\n---\n", "index.html": "<h1>Built elsewhere</h1>\n"}
LFS_MEDIA = "application/vnd.git-lfs+json"


def git_as(token: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """git with the token as a build worker sends it: a header, no user's credentials."""
    basic = base64.b64encode(f"{buildtoken.USER}:{token}".encode()).decode()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false"}
    return subprocess.run(
        ["git", "-c", f"http.extraHeader=Authorization: Basic {basic}", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip


def lfs_batch(live, full_name: str, operation: str, token: str, oid: str, size: int) -> requests.Response:
    return requests.post(
        f"{live.url}/spaces/{full_name}.git/info/lfs/objects/batch",
        json={"operation": operation, "objects": [{"oid": oid, "size": size}]},
        headers={"Authorization": f"Bearer {token}", "Accept": LFS_MEDIA, "Content-Type": LFS_MEDIA},
        timeout=10,
    )


def lfs_site(make_repo):
    repo = make_repo(SITE, commit=False)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.bin")
    repo.write({"weights.bin": BIN})
    repo.commit("a site with an LFS file")
    return repo


def test_a_build_token_only_fetches_its_own_space_while_its_build_runs(live, make_repo, tmp_path, settings):
    alice = User.objects.create(username="alice")
    space = Space.create(alice, "hidden", visibility="private")
    Space.create(alice, "other")  # another of alice's spaces
    repo = make_repo(SITE)
    # Straight into the bare repository: no hook, so no build is queued; the test makes its own.
    repo.git("push", "--quiet", str(space.repo_path), "main")
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
    token = buildtoken.make(build)
    plain = f"{live.url}/spaces/alice/hidden"

    # Before its build runs, and for anything but fetching its own space, the token is nothing.
    refused = git_as(token, "ls-remote", plain)
    assert refused.returncode != 0 and buildtoken.REFUSED in refused.stderr
    assert build.start()
    listed = git_as(token, "ls-remote", plain)
    assert listed.returncode == 0 and build.commit_sha in listed.stdout, listed.stderr
    fetched = git_as(token, "clone", "--quiet", "--bare", plain, str(tmp_path / "copy.git"))
    assert fetched.returncode == 0, fetched.stderr
    assert git_as(token, "ls-remote", f"{live.url}/spaces/alice/other").returncode != 0
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    assert buildtoken.REFUSED in git_as(forged, "ls-remote", plain).stderr
    anonymous = subprocess.run(
        ["git", "ls-remote", plain],
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    assert anonymous.returncode != 0 and build.commit_sha not in anonymous.stdout

    # It cannot push, even a commit the space already has ...
    repo.write({"index.html": "<h1>defaced</h1>\n"})
    repo.commit("deface")
    pushed = git_as(token, "push", plain, "main", cwd=repo.path)
    assert pushed.returncode != 0 and "only fetches" in pushed.stderr
    assert gitrepo.resolve(space.repo_path, "main") == build.commit_sha
    # ... nor upload Git LFS objects; it downloads only its own space's (the test below does).
    oid = hashlib.sha256(BIN).hexdigest()
    assert lfs_batch(live, "alice/hidden", "upload", token, oid, len(BIN)).status_code == 403
    assert lfs_batch(live, "alice/hidden", "download", token, oid, len(BIN)).status_code == 200
    assert lfs_batch(live, "alice/other", "download", token, oid, len(BIN)).status_code == 403

    # The API does not know it: it is no user's token.
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("spaces/alice/hidden", "whoami-v2", "spaces/alice/hidden/tree/main", "spaces?author=alice"):
        answer = live.api(path, headers=bearer)
        assert answer.status_code in (401, 403), (path, answer.status_code)
        assert build.commit_sha not in answer.text and "Built elsewhere" not in answer.text
    raw = requests.get(f"{plain}/resolve/main/index.html", headers=bearer, timeout=10)
    assert raw.status_code in (401, 403) and "Built elsewhere" not in raw.text

    # A worker whose key the platform does not list fails the build saying so, without the token.
    settings.BUILD_SOURCE, settings.BUILD_SOURCE_URL = "http", live.url
    settings.BUILD_FETCH_KEYS = ["w" * 32]
    with pytest.raises(BuildError, match="SPACEDOCK_BUILD_FETCH_KEYS must match") as failed:
        source.export_commit(build, tmp_path / "src", tmp_path, BuildLog(build), time.monotonic() + 60)
    assert buildtoken.make(build) not in str(failed.value) and buildtoken.REFUSED in str(failed.value)
    settings.BUILD_FETCH_KEYS = [os.environ["SPACEDOCK_BUILD_FETCH_KEYS"]]

    # Rotation: the platform takes every key listed; a key dropped from the list is refused.
    settings.BUILD_FETCH_KEYS = ["n" * 32] + list(settings.BUILD_FETCH_KEYS)
    assert buildtoken.build_for(token, space) == build
    assert buildtoken.build_for(buildtoken.make(build), space) == build
    settings.BUILD_FETCH_KEYS = ["n" * 32]
    assert buildtoken.build_for(token, space) is None
    settings.BUILD_FETCH_KEYS = []
    assert buildtoken.build_for(token, space) is None

    # Once its build ends, it is dead.
    build.fail("stopped by the test")
    assert buildtoken.REFUSED in git_as(token, "ls-remote", plain).stderr


@pytest.fixture
def remote_worker(server, docker_proxy, tmp_path):
    """A build worker as on another host: a data folder without repositories, fetching over HTTP,
    taking only the `builds.gpu` queue (and the platform's broker and cache, as a cluster's do)."""
    from spacedock.celery import app

    data = tmp_path / "worker-data"
    data.mkdir()
    if not settings.REDIS_URL:  # the broker and cache are files: share the suite's
        for shared in ("broker", "cache"):
            (data / shared).symlink_to(settings.DATA_DIR / shared)
    with app.connection_for_write() as conn:  # builds queued by earlier runs are not ours
        conn.default_channel.queue_purge("builds.gpu") if _queue_exists(conn, "builds.gpu") else None
    password = (settings.DATA_DIR / "registry" / "password").read_text().strip()
    log = tmp_path / "worker.log"
    env = process_env(
        SPACEDOCK_DATA_DIR=str(data),
        SPACEDOCK_BUILD_SOURCE="http",
        SPACEDOCK_BUILD_SOURCE_URL=server.url,
        SPACEDOCK_DOCKER_PROXY="true",
        SPACEDOCK_DOCKER_PROXY_DIR=str(settings.DOCKER_PROXY_DIR),
        SPACEDOCK_REGISTRY_PASSWORD=password,
    )
    env.pop("SPACEDOCK_SECRET_KEY", None)  # its own, made in its own data folder
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "spacedock", "worker", "--queues", "builds.gpu",
                "--concurrency", "1", "--hostname", "gpu-builder@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_log(log, "ready.", proc)
        yield proc, data, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_worker_without_repositories_builds_over_http_and_the_space_goes_live(
    remote_worker, worker, runner, proxy, live, token_for, make_repo
):
    proc, data, worker_log = remote_worker
    token = token_for("alice")
    wait_until(
        lambda: buildqueues.workers(["builds.gpu"])["builds.gpu"], 30, "the worker to announce builds.gpu"
    )
    space = Space.create(User.objects.get(username="alice"), "remote")
    Runtime.objects.create(space=space, placement="node.labels.gpu==true")
    assert buildqueues.queue_for(space) == "builds.gpu"

    repo = lfs_site(make_repo)
    pushed = repo.push(live.git_url("alice", "remote", token))
    assert pushed.returncode == 0, pushed.stderr
    done = Build.objects.filter(space=space).exclude(state__in=Build.ACTIVE)
    build = wait_until(done.first, 120, lambda: f"the build, {worker_log.read_text()[-2000:]}")
    lines = "\n".join(build.lines.order_by("number").values_list("text", flat=True))
    assert build.state == BuildState.SUCCEEDED, lines
    assert f"==> Fetching {build.commit_sha[:7]} from {live.url}/spaces/alice/remote" in lines
    assert not (data / "repos").exists() and not (data / "lfs").exists()

    runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNNING", space.stage_message
    assert "<h1>Built elsewhere</h1>" in proxy.get(space.host, "/").text
    assert proxy.get(space.host, "/weights.bin").content == BIN  # the LFS object, over HTTP too

    # The operator sees which build queues have a worker.
    out = io.StringIO()
    call_command("cluster", stdout=out)
    assert re.search(r"builds\.gpu +gpu-builder@", out.getvalue()), out.getvalue()

    # The token appears in no log: the build's, the worker's, the platform's.
    made = buildtoken.make(build)
    proc.terminate()
    proc.wait(30)
    for text in (lines, worker_log.read_text(), live.log.read_text()):
        assert made not in text and made.rpartition("_")[2] not in text
    # A worker that stops says so: the label's builds go to the default queue again.
    assert buildqueues.queue_for(space) == "builds"

    # A build sent to the label's queue just before its last worker died (and did not say so) is
    # sent on to the default queue by the reaper once that worker's entry lapses.
    buildqueues.register("gone@elsewhere", ["builds.gpu"])
    second = space.factory_rebuild()
    assert Build.objects.get(pk=second.pk).state == BuildState.QUEUED
    buildqueues.withdraw("gone@elsewhere", ["builds.gpu"])  # as its entry lapses, 90 s after death
    tasks.reap_stuck_builds()
    wait_until(lambda: Build.objects.get(pk=second.pk).state not in Build.ACTIVE, 120, "the second build")
    second.refresh_from_db()
    assert second.state == BuildState.SUCCEEDED, second.error
    # Built by the platform's own worker, from the repository on its disk.
    assert not second.lines.filter(text__startswith="==> Fetching").exists()


@pytest.mark.fast
def test_build_queues_follow_node_labels_that_have_a_worker():
    assert buildqueues.label_queues(["node.labels.gpu==true", "node.labels.zone == eu"]) == [
        "builds.gpu",
        "builds.zone.eu",
    ]
    # Not a node label, not an equality, or not a plain name: no queue.
    assert (
        buildqueues.label_queues(["node.role==manager", "node.labels.gpu!=true", "node.labels.a==b/c"]) == []
    )
    gpu_first = ["node.labels.gpu==true", "node.labels.zone==eu"]
    assert buildqueues.choose(gpu_first, set()) == "builds"
    assert buildqueues.choose(gpu_first, {"builds.zone.eu"}) == "builds.zone.eu"
    assert buildqueues.choose(gpu_first, {"builds.zone.eu", "builds.gpu"}) == "builds.gpu"

    queue = f"builds.test{os.getpid()}"
    buildqueues.register("a@host", [queue])
    buildqueues.register("b@host", [queue], seconds=-1)  # lapsed: a worker that died
    assert buildqueues.workers([queue]) == {queue: ["a@host"]}
    assert queue in buildqueues.report() and "a@host" in buildqueues.report()
    buildqueues.withdraw("a@host", [queue])
    assert buildqueues.workers([queue]) == {queue: []}
