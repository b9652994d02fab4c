"""/healthz, /metrics and `manage.py healthcheck`, against real processes."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import User
from django.utils import timezone

from spacedock.health import checks
from spacedock.health.models import Counter
from spacedock.spaces.models import Build, Space
from tests.conftest import ROOT, free_port, process_env, wait_for_http


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "healthcheck", *args],
        cwd=ROOT, env=process_env(**env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_healthz_says_ok_with_its_checks(live):
    answer = requests.get(f"{live.url}/healthz", timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["checks"]["database"] == body["checks"]["broker"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "firewall"}
    assert "no-cache" in answer.headers["Cache-Control"]
    assert healthcheck("web", "--url", f"{live.url}/healthz").returncode == 0


def test_healthz_fails_when_the_database_is_gone(db, tmp_path):
    """A web process whose database does not answer says so with a 503, and names the check."""
    port, dead = free_port(), free_port()
    with open(tmp_path / "gunicorn.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "spacedock.wsgi", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=process_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{dead}/nothing"),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc)
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "failing" and body["checks"]["broker"] == "ok"
        assert body["checks"]["database"].startswith("failed: OperationalError")
        result = healthcheck("web", "--url", f"http://127.0.0.1:{port}/healthz")
        assert result.returncode == 1 and "503" in result.stdout
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.fast
def test_healthz_reports_the_runners_firewall(client, db, settings, tmp_path):
    """What the runner last said of its firewall (runner/firewall.py); a missing one fails /healthz.
    A real runner without CAP_NET_ADMIN: tests/security/test_runner_firewall.py."""
    from runner import firewall

    settings.DATA_DIR = tmp_path
    answer = client.get("/healthz")
    assert answer.status_code == 200 and "not reported yet" in answer.json()["checks"]["firewall"]
    for status, message in (("ok", "ok"), ("off", "turned off on purpose")):
        firewall._report(status, message)
        answer = client.get("/healthz")
        assert answer.status_code == 200 and answer.json()["checks"]["firewall"] == message
    firewall._report("failing", "the firewall for spaces is not installed (iptables: denied): fix it")
    answer = client.get("/healthz")
    assert answer.status_code == 503 and answer.json()["status"] == "failing"
    assert answer.json()["checks"]["firewall"] == (
        "failed: RuntimeError: the firewall for spaces is not installed (iptables: denied): fix it"
    )


def metric_lines(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.mark.fast
def test_metrics_count_builds_durations_spaces_and_wakes(client, db):
    owner = User.objects.create(username="ada")
    running = Space.create(owner, "up", stage="RUNNING")
    Space.create(owner, "down", stage="BUILD_ERROR")
    Space.objects.filter(pk=running.pk).update(visits=7)
    now = timezone.now()
    for seconds, state in ((3, "succeeded"), (45, "succeeded"), (700, "failed")):
        Build.objects.create(
            space=running,
            commit_sha="a" * 40,
            state=state,
            started=now - timedelta(seconds=seconds),
            finished=now,
        )
    Build.objects.create(space=running, commit_sha="b" * 40, state="queued")
    Counter.bump("wakes")
    Counter.bump("wakes")

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    text = answer.content.decode()
    assert "# TYPE spacedock_build_duration_seconds histogram" in text
    m = metric_lines(text)
    assert m['spacedock_builds{state="succeeded"}'] == 2
    assert m['spacedock_builds{state="failed"}'] == 1
    assert m['spacedock_builds{state="queued"}'] == 1
    assert m['spacedock_builds{state="building"}'] == 0
    assert m['spacedock_build_duration_seconds_bucket{outcome="succeeded",le="5"}'] == 1
    assert m['spacedock_build_duration_seconds_bucket{outcome="succeeded",le="60"}'] == 2
    assert m['spacedock_build_duration_seconds_bucket{outcome="failed",le="600"}'] == 0
    assert m['spacedock_build_duration_seconds_bucket{outcome="failed",le="+Inf"}'] == 1
    assert m['spacedock_build_duration_seconds_count{outcome="succeeded"}'] == 2
    assert m['spacedock_build_duration_seconds_sum{outcome="succeeded"}'] == pytest.approx(48, abs=0.01)
    assert m['spacedock_spaces{stage="RUNNING"}'] == 1 and m['spacedock_spaces{stage="BUILD_ERROR"}'] == 1
    assert m["spacedock_running_spaces"] == 1
    assert m["spacedock_space_visits_total"] == 7
    assert m["spacedock_wakes_total"] == 2


def test_metrics_are_for_this_machine_or_a_token_holder(live, client, settings):
    assert requests.get(f"{live.url}/metrics", timeout=10).status_code == 200  # a local scraper
    forwarded = requests.get(f"{live.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert forwarded.status_code == 403 and "SPACEDOCK_METRICS_TOKEN" in forwarded.text

    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_healthcheck_worker_says_when_no_worker_answers(live):
    result = healthcheck("worker", "--timeout", "1")
    assert result.returncode == 1
    assert "database: ok" in result.stdout and "broker: ok" in result.stdout
    assert "no Celery worker answered" in result.stdout


def test_healthcheck_worker_passes_with_a_worker(live, worker):
    result = healthcheck("worker")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker: ok (1 worker)" in result.stdout


def test_healthcheck_runner_reads_the_runners_heartbeat(live):
    path = checks.runner_heartbeat_path()
    path.unlink(missing_ok=True)
    result = healthcheck("runner")
    assert result.returncode == 1 and "is `manage.py runner` running?" in result.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    assert healthcheck("runner").returncode == 0
    old = time.time() - 600
    os.utime(path, (old, old))
    result = healthcheck("runner")
    assert result.returncode == 1 and "s ago (more than 60 s)" in result.stdout
    path.unlink()


@pytest.mark.fast
def test_tls_ask_allows_only_the_platform_and_existing_spaces(client, db, settings):
    settings.DOMAIN, settings.SPACES_DOMAIN = "dock.example.org", "spaces.example.net"
    owner = User.objects.create(username="ada")
    space = Space.create(owner, "hello")
    build = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="x")
    build.pin()
    unpinned = Build.objects.create(space=space, commit_sha="d" * 40, state="succeeded", image="y")

    def ask(domain: str) -> int:
        return client.get("/tls/ask", {"domain": domain}).status_code

    assert ask("dock.example.org") == 200
    assert ask(f"{space.subdomain}.spaces.example.net") == 200
    assert ask(f"{space.subdomain.upper()}.spaces.example.net.") == 200
    assert ask(f"pin--{build.pk}.spaces.example.net") == 200
    for refused in (
        "",
        "evil.example.com",
        "nobody-here.spaces.example.net",
        f"x.{space.subdomain}.spaces.example.net",
        f"pin--{unpinned.pk}.spaces.example.net",
        "pin--abc.spaces.example.net",
        "spaces.example.net",
        f"{space.subdomain}.spaces.example.net.evil.com",
    ):
        assert ask(refused) == 404, refused
