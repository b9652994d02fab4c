import sys

import requests
from django.conf import settings
from django.core.management.base import BaseCommand

from spacedock.health import checks


def web(url: str) -> str:
    answer = requests.get(url, timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")
    return "ok"


class Command(BaseCommand):
    help = "Exits 0 when a Spacedock process is healthy, 1 otherwise: for compose, systemd and monitors."

    def add_arguments(self, parser):
        parser.add_argument("process", choices=["web", "worker", "runner", "docker-proxy", "all"])
        parser.add_argument("--url", help="the web's /healthz (default: 127.0.0.1 on SPACEDOCK_PORT)")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds a worker has to answer")

    def handle(self, process, url=None, timeout=5.0, **options):
        url = url or f"http://127.0.0.1:{settings.PORT}/healthz"
        wanted = {
            "web": {"web": lambda: web(url)},
            "worker": {
                "database": checks.database,
                "broker": checks.broker,
                "worker": lambda: checks.worker(timeout),
            },
            "runner": {"database": checks.database, "runner": checks.runner, "firewall": checks.firewall},
            "docker-proxy": {"docker-proxy": checks.docker_proxy},
        }
        if process == "all":
            selected = {k: v for group in wanted.values() for k, v in group.items()}
        else:
            selected = wanted[process]
        healthy, results = checks.run(selected)
        for name, result in results.items():
            self.stdout.write(f"{name}: {result}")
        if not healthy:
            sys.exit(1)
