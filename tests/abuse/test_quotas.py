"""One user tries to take more than their share: spaces, builds, running apps, memory, spaces that
never sleep, pinned builds. Each is refused with a message that names the quota; an administrator
raises one user's quota in Django's admin, and the same action then works."""

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User

from builder import tasks
from spacedock.accounts.models import Quota
from spacedock.spaces.models import Build, Space


@pytest.fixture
def ada(live, token_for):
    token = token_for("ada")
    return User.objects.get(username="ada"), token


def running_space(owner, name: str, memory: int | None = None) -> Space:
    space = Space.create(owner, name, memory_limit_mb=memory)
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="i")
    Space.objects.filter(pk=space.pk).update(deployed_build=build, stage="RUNNING")
    space.refresh_from_db()
    return space


def test_a_push_past_the_spaces_quota_says_so_and_creates_nothing(live, ada, make_repo):
    user, token = ada
    Quota.objects.create(user=user, spaces=1)
    repo = make_repo()
    assert repo.push(live.git_url("ada", "first", token)).returncode == 0
    refused = repo.push(live.git_url("ada", "second", token))
    assert refused.returncode != 0
    assert "remote: Quota exceeded: spaces (at most 1 spaces)" in refused.stderr
    assert list(Space.objects.values_list("name", flat=True)) == ["first"]
    # An administrator raises it; the same push goes through.
    Quota.objects.filter(user=user).update(spaces=2)
    assert repo.push(live.git_url("ada", "second", token)).returncode == 0


def test_a_push_while_other_builds_run_waits_for_them(live, ada, make_repo):
    user, token = ada
    Quota.objects.create(user=user, concurrent_builds=1)
    busy = Space.create(user, "busy")
    Build.objects.create(space=busy, commit_sha="b" * 40, state="building")
    refused = make_repo().push(live.git_url("ada", "other", token))
    assert (
        "remote: Quota exceeded: concurrent_builds (at most 1 builds queued or running at once)"
        in refused.stderr
    )
    assert refused.returncode != 0 and not Build.objects.filter(space__name="other").exists()


def test_a_push_past_the_running_spaces_or_memory_quota_is_refused(live, ada, make_repo):
    user, token = ada
    running_space(user, "one")
    Quota.objects.create(user=user, running_spaces=1)
    refused = make_repo().push(live.git_url("ada", "two", token))
    assert "Quota exceeded: running_spaces (at most 1 spaces running at once)" in refused.stderr
    Quota.objects.filter(user=user).update(running_spaces=5, running_memory_mb=settings.RUN_MEMORY_MB + 100)
    refused = make_repo().push(live.git_url("ada", "two", token))
    assert f"Quota exceeded: running_memory_mb (at most {settings.RUN_MEMORY_MB + 100} MB" in refused.stderr
    # Pushing to the space that already runs is fine: it is counted once.
    assert make_repo().push(live.git_url("ada", "one", token)).returncode == 0


def test_restart_and_rollback_past_the_running_quota_answer_in_the_hubs_shape(live, ada):
    user, token = ada
    running_space(user, "one")
    asleep = running_space(user, "two")
    Space.objects.filter(pk=asleep.pk).update(stage="SLEEPING")
    Quota.objects.create(user=user, running_spaces=1)
    auth = {"Authorization": f"Bearer {token}"}
    restart = requests.post(f"{live.url}/api/spaces/ada/two/restart", headers=auth, timeout=10)
    assert restart.status_code == 403 and restart.headers["X-Error-Code"] == "QuotaExceeded"
    assert "running_spaces" in restart.json()["error"]
    assert Space.objects.get(pk=asleep.pk).stage == "SLEEPING"


def test_never_sleeping_spaces_are_counted(live, ada):
    user, token = ada
    Quota.objects.create(user=user, never_sleep=1)
    Space.create(user, "always", sleep_time=-1)
    Space.create(user, "also")
    auth = {"Authorization": f"Bearer {token}"}
    answer = requests.post(
        f"{live.url}/api/spaces/ada/also/sleeptime", json={"seconds": -1}, headers=auth, timeout=10
    )
    assert (
        answer.status_code == 403
        and "never_sleep (at most 1 spaces that never sleep)" in answer.json()["error"]
    )
    assert Space.objects.get(name="also").sleep_time == 172800


def test_pinning_past_the_quota_says_so(ada, client):
    user, _ = ada
    Quota.objects.create(user=user, pinned_builds=0)
    space = running_space(user, "paper")
    client.force_login(user)
    page = client.post("/ada/paper/pin", {"build": space.deployed_build_id}, follow=True)
    assert "Quota exceeded: pinned_builds (at most 0 pinned builds)" in page.content.decode()
    assert not Build.objects.get(pk=space.deployed_build_id).pinned


def test_an_administrator_sets_quotas_and_space_limits_in_the_admin(live, client):
    admin = User.objects.create_superuser("root", password="a long admin password")
    ada = User.objects.create_user("ada")
    space = Space.create(ada, "demo")
    client.force_login(admin)
    added = client.post(
        "/admin/accounts/quota/add/",
        {"user": ada.pk, "spaces": 50, "running_spaces": 9},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert Quota.limit(ada, "spaces") == 50 and Quota.limit(ada, "never_sleep") == settings.QUOTA_NEVER_SLEEP
    assert Quota.limit(User.objects.create_user("bob"), "spaces") == settings.QUOTA_SPACES
    page = client.get(f"/admin/spaces/space/{space.pk}/change/")
    assert page.status_code == 200 and "memory_limit_mb" in page.content.decode()


def test_a_visit_does_not_wake_a_space_past_its_owners_running_quota(ada, client):
    user, _ = ada
    running_space(user, "one")
    asleep = running_space(user, "two")
    Space.objects.filter(pk=asleep.pk).update(stage="SLEEPING")
    Quota.objects.create(user=user, running_spaces=1)
    page = client.get("/_runner/wake/", HTTP_HOST=asleep.host)
    assert page.status_code == 503 and "running_spaces quota is full" in page.content.decode()
    assert Space.objects.get(pk=asleep.pk).stage == "SLEEPING"


def test_a_build_on_one_more_gradio_version_than_the_quota_fails_saying_which_to_use(
    live, ada, make_repo, settings
):
    user, token = ada
    Quota.objects.create(user=user, sdk_versions=1)
    Space.create(user, "old", sdk="gradio", sdk_version="5.0.0")
    readme = "---\nsdk: gradio\nsdk_version: 4.44.1\n---\n"
    repo = make_repo({"README.md": readme, "app.py": "print('hi')\n"})
    repo.git("tag", "wip")  # stored, not built: the build runs in this process
    assert repo.git("push", live.git_url("ada", "new", token), "wip", check=False).returncode == 0
    space = Space.objects.get(name="new")
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
    tasks.build(build.pk)
    build.refresh_from_db()
    assert build.state == "failed"
    assert "Quota exceeded: sdk_versions (at most 1 Gradio versions" in build.error and "5.0.0" in build.error
