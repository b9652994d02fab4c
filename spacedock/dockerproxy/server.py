"""The socket proxy between the build worker and the two Docker engines (policy.py says what passes).

One unix socket per engine in SPACEDOCK_DOCKER_PROXY_DIR (`build.sock`, `runtime.sock`), readable by
the worker's group only. Each request's head is read and checked, its body passed on by its own
framing (Content-Length or chunked), so every request of a kept-alive connection is checked; the
engine's answers go back byte for byte. A BuildKit session (`POST /session`, `Upgrade: h2c`) is
hijacked by the engine at once, and the connection is passed through whole from then on.
"""

import grp
import http.client
import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from urllib.parse import quote

from django.conf import settings

from spacedock.dockerproxy import policy

log = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
ENGINES = ("build", "runtime")


def upstream(engine: str) -> str:
    """The engine's own socket path (never the proxy's)."""
    url = settings.BUILD_DOCKER_HOST if engine == "build" else settings.DOCKER_PROXY_RUNTIME_ENGINE
    if not url.startswith("unix://"):
        raise ValueError(f"{url}: the Docker proxy reaches engines on unix sockets only")
    return url.removeprefix("unix://")


def listen_path(engine: str) -> Path:
    return Path(settings.DOCKER_PROXY_DIR) / f"{engine}.sock"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def image_labels(engine: str, name: str) -> dict | None:
    conn = _UnixHTTPConnection(upstream(engine))
    try:
        conn.request("GET", f"/images/{quote(name, safe='/:@')}/json")
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise policy.Refused(f"an image the engine cannot inspect ({answer.status})")
    return (json.loads(body).get("Config") or {}).get("Labels") or {}


class Handler(socketserver.BaseRequestHandler):
    engine = "build"

    def handle(self) -> None:
        client = self.request
        reader = client.makefile("rb")
        engine_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine_sock.connect(upstream(self.engine))
        except OSError as exc:
            message = f"Spacedock's Docker proxy cannot reach the {self.engine} engine: {exc}"
            self._answer(client, 502, message)
            return
        refusing = threading.Event()
        back = threading.Thread(target=_pump, args=(engine_sock, client, refusing), daemon=True)
        back.start()
        refusal = ""
        try:
            while True:
                head = _read_head(reader)
                if head is None:
                    break
                method, target, headers = _parse_head(head)
                try:
                    request = policy.parse_target(method, target, headers)
                    policy.check(request, self.engine, lambda name: image_labels(self.engine, name))
                except policy.Refused as exc:
                    log.warning("docker proxy (%s): refused %s %s: %s", self.engine, method, target, exc)
                    refusal = _refusal(self.engine, str(exc))
                    refusing.set()
                    break
                log.debug("docker proxy (%s engine): %s %s", self.engine, method, target)
                engine_sock.sendall(head)
                if request.path == "/session":  # hijacked: from now on the bytes are the session's
                    _pump_reader(reader, engine_sock)
                    break
                _forward_body(reader, headers, engine_sock)
        except (OSError, ValueError) as exc:
            log.info("docker proxy (%s engine): connection dropped: %s", self.engine, exc)
        finally:
            try:
                engine_sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            back.join(timeout=600)
            engine_sock.close()
            if refusal:  # after the answers to the requests before it, as the client expects them
                try:
                    self._answer(client, 403, refusal)
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    @staticmethod
    def _answer(client: socket.socket, status: int, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        reason = {403: "Forbidden", 502: "Bad Gateway"}[status]
        client.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def _refusal(engine: str, what: str) -> str:
    return (
        f"Spacedock's Docker proxy refuses {what} on the {engine} engine: the build worker may only "
        "build, push and pull through the registry, inspect, and tag or remove its own images."
    )


def _read_head(reader) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline(MAX_HEAD)
        if not line:
            if head:
                raise ValueError("the connection ended inside a request head")
            return None
        if head == b"" and line == b"\r\n":
            continue  # a stray line between requests
        head += line
        if len(head) > MAX_HEAD:
            raise ValueError("a request head longer than 64 KiB")
    return head


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not HTTP/1: {version}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" or ":" not in line:
            raise ValueError("a folded or malformed header")
        name, _, value = line.partition(":")
        name = name.lower()
        if name != name.strip() or (name in headers and name in ("content-length", "transfer-encoding")):
            raise ValueError(f"an ambiguous header {name!r}")
        headers[name] = value.strip()
    if "content-length" in headers and "transfer-encoding" in headers:
        raise ValueError("both Content-Length and Transfer-Encoding")
    if headers.get("transfer-encoding", "chunked").lower() != "chunked":
        raise ValueError("a transfer coding other than chunked")
    return method, target, headers


def _forward_body(reader, headers: dict[str, str], out: socket.socket) -> None:
    if headers.get("transfer-encoding"):
        while True:
            size_line = reader.readline(1024)
            out.sendall(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := reader.readline(MAX_HEAD)) not in (b"\r\n", b""):
                    out.sendall(trailer)
                out.sendall(b"\r\n")
                return
            _copy(reader, out, size + 2)
    elif length := int(headers.get("content-length", "0")):
        _copy(reader, out, length)


def _copy(reader, out: socket.socket, n: int) -> None:
    while n > 0:
        chunk = reader.read(min(n, 1 << 16))
        if not chunk:
            raise ValueError("the connection ended inside a request body")
        out.sendall(chunk)
        n -= len(chunk)


def _pump_reader(reader, out: socket.socket) -> None:
    while chunk := reader.read1(1 << 16):
        out.sendall(chunk)


def _pump(source: socket.socket, sink: socket.socket, refusing: threading.Event) -> None:
    try:
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        if not refusing.is_set():  # else the handler writes the refusal, then ends the connection
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def serve(stop: threading.Event | None = None) -> list[Server]:
    """Listens on both sockets, each in a thread of its own; returns the servers (shut them down)."""
    folder = Path(settings.DOCKER_PROXY_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    group = grp.getgrnam(settings.DOCKER_PROXY_GROUP).gr_gid if settings.DOCKER_PROXY_GROUP else -1
    servers = []
    for engine in ENGINES:
        path = listen_path(engine)
        path.unlink(missing_ok=True)
        handler = type(f"{engine.title()}Handler", (Handler,), {"engine": engine})
        old = os.umask(0o177)  # no moment in which another user could connect
        try:
            server = Server(str(path), handler)
        finally:
            os.umask(old)
        if group != -1:
            os.chown(path, -1, group)
            path.chmod(0o660)
        threading.Thread(target=server.serve_forever, daemon=True, name=f"proxy-{engine}").start()
        servers.append(server)
        log.info("docker proxy: %s -> %s (%s engine)", path, upstream(engine), engine)
    return servers
