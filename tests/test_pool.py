"""The warm interpreter pool against the real Docker engine (runner/pool.py, runner/pool_agent.py).

Two spaces adopt two warm containers of one pool image: each serves only its own files and
environment, runs as the same unprivileged user with the same limits as a container the runner
starts cold, and keeps its secrets out of the container's config, its command line and its log.
"""

import json

import pytest
from django.conf import settings
from gradio_client import Client

from runner import docker_runtime, pool
from runner.backend import Spec
from runner.models import Adoption, Runtime
from runner.pool_agent import READY
from spacedock.labels import LABEL_SPACE, LABEL_WARM
from spacedock.spaces.models import Space
from tests.runner_fixtures import deployed, docker_build, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# What an app sees of itself: its environment, its own file, how Python says it was started, and
# the values huggingface_hub read from the environment at import (OAUTH_CLIENT_ID, HF_HUB_OFFLINE).
APP = """import os, sys
import gradio as gr
import huggingface_hub.constants as hub


def peek(path):
    with open(path) as f:
        text = f.read()
    return {
        "marker": "MARKER", "secret": os.environ.get("MY_SECRET", ""), "file": text,
        "main": __name__, "file_attr": __file__, "argv": sys.argv, "path0": sys.path[0],
        "cwd": os.getcwd(), "uid": os.getuid(), "oauth": hub.OAUTH_CLIENT_ID,
        "offline": hub.HF_HUB_OFFLINE, "space": os.environ.get("SPACE_ID"), "port": os.environ.get("PORT"),
    }


with gr.Blocks() as demo:
    box, out = gr.Textbox(), gr.JSON()
    gr.Button("Peek").click(peek, box, out, api_name="peek")
demo.launch()
"""

# The space's own files, the pool image's label, and the builder's command: what builder/dockerfiles.py
# writes for a space without requirements, on the test SDK image.
ADOPTABLE = """\
FROM {sdk}
COPY --chown=1000:1000 app.py .
LABEL spacedock.pool={sdk}
CMD ["python", "app.py"]
"""


def adoptable_image(images, tmp_path, name: str, marker: str) -> str:
    tag = f"{settings.INSTANCE}-runner-test/pool-{name}:1"
    files = {"app.py": APP.replace("MARKER", marker)}
    return docker_build(tag, ADOPTABLE.format(sdk=images.sdk), files, tmp_path / name)


def spec_for(space, image: str, **limits) -> Spec:
    return Spec(
        space_id=space.pk,
        name_hint=space.subdomain,
        image=image,
        target=f"{image}@{space.generation}",
        generation=space.generation,
        env=space.env(),
        app_port=7860,
        memory_mb=limits.get("memory_mb", 512),
        cpus=limits.get("cpus", 0.5),
        pids=limits.get("pids", 256),
    )


def exec_out(container_id: str, command: str, user: str) -> str:
    found = docker_runtime.client().containers.get(container_id)
    code, out = found.exec_run(["sh", "-c", command], user=user)
    return out.decode("utf-8", "replace")


CGROUP = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max "
    "/sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
)
# What makes a container a space's: the same in an adopted one as in one docker_runtime.run starts.
HOST_CONFIG = ("Memory", "MemorySwap", "NanoCpus", "PidsLimit", "CapDrop", "SecurityOpt", "Init",
               "RestartPolicy", "LogConfig", "ExtraHosts", "Runtime", "NetworkMode", "ReadonlyRootfs",
               "Privileged", "CapAdd")  # fmt: skip


@pytest.fixture
def warm_pool(settings):
    settings.WARM_POOL = True
    settings.WARM_POOL_SIZE = 2
    yield
    settings.WARM_POOL = False
    pool.refill(wait=True)  # no space needs it: every idle container goes
    for container, _ in pool.adopted():
        pool.forget(container.id)


def test_two_spaces_adopt_two_warm_containers_each_sees_only_its_own(
    images, tmp_path, warm_pool, settings, request, monkeypatch
):
    one = deployed("alice", "pool-one", adoptable_image(images, tmp_path, "one", "marker-of-one"))
    two = deployed("bob", "pool-two", adoptable_image(images, tmp_path, "two", "marker-of-two"))
    one.variables.create(key="MY_SECRET", value="secret-of-one-5f2c", is_secret=True)
    two.variables.create(key="MY_SECRET", value="secret-of-two-9a7e", is_secret=True)
    # huggingface_hub reads HF_HUB_OFFLINE at import into a value of its own: this space's app must
    # see "1" as a fresh start would, which the agent gets by starting it afresh.
    two.variables.create(key="HF_HUB_OFFLINE", value="1")
    image_one, image_two = one.deployed_build.image, two.deployed_build.image

    pool.refill()
    idle = wait_for(lambda: _two(pool.idle(images.sdk)), 120, what="a warm pool")
    assert all(READY in docker_runtime.tail(c.id) for c in idle)  # Gradio imported, waiting
    # Idle, they are nobody's: not the runner's space containers, never routed.
    assert not {c.id for c in idle} & {c.id for c in docker_runtime.containers()}
    assert all(LABEL_SPACE not in c.labels and c.labels[LABEL_WARM] == images.sdk for c in idle)

    spec_one = spec_for(one, image_one)
    spec_two = spec_for(two, image_two, memory_mb=768)
    # A container the runner starts cold, for the same space: what an adopted one must match. It
    # inherits the image's spacedock.pool label, and no refill may take it for a pool container.
    cold = docker_runtime.run(spec_for(one, image_one))
    request.addfinalizer(lambda: docker_runtime.remove(cold.id))
    # A stray signal, with no environment file in place, is no adoption: the agent waits on.
    docker_runtime.send_signal(idle[0].id, "SIGUSR1")
    first, second = pool.adopt(spec_one), pool.adopt(spec_two)
    assert first and second and first != second and {first, second} <= {c.id for c in idle}
    assert pool.adopt(spec_for(one, image_one)) is None  # the pool is empty until it refills

    rows = {row.container_id: row for row in Adoption.objects.all()}
    assert rows[first].space_id == one.pk and rows[second].space_id == two.pk
    assert rows[first].labels[LABEL_SPACE] == str(one.pk)
    assert {c.id for c, _ in pool.adopted(one.pk)} == {first}

    views = {}
    for container_id, space in ((first, one), (second, two)):
        port = docker_runtime.published_port(docker_runtime.get(container_id), 7860)
        client = wait_for(lambda port=port: _client(port), 120, every=0.5, what=space.full_name)
        views[space.pk] = client.predict("/home/user/app/app.py", api_name="/peek")

    seen_one, seen_two = views[one.pk], views[two.pk]
    # Each app is its own space's, started as `python app.py` would be.
    assert seen_one["marker"] == "marker-of-one" and "marker-of-one" in seen_one["file"]
    assert seen_two["marker"] == "marker-of-two" and "marker-of-two" in seen_two["file"]
    assert seen_one["secret"] == "secret-of-one-5f2c" and seen_two["secret"] == "secret-of-two-9a7e"
    assert seen_one["space"] == one.full_name and seen_two["space"] == two.full_name
    for seen in (seen_one, seen_two):
        assert seen["main"] == "__main__" and seen["argv"] == ["app.py"] and seen["port"] == "7860"
        assert seen["file_attr"] == "/home/user/app/app.py" and seen["path0"] == "/home/user/app"
        assert seen["cwd"] == "/home/user/app" and seen["uid"] == 1000
    # What huggingface_hub read at import is the space's, not the pool's: rebound in place for one,
    # a fresh interpreter for two.
    assert seen_one["oauth"] == one.env()["OAUTH_CLIENT_ID"] and seen_one["offline"] is False
    assert seen_two["oauth"] == two.env()["OAUTH_CLIENT_ID"] and seen_two["offline"] is True
    assert "starting afresh, HF_HUB_OFFLINE" in docker_runtime.tail(second)
    assert "starting afresh" not in docker_runtime.tail(first)

    # Nothing of the other space anywhere in a container, as the app's user reads it: its processes'
    # environments, its files (root in a container has no capability to read another user's).
    look = "cat /proc/[0-9]*/environ; find /home/user /tmp -type f -exec cat {} +"
    inside_one, inside_two = (
        exec_out(first, look, settings.RUN_USER),
        exec_out(second, look, settings.RUN_USER),
    )
    assert "secret-of-one-5f2c" in inside_one and "marker-of-one" in inside_one
    assert "secret-of-two-9a7e" not in inside_one and "marker-of-two" not in inside_one
    assert "secret-of-two-9a7e" in inside_two and "secret-of-one-5f2c" not in inside_two
    assert "marker-of-one" not in inside_two
    # The environment file is the spaces' user's alone, and no secret is in Docker's view of a
    # container (config, command line) or in its log.
    modes = exec_out(
        first, "stat -c '%U %a' /tmp/spacedock-pool /tmp/spacedock-pool/adopt.json", settings.RUN_USER
    )
    assert modes.split() == ["user", "700", "user", "600"]
    assert "Permission denied" in exec_out(first, "cat /tmp/spacedock-pool/adopt.json", "65534")
    for container_id in (first, second):
        inspected = json.dumps(docker_runtime.get(container_id).attrs)
        logs = docker_runtime.tail(container_id, 200)
        for secret in ("secret-of-one-5f2c", "secret-of-two-9a7e"):
            assert secret not in inspected and secret not in logs

    # The same user and hardening as a cold container, and the space's own limits, set live.
    adopted_one, cold_one = docker_runtime.get(first).attrs, cold.attrs
    assert adopted_one["Config"]["User"] == cold_one["Config"]["User"] == settings.RUN_USER
    for key in HOST_CONFIG:
        assert adopted_one["HostConfig"][key] == cold_one["HostConfig"][key], key
    assert adopted_one["HostConfig"]["PortBindings"]["7860/tcp"][0]["HostIp"] == "127.0.0.1"
    assert docker_runtime.get(second).attrs["HostConfig"]["Memory"] == 768 * 1024 * 1024
    top = docker_runtime.get(first).top(ps_args="-o pid,uid")["Processes"]
    assert {uid for _, uid in top} == {settings.RUN_USER.partition(":")[0]}
    assert docker_runtime.get(first).name.startswith(f"{settings.INSTANCE}-{one.subdomain}-")

    # Gone with its row once removed; the refill warms new ones for the pool, never reusing these.
    pool.refill(wait=True)
    assert docker_runtime.get(cold.id).status == "running"
    fresh = {c.id for c in docker_runtime.pool_containers() if pool.is_idle(c)}
    assert len(fresh) == 2 and not fresh & {first, second}
    # Files over MAX_FILES_MB (a model kept in the repo, say) start cold even with a ready
    # container: adopting would copy them on the visitor's path, where the image has them in place.
    ready = wait_for(lambda: pool.idle(images.sdk), 120, what="a refilled pool")
    monkeypatch.setattr(pool, "MAX_FILES_MB", 0)  # this app's few kB are over it
    assert pool.adopt(spec_one) is None
    assert {c.id for c in pool.idle(images.sdk)} == {c.id for c in ready}  # none was taken
    monkeypatch.undo()
    pool.forget(first)
    assert docker_runtime.get(first) is None and not Adoption.objects.filter(container_id=first).exists()

    # Off by its setting: the next refill empties the pool and a space starts cold, while an
    # adopted container goes on serving its space.
    settings.WARM_POOL = False
    pool.refill(wait=True)
    assert not [c for c in docker_runtime.pool_containers() if pool.is_idle(c)]
    assert pool.plan(spec_one) is None and pool.adopt(spec_one) is None
    assert docker_runtime.get(second).status == "running"


def _two(found: list) -> list:
    return found if len(found) == 2 else []


def _client(port: str):
    try:
        return Client(f"http://127.0.0.1:{port}/", verbose=False)
    except Exception:
        return None


def test_a_deep_sleeping_space_wakes_through_caddy_in_a_warm_container(
    runner, proxy, images, tmp_path, warm_pool, settings, resolve_localhost
):
    """The runner starts a space in a warm container, removes it when the space sleeps deeply (no
    frozen tier), and a visit through Caddy wakes it in another warm one, which gradio_client calls."""
    settings.FROZEN_MEMORY_MB = 0
    settings.WARM_POOL_SIZE = 1
    space = deployed("pia", "warm", adoptable_image(images, tmp_path, "warm", "marker-of-warm"))
    space.variables.create(key="MY_SECRET", value="secret-of-warm-41d0", is_secret=True)
    pool.refill(wait=True)
    wait_for(lambda: pool.idle(images.sdk), 120, what="a warm pool")
    runner.converge()
    space.refresh_from_db()
    first = space.container_id
    assert space.stage == "RUNNING" and Adoption.objects.get(container_id=first).space_id == space.pk
    run_log = "\n".join(space.run_lines.values_list("text", flat=True))
    assert "In a warm pool container" in run_log and "secret-of-warm-41d0" not in run_log
    seen = Client(proxy.url(space), verbose=False).predict("/home/user/app/app.py", api_name="/peek")
    assert seen["marker"] == "marker-of-warm" and seen["secret"] == "secret-of-warm-41d0"
    assert [i.id for i in runner.backend.instances(space.pk)] == [first]

    # Asleep with no frozen tier: deep, its container and its row gone; the pool warms another.
    Space.objects.filter(pk=space.pk).update(sleep_time=0)
    runner.converge()
    space.refresh_from_db()
    assert space.stage == "SLEEPING" and Runtime.objects.get(pk=space.pk).sleep_tier == "deep"
    assert docker_runtime.get(first) is None and not Adoption.objects.filter(container_id=first).exists()
    assert runner.backend.instances(space.pk) == []
    Space.objects.filter(pk=space.pk).update(sleep_time=3600)
    wait_for(lambda: pool.idle(images.sdk), 120, what="the pool refilled")

    visit = proxy.get(space.host, "/")
    assert visit.status_code == 503 and visit.headers["X-Spacedock-Wake"] == "APP_STARTING"
    runner.converge()
    space.refresh_from_db()
    woken = space.container_id
    assert space.stage == "RUNNING" and woken != first and Adoption.objects.get(container_id=woken)
    seen = Client(proxy.url(space), verbose=False).predict("/home/user/app/app.py", api_name="/peek")
    assert seen["marker"] == "marker-of-warm" and seen["secret"] == "secret-of-warm-41d0"
