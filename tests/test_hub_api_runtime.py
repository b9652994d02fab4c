"""restart_space, pause_space and set_space_sleep_time through huggingface_hub.

The routes are the runner's (POST /api/spaces/<o>/<n>/restart?factory=true, /pause,
/sleeptime).
"""

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from spacedock.spaces.models import Build, Space


@pytest.fixture
def alice(live, token_for, make_repo):
    token = token_for("alice")
    assert make_repo().push(live.git_url("alice", "hello", token)).returncode == 0
    return HfApi(endpoint=live.url, token=token)


def test_restart_pause_and_sleep_time(live, alice, token_for):
    space = Space.objects.get(name="hello")
    generation = space.generation

    alice.restart_space("alice/hello")
    space.refresh_from_db()
    assert space.generation == generation + 1 and not space.paused

    runtime = alice.pause_space("alice/hello")
    space.refresh_from_db()
    assert space.paused and runtime.raw is not None

    runtime = alice.set_space_sleep_time("alice/hello", 3600)
    assert Space.objects.get(pk=space.pk).sleep_time == 3600
    assert runtime.sleep_time == 3600

    builds = Build.objects.filter(space=space).count()
    alice.restart_space("alice/hello", factory_reboot=True)
    assert Build.objects.filter(space=space).count() == builds + 1
    assert Build.objects.filter(space=space).first().no_cache

    with pytest.raises(HfHubHTTPError) as other:
        HfApi(endpoint=live.url, token=token_for("mallory")).restart_space("alice/hello")
    assert other.value.response.status_code in (403, 404)
