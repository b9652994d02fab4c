"""Health checks of each Spacedock process, shared by /healthz and `manage.py healthcheck`."""

import json
import time
from pathlib import Path

from django.conf import settings
from django.db import connection


def database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def broker() -> str:
    from spacedock.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return "ok"


def worker(timeout: float = 5.0) -> str:
    """A build worker answers a ping over the broker (`celery inspect ping`)."""
    from spacedock.celery import app

    replies = app.control.ping(timeout=timeout)
    if not replies:
        raise RuntimeError(f"no Celery worker answered a ping within {timeout:g} s")
    return f"ok ({len(replies)} worker{'s' if len(replies) > 1 else ''})"


def runner_heartbeat_path() -> Path:
    return Path(settings.DATA_DIR) / "run" / "runner.alive"


def firewall_report_path() -> Path:
    """Where the runner says how its firewall for spaces stands (runner/firewall.py writes it)."""
    return Path(settings.DATA_DIR) / "run" / "runner.firewall.json"


def firewall_report() -> dict[str, str] | None:
    """The runner's last firewall report, or None when no runner has written one."""
    try:
        return json.loads(firewall_report_path().read_text())
    except (OSError, ValueError):
        return None


def runner(max_age: float = 60.0) -> str:
    """The runner touches runner_heartbeat_path() on every pass of its reconcile loop."""
    path = runner_heartbeat_path()
    if not path.exists():
        raise RuntimeError(f"the runner has not written {path} yet: is `manage.py runner` running?")
    age = time.time() - path.stat().st_mtime
    if age > max_age:
        raise RuntimeError(f"the runner's last pass was {age:.0f} s ago (more than {max_age:g} s)")
    return f"ok ({age:.0f} s ago)"


def docker_proxy() -> str:
    """Both of the Docker proxy's sockets answer a ping, each from its engine."""
    import docker

    for engine in ("build", "runtime"):
        path = Path(settings.DOCKER_PROXY_DIR) / f"{engine}.sock"
        client = docker.DockerClient(base_url=f"unix://{path}", version="1.41", timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    return "ok"


def firewall() -> str:
    """How the runner's firewall for spaces stands, as the runner last said (runner/firewall.py).
    Not installed: failing, with what to fix; the runner starts no space meanwhile."""
    report = firewall_report()
    if report is None:
        return "not reported yet (no runner has made a pass)"
    if report.get("status") == "failing":
        raise RuntimeError(report.get("message", "not installed"))
    return report.get("message", "ok")


def run(checks: dict) -> tuple[bool, dict[str, str]]:
    results, healthy = {}, True
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # a health check reports any failure; it never raises
            results[name] = f"failed: {type(exc).__name__}: {exc}".strip()
            healthy = False
    return healthy, results
