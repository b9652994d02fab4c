"""Forty visitors follow a space's logs at once. The platform keeps answering: health, pages,
private-space checks, and a push that builds; the streams past the budget get a 429 that says why."""

import socket
import time

import requests

from spacedock.accounts.models import User
from spacedock.spaces.models import Build, Space
from tests.conftest import wait_until

STREAMS = 40


def open_stream(port: int, path: str, visitor: str) -> tuple[socket.socket, bytes]:
    """A log follower as a browser holds one, through Caddy (which names the visitor in
    X-Forwarded-For); returns the socket, still open, and the first bytes of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {visitor}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    return sock, sock.recv(4096)


def test_forty_log_streams_leave_the_platform_answering(live, worker, token_for, make_repo):
    owner = User.objects.create_user("streamer")
    watched = Space.objects.create(owner=owner, name="watched", subdomain="streamer-watched")
    # The runner's record of a serving container: the run log stream follows while it is there.
    Space.objects.filter(pk=watched.pk).update(container_id="c" * 64, stage="RUNNING")
    Build.objects.create(space=watched, commit_sha="a" * 40, state="building")  # its log follows too
    private = Space.objects.create(
        owner=owner, name="secret", subdomain="streamer-secret", visibility="private"
    )

    streams, answers = [], []
    try:
        for i in range(STREAMS):
            kind = "run" if i % 2 else "build"
            sock, head = open_stream(
                live.port, f"/api/spaces/streamer/watched/logs/{kind}", f"198.51.100.{i}"
            )
            streams.append(sock)
            answers.append(head.split(b"\r\n", 1)[0])
        following = [a for a in answers if a.endswith(b"200 OK")]
        refused = [a for a in answers if b" 429 " in a]
        assert following and len(following) + len(refused) == STREAMS, answers
        assert len(following) <= 6  # the stream budget: the other threads stay for short requests

        started = time.monotonic()
        health = requests.get(f"{live.url}/healthz", timeout=5)
        assert health.status_code == 200 and time.monotonic() - started < 1
        assert "watched" in requests.get(f"{live.url}/streamer/watched", timeout=5).text
        gate = requests.get(f"{live.url}/_runner/auth", headers={"Host": private.host}, timeout=5)
        assert gate.status_code == 403  # answered: a private space without a token

        repo = make_repo({"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "<h1>hi</h1>\n"})
        pushed = repo.push(live.git_url("pusher", "site", token_for("pusher")))
        assert pushed.returncode == 0, pushed.stderr
        build = wait_until(
            lambda: Build.objects.filter(space__name="site", state__in=["succeeded", "failed"]).first(),
            240,
            "the build under load",
        )
        assert build.state == "succeeded", build.error
    finally:
        for sock in streams:
            sock.close()


def test_a_refused_stream_says_why_and_when_to_come_back(live):
    owner = User.objects.create_user("busy")
    space = Space.objects.create(owner=owner, name="logs", subdomain="busy-logs")
    Space.objects.filter(pk=space.pk).update(container_id="c" * 64, stage="RUNNING")

    def hold():  # the slots of an earlier test's closed streams come back within a heartbeat
        sock, head = open_stream(live.port, "/api/spaces/busy/logs/logs/run", "203.0.113.9")
        if b" 200 " in head.split(b"\r\n", 1)[0]:
            return sock
        sock.close()

    held = [wait_until(hold, 40, "a stream slot") for _ in range(3)]

    def refusal():
        answer = requests.get(
            f"{live.url}/api/spaces/busy/logs/logs/run", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5
        )
        # The earlier test's closed streams may still fill the server's other slots until their
        # next heartbeat: that refusal is the server's, not this address's; ask again.
        return None if "open on this server" in answer.text else [answer]  # a 429 Response is falsy

    try:
        (refused,) = wait_until(refusal, 40, "the server's other slots to come back")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "Too many log streams open from your address" in refused.json()["error"]
        assert "Too many log streams" in refused.headers["X-Error-Message"]
    finally:
        for sock in held:
            sock.close()
    # Once the visitor closes them, the slots come back (a closed socket is seen at the next write).
    wait_until(
        lambda: (
            requests.get(
                f"{live.url}/api/spaces/busy/logs/logs/build",
                headers={"X-Forwarded-For": "203.0.113.9"},
                timeout=5,
            ).status_code
            == 200
        ),
        40,
        "the slots to come back",
    )
