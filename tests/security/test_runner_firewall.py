"""A runner that cannot install its firewall (hole 6). In production the compose runner had no
NET_ADMIN and the systemd runner was not root: `firewall.ensure()` failed, nobody was told, and
spaces started able to reach the host, private addresses and 169.254.169.254.

The runner here is the real `./manage.py runner`, started without CAP_NET_ADMIN (setpriv takes it
out of its bounding set: what a container without cap_add, or a unit of an unprivileged user,
has). Its iptables fails for real; the operator reads that on /healthz, the owner on the space's
page and in the API, and no container starts, unless the operator turned the firewall off."""

import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from runner import firewall
from spacedock.health.checks import firewall_report_path
from spacedock.spaces.models import RunLogLine
from tests.conftest import ROOT, process_env
from tests.runner_fixtures import deployed, docker_ids, runner_env, wait_for


@pytest.fixture
def runner_without_net_admin(proxy, live, tmp_path):
    """Starts `manage.py runner` without CAP_NET_ADMIN, with settings on top; stops it after."""
    started = []

    def start(**env: str) -> subprocess.Popen:
        log = open(tmp_path / f"runner-{len(started)}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin",
             sys.executable, "manage.py", "runner"],
            cwd=ROOT, env=runner_env(proxy) | env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append((proc, log))
        return proc

    try:
        yield start
    finally:
        for proc, log in started:
            proc.terminate()
            proc.wait(30)
            log.close()
        # The report is the suite's shared one: the next runner that can install the rules rewrites it.
        firewall_report_path().unlink(missing_ok=True)


def healthz(live) -> dict:
    answer = requests.get(f"{live.url}/healthz", timeout=10)
    return {"code": answer.status_code, **answer.json()}


def test_a_runner_that_cannot_install_its_firewall_says_so_and_starts_no_space(
    live, runner_without_net_admin
):
    space = deployed("mallory", "reach-the-host", settings.BASE_IMAGE)
    runner_without_net_admin()

    health = wait_for(lambda: (h := healthz(live))["code"] == 503 and h, 60, what="/healthz to fail")
    assert health["status"] == "failing" and health["checks"]["database"] == "ok"
    said = health["checks"]["firewall"]
    assert "firewall for spaces is not installed" in said and "Permission denied" in said
    assert "CAP_NET_ADMIN" in said and "SPACEDOCK_RUNNER_FIREWALL=false" in said  # what to fix

    def refused():
        runtime = live.api("spaces/mallory/reach-the-host/runtime").json()
        return runtime["stage"] == "RUNTIME_ERROR" and runtime

    runtime = wait_for(refused, 60, what="the space to say why it does not start")
    assert "firewall for spaces is not installed" in runtime["errorMessage"]
    page = requests.get(f"{live.url}/mallory/reach-the-host", timeout=10).text
    assert "firewall for spaces is not installed" in page
    assert docker_ids(space.pk) == []  # no container was ever started
    lines = list(RunLogLine.objects.filter(space=space).values_list("text", flat=True))
    assert not any("Starting" in line for line in lines)
    assert sum(firewall.REFUSED in line for line in lines) == 1  # said once, not on every pass
    result = subprocess.run(
        [sys.executable, "manage.py", "healthcheck", "runner"],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1 and "firewall: failed" in result.stdout


def test_a_firewall_turned_off_on_purpose_is_healthy_and_spaces_start(live, runner_without_net_admin):
    space = deployed("ada", "own-firewall", settings.BASE_IMAGE)
    runner_without_net_admin(SPACEDOCK_RUNNER_FIREWALL="false")

    def started():
        return RunLogLine.objects.filter(space=space, text__contains="Starting").exists()

    wait_for(started, 60, what="the runner to start the space")
    health = healthz(live)
    assert health["code"] == 200 and health["status"] == "ok"
    assert "turned off on purpose (SPACEDOCK_RUNNER_FIREWALL=false)" in health["checks"]["firewall"]
    space.refresh_from_db()
    assert firewall.REFUSED not in space.stage_message


# What Docker gives a container's root by default (moby's oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = (
    "chown dac_override fsetid fowner mknod net_raw setgid setuid setfcap setpcap net_bind_service "
    "sys_chroot kill audit_write"
).split()


def shipped_runner() -> dict[str, list[str]]:
    """The runner's user and capabilities in each shipped deploy, as their files say them."""
    from tests.test_deploy import compose_config

    compose = compose_config()["services"]["runner"]
    unit = (ROOT / "deploy/systemd/spacedock-runner.service").read_text().splitlines()
    value = {k: v for k, _, v in (line.partition("=") for line in unit if "=" in line)}
    return {
        "compose": ["root", *DOCKER_DEFAULT_CAPS, *(c.lower() for c in compose.get("cap_add", []))],
        "systemd": [
            value["User"],
            *(c.lower().removeprefix("cap_") for c in value.get("AmbientCapabilities", "").split()),
        ],
        "compose-without-cap_add": ["root", *DOCKER_DEFAULT_CAPS],
    }


@pytest.mark.parametrize("deploy", ["compose", "systemd", "compose-without-cap_add"])
def test_each_shipped_deploy_gives_the_runner_what_its_firewall_needs(deploy):
    """The rules installed by a process with exactly the user and capabilities that deploy gives the
    runner (an instance name of the test's own, so its chains are the test's and go after)."""
    user, *caps = shipped_runner()[deploy]
    assert user in ("root", "spacedock")
    uid = [] if user == "root" else ["--reuid=65534", "--regid=65534", "--clear-groups"]
    ambient = [] if user == "root" else [f"--ambient-caps=-all,{','.join('+' + c for c in caps)}"]
    instance = f"fwprobe-{deploy}"
    data = Path(tempfile.mkdtemp(prefix="fwprobe-"))  # under /tmp, where the unprivileged user reaches
    data.chmod(0o777)
    env = process_env(SPACEDOCK_INSTANCE=instance, SPACEDOCK_DATA_DIR=str(data), SPACEDOCK_SECRET_KEY="x")
    code = "import django; django.setup(); from runner import firewall; print('PROBLEM', firewall.install())"
    try:
        with override_instance(instance) as bridge:
            result = subprocess.run(
                ["setpriv", *uid, f"--inh-caps=-all,{','.join('+' + c for c in caps)}", *ambient,
                 f"--bounding-set=-all,{','.join('+' + c for c in caps)}", sys.executable, "-c", code],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            problem = result.stdout.partition("PROBLEM ")[2].strip()
            if deploy == "compose-without-cap_add":  # what compose shipped before: the rules never went in
                assert "Permission denied" in problem, result.stdout + result.stderr
            else:
                assert result.returncode == 0 and problem == "", result.stdout + result.stderr
                assert f"-A INPUT -j SD-IN-{bridge}" in subprocess.check_output(["iptables", "-S"], text=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def override_instance(instance: str):
    from runner import docker_runtime

    with override_settings(INSTANCE=instance):
        bridge = docker_runtime.bridge_name()
    try:
        yield bridge
    finally:
        for tool in ("iptables", "ip6tables"):
            into, out = firewall.chains(bridge)
            for hook, chain in (("INPUT", into), ("FORWARD", out)):
                subprocess.run([tool, "-w", "-D", hook, "-j", chain], capture_output=True)
                subprocess.run([tool, "-w", "-F", chain], capture_output=True)
                subprocess.run([tool, "-w", "-X", chain], capture_output=True)
