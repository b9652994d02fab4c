"""Webhooks: a push, a finished build and stage changes reach the owner's URL as signed JSON in
the Hub's shape, failures are tried again and logged on the settings page, and a URL that names
the platform's own machine, a private network or the cloud metadata address is refused, as the
attack it is."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth.models import User
from django.test import Client

from builder import tasks as build_tasks
from spacedock.spaces import webhooks
from spacedock.spaces.models import Build, Space, Webhook, WebhookDelivery
from spacedock.spaces.tasks import deliver


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it gets and answers the statuses it is given."""

    def __init__(self):
        self.got: list[tuple[dict, bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:5432/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?from=spacedock"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    # The receiver is on this machine, which webhooks may not reach unless the operator says so.
    settings.WEBHOOK_ALLOW = ["127.0.0.1/32"]
    found = Receiver()
    yield found
    found.close()


def send_all() -> None:
    for pk in WebhookDelivery.objects.filter(state="pending").order_by("pk").values_list("pk", flat=True):
        deliver(pk)


def test_push_build_and_stage_reach_the_url_signed(live, token_for, make_repo, receiver):
    token = token_for("alice")
    repo = make_repo({"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "<h1>hi</h1>\n"})
    repo.git("tag", "wip")  # stored, not built: no event yet
    assert repo.git("push", live.git_url("alice", "hooked", token), "wip").returncode == 0
    space = Space.objects.get(name="hooked")
    hook = Webhook.add(space, receiver.url, ["push", "build", "stage"])

    repo.git("checkout", "-q", "-B", "main")
    sha = repo.commit("go live")
    assert repo.push(live.git_url("alice", "hooked", token)).returncode == 0
    build = Build.objects.get(space=space, commit_sha=sha)
    build_tasks.build(build.pk)  # here, not by a worker: the events are the same
    send_all()

    by_scope = {}
    for headers, body in receiver.got:
        assert (
            headers["X-Webhook-Signature"]
            == "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        )
        payload = json.loads(body)
        by_scope.setdefault(payload["event"]["scope"], []).append(payload)
        assert payload["repo"]["name"] == "alice/hooked" and payload["repo"]["type"] == "space"
        assert payload["webhook"] == {"id": str(hook.pk), "version": 3}
    [push] = by_scope["repo.content"]
    assert push["updatedRefs"] == [{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}]
    [built] = by_scope["space.build"]
    assert built["build"]["state"] == "succeeded" and built["build"]["commit"] == sha
    stages = [p["runtime"]["stage"] for p in by_scope["space.runtime"]]
    assert stages[0] == "BUILDING" and stages[-1] == "APP_STARTING"
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_failed_send_is_tried_again_and_logged(live, receiver, settings):
    owner = User.objects.create_user("alice", password="pw for alice 123")
    space = Space.create(owner, "flaky")
    Webhook.add(space, receiver.url, ["push"])
    receiver.answers = [500, 302]
    space.record_push("b" * 40, "refs/heads/main")  # the sha need not exist: the push event comes first
    delivery = WebhookDelivery.objects.get(event="push")
    deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.error) == ("pending", 1, "answered 500")
    # A redirect is an answer, never followed (here to the platform's Postgres).
    deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.error) == ("pending", "answered 302") and len(receiver.got) == 2
    deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.status_code, delivery.attempts) == ("delivered", 200, 3)
    # The owner sees the log on the settings page.
    client = Client()
    client.force_login(owner)
    page = client.get("/alice/flaky/settings").content.decode()
    assert 'id="deliveries"' in page and "delivered (200)" in page
    # After SPACEDOCK_WEBHOOK_ATTEMPTS, a delivery is failed for good.
    settings.WEBHOOK_ATTEMPTS = 1
    receiver.answers = [503]
    space.record_push("c" * 40, "refs/heads/main")
    last = WebhookDelivery.objects.filter(event="push").first()
    deliver(last.pk)
    last.refresh_from_db()
    assert (last.state, last.error) == ("failed", "answered 503")


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1:5432/", "127.0.0.1, which is not a public address"),  # the platform's Postgres
        ("http://localhost:2019/load", "not a public address"),  # Caddy's admin API
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, which is not a public address"),
        ("http://10.0.0.8/", "not a public address"),
        ("http://[::1]:8080/", "::1, which is not a public address"),
        ("http://user:pw@example.org/", "cannot carry a user name or password"),
        ("ftp://example.org/", "starts with http:// or https://"),
    ],
)
def test_a_webhook_to_the_platform_or_a_private_network_is_refused(live, settings, url, says):
    settings.WEBHOOK_ALLOW = []
    owner = User.objects.create_user("mallory")
    space = Space.create(owner, "probe")
    with pytest.raises(webhooks.WebhookRefused, match=says.replace("(", r"\(").replace(".", r"\.")):
        Webhook.add(space, url, ["push"])
    # The settings page says the same, and stores nothing.
    client = Client()
    client.force_login(owner)
    page = client.post("/mallory/probe/settings/webhook", {"url": url, "events": ["push"]}, follow=True)
    assert not Webhook.objects.exists() and "webhook" in page.content.decode().lower()


def test_an_address_checked_when_saved_is_checked_again_when_sent(live, receiver, settings):
    # A name that resolved to a public address when saved and to a private one later (DNS
    # rebinding) is refused at the send, with nothing sent.
    owner = User.objects.create_user("mallory")
    space = Space.create(owner, "rebind")
    Webhook.add(space, receiver.url, ["push"])
    settings.WEBHOOK_ALLOW = []
    space.record_push("d" * 40, "refs/heads/main")
    delivery = WebhookDelivery.objects.get()
    deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed" and "not a public address" in delivery.error and receiver.got == []
