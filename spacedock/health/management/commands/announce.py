import signal
import time

import requests
from django.conf import settings
from django.core.management.base import BaseCommand


def platform_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Command(BaseCommand):
    help = (
        "Waits until the platform answers through Caddy, prints its address once, then waits: "
        "`make up`'s Procfile runs it, so that the address is the line to look for among the logs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the platform")

    def handle(self, timeout=600.0, **options):
        # Through Caddy's port, not gunicorn's: the address printed is the one that works.
        url = f"http://127.0.0.1:{settings.PORT}/healthz"
        deadline = time.monotonic() + timeout
        while not platform_answers(url):
            if time.monotonic() > deadline:
                self.stderr.write(f"nothing answered at {url} within {timeout:.0f} s: see the logs above")
                break
            time.sleep(0.5)
        else:
            self.stdout.write(f"Spacedock is at {settings.SITE_URL}")
            self.stdout.flush()
        # honcho stops every process when one exits: this one stays until Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: exit(0))
        signal.signal(signal.SIGINT, lambda *_: exit(0))
        while True:
            signal.pause()
