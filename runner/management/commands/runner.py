"""The runner: `./manage.py runner`, one long-running process next to gunicorn and Celery."""

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from runner import caddy
from runner.backend import RuntimeBackendError
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
        wake = runner.wake
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
            "runner %s: instance %s, %s backend, Caddy admin %s",
            runner.runner_id,
            settings.INSTANCE,
            runner.backend.name,
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
            # A starting app's output or event starts a pass at once (Runner.stir); an app that
            # prints nothing is looked at again soon all the same.
            wake.wait(min(interval, 0.5) if runner.starting or runner.deployments_starting else interval)
            wake.clear()
        runner.shutdown()
        log.info("runner: stopped")

    def watch_docker(self, runner: Runner, wake: threading.Event) -> None:
        """The backend's events start a pass at once; the timer covers the time it is away."""
        while not runner.stopping.is_set():
            try:
                for kind, space_id, instance_id in runner.backend.events(runner.stopping):
                    if kind == "oom" and space_id is not None:
                        runner.out_of_memory(space_id, instance_id)
                    runner.stir(instance_id)  # a starting app that died is failed at once
                    wake.set()
            except RuntimeBackendError:
                pass
            time.sleep(1)
