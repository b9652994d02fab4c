"""Images, Caddy and runner for the runner's tests.

The runner's own tests build their images here with the Docker CLI, as the builder does (BuildKit,
the offline base image, the host's CA bundle and pip settings passed in), so they exercise the
runner without a worker. Spaces get them through `Build.start()` / `Build.succeed(image)`, the
builder's contract; tests that need the whole path push and build for real instead.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User

from runner import caddy
from runner.reconcile import Runner
from spacedock.spaces.models import Build, Deployment, Space
from tests.conftest import ROOT, free_port, process_env, wait_until

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"

GRADIO_DOCKERFILE = """\
FROM {base}
RUN python3 -m venv /opt/venv
RUN --mount=type=secret,id=ca,target=/run/host-ca.crt \\
    PIP_CERT=/run/host-ca.crt /opt/venv/bin/pip install --no-cache-dir gradio=={gradio}
RUN useradd -m -u 1000 user
ENV PATH=/opt/venv/bin:$PATH GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 GRADIO_ANALYTICS_ENABLED=False
WORKDIR /home/user/app
USER 1000
"""

APP_DOCKERFILE = """\
FROM {sdk}
COPY --chown=1000:1000 app.py .
CMD ["{python}", "app.py"]
"""

GREETER = """import time

import gradio as gr


def predict(name):
    return "{greeting}, " + name + "!"


def count(n):
    for i in range(int(n)):
        time.sleep(0.3)
        yield str(i)


with gr.Blocks() as demo:
    box, out = gr.Textbox(), gr.Textbox()
    gr.Button("Greet").click(predict, box, out, api_name="predict")
    gr.Button("Count").click(count, box, out, api_name="count")
demo.launch()
"""

# Not Gradio: starts at once, which keeps the failure tests short.
CRASHES = 'print("loading the model", flush=True)\nraise SystemExit("boom: the model file is missing")\n'
NEVER_LISTENS = 'import time\nprint("warming up forever", flush=True)\nwhile True:\n    time.sleep(1)\n'
CRASHES_LATER = """import http.server, os, sys, threading, time
threading.Thread(target=lambda: (time.sleep(3), print("segfault-ish", flush=True), os._exit(3))).start()
http.server.ThreadingHTTPServer(("0.0.0.0", 7860), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def docker_build(tag: str, dockerfile: str, files: dict[str, str], workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (workdir / name).write_text(text)
    result = subprocess.run(
        [DOCKER, "build", "--network", "host", "--label", f"spacedock.instance={settings.INSTANCE}",
         "--secret", "id=ca,src=/etc/ssl/certs/ca-certificates.crt", "-t", tag, str(workdir)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"docker build {tag} failed:\n{result.stderr[-3000:]}")
    return tag


@dataclass
class Images:
    sdk: str
    hello: str
    hello2: str
    crashes: str
    never_listens: str
    crashes_later: str


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> Images:
    return build_images(tmp_path_factory.mktemp("images"))


def build_images(work: Path) -> Images:
    prefix = f"{settings.INSTANCE}-runner-test"
    sdk = docker_build(
        f"{prefix}/gradio:{settings.DEFAULT_GRADIO_VERSION}",
        GRADIO_DOCKERFILE.format(base=settings.BASE_IMAGE, gradio=settings.DEFAULT_GRADIO_VERSION),
        {},
        work / "sdk",
    )

    def app(tag: str, source: str, base: str = sdk, python: str = "python") -> str:
        dockerfile = APP_DOCKERFILE.format(sdk=base, python=python)
        return docker_build(f"{prefix}/{tag}", dockerfile, {"app.py": source}, work / tag)

    plain = docker_build(
        f"{prefix}/plain:1",
        f"FROM {settings.BASE_IMAGE}\nRUN useradd -m -u 1000 user\nWORKDIR /home/user\nUSER 1000\n",
        {},
        work / "plain",
    )
    return Images(
        sdk=sdk,
        hello=app("hello:v1", GREETER.format(greeting="Hello")),
        hello2=app("hello:v2", GREETER.format(greeting="Howdy")),
        crashes=app("crashes:1", CRASHES, plain, "python3"),
        never_listens=app("never:1", NEVER_LISTENS, plain, "python3"),
        crashes_later=app("later:1", CRASHES_LATER, plain, "python3"),
    )


@dataclass
class Proxy:
    port: int
    admin: str
    access_log: Path
    proc: subprocess.Popen

    def get(self, host: str, path: str = "/", **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        headers = {"Host": f"{host}:{self.port}", **kwargs.pop("headers", {})}
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, **kwargs)

    def url(self, space: Space) -> str:
        return f"http://{space.host}:{self.port}/"


def start_caddy(admin: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "caddy"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env=process_env(SPACEDOCK_CADDY_ADMIN=admin),
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://{admin}/config/", timeout=1)
            return proc
        except requests.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"caddy exited:\n{log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    raise RuntimeError("caddy's admin API did not answer")


@pytest.fixture(scope="session")
def proxy(server, tmp_path_factory) -> Proxy:
    """A real Caddy, configured by the runner; settings point this process's runner at it."""
    work = tmp_path_factory.mktemp("caddy")
    admin = f"127.0.0.1:{free_port()}"
    port = settings.PORT  # what space URLs name, in this process and in gunicorn
    settings.CADDY_ADMIN = admin
    settings.LISTEN = f"127.0.0.1:{port}"
    settings.WEB_PORT = server.port
    settings.CADDY_ACCESS_LOG = work / "access.log"
    the_proxy = Proxy(
        port=port, admin=admin, access_log=work / "access.log", proc=start_caddy(admin, work / "caddy.log")
    )
    try:
        yield the_proxy
    finally:
        # A test may have killed Caddy and started another: stop the one running now.
        the_proxy.proc.terminate()
        the_proxy.proc.wait(10)


def runner_env(proxy: Proxy) -> dict:
    return process_env(
        SPACEDOCK_CADDY_ADMIN=proxy.admin,
        SPACEDOCK_LISTEN=f"127.0.0.1:{proxy.port}",
        SPACEDOCK_WEB_PORT=str(settings.WEB_PORT),
        SPACEDOCK_CADDY_ACCESS_LOG=str(proxy.access_log),
        SPACEDOCK_RUNNER_INTERVAL="0.5",
        SPACEDOCK_DRAIN_TIMEOUT="5",
    )


@pytest.fixture
def runner(proxy, live):
    """The runner's reconcile, in this process; `runner.converge()` runs passes until done."""
    settings.DRAIN_TIMEOUT = 5
    the_runner = Runner(caddy.Admin(proxy.admin), runner_id="pytest")
    yield the_runner
    # Retire what the test left: pause everything (pins and previews go with their rows), converge.
    Deployment.objects.all().delete()
    Space.objects.update(paused=True)
    the_runner.converge(2)
    the_runner.shutdown()


@contextmanager
def runner_loop(the_runner: Runner):
    """The runner's loop in a thread, as `./manage.py runner` runs it, for tests that wait on it."""
    stop = threading.Event()

    def run():
        from django.db import connection

        try:
            while not stop.is_set():
                the_runner.tick(wait=True)
                time.sleep(0.3)
        finally:
            connection.close()

    loop = threading.Thread(target=run)
    loop.start()
    try:
        yield
    finally:
        stop.set()
        loop.join()


@pytest.fixture
def resolve_localhost(monkeypatch):
    """Python does not resolve *.localhost here; browsers and curl do."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def deployed(owner: str, name: str, image: str, **fields) -> Space:
    user, _ = User.objects.get_or_create(username=owner)
    space = Space.objects.filter(owner=user, name=name).first() or Space.create(
        user, name, sdk="gradio", **fields
    )
    return publish(space, image)


def publish(space: Space, image: str) -> Space:
    """What the builder does at the end of a successful build."""
    build = Build.objects.create(space=space, commit_sha=os.urandom(20).hex())
    assert build.start()
    build.succeed(image)
    space.refresh_from_db()
    return space


def wait_for(condition, seconds: float = 60, every: float = 0.25, what="condition"):
    """conftest's wait_until, with the argument order the runner's tests use."""
    return wait_until(condition, seconds, what, every)


def docker_ids(space_id: int) -> list[str]:
    out = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"label=spacedock.instance={settings.INSTANCE}",
         "--filter", f"label=spacedock.space={space_id}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()


def cgroup_memory(container_id: str) -> int:
    """The bytes a container's memory cgroup holds, read from the cgroup's own file (cgroup v1 or v2,
    the cgroupfs or the systemd driver), not from the engine; 0 when there is none (it is gone)."""
    for path in (
        f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes",
        f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/memory.usage_in_bytes",
        f"/sys/fs/cgroup/docker/{container_id}/memory.current",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.current",
    ):
        try:
            return int(Path(path).read_text())
        except FileNotFoundError:
            continue
    return 0
