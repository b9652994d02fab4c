"""The wake page: its poll is held on the server while the space starts, and answered the moment
the runner moves its stage, so the page reloads into the app without waiting for its next poll;
and it is framed only where the app may be."""

import threading
import time
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from spacedock.proxy import views
from spacedock.spaces import stages
from spacedock.spaces.models import Build, Space

pytestmark = pytest.mark.fast


def starting_space() -> Space:
    space = Space.create(User.objects.create(username="ada"), "chat")
    Space.objects.filter(pk=space.pk).update(stage="APP_STARTING")
    return Space.objects.get(pk=space.pk)


def poll(space: Space) -> dict:
    answer = Client().get("/_runner/wake/", HTTP_HOST=space.host, HTTP_X_SPACEDOCK_POLL="1")
    assert answer.status_code == 200 and answer["X-Spacedock-Wake"] == answer.json()["stage"]
    return answer.json()


def later(seconds: float, action) -> threading.Thread:
    def run():
        time.sleep(seconds)
        try:
            action()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_poll_is_answered_when_the_runner_says_running(transactional_db):
    space = starting_space()
    # The runner, in another process in production: the route is in, the stage moves.
    mover = later(0.3, lambda: stages.app_running(Space.objects.get(pk=space.pk)))
    answer = poll(space)  # asked while APP_STARTING: only a held poll can answer RUNNING
    mover.join()
    assert answer["stage"] == "RUNNING" and answer["starting"]


def test_a_held_poll_waits_on_the_stage_move_not_on_reads_of_the_row(transactional_db, settings):
    """With Redis the held poll is told when the stage moves (notify.stage_moved): it reads the
    row when it starts and once the runner has moved it, not every 50 ms meanwhile.
    Without Redis (one host, `make up` with nothing set) it reads the row in a loop, and answers
    all the same."""
    space = starting_space()
    for redis_url in (settings.REDIS_URL, ""):
        settings.REDIS_URL = redis_url
        Space.objects.filter(pk=space.pk).update(stage="APP_STARTING")
        mover = later(1.0, lambda: stages.app_running(Space.objects.get(pk=space.pk)))
        with CaptureQueriesContext(connection) as queries:
            answer = poll(space)
        mover.join()
        assert answer["stage"] == "RUNNING"
        held = 'SELECT "spaces_space"."stage" AS "stage", "spaces_space"."stage_message" AS "stage_message"'
        reads = [q for q in queries if q["sql"].startswith(held)]
        if redis_url:
            # When it starts, when its subscription is confirmed, when the stage moved.
            assert len(reads) <= 3, len(reads)
        else:
            assert len(reads) > 3  # the loop: proves the count above tells the two apart


def test_a_poll_carries_a_new_message_while_still_starting(transactional_db):
    space = starting_space()
    mover = later(0.3, lambda: stages.hardware_queued(Space.objects.get(pk=space.pk), "Queued for hardware"))
    answer = poll(space)
    mover.join()
    assert answer == {
        "stage": "APP_STARTING",
        "message": "Queued for hardware",
        "starting": True,
        "retry_ms": 100,
    }


def test_a_poll_with_nothing_new_ends_and_the_page_asks_again(transactional_db, monkeypatch):
    monkeypatch.setattr(views, "HOLD_SECONDS", 0.3)
    space = starting_space()
    assert poll(space) == {"stage": "APP_STARTING", "message": "", "starting": True, "retry_ms": 100}


def test_with_no_slot_free_a_poll_is_answered_at_once(transactional_db, settings):
    """Held polls share the log streams' budget, so they never take every web thread; without a
    slot the page is told to wait before it asks again, instead of asking in a tight loop."""
    settings.STREAM_SLOTS = 0
    space = starting_space()
    mover = later(0.5, lambda: stages.app_running(Space.objects.get(pk=space.pk)))
    answer = poll(space)
    mover.join()
    assert answer == {"stage": "APP_STARTING", "message": "", "starting": True, "retry_ms": 700}


def test_a_paused_space_is_answered_at_once(transactional_db):
    space = starting_space()
    Space.objects.filter(pk=space.pk).update(stage="PAUSED", paused=True)
    assert poll(space) == {"stage": "PAUSED", "message": "", "starting": False, "retry_ms": 700}


def test_a_build_that_disables_embedding_is_framed_only_by_the_platform(transactional_db, settings):
    """Caddy adds a build's response headers at its host (runner/caddy.py); the wake page, served
    by the platform at that host while the app starts, carries the same frame rule."""
    space = starting_space()
    config = {
        "sdk": "gradio",
        "disable_embedding": True,
        "custom_headers": {"cross-origin-opener-policy": "same-origin"},
    }
    build = Build.objects.create(
        space=space, commit_sha="c" * 40, state="succeeded", image="x", config=config
    )
    Space.objects.filter(pk=space.pk).update(deployed_build=build)
    site = urlsplit(settings.SITE_URL)
    origin = f"{site.scheme}://{site.netloc}"  # e.g. http://localhost:8080
    assert build.response_headers() == {
        "cross-origin-opener-policy": "same-origin",
        "content-security-policy": f"frame-ancestors {origin}",
    }
    page = Client().get("/_runner/wake/", HTTP_HOST=space.host, HTTP_ACCEPT="text/html")
    assert page.status_code == 503
    assert page["Content-Security-Policy"].endswith(f"; frame-ancestors {origin}")

    build.config = {"sdk": "gradio"}
    build.save()
    assert build.response_headers() == {}
    page = Client().get("/_runner/wake/", HTTP_HOST=space.host, HTTP_ACCEPT="text/html")
    assert "frame-ancestors" not in page["Content-Security-Policy"]
