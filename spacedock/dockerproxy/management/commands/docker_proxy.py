"""`./manage.py docker_proxy`: the only way the build worker reaches the Docker engines."""

import signal
import threading

from django.core.management.base import BaseCommand

from spacedock.dockerproxy import server


class Command(BaseCommand):
    help = "Serves the build worker's Docker sockets, passing on only the calls builds need."

    def handle(self, *args, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        servers = server.serve()
        stop.wait()
        for each in servers:
            each.shutdown()
            each.server_close()
