"""One owner's slow apps against everyone else: eight spaces that take minutes to answer must not
hold the runner while a ninth space deploys, and an owner with a hundred spaces does not queue
ahead of another owner's one."""

import threading
import time

import pytest

from runner.reconcile import fair_order
from spacedock.spaces.models import Space
from tests.runner_fixtures import deployed, wait_for


@pytest.mark.fast
def test_an_owner_with_a_hundred_spaces_does_not_queue_ahead_of_another():
    rows = [(pk, 1) for pk in range(1, 101)] + [(500, 2), (501, 3)]
    order = fair_order(rows)
    assert order[:4] == [1, 500, 501, 2] and sorted(order) == sorted(pk for pk, _ in rows)


def test_eight_slow_starts_do_not_block_a_ninth_deploy(runner, images, server, settings):
    settings.MAX_STARTUP_SECONDS = 600
    slow = []
    for i in range(8):
        space = deployed("hog", f"slow{i}", images.never_listens)
        Space.objects.filter(pk=space.pk).update(startup_duration_timeout=600)
        slow.append(space)
    stop = threading.Event()

    def loop():  # the runner's own loop: a pass, then a short wait while something starts
        from django.db import connection

        try:
            while not stop.is_set():
                runner.tick()
                time.sleep(0.5)
        finally:
            connection.close()

    looping = threading.Thread(target=loop)
    looping.start()
    try:
        wait_for(lambda: all(s.pk in runner.starting for s in slow), 60, what="the eight starting")
        began = time.monotonic()
        ninth = deployed("bystander", "hello", images.hello)
        wait_for(
            lambda: Space.objects.get(pk=ninth.pk).stage == "RUNNING",
            90,
            what=lambda: Space.objects.get(pk=ninth.pk).stage,
        )
        took = time.monotonic() - began
        print(f"the ninth space went live in {took:.1f} s beside eight starting")
        stages = set(Space.objects.filter(pk__in=[s.pk for s in slow]).values_list("stage", flat=True))
        assert stages == {"APP_STARTING"}  # still waited on, and none of them failed for it
        runtime = server.api(f"spaces/{ninth.full_name}/runtime").json()
        assert runtime["stage"] == "RUNNING"
    finally:
        stop.set()
        looping.join()
