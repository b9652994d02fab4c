"""Caddy's whole configuration, made from the database, and the admin API client that loads it.

The runner is Caddy's only configurator: Caddy starts with nothing but its admin address and
persists nothing, so a restarted Caddy shows an empty config and the runner loads it again.
"""

import logging
import threading

import requests
from django.conf import settings

from spacedock.proxy.paths import AUTH_PATH, TLS_ASK_PATH, WAKE_PREFIX

log = logging.getLogger(__name__)

STREAM_CLOSE_DELAY = "24h"


class CaddyError(Exception):
    pass


def web_dial() -> str:
    return f"127.0.0.1:{settings.WEB_PORT}"


def _proxy(dial: str) -> dict:
    # Caddy flushes text/event-stream and unknown-length responses (Gradio's queue, build logs) as
    # they are written; flush_interval -1 would flush every other response too (2-3 % req/s here).
    # No timeouts and no body cap: Caddy's defaults have neither, and long runs and uploads need that.
    # Every route change reloads the whole config, and Caddy closes upgraded connections (an app's
    # websockets) at a reload unless told to wait: the old config keeps them until they end.
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial}],
        "stream_close_delay": STREAM_CLOSE_DELAY,
    }


def _forward_auth() -> dict:
    """Asks the platform whether this visitor may see the private space (Caddy's forward_auth)."""
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": web_dial()}],
        "rewrite": {"method": "GET", "uri": AUTH_PATH},
        "headers": {
            "request": {
                "set": {
                    "X-Forwarded-Method": ["{http.request.method}"],
                    "X-Forwarded-Uri": ["{http.request.uri}"],
                }
            }
        },
        "handle_response": [{"match": {"status_code": [2]}, "routes": [{"handle": [{"handler": "vars"}]}]}],
    }


def space_route(
    host: str, port: int, private: bool, address: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> dict:
    """`address`: where the instance answers (127.0.0.1 locally; a Swarm node's address). `headers`:
    what every response of the host carries, over the app's own (Build.response_headers)."""
    handle = [_forward_auth()] if private else []
    # A platform token sent along (gradio_client's hf_token) never reaches a space's code.
    handle.append({"handler": "headers", "request": {"delete": ["Authorization", "X-Hf-Authorization"]}})
    if headers:
        # Deferred: set when the app's answer is written, so they replace the app's own.
        response = {"set": {name: [value] for name, value in sorted(headers.items())}, "deferred": True}
        handle.append({"handler": "headers", "response": response})
    handle.append(_proxy(f"{address}:{port}"))
    return {"match": [{"host": [host]}], "handle": handle, "terminal": True}


def config(routes: list[dict]) -> dict:
    """The whole config: each running space, then the wake page for the rest, then the platform."""
    spaces_wildcard = f"*.{settings.SPACES_DOMAIN}"
    wake = {
        "match": [{"host": [spaces_wildcard]}],
        "handle": [
            {"handler": "rewrite", "uri": WAKE_PREFIX + "{http.request.uri}"},
            _proxy(web_dial()),
        ],
        "terminal": True,
    }
    platform = {"handle": [_proxy(web_dial())], "terminal": True}
    server = {
        "listen": [address.strip() for address in settings.LISTEN.split(",")],
        "routes": [*routes, wake, platform],
        # Access logs count visits per space (sleep); the platform's own traffic is not a visit.
        "logs": {"skip_hosts": [settings.DOMAIN]},
    }
    apps: dict = {"http": {"servers": {"spacedock": server}}}
    if settings.TLS_MODE == "on-demand":
        apps["tls"] = {
            "automation": {
                "policies": [{"on_demand": True}],
                "on_demand": {
                    "permission": {"module": "http", "endpoint": f"http://{web_dial()}{TLS_ASK_PATH}"}
                },
            }
        }
    else:
        server["automatic_https"] = {"disable": True}
    return {
        "admin": {"listen": settings.CADDY_ADMIN, "config": {"persist": False}},
        "logging": {
            "logs": {
                "default": {"exclude": ["http.log.access"]},
                "access": {
                    "writer": {"output": "file", "filename": str(settings.CADDY_ACCESS_LOG)},
                    "encoder": {"format": "json"},
                    "include": ["http.log.access"],
                },
            }
        },
        "apps": apps,
    }


class Admin:
    def __init__(self, address: str | None = None):
        self.base = f"http://{address or settings.CADDY_ADMIN}"
        self.session = requests.Session()
        self.lock = threading.Lock()
        self.loaded: dict | None = None

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.base + path, timeout=15, **kwargs)
        except requests.RequestException as exc:
            raise CaddyError(f"Caddy's admin API at {self.base} does not answer: {exc}") from exc
        if response.status_code >= 400:
            raise CaddyError(f"Caddy {method} {path}: {response.status_code} {response.text.strip()}")
        return response

    def current(self) -> dict | None:
        return self._call("GET", "/config/").json()

    def ensure(self, wanted: dict, check: bool = True) -> bool:
        """Loads `wanted` unless Caddy already runs it; True when it loaded."""
        with self.lock:
            if check:
                self.loaded = self.current()
            if self.loaded == wanted:
                return False
            self._call("POST", "/load", json=wanted)
            self.loaded = wanted
            return True

    def requests_in_flight(self, dial: str) -> int:
        """Requests Caddy is proxying to one upstream right now (0 once it has left the pool)."""
        for upstream in self._call("GET", "/reverse_proxy/upstreams").json() or []:
            if upstream.get("address") == dial:
                return int(upstream.get("num_requests", 0))
        return 0
