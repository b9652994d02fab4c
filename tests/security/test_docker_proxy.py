"""The build worker held both engines' root-equivalent sockets while it parsed tenants' git, tar and
YAML (hole 7): a worker that a repository took over could start a privileged container with the
host's `/` mounted. It now reaches the engines only through `manage.py docker_proxy` (the suite's
worker does too, so every build of the suite shows what the proxy lets through).

Each attack below is what a taken-over worker would send through its sockets; the proxy refuses it
with a 403 that says what the worker may do, and the engine never sees it."""

import io
import socket
import subprocess
import sys
import tarfile
import uuid

import docker
import docker.errors
import pytest
from django.conf import settings

from spacedock.labels import LABEL_INSTANCE
from tests.conftest import ROOT, process_env


@pytest.fixture(scope="module")
def engines(docker_proxy) -> dict[str, docker.DockerClient]:
    """The two engines as the worker sees them: the proxy's sockets."""
    return {
        e: docker.DockerClient(base_url=f"unix://{docker_proxy / f'{e}.sock'}") for e in ("build", "runtime")
    }


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(docker.errors.APIError) as caught:
        call(*args, **kwargs)
    assert caught.value.status_code == 403, caught.value
    message = str(caught.value.explanation)
    assert "Spacedock's Docker proxy refuses" in message
    assert "may only build, push and pull through the registry" in message
    return message


@pytest.mark.parametrize("engine", ["runtime", "build"])
def test_a_privileged_container_with_the_hosts_root_is_refused(engines, docker_client, engine):
    name = f"escape-{uuid.uuid4().hex[:8]}"
    message = refused(
        engines[engine].containers.run,
        settings.BASE_IMAGE,
        ["sh", "-c", "chroot /host id"],
        name=name,
        privileged=True,
        volumes={"/": {"bind": "/host", "mode": "rw"}},
        pid_mode="host",
        network_mode="host",
    )
    assert "POST /containers/create" in message
    assert not docker_client.containers.list(all=True, filters={"name": name})


@pytest.mark.parametrize("engine", ["runtime", "build"])
def test_exec_attach_volumes_networks_and_plugins_are_refused(engines, docker_client, engine):
    api = engines[engine].api
    victim = docker_client.containers.list()[:1]  # a running container of anyone's, when there is one
    target = victim[0].id if victim else "0" * 64
    assert "/exec" in refused(api.exec_create, target, ["sh"])
    refused(api.attach, target)  # the SDK reads the container first: refused there already
    refused(api.create_volume, f"steal-{uuid.uuid4().hex[:6]}", driver_opts={"type": "none", "device": "/"})
    refused(api.create_network, f"steal-{uuid.uuid4().hex[:6]}")
    refused(api.plugins)
    refused(api.get_archive, target, "/etc/shadow")


def test_a_build_may_not_leave_the_engines_network_or_limits(engines):
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = f"FROM {settings.BASE_IMAGE}\nRUN true\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    for options, said in (
        ({"network_mode": "host"}, "network"),
        ({"container_limits": {"memory": 64 << 30}}, "memory"),
        ({"extra_hosts": {"registry": "198.18.250.1"}}, "extrahosts"),
        ({"isolation": "hyperv"}, "isolation"),
    ):
        context.seek(0)
        with pytest.raises(docker.errors.APIError) as caught:
            list(engines["build"].api.build(fileobj=context, custom_context=True, tag="x:y", **options))
        assert caught.value.status_code == 403 and said in str(caught.value.explanation), options
    # A build on the runtime engine would see every image there (the platform's, other spaces').
    context.seek(0)
    with pytest.raises(docker.errors.APIError) as caught:
        list(engines["runtime"].api.build(fileobj=context, custom_context=True, tag="x:y"))
    assert caught.value.status_code == 403


def test_the_platforms_images_cannot_be_replaced_removed_or_pulled_over(engines, docker_client):
    runtime = engines["runtime"]
    # Tagging a tenant-built image as the platform's would run it as root at the next restart.
    message = refused(runtime.api.tag, settings.BASE_IMAGE, "spacedock/platform", "latest")
    assert "a tag outside" in message
    assert LABEL_INSTANCE not in (docker_client.images.get(settings.BASE_IMAGE).labels or {})
    assert "not this instance's image" in refused(runtime.api.remove_image, settings.BASE_IMAGE, force=True)
    assert docker_client.images.get(settings.BASE_IMAGE)  # still there
    assert "a pull from outside" in refused(runtime.api.pull, "docker.io/library/busybox", tag="latest")
    assert "a push of" in refused(engines["build"].api.push, "docker.io/evil/stolen", tag="1")
    assert "prune" in refused(runtime.api.prune_images, filters={"dangling": False})


def test_what_builds_need_passes(engines, docker_client, docker_proxy, settings):
    """Builds, pushes and pulls pass (every build of the suite's worker shows it); so do the
    builder's own clean-ups, called here through the proxy as the worker calls them."""
    from builder import docker_build

    assert engines["runtime"].ping() and engines["build"].ping()
    assert engines["build"].images.get(settings.BASE_IMAGE)
    settings.DOCKER_PROXY, settings.DOCKER_PROXY_DIR = True, docker_proxy
    assert docker_build.engine_url("runtime") == f"unix://{docker_proxy / 'runtime.sock'}"
    dockerfile = f"FROM {settings.BASE_IMAGE}\nLABEL {LABEL_INSTANCE}={settings.INSTANCE}\n"
    tag = f"{settings.INSTANCE}-gone:1"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag)
    assert docker_build.space_images(0) == []
    docker_build.prune_dangling()
    assert docker_build.remove_image(tag)
    assert not docker_client.images.list(name=f"{settings.INSTANCE}-gone")


def raw(path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_second_request_on_a_kept_alive_connection_is_checked_too(docker_proxy, docker_client):
    name = f"smuggled-{uuid.uuid4().hex[:8]}"
    body = f'{{"Image": "{settings.BASE_IMAGE}", "HostConfig": {{"Privileged": true}}}}'.encode()
    create = (
        f"POST /containers/create?name={name} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    answer = raw(docker_proxy / "runtime.sock", b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n" + create)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"HTTP/1.1 403 Forbidden" in answer
    # The same request hidden in the body of an allowed one, by framing the engine would read otherwise.
    for framing in (
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding: identity\r\n\r\n",
        "Content-Length: 0\r\nContent-Length: 200\r\n\r\n",
    ):
        answer = raw(
            docker_proxy / "runtime.sock", f"GET /_ping HTTP/1.1\r\nHost: d\r\n{framing}".encode() + create
        )
        assert b"201 Created" not in answer, framing
    # Paths that would reach another route once decoded or cleaned by the engine's router.
    for path in (
        "/images/x/..%2F..%2Fcontainers/create",
        "/v1.41//containers/create",
        "/images/%2E%2E/containers/create",
    ):
        answer = raw(
            docker_proxy / "runtime.sock",
            create.replace(f"/containers/create?name={name}".encode(), path.encode()),
        )
        assert b"403 Forbidden" in answer or answer == b"", path
    assert not docker_client.containers.list(all=True, filters={"name": name})


def test_the_proxys_health_check_pings_both_engines_through_it(docker_proxy):
    result = subprocess.run(
        [sys.executable, "manage.py", "healthcheck", "docker-proxy"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "docker-proxy: ok" in result.stdout, result.stdout + result.stderr


@pytest.mark.fast
def test_the_policy_reads_each_request_as_the_engine_would(settings):
    from spacedock.dockerproxy import policy

    labels = {"ours": {LABEL_INSTANCE: settings.INSTANCE}, "ours/tag": {}, "base": {}}

    def verdict(method: str, target: str, engine: str = "runtime", **headers: str) -> str:
        try:
            request = policy.parse_target(method, target, headers)
            policy.check(request, engine, lambda name: labels.get(name))
            return "ok"
        except policy.Refused as exc:
            return str(exc)

    registry = f"{settings.REGISTRY}/{settings.INSTANCE}/a"
    assert verdict("DELETE", "/v1.41/images/ours") == "ok"
    assert "not this instance's" in verdict("DELETE", "/v1.41/images/ours/tag")  # not "ours"
    assert verdict("POST", f"/v1.41/images/ours/tag?repo={registry}&tag=1") == "ok"
    assert "a tag outside" in verdict("POST", "/v1.41/images/ours/tag?repo=spacedock/platform&tag=latest")
    assert "given 2 times" in verdict("POST", f"/images/ours/tag?repo={registry}&repo=spacedock/platform")
    assert verdict("POST", f"/images/create?fromImage={registry}&tag=sha256:ab") == "ok"
    assert "outside" in verdict("POST", f"/images/create?fromImage={registry}&fromSrc=http://x/rootfs.tar")
    assert verdict("POST", "/v1.41/build?networkmode=default&cgroupparent=&ulimits=null", "build") == "ok"
    assert "cgroup" in verdict("POST", "/v1.41/build?cgroupparent=%2F", "build")
    assert "ulimits" in verdict("POST", "/v1.41/build?ulimits=%5B%7B%7D%5D", "build")
    assert "/build" in verdict("POST", "/v1.41/build")  # not on the runtime engine
    assert "h2c" in verdict("POST", "/session", "build")
    assert verdict("POST", "/session", "build", upgrade="h2c") == "ok"
    assert "/grpc" in verdict("POST", "/grpc", "build", upgrade="h2c")
    assert "malformed" in verdict("GET", "/images/..%2Fcontainers%2Fx/json")
    assert "/containers/x/start" in verdict("POST", "/v1.41/containers/x/start")
