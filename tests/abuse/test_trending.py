"""A visitor who reloads a space's page, or hammers its app, to climb the trending list. Only their
first visit in an hour counts; another visitor's counts; the app's last request time still moves
with every request, so the space does not fall asleep under a busy visitor."""

import json
import time

import pytest
from django.contrib.auth.models import User

from runner import caddy
from runner.reconcile import Runner
from spacedock.spaces.models import Space

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


@pytest.fixture
def spaces():
    owner = User.objects.create_user("climber")
    honest = User.objects.create_user("honest")
    return (
        Space.objects.create(owner=owner, name="pushy", subdomain="climber-pushy"),
        Space.objects.create(owner=honest, name="quiet", subdomain="honest-quiet"),
    )


def gallery(client) -> list[str]:
    return [s["id"] for s in client.get("/api/spaces?sort=trendingScore").json()]


def test_reloading_a_space_page_a_hundred_times_is_one_visit(spaces, client):
    pushy, quiet = spaces
    for _ in range(100):
        assert client.get("/climber/pushy").status_code == 200
    client.get("/honest/quiet", HTTP_X_FORWARDED_FOR="198.51.100.7")
    client.get("/honest/quiet", HTTP_X_FORWARDED_FOR="198.51.100.8")
    pushy.refresh_from_db()
    quiet.refresh_from_db()
    assert (pushy.visits, quiet.visits) == (1, 2)
    assert gallery(client)[:2] == ["honest/quiet", "climber/pushy"]


def access_line(host: str, client_ip: str, ts: float) -> str:
    """One line as Caddy 2 writes it (the fields count_requests reads, and some it does not)."""
    request = {"remote_ip": "127.0.0.1", "remote_port": "51234", "client_ip": client_ip, "proto": "HTTP/1.1",
               "method": "GET", "host": host, "uri": "/gradio_api/queue/data", "headers": {}}  # fmt: skip
    return json.dumps({"level": "info", "ts": ts, "logger": "http.log.access", "msg": "handled request",
                       "request": request, "status": 200, "size": 12})  # fmt: skip


def test_an_app_hammered_by_one_visitor_counts_one_visit_per_hour(spaces, settings, tmp_path, client):
    pushy, quiet = spaces
    settings.CADDY_ACCESS_LOG = tmp_path / "access.log"
    settings.CADDY_ACCESS_LOG.write_text("")
    runner = Runner(caddy.Admin("127.0.0.1:9"), runner_id="trending-test")
    runner.count_requests()  # starts at the end of the log, as a started runner does
    now = time.time()
    lines = [access_line("climber-pushy.localhost:8080", "203.0.113.5", now + i / 1000) for i in range(5000)]
    lines += [access_line("honest-quiet.localhost:8080", f"203.0.113.{9 + i}", now) for i in range(3)]
    with open(settings.CADDY_ACCESS_LOG, "a") as log:
        log.write("\n".join(lines) + "\n")
    runner.count_requests()
    with open(settings.CADDY_ACCESS_LOG, "a") as log:  # the next pass: the same visitor, again
        log.write(access_line("climber-pushy.localhost:8080", "203.0.113.5", now + 10) + "\n")
    runner.count_requests()
    runner.pool.shutdown()
    pushy.refresh_from_db()
    quiet.refresh_from_db()
    assert (pushy.visits, quiet.visits) == (1, 3)
    assert pushy.last_request_at.timestamp() == pytest.approx(
        now + 10, abs=0.01
    )  # every request keeps it awake
    assert gallery(client)[:2] == ["honest/quiet", "climber/pushy"]
