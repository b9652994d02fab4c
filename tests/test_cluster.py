"""The swarm backend on a real three-node Docker Swarm (tests/swarm_lab.py): spaces spread over the
nodes and answer through Caddy; a new version, a drained node and a killed node move them without
losing them (and, but for the killed node, without a failed request); private spaces, sleep and
wake work as on one host."""

import dataclasses
import io
import threading
import time

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from gradio_client import Client
from urllib3.util import Retry

from runner import caddy
from runner.models import Runtime
from runner.reconcile import Runner
from runner.swarm import SwarmBackend
from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import RunLogLine, Space
from tests.runner_fixtures import deployed, publish, runner_loop, wait_for
from tests.swarm_lab import push, swarm_lab  # noqa: F401


@pytest.fixture(scope="module")
def lab_images(images, swarm_lab):  # noqa: F811
    return {"hello": push(images.hello, "lab-hello"), "hello2": push(images.hello2, "lab-hello2")}


@pytest.fixture
def swarm_runner(proxy, live, swarm_lab, monkeypatch):  # noqa: F811
    monkeypatch.setattr(settings, "DRAIN_TIMEOUT", 5)
    # The lab's nodes are small: each space on the default flavour gets 1 GB (reserved by Swarm).
    basic = settings.HARDWARE[settings.HARDWARE_DEFAULT]
    monkeypatch.setitem(settings.HARDWARE, basic.name, dataclasses.replace(basic, memory_mb=1024))
    monkeypatch.setattr(settings, "SWARM_STOP_GRACE", 60)
    the_runner = Runner(
        caddy.Admin(proxy.admin), runner_id="pytest-swarm", runtime=SwarmBackend(swarm_lab.manager.socket)
    )
    yield the_runner
    Space.objects.update(paused=True)
    the_runner.converge(2)
    the_runner.shutdown()
    assert the_runner.backend.instances() == []


class Visitor(threading.Thread):
    """Asks a space for its Gradio config through Caddy, again and again; counts what fails."""

    def __init__(self, proxy, host: str):
        super().__init__(daemon=True)
        self.proxy, self.host = proxy, host
        self.ok, self.failures = 0, []
        self.stop = threading.Event()

    def run(self):
        session = requests.Session()
        # As a browser does (RFC 9112 9.3.1): a GET on a kept-alive connection that Caddy closed as
        # idle at a config load is sent again; a 502 or a cut response still counts as failed.
        retry = Retry(total=2, connect=0, read=2, status=0, other=0, allowed_methods=["GET"])
        session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
        while not self.stop.is_set():
            url = f"http://127.0.0.1:{self.proxy.port}/config"
            try:
                response = session.get(url, headers={"Host": f"{self.host}:{self.proxy.port}"}, timeout=10)
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(response.status_code)
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            time.sleep(0.05)

    def finish(self) -> "Visitor":
        self.stop.set()
        self.join(15)
        return self


def address_of(space: Space) -> str:
    return Runtime.objects.get(space=space).address


def answers(proxy, space: Space) -> bool:
    try:
        return proxy.get(space.host, "/config", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_a_label_no_node_has_says_so(swarm_runner, swarm_lab, lab_images, server, monkeypatch):  # noqa: F811
    space = deployed("grace", "needs-gpu", lab_images["hello"])
    call_command("cluster", "place", space.full_name, "node.labels.gpu==true", stdout=io.StringIO())
    swarm_runner.converge()
    space.refresh_from_db()
    assert space.stage == "RUNTIME_ERROR"
    assert "No node can run it" in space.stage_message and "scheduling constraints" in space.stage_message
    runtime = server.api(f"spaces/{space.full_name}/runtime").json()
    assert "No node can run it" in runtime["errorMessage"]
    assert swarm_runner.backend.instances(space.pk) == []

    # The operator's view: every node, its state and free memory.
    monkeypatch.setattr(settings, "RUNTIME_BACKEND", "swarm")
    monkeypatch.setattr(settings, "SWARM_DOCKER_HOST", swarm_lab.manager.socket)
    out = io.StringIO()
    call_command("cluster", stdout=out)
    for node in swarm_lab.nodes:
        assert f"{node.address} ready/active labels spacedock.lab={node.index}: " in out.getvalue()
    assert out.getvalue().count("MB free of") == 3


def test_spread_swap_drain_and_node_loss(swarm_runner, swarm_lab, lab_images, proxy, resolve_localhost):  # noqa: F811
    spaces = [deployed("ada", f"app{i}", lab_images["hello"]) for i in range(3)]
    swarm_runner.converge()
    for space in spaces:
        space.refresh_from_db()
        assert space.stage == "RUNNING", space.stage_message
        assert answers(proxy, space)
    # Swarm spreads them: one per node.
    placed = {space.pk: address_of(space) for space in spaces}
    assert sorted(placed.values()) == sorted(n.address for n in swarm_lab.nodes)
    client = Client(proxy.url(spaces[0]), verbose=False)
    assert client.predict("Ada", api_name="/predict") == "Hello, Ada!"

    # The operator drains node 3: its space moves, no request fails.
    drained = swarm_lab.nodes[2]
    moved = next(s for s in spaces if address_of(s) == drained.address)
    visitor = Visitor(proxy, moved.host)
    visitor.start()
    started = time.monotonic()
    swarm_lab.drain(drained)
    with runner_loop(swarm_runner):
        wait_for(lambda: address_of(moved) not in ("", drained.address), 120, what="the space off node 3")
        drain_seconds = time.monotonic() - started
        time.sleep(2)
    visitor.finish()
    assert visitor.failures == [] and visitor.ok > 20, (visitor.failures[:5], visitor.ok)

    # Node 2's engine is killed (kill -9, its containers with it): its spaces come back elsewhere.
    victim = swarm_lab.nodes[1]
    lost = [s for s in spaces if address_of(s) == victim.address]
    assert lost
    started = time.monotonic()
    swarm_lab.kill(victim)
    with runner_loop(swarm_runner):
        for space in lost:
            wait_for(
                lambda s=space: address_of(s) not in ("", victim.address) and answers(proxy, s),
                180,
                what="the space back on a live node",
            )
        recovered_seconds = time.monotonic() - started
    # The bound: Swarm marks the node down after a few missed heartbeats (2 s here), then a
    # successor starts (a Gradio app: seconds); measured 21-45 s on a shared 2-core machine.
    assert recovered_seconds < 120
    for space in spaces:
        space.refresh_from_db()
        assert space.stage == "RUNNING", space.stage_message
        assert answers(proxy, space)
        assert address_of(space) == swarm_lab.manager.address  # the only node left active

    # A code-only push (on the one node left): the new version starts beside the old one, no request fails.
    visitor = Visitor(proxy, spaces[0].host)
    visitor.start()
    with runner_loop(swarm_runner):
        publish(spaces[0], lab_images["hello2"])
        wait_for(
            lambda: Space.objects.get(pk=spaces[0].pk).running_image == lab_images["hello2"],
            120,
            what="the new version live",
        )
        time.sleep(2)
    visitor.finish()
    assert visitor.failures == [] and visitor.ok > 20, (visitor.failures[:5], visitor.ok)
    assert Client(proxy.url(spaces[0]), verbose=False).predict("Ada", api_name="/predict") == "Howdy, Ada!"

    # Private, asleep, woken by a reader's visit: as on one host.
    napper = spaces[1]
    Space.objects.filter(pk=napper.pk).update(visibility="private")
    swarm_runner.sync_proxy()
    _, token = AccessToken.issue(napper.owner, "test")
    reader = {"Authorization": f"Bearer {token}"}
    assert proxy.get(napper.host, "/config").status_code == 403
    assert proxy.get(napper.host, "/config", headers=reader).status_code == 200
    Space.objects.filter(pk=napper.pk).update(sleep_time=0)  # idle past it at once: no wait on a timer
    swarm_runner.converge()
    napper.refresh_from_db()
    assert napper.stage == "SLEEPING" and swarm_runner.backend.instances(napper.pk) == []
    page = proxy.get(napper.host, "/", headers=reader)
    assert page.status_code == 503 and "waking up" in page.text
    Space.objects.filter(pk=napper.pk).update(sleep_time=3600)
    swarm_runner.converge()
    assert proxy.get(napper.host, "/config", headers=reader).status_code == 200
    assert proxy.get(napper.host, "/config").status_code == 403

    said = RunLogLine.objects.filter(space=lost[0], text__contains="elsewhere").exists() or (
        RunLogLine.objects.filter(space=lost[0], text__contains="Moved to").exists()
    )
    assert said, "the space's run log says it moved"
    print(f"\ncluster: drain moved a space in {drain_seconds:.1f} s; a killed node's spaces answered again "
          f"after {recovered_seconds:.1f} s")  # fmt: skip
