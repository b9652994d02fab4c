"""The runner: `./manage.py runner`, one long-running process next to gunicorn and Celery."""

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from runner import caddy, docker_runtime
from runner.docker_runtime import RuntimeBackendError
from runner.reconcile import Runner
from spacedock.health.checks import runner_heartbeat_path
from spacedock.spaces import notify

log = logging.getLogger("runner")


class Command(BaseCommand):
    help = "Runs spaces: makes Docker and Caddy match the database, on events and on a short timer."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.RUNNER_INTERVAL)

    def handle(self, *args, interval: float, **options):
        runner = Runner()
        wake = threading.Event()
        heartbeat = runner_heartbeat_path()

        def on_term(signum, frame):
            log.info("runner: signal %s, stopping after the current pass", signum)
            runner.stopping.set()
            wake.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        threading.Thread(target=self.watch_docker, args=(runner, wake), daemon=True).start()
        threading.Thread(target=notify.listen, args=(wake, runner.stopping), daemon=True).start()
        log.info(
            "runner %s: instance %s, Caddy admin %s",
            runner.runner_id,
            settings.INSTANCE,
            settings.CADDY_ADMIN,
        )
        while not runner.stopping.is_set():
            try:
                runner.tick()
                heartbeat.parent.mkdir(parents=True, exist_ok=True)
                heartbeat.touch()  # what `./manage.py healthcheck runner` reads
            except (RuntimeBackendError, caddy.CaddyError) as exc:
                log.warning("runner: %s (trying again)", exc)
            except Exception:
                log.exception("runner: pass failed")
            wake.wait(interval)
            wake.clear()
        runner.shutdown()
        log.info("runner: stopped")

    def watch_docker(self, runner: Runner, wake: threading.Event) -> None:
        """Container events start a pass at once; the timer covers the time the engine is away."""
        while not runner.stopping.is_set():
            try:
                for event in docker_runtime.events(runner.stopping):
                    if event.get("status") == "oom":
                        labels = event.get("Actor", {}).get("Attributes", {})
                        if space_id := labels.get(docker_runtime.LABEL_SPACE):
                            runner.out_of_memory(int(space_id), event["id"])
                    if event.get("status") in ("die", "stop", "start", "destroy", "oom"):
                        wake.set()
            except RuntimeBackendError:
                pass
            time.sleep(1)
