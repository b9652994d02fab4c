"""Issue 16's hardware and volumes through the real runner, Caddy and gunicorn, driven with the real
huggingface_hub: one space goes through every step a person would take, each asserted as they would
see it (the app's own answers, the container's limits, the runtime API, the page).

The app is a plain HTTP server that starts in a blink, so the ten container starts here cost
seconds, not Gradio's tens of seconds each."""

import os

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from huggingface_hub import HfApi, Volume
from huggingface_hub.errors import HfHubHTTPError

from runner import docker_runtime
from runner.models import Runtime
from spacedock.accounts.models import AccessToken, Quota
from spacedock.buckets.models import Bucket
from spacedock.hardware.gpus import host_gpus
from spacedock.hardware.models import GpuAssignment
from spacedock.spaces.models import Space
from spacedock.spaces.stages import Stage
from tests.runner_fixtures import deployed, docker_build, docker_ids, publish

# GET /?write=<name> writes that file in /data (when mounted) and /tmp; /?fill=<MB> appends that
# much to /data/big. Every answer says what the container sees: its files, its limits, its env.
KEEPER = """import http.server, json, os, urllib.parse

def read(*paths):
    for path in paths:
        try:
            return open(path).read().strip()
        except OSError:
            pass
    return None

def listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        error = None
        try:
            if "write" in query:
                for folder in ("/tmp", "/data"):
                    if os.path.isdir(folder):
                        with open(os.path.join(folder, query["write"]), "w") as f:
                            f.write("kept")
            if "fill" in query:
                with open("/data/big", "ab") as f:
                    for _ in range(int(query["fill"])):
                        f.write(os.urandom(2**20))
        except OSError as exc:
            error = str(exc)
        body = json.dumps({
            "version": "{version}",
            "error": error,
            "tmp": listing("/tmp"),
            "data": listing("/data"),
            "hf_home": os.environ.get("HF_HOME"),
            "hardware": os.environ.get("SPACE_HARDWARE"),
            "memory": read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "cpu_quota": read("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 7860), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def keeper_images(tmp_path_factory) -> tuple[str, str]:
    dockerfile = (
        f"FROM {settings.BASE_IMAGE}\nRUN useradd -m -u 1000 user\nWORKDIR /home/user\n"
        'COPY app.py .\nUSER 1000\nCMD ["python3", "app.py"]\n'
    )
    work = tmp_path_factory.mktemp("keeper")
    return tuple(
        docker_build(
            f"{settings.INSTANCE}-runner-test/keeper:{v}",
            dockerfile,
            {"app.py": KEEPER.replace("{version}", v)},
            work / v,
        )
        for v in ("v1", "v2")
    )


def test_a_bucket_at_data_survives_everything_and_flavours_set_the_limits(
    runner, proxy, live, token_for, keeper_images, monkeypatch, request
):
    alice = HfApi(endpoint=live.url, token=token_for("alice"))
    space = deployed("alice", "keeper", keeper_images[0])
    first = space.deployed_build
    _, token = AccessToken.issue(space.owner, "rollback")

    def app(query: str = "") -> dict:
        answer = proxy.get(space.host, f"/?{query}")
        assert answer.status_code == 200, answer.text[:300]
        return answer.json()

    def runtime() -> dict:
        return alice.get_space_runtime("alice/keeper")

    def converged() -> Space:
        runner.converge()
        return Space.objects.get(pk=space.pk)

    # Without a volume, the container's /tmp is its own: a restart starts from an empty one.
    assert converged().stage == Stage.RUNNING
    seen = app("write=scratch.txt")
    assert "scratch.txt" in seen["tmp"] and seen["data"] is None and seen["hf_home"] is None
    assert (runtime().hardware, runtime().requested_hardware) == ("cpu-basic", "cpu-basic")
    alice.restart_space("alice/keeper")
    assert converged().stage == Stage.RUNNING
    assert "scratch.txt" not in app()["tmp"]

    # A bucket at /data: what the app writes there outlives sleep, wake, a new build and a rollback.
    alice.create_bucket("alice/keep")
    alice.set_space_volumes("alice/keeper", [Volume(type="bucket", source="alice/keep", mount_path="/data")])
    assert converged().stage == Stage.RUNNING
    seen = app("write=kept.txt")
    assert seen["data"] == ["kept.txt"] and seen["hf_home"] == "/data/.huggingface"
    assert [f.path for f in alice.list_bucket_tree("alice/keep")] == ["kept.txt"]

    monkeypatch.setattr(settings, "FROZEN_MEMORY_MB", 0)  # deep sleep: the wake is a new container
    Space.objects.filter(pk=space.pk).update(sleep_time=0)
    assert converged().stage == Stage.SLEEPING and docker_ids(space.pk) == []
    assert runtime().hardware is None  # nothing runs
    Space.objects.filter(pk=space.pk).update(sleep_time=3600)
    assert proxy.get(space.host, "/").headers["X-Spacedock-Wake"] == Stage.APP_STARTING  # the visit wakes it
    assert converged().stage == Stage.RUNNING
    seen = app()
    assert "kept.txt" in seen["data"] and "kept.txt" not in seen["tmp"]

    publish(space, keeper_images[1])  # a new build
    assert converged().stage == Stage.RUNNING
    seen = app()
    assert seen["version"] == "v2" and "kept.txt" in seen["data"]

    rollback = requests.post(
        f"{live.url}/api/spaces/alice/keeper/rollback",
        json={"build": first.pk},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert rollback.status_code == 200, rollback.text
    assert converged().stage == Stage.RUNNING
    seen = app()
    assert seen["version"] == "v1" and "kept.txt" in seen["data"]

    # A volume that cannot be mounted fails the new container with its reason; the old one serves on.
    Space.create(space.owner, "keeper-src", sdk="gradio")
    alice.set_space_volumes(
        "alice/keeper",
        [
            Volume(type="bucket", source="alice/keep", mount_path="/data"),
            Volume(type="space", source="alice/keeper-src", mount_path="/mnt/src", revision="gone"),
        ],
    )
    after = converged()
    assert after.stage == Stage.RUNNING
    assert (
        "Its volumes cannot be mounted: Space alice/keeper-src has no revision 'gone'" in after.stage_message
    )
    assert app()["version"] == "v1"
    alice.set_space_volumes("alice/keeper", [Volume(type="bucket", source="alice/keep", mount_path="/data")])
    assert (converged().stage_message, app()["data"]) == ("", ["kept.txt"])

    # Another flavour: the space restarts with its limits, as the engine and the app's cgroup see them.
    alice.request_space_hardware("alice/keeper", "cpu-upgrade")
    assert converged().stage == Stage.RUNNING
    space.refresh_from_db()
    host = docker_runtime.get(space.container_id).attrs["HostConfig"]
    cpus = min(8, os.cpu_count())
    assert (host["NanoCpus"], host["Memory"], host["MemorySwap"]) == (cpus * 10**9, 2**35, 2**35)
    seen = app()
    assert seen["hardware"] == "cpu-upgrade" and int(seen["memory"]) == 2**35
    assert seen["cpu_quota"].split()[0] == str(cpus * 100_000)  # per 100 ms period
    assert (runtime().hardware, runtime().requested_hardware) == ("cpu-upgrade", "cpu-upgrade")
    assert "kept.txt" in seen["data"]

    # The attack: the app writes past its bucket's quota. The runner sees it, restarts the space with
    # the bucket read-only, and the page and the API say why; deleting files makes it writable again.
    Bucket.objects.filter(name="keep").update(max_size_mb=1)
    monkeypatch.setattr(settings, "BUCKET_CHECK_SECONDS", 0)
    assert app("fill=2")["error"] is None  # nothing in the kernel stops this write (see the docs)
    after = converged()
    full = "Bucket alice/keep is over its quota (2.0 MB of 1 MB): it is mounted read-only at /data"
    assert after.stage == Stage.RUNNING and after.stage_message.startswith(full)
    assert runtime().raw["errorMessage"].startswith(full)
    assert full in requests.get(f"{live.url}/alice/keeper", timeout=10).text
    blocked = app("fill=1&write=more.txt")
    assert "Read-only file system" in blocked["error"] and blocked["data"] == ["big", "kept.txt"]
    assert alice.bucket_info("alice/keep").size == 2 * 2**20 + 4
    alice.batch_bucket_files("alice/keep", delete=["big"])
    assert converged().stage_message == ""
    assert app("write=again.txt")["data"] == ["again.txt", "kept.txt"]
    monkeypatch.setattr(settings, "BUCKET_CHECK_SECONDS", 30)

    # A GPU flavour on a machine without GPUs: it waits, saying so, and the old container serves on.
    Quota.objects.create(user=User.objects.get(username="alice"), hardware="cpu-basic,cpu-upgrade,t4-small")
    alice.request_space_hardware("alice/keeper", "t4-small")
    queued = "Queued for hardware: t4-small needs 1 GPU(s) (t4) and this machine has none."
    after = converged()
    assert after.stage == Stage.RUNNING and after.stage_message.startswith(queued)
    assert (runtime().hardware, runtime().requested_hardware) == ("cpu-upgrade", "t4-small")
    assert app()["hardware"] == "cpu-upgrade"
    # Asleep (deeply: a space waiting for a GPU is never frozen) and woken, nothing serves: it stays
    # APP_STARTING with the message, pass after pass, starting no container and recording no
    # failure (no crash loop).
    monkeypatch.setattr(settings, "FROZEN_MEMORY_MB", 1024)
    Space.objects.filter(pk=space.pk).update(sleep_time=0)
    assert converged().stage == Stage.SLEEPING
    Space.objects.filter(pk=space.pk).update(sleep_time=3600)
    wake = proxy.get(space.host, "/")
    assert wake.status_code == 503
    for _ in range(3):
        after = converged()
        assert (after.stage, docker_ids(space.pk)) == (Stage.APP_STARTING, [])
        assert after.stage_message.startswith(queued)
        assert Runtime.objects.get(space=space).failed_target == ""
    api = runtime()
    assert api.stage == "APP_STARTING" and api.raw["errorMessage"].startswith(queued)
    assert (api.hardware, api.requested_hardware) == (None, "t4-small")
    assert queued in requests.get(f"{live.url}/alice/keeper", timeout=10).text
    assert queued in proxy.get(space.host, "/", headers={"X-Spacedock-Poll": "1"}).json()["message"]
    # Back to a CPU flavour, it starts at once.
    alice.request_space_hardware("alice/keeper", "cpu-basic")
    after = converged()
    assert (after.stage, after.stage_message) == (Stage.RUNNING, "")
    assert "again.txt" in app()["data"]
    with pytest.raises(HfHubHTTPError) as in_use:
        alice.delete_bucket("alice/keep")
    assert "is mounted by alice/keeper" in str(in_use.value)

    # An operator who names a GPU this engine cannot give (no NVIDIA runtime here): the request
    # for exactly that GPU reaches the engine, after the old container went first (a GPU flavour
    # never runs two copies side by side), and the engine's refusal is the page's message.
    monkeypatch.setattr(settings, "GPUS", "0:t4")
    host_gpus.cache_clear()
    request.addfinalizer(host_gpus.cache_clear)
    alice.request_space_hardware("alice/keeper", "t4-small")
    after = converged()
    assert (after.stage, docker_ids(space.pk)) == (Stage.RUNTIME_ERROR, [])
    assert 'could not select device driver "nvidia"' in after.stage_message
    assert not GpuAssignment.objects.filter(space=space).exists()  # given back: nothing runs
