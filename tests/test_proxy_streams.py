"""What a space's route in the real Caddy does: streams outlive the config reloads other spaces'
changes cause; the visitor's platform token never reaches the app; every request is in the access
log the runner counts (sleep and visits)."""

import http.server
import socket
import threading
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from websockets.sync.client import connect
from websockets.sync.server import serve

from runner import caddy
from runner.reconcile import Runner
from spacedock.spaces.models import Space
from tests.conftest import free_port


def echo(websocket) -> None:
    for message in websocket:
        websocket.send(message)


def test_a_websocket_survives_another_space_starting(proxy):
    # An `sdk: docker` app with a websocket (Streamlit, say); every wake, sleep or deploy of any
    # space reloads Caddy's whole config.
    port = free_port()
    app = serve(echo, "127.0.0.1", port)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    host = f"sockets.{settings.SPACES_DOMAIN}"
    admin = caddy.Admin(proxy.admin)
    routes = [caddy.space_route(host, port, private=False)]
    try:
        admin.ensure(caddy.config(routes))
        sock = socket.create_connection(("127.0.0.1", proxy.port))
        with connect(f"ws://{host}:{proxy.port}/", sock=sock, open_timeout=10) as visitor:
            visitor.send("before")
            assert visitor.recv(timeout=10) == "before"

            other = caddy.space_route(f"other.{settings.SPACES_DOMAIN}", free_port(), private=False)
            assert admin.ensure(caddy.config([*routes, other]))

            visitor.send("after")
            assert visitor.recv(timeout=10) == "after"
    finally:
        app.shutdown()
        admin.ensure(caddy.config([]))


class Recorder(http.server.BaseHTTPRequestHandler):
    """An app that keeps the headers of every request it is sent."""

    protocol_version = "HTTP/1.1"
    seen: list = []

    def do_GET(self):
        Recorder.seen.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.mark.django_db
def test_the_app_never_sees_the_token_and_the_runner_counts_every_request(proxy):
    owner = User.objects.create_user("tokens")
    space = Space.objects.create(owner=owner, name="app", subdomain="tokens-app")
    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    admin = caddy.Admin(proxy.admin)
    runner = Runner(admin, runner_id="proxy-test")
    Recorder.seen = []
    try:
        admin.ensure(caddy.config([caddy.space_route(space.host, app.server_port, private=False)]))
        runner.count_requests()  # starts at the end of the log, as a started runner does
        before = time.time()
        secret = {"Authorization": "Bearer sd_platform_token", "X-HF-Authorization": "Bearer sd_too"}
        with requests.Session() as visitor:  # keep-alive, as a browser and gradio_client do
            for _ in range(3):
                url = f"http://127.0.0.1:{proxy.port}/config"
                answer = visitor.get(url, headers={"Host": space.host, **secret}, timeout=10)
                assert answer.status_code == 200 and answer.text == "ok"
        assert len(Recorder.seen) == 3
        for headers in Recorder.seen:
            names = {name.lower() for name in headers}
            assert "authorization" not in names and "x-hf-authorization" not in names, headers
            assert not any("sd_platform_token" in value or "sd_too" in value for value in headers.values())
            assert headers["Host"] == space.host  # the app builds its links from it

        # Caddy writes its access log as it answers; the runner reads it on its next pass.
        deadline = time.monotonic() + 10
        while proxy.access_log.read_text().count(f'"{space.host}"') < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "sd_platform_token" not in proxy.access_log.read_text()
        runner.count_requests()
        space.refresh_from_db()
        assert space.visits == 1  # one visitor
        assert space.last_request_at is not None and space.last_request_at.timestamp() >= before - 1
    finally:
        runner.pool.shutdown()
        app.shutdown()
        admin.ensure(caddy.config([]))
