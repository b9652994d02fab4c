"""Streams through the real Caddy outlive the config reloads other spaces' changes cause."""

import socket
import threading

from django.conf import settings
from websockets.sync.client import connect
from websockets.sync.server import serve

from runner import caddy
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
