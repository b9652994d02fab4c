"""Faults of the running side: the runner killed mid-deploy, Caddy killed, dockerd restarted,
an app past its memory limit, and a fork bomb. The real `./manage.py runner` process drives
the suite's Caddy; apps are pushed with git and built by the real worker.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from spacedock.spaces.models import Space
from tests.conftest import ROOT, wait_until
from tests.faults.helpers import assert_platform_sound, docker_space
from tests.runner_fixtures import Proxy, runner_env, start_caddy

START_SECONDS = 180


@dataclass
class Stack:
    proxy: Proxy
    runner: subprocess.Popen
    log: Path

    @property
    def proxy_port(self) -> int:
        return self.proxy.port

    def get(self, space: Space, path: str = "/", **kwargs) -> requests.Response:
        return self.proxy.get(space.host, path, timeout=10, **kwargs)

    def get_or_none(self, space: Space) -> requests.Response | None:
        try:
            return self.get(space)
        except requests.ConnectionError:
            return None

    def restart_runner(self) -> None:
        self.runner = _start_runner(self.log, self.proxy)


def _start_runner(log: Path, proxy: Proxy) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "runner"],
            cwd=ROOT, env=runner_env(proxy), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def stack(live, worker, proxy, tmp_path) -> Stack:
    log = tmp_path / "runner.log"
    stack = Stack(proxy=proxy, runner=_start_runner(log, proxy), log=log)
    yield stack
    # Retire this test's spaces before the runner goes: nothing may outlive the test.
    Space.objects.update(paused=True)
    wait_until(lambda: not Space.objects.exclude(container_id="").exists(), 120, "the spaces to stop")
    if stack.runner.poll() is None:
        os.killpg(stack.runner.pid, signal.SIGTERM)
        stack.runner.wait(30)


def stage(live, space: Space) -> dict:
    return live.api(f"spaces/{space.full_name}/runtime").json()


def running(live, stack: Stack, space: Space, seconds: float = START_SECONDS) -> None:
    wait_until(lambda: stage(live, space)["stage"] == "RUNNING", seconds, f"{space} to run")
    wait_until(
        lambda: (r := stack.get_or_none(space)) and r.status_code == 200,
        60,
        f"{space} to answer through Caddy",
    )


def containers_of(docker_client, space: Space) -> list:
    return [
        c
        for c in docker_client.containers.list(
            all=True, filters={"label": f"spacedock.instance={settings.INSTANCE}"}
        )
        if c.labels.get("spacedock.space") == str(space.pk)
    ]


# Answers at once: where any app that answers will do, a Gradio app's slow start buys nothing.
QUICK_DOCKERFILE = 'FROM BASE\nCMD ["python3", "-m", "http.server", "8000"]\n'


def pushed_space(
    live, token_for, make_repo, name: str, app: str | None = None, files: dict[str, str] | None = None
) -> Space:
    from tests.conftest import HELLO_APP, HELLO_README

    repo = make_repo(files or {"README.md": HELLO_README, "app.py": app or HELLO_APP})
    assert repo.push(live.git_url("alice", name, token_for("alice"))).returncode == 0
    return Space.objects.get(name=name)


def test_runner_killed_mid_deploy_converges_when_it_is_back(live, stack, token_for, make_repo, docker_client):
    space = pushed_space(live, token_for, make_repo, "deploy")
    wait_until(lambda: stage(live, space)["stage"] in ("APP_STARTING", "RUNNING"), 300, "the deploy to start")
    os.killpg(stack.runner.pid, signal.SIGKILL)
    stack.runner.wait(10)
    stack.restart_runner()
    running(live, stack, space)
    assert len([c for c in containers_of(docker_client, space) if c.status == "running"]) == 1
    assert len(containers_of(docker_client, space)) == 1, "the half-started container was not cleaned up"
    assert "Hello, Ada" in stack.get(space, "/gradio_api/info").text or stack.get(space).status_code == 200
    assert_platform_sound(live, docker_client)


def test_caddy_killed_is_restarted_and_routes_come_back(live, stack, token_for, make_repo, docker_client):
    space = pushed_space(live, token_for, make_repo, "routes", files=docker_space(QUICK_DOCKERFILE))
    running(live, stack, space)
    stack.proxy.proc.kill()
    stack.proxy.proc.wait()
    assert stack.get_or_none(space) is None
    # The process manager (systemd, compose, honcho's restart) starts it again, empty.
    stack.proxy.proc = start_caddy(stack.proxy.admin, stack.log.with_name("caddy.log"))
    wait_until(
        lambda: (r := stack.get_or_none(space)) and r.status_code == 200,
        90,
        "the route to come back after Caddy was killed",
    )
    assert stage(live, space)["stage"] == "RUNNING"
    assert_platform_sound(live, docker_client)


def test_dockerd_restarted_spaces_come_back(live, stack, token_for, make_repo, docker_client):
    """Restarts the machine's Docker engine: every container on it stops. Run on a CI machine."""
    space = pushed_space(live, token_for, make_repo, "engine")
    running(live, stack, space)
    pid = int(Path("/var/run/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 60, "dockerd to stop")
    subprocess.run(["bash", str(ROOT / "deploy" / "docker-engine.sh")], check=True, timeout=180)
    running(live, stack, space, 300)
    assert len(containers_of(docker_client, space)) == 1
    assert_platform_sound(live, docker_client)


OOM_APP = """import gradio as gr

hog = []


def eat(megabytes):
    for _ in range(int(megabytes)):
        hog.append(bytearray(1024 * 1024))
    return f"holding {len(hog)} MB"


gr.Interface(eat, "number", "text", api_name="eat").launch()
"""


def test_an_app_past_its_memory_limit_is_reported_as_oom(live, stack, token_for, make_repo, docker_client):
    from gradio_client import Client

    space = pushed_space(live, token_for, make_repo, "hog", OOM_APP)
    Space.objects.filter(pk=space.pk).update(memory_limit_mb=300)
    space.request_restart()
    running(live, stack, space)
    url = f"http://127.0.0.1:{stack.proxy_port}"
    with pytest.raises(Exception):  # noqa: B017 - the connection dies with the app; its type varies
        Client(url, headers={"Host": space.host}, verbose=False).predict(2000, api_name="/eat")
    runtime = wait_until(
        lambda: (r := stage(live, space))["stage"] == "RUNTIME_ERROR" and r, 60, "the OOM to be reported"
    )
    assert "memory" in runtime["errorMessage"].lower() and "300" in runtime["errorMessage"]
    page = requests.get(f"{live.url}/alice/hog", timeout=10).text
    assert "out of memory" in page.lower() or "memory limit" in page.lower()
    assert_platform_sound(live, docker_client)


FORK_BOMB_APP = """import os
import threading
import gradio as gr


def bomb():
    while True:
        try:
            os.fork()
        except OSError:
            pass


threading.Thread(target=bomb, daemon=True).start()
gr.Interface(lambda x: x, "text", "text").launch()
"""


def test_a_fork_bomb_is_held_by_the_pids_limit(live, stack, token_for, make_repo, docker_client):
    calm = pushed_space(live, token_for, make_repo, "calm", files=docker_space(QUICK_DOCKERFILE))
    running(live, stack, calm)
    bomb = pushed_space(live, token_for, make_repo, "bomb", FORK_BOMB_APP)
    Space.objects.filter(pk=bomb.pk).update(cpu_limit=0.5, pids_limit=256)

    def gone_off():
        for container in containers_of(docker_client, bomb):
            container.reload()
            if container.status == "running" and len(container.top()["Processes"]) >= 200:
                return container
        return None

    container = wait_until(gone_off, START_SECONDS, "the bomb to go off")
    time.sleep(5)
    # The machine and the other space are fine; the bomb's container stays within its limit.
    assert requests.get(f"{live.url}/healthz", timeout=10).status_code == 200
    assert stack.get(calm).status_code == 200
    container.reload()
    assert container.attrs["HostConfig"]["PidsLimit"] == 256
    assert len(container.top()["Processes"]) <= 256
    assert_platform_sound(live, docker_client)
