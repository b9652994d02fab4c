"""The production deploy: the compose file validates, the platform image builds from the offline
base image and serves, and the Procfile (`make up`) runs the same processes natively."""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings

from tests.conftest import ROOT, free_port, wait_until

PLATFORM = {"web", "worker", "beat", "runner", "caddy", "registry", "docker-proxy"}


def compose_config() -> dict:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is missing: `make test` installs it (apt-get install docker-compose)"
    result = subprocess.run(
        [compose, "-f", "docker-compose.yml", "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "SPACEDOCK_ENV_FILE": "deploy/env.example", "POSTGRES_PASSWORD": "x"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_validates_and_keeps_the_docker_socket_to_runner_and_docker_proxy():
    services = compose_config()["services"]
    assert set(services) == PLATFORM | {"postgres", "redis"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        mounts = [
            v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service.get("volumes", [])
        ]
        has_socket = any("docker.sock" in m for m in mounts)
        assert has_socket == (name in ("runner", "docker-proxy")), name
        if name != "beat":
            assert service["healthcheck"]["test"], name
    for name in ("web", "worker", "runner"):
        assert "healthcheck" in " ".join(services[name]["healthcheck"]["test"])
    assert services["web"]["user"] == "spacedock"
    # The worker parses tenants' repositories: not root, no socket, the proxy's in the data volume.
    assert services["worker"]["user"] == "spacedock"
    assert services["docker-proxy"]["environment"]["SPACEDOCK_DOCKER_PROXY_GROUP"] == "spacedock"
    assert services["web"]["environment"]["SPACEDOCK_DATA_DIR"] == "/var/lib/spacedock/data"
    assert "spacedock-data:/var/lib/spacedock/data" in " ".join(
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in services["worker"]["volumes"]
    )
    # The platform and the spaces on separate domains, TLS on demand, asked of the platform.
    env = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "env.example").read_text().splitlines()
        if "=" in line
    )
    assert env["SPACEDOCK_DOMAIN"] != env["SPACES_DOMAIN"]
    assert not env["SPACES_DOMAIN"].endswith(env["SPACEDOCK_DOMAIN"])
    compose_env = services["web"]["environment"]
    assert compose_env["SPACEDOCK_LISTEN"] == ":443" and compose_env["SPACEDOCK_WEB_PORT"] == "8000"


@pytest.mark.fast
def test_production_caddy_config_is_valid_and_asks_the_platform(settings, tmp_path):
    """What the runner loads into Caddy on a TLS host: on-demand certificates, asked of /tls/ask."""
    from runner import caddy as runner_caddy

    settings.TLS_MODE, settings.LISTEN, settings.WEB_PORT = "on-demand", ":443", 8000
    settings.DOMAIN, settings.SPACES_DOMAIN = "dock.example.org", "spaces.example.net"
    config = runner_caddy.config([])
    permission = config["apps"]["tls"]["automation"]["on_demand"]["permission"]
    assert permission["endpoint"] == "http://127.0.0.1:8000/tls/ask"
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "caddy"), "validate", "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Valid configuration" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def platform_image(docker_client) -> str:
    """The platform image, built once per run from the offline base image (layers are cached)."""
    tag = f"{settings.INSTANCE}-platform:test"
    result = subprocess.run(
        [
            "/usr/bin/docker", "build", "--file", "deploy/Dockerfile", "--tag", tag,
            "--build-arg", f"BASE_IMAGE={settings.BASE_IMAGE}",
            "--label", f"spacedock.instance={settings.INSTANCE}",
            "--secret", f"id=ca,src={settings.BUILD_CA_BUNDLE}", "--progress=plain", ".",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tag


def test_platform_image_builds_from_the_base_image_and_serves(platform_image, docker_client, tmp_path):
    image = docker_client.images.get(platform_image)
    base_layers = docker_client.images.get(settings.BASE_IMAGE).attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    tools = docker_client.containers.run(
        platform_image,
        ["sh", "-c", "git --version && docker --version && caddy version && celery --version"],
        remove=True, network_disabled=True,
    ).decode()  # fmt: skip
    assert "git version" in tools and "Docker version" in tools and "v2." in tools
    # The CA given to pip during the build is in no layer.
    assert not any("proxy-ca" in str(h.get("CreatedBy", "")) and "COPY" in str(h) for h in image.history())

    port = free_port()
    web = docker_client.containers.run(
        platform_image, ["web"], detach=True, network_mode="host",
        environment={"SPACEDOCK_BIND": f"127.0.0.1:{port}", "SPACEDOCK_SECRET_KEY": "test"},
        labels={"spacedock.instance": settings.INSTANCE},
    )  # fmt: skip
    try:
        answer = wait_until(
            lambda: _get(f"http://127.0.0.1:{port}/healthz"), 120, "the image's web to answer"
        )
        assert answer.json()["status"] == "ok"
        health = web.exec_run(
            ["python", "manage.py", "healthcheck", "web", "--url", f"http://127.0.0.1:{port}/healthz"]
        )
        assert health.exit_code == 0, health.output
        assert web.exec_run("id -un").output.decode().strip() == "root"  # compose sets user: spacedock
    finally:
        web.remove(force=True)


def _get(url: str):
    try:
        answer = requests.get(url, timeout=3)
        return answer if answer.status_code == 200 else None
    except requests.RequestException:
        return None


def test_make_up_processes_run_natively(tmp_path):
    """The Procfile that `make up` starts, with the same settings: web answers, the worker pings."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        SPACEDOCK_DATA_DIR=str(tmp_path / "data"),
        SPACEDOCK_PORT=str(port),
        SPACEDOCK_INSTANCE=settings.INSTANCE,
        # A registry of its own: the suite's already listens at the address the suite set.
        SPACEDOCK_REGISTRY=f"127.0.0.1:{free_port()}",
    )
    venv = Path(sys.executable).parent
    env["PATH"] = f"{venv}:{env['PATH']}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = tmp_path / "honcho.log"
    procfile = tmp_path / "Procfile"
    procfile.write_text((ROOT / "Procfile").read_text().replace(".venv/bin/", f"{venv}/"))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(venv / "honcho"), "start", "--procfile", str(procfile), "--app-root", str(ROOT)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        answer = wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz"), 90, "make up's web")
        checks = answer.json()["checks"]
        assert answer.json()["status"] == "ok" and checks["database"] == checks["broker"] == "ok"

        def worker_answers():
            check = subprocess.run(
                [sys.executable, "manage.py", "healthcheck", "worker", "--timeout", "2"],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )  # fmt: skip
            return check.returncode == 0 and check.stdout

        assert "worker: ok" in wait_until(worker_answers, 90, "make up's worker to answer a ping", every=2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.5)


def test_compose_worker_reaches_the_engines_only_through_docker_proxy(platform_image, docker_client):
    """As docker-compose.yml runs them: docker-proxy as root with both sockets, the worker as
    `spacedock` with the data volume alone. The worker pings both engines through the proxy's
    sockets, and a privileged container asked for through them is refused."""
    compose = compose_config()["services"]
    assert compose["docker-proxy"]["command"] == ["docker-proxy"]
    volume = docker_client.volumes.create(labels={"spacedock.instance": settings.INSTANCE})
    data = {volume.name: {"bind": "/var/lib/spacedock/data", "mode": "rw"}}
    env = {"SPACEDOCK_SECRET_KEY": secrets.token_urlsafe(48), "SPACEDOCK_INSTANCE": settings.INSTANCE}
    build_socket = "/run/spacedock-build/docker.sock"
    proxy = docker_client.containers.run(
        platform_image, ["docker-proxy"], detach=True, network_mode="host",
        environment={**compose["docker-proxy"]["environment"], **env},
        volumes={**data, "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                 build_socket: {"bind": build_socket, "mode": "rw"}},
        labels={"spacedock.instance": settings.INSTANCE},
    )  # fmt: skip
    escape = (
        "import docker\n"
        "c = docker.DockerClient(base_url='unix:///var/lib/spacedock/data/run/docker-proxy/runtime.sock')\n"
        "try:\n    c.containers.run('busybox', 'id', privileged=True, volumes={'/': {'bind': '/host'}})\n"
        "except docker.errors.APIError as e:\n    print(e.status_code, e.explanation)\n"
    )

    def as_worker(*command: str) -> str:
        return docker_client.containers.run(
            platform_image, list(command), user=compose["worker"]["user"], network_mode="host",
            environment=env, volumes=data, remove=True, labels={"spacedock.instance": settings.INSTANCE},
        ).decode()  # fmt: skip

    try:

        def pings():
            try:
                return "docker-proxy: ok" in as_worker("python", "manage.py", "healthcheck", "docker-proxy")
            except Exception:  # not listening yet: the container exits 1
                return False

        wait_until(pings, 60, lambda: f"the proxy's sockets to answer the worker:\n{proxy.logs().decode()}")
        assert as_worker("id", "-un").strip() == "spacedock"
        listing = as_worker("sh", "-c", "ls /var/run/docker.sock /run/spacedock-build 2>&1 || true")
        assert listing.count("No such") == 2, listing  # no socket of its own
        refused = as_worker("python", "-c", escape)
        assert refused.startswith("403") and "refuses POST /containers/create" in refused, refused
    finally:
        proxy.remove(force=True)
        volume.remove(force=True)
