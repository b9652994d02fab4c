"""Builds and spaces reach the public internet only: they reached the cloud metadata address,
private ranges and the host, and `ADD http://127.0.0.1:2019/config/` in a tenant's Dockerfile was
fetched by the engine on the host's loopback (Caddy's admin API, gunicorn's /metrics).

The hosts aimed at are the test's own (see conftest.py); the package index staying reachable is
shown by every Gradio build that installs requirements (tests/test_builder.py)."""

import subprocess
import sys
import uuid

import pytest
import requests
from django.conf import settings

from runner import docker_runtime, firewall
from tests.conftest import wait_until
from tests.security.builds import build_now, docker_repo, log_text
from tests.security.conftest import PROBE


def assert_all_blocked(output: str, hosts) -> None:
    for url, canary in hosts.urls().items():
        assert f"BLOCKED {url}" in output, f"{url} was not refused:\n{output[-3000:]}"
        assert canary not in output


def test_a_build_step_reaches_neither_metadata_nor_private_hosts_nor_the_host(
    live, token_for, make_repo, fake_hosts
):
    # The registry's port on the host's end of the build engine's link is the engine's, not a step's.
    registry = f"http://{settings.BUILD_REGISTRY}/v2/"
    urls = " ".join([*fake_hosts.urls(), registry])
    files = docker_repo(
        f"FROM BASE\nRUN echo {uuid.uuid4().hex}\nCOPY attack.py /attack.py\n"
        f'RUN python3 /attack.py {urls}\nCMD ["sleep", "1"]\n'
    )
    build = build_now(
        live, token_for("mallory"), make_repo({**files, "attack.py": PROBE}), "mallory", "probe"
    )
    assert build.state == "succeeded", build.error
    assert_all_blocked(log_text(build), fake_hosts)
    assert f"BLOCKED {registry}" in log_text(build)


@pytest.mark.parametrize("where", ["loopback", "host-address"])
def test_add_from_the_hosts_own_services_fails(live, token_for, make_repo, fake_hosts, where):
    url = {
        "loopback": f"http://127.0.0.1:{fake_hosts.host_port}/",
        "host-address": f"http://{fake_hosts.host_addresses[0]}:{fake_hosts.host_port}/",
    }[where]
    dockerfile = f'FROM BASE\nADD {url} /stolen\nRUN cat /stolen\nCMD ["sleep", "1"]\n'
    repo = make_repo(docker_repo(dockerfile))
    build = build_now(live, token_for("mallory"), repo, "mallory", f"add-{where}")
    assert build.state == "failed"
    assert f"`ADD {url}` could not be fetched" in build.error, build.error
    assert "Builds reach the public internet only" in build.error
    assert fake_hosts.canaries["host"] not in log_text(build)


def test_add_of_caddys_admin_api_fails(live, token_for, make_repo, proxy):
    # The real Caddy's admin API answers on the host's loopback: the attack would get its config.
    url = f"http://{proxy.admin}/config/"
    assert requests.get(url, timeout=5).status_code == 200
    dockerfile = f'FROM BASE\nADD {url} /caddy.json\nRUN cat /caddy.json\nCMD ["sleep", "1"]\n'
    build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", "caddy")
    assert build.state == "failed"
    assert f"`ADD {url}` could not be fetched" in build.error, build.error
    assert '"apps"' not in log_text(build)


def test_a_running_space_reaches_neither_metadata_nor_private_hosts_nor_the_host(docker_client, fake_hosts):
    assert firewall.ensure(), "the runner could not install its firewall (it runs as root here)"
    output = docker_client.containers.run(
        settings.BASE_IMAGE,
        ["python3", "-c", PROBE, *fake_hosts.urls()],
        network=docker_runtime.ensure_network(),
        user=settings.RUN_USER,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        labels={"spacedock.instance": settings.INSTANCE},
        remove=True,
    ).decode()
    assert_all_blocked(output, fake_hosts)


def test_a_running_space_reaches_the_host_on_the_public_port_only(docker_client, fake_hosts, proxy, tmp_path):
    """The firewall's one door into the host (an app's server signing users in through the
    platform): Caddy's public port. The host's other ports stay shut, be they on every address
    (the fake host service), the web, Caddy's admin API, Postgres or Redis."""
    assert firewall.ensure()
    gateway, port = firewall.gateway(), int(firewall.public_port())
    canary = f"door-canary-{uuid.uuid4().hex}"
    (tmp_path / "index.html").write_text(canary)
    # The suite's Caddy listens on loopback: a stand-in answers on the gateway at its port.
    door = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", gateway, "--directory", str(tmp_path), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(f"http://{gateway}:{port}/", canary), 15, "the stand-in to answer")
        shut = [
            f"http://{gateway}:{fake_hosts.host_port}/",
            f"http://{gateway}:{settings.WEB_PORT}/",
            f"http://{gateway}:{proxy.admin.rpartition(':')[2]}/config/",
            f"http://{gateway}:5432/",
            f"http://{gateway}:6379/",
        ]
        output = docker_client.containers.run(
            settings.BASE_IMAGE,
            ["python3", "-c", PROBE, f"http://{gateway}:{port}/", *shut, *fake_hosts.urls()],
            network=docker_runtime.ensure_network(),
            user=settings.RUN_USER,
            cap_drop=["ALL"],
            labels={"spacedock.instance": settings.INSTANCE},
            remove=True,
        ).decode()
    finally:
        door.terminate()
        door.wait(5)
    assert f"REACHED http://{gateway}:{port}/ {canary}" in output, output
    for url in shut:
        assert f"BLOCKED {url}" in output, output
    assert_all_blocked(output, fake_hosts)


def _answers(url: str, text: str) -> bool:
    try:
        return text in requests.get(url, timeout=2).text
    except requests.RequestException:
        return False


def test_the_egress_allow_list_opens_one_address(docker_client, fake_hosts, settings):
    settings.EGRESS_ALLOW = [f"{fake_hosts.private}/32:80"]
    try:
        assert firewall.ensure()
        output = docker_client.containers.run(
            settings.BASE_IMAGE,
            ["python3", "-c", PROBE, f"http://{fake_hosts.private}/", f"http://{fake_hosts.metadata}/"],
            network=docker_runtime.ensure_network(),
            user=settings.RUN_USER,
            labels={"spacedock.instance": settings.INSTANCE},
            remove=True,
        ).decode()
        assert fake_hosts.canaries["private"] in output
        assert f"BLOCKED http://{fake_hosts.metadata}/" in output
    finally:
        settings.EGRESS_ALLOW = []
        assert firewall.ensure()
