"""Every change of what should run nudges the runner once it is committed, from a page or the API."""

import json
import threading

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from spacedock.accounts.models import AccessToken
from spacedock.spaces import notify
from spacedock.spaces.models import Build, Space

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


@pytest.fixture
def space():
    space = Space.create(User.objects.create_user("ada"), "chat")
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="img:1")
    Space.objects.filter(pk=space.pk).update(deployed_build=build)
    space.variables.create(key="OLD", value="x")
    return space


def page(space: Space) -> Client:
    client = Client()
    client.force_login(space.owner)
    return client


def api(space: Space, path: str, body: dict | None = None):
    _, token = AccessToken.issue(space.owner, "t")
    return Client().post(
        f"/api/spaces/ada/chat/{path}",
        json.dumps(body or {}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


CHANGES = {
    "page restart": lambda s: page(s).post("/ada/chat/settings/restart"),
    "page pause": lambda s: page(s).post("/ada/chat/settings/pause"),
    "page sleep time": lambda s: page(s).post("/ada/chat/settings/sleep", {"sleep_time": "3600"}),
    "page visibility": lambda s: page(s).post("/ada/chat/settings/visibility", {"visibility": "private"}),
    "page variable": lambda s: page(s).post("/ada/chat/settings/variable", {"key": "K", "value": "v"}),
    "page variable deleted": lambda s: page(s).post("/ada/chat/settings/variable/delete", {"key": "OLD"}),
    "page delete": lambda s: page(s).post("/ada/chat/delete", {"confirm": "ada/chat"}),
    "api restart": lambda s: api(s, "restart"),
    "api pause": lambda s: api(s, "pause"),
    "api sleep time": lambda s: api(s, "sleeptime", {"seconds": 600}),
    "api rollback": lambda s: api(s, "rollback", {"build": s.deployed_build_id}),
    "api variable": lambda s: api(s, "variables", {"key": "K", "value": "v"}),
    "api secret": lambda s: api(s, "secrets", {"key": "K", "value": "v"}),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_of_desired_state_nudges_the_runner(space, change, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = CHANGES[change](Space.objects.get(pk=space.pk))
    assert response.status_code in (200, 302), response.content
    assert notify.poke in callbacks


def test_a_refused_change_does_not_nudge(space, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        assert api(space, "sleeptime", {"seconds": 5}).status_code == 400
    assert notify.poke not in callbacks and Space.objects.get(pk=space.pk).sleep_time == 172800


def test_a_finished_build_nudges_the_runner(space, django_capture_on_commit_callbacks):
    build = Build.objects.create(space=space, commit_sha="b" * 40)
    assert build.start()
    with django_capture_on_commit_callbacks() as callbacks:
        build.succeed("img:2")
    assert notify.poke in callbacks


def test_without_redis_a_nudge_reaches_the_runner_over_a_local_socket(monkeypatch):
    monkeypatch.setattr(settings, "REDIS_URL", "")
    wake, stopping = threading.Event(), threading.Event()
    listener = threading.Thread(target=notify.listen, args=(wake, stopping))
    listener.start()
    try:
        # The listener binds in its own time: poke until it hears one.
        for _ in range(50):
            notify.poke()
            if wake.wait(0.1):
                break
        assert wake.is_set(), "the runner never heard a nudge"
        # A second runner of the same install cannot take the address; it falls back to its timer.
        second = threading.Thread(target=notify.listen, args=(threading.Event(), stopping))
        second.start()
        second.join(5)
        assert not second.is_alive()
    finally:
        stopping.set()
        listener.join(5)
    notify.poke()  # nobody listens now: nothing raises
