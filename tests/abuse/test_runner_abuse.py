"""Spaces written to hold the runner or leak through it: a README asking to be waited for for days,
an app that prints its secrets and dies. The push says what the limit is, the runner gives up at
the cap, and the failure message on the page and in the API shows *** for the secret."""

import pytest
import requests

from spacedock.spaces.config import ConfigError, parse
from spacedock.spaces.models import Space, Variable
from tests.runner_fixtures import APP_DOCKERFILE, deployed, docker_build, wait_for

LEAKS = 'import os\nprint("connecting with", os.environ["API_KEY"], flush=True)\nraise SystemExit(1)\n'


@pytest.mark.fast
def test_a_readme_asking_for_a_week_of_startup_is_a_config_error_naming_the_limit(settings):
    settings.MAX_STARTUP_SECONDS = 3600
    with pytest.raises(ConfigError, match=r"over this server's limit: write at most 1h") as error:
        parse("---\nsdk: gradio\nstartup_duration_timeout: 168h\n---\n")
    assert "SPACEDOCK_MAX_STARTUP_SECONDS" in str(error.value)
    assert parse("---\nsdk: gradio\nstartup_duration_timeout: 1h\n---\n").startup_duration_timeout == 3600


def test_a_push_asking_for_too_long_a_startup_says_so(live, token_for, make_repo):
    repo = make_repo({"README.md": "---\nsdk: gradio\nstartup_duration_timeout: 9999h\n---\n", "app.py": "x"})
    pushed = repo.push(live.git_url("alice", "patient", token_for("alice")))
    assert pushed.returncode == 0, pushed.stderr
    assert "CONFIG_ERROR" in pushed.stderr and "write at most 1h" in pushed.stderr
    runtime = live.api("spaces/alice/patient/runtime").json()
    assert runtime["stage"] == "CONFIG_ERROR" and "startup_duration_timeout" in runtime["errorMessage"]


def test_the_runner_waits_no_longer_than_the_cap_whatever_was_recorded(runner, images, server, settings):
    # A build recorded before the operator lowered the cap still asks for two hours.
    space = deployed("slow", "forever", images.never_listens)
    Space.objects.filter(pk=space.pk).update(startup_duration_timeout=7200)
    settings.MAX_STARTUP_SECONDS = 3
    runner.converge()
    runtime = server.api(f"spaces/{space.full_name}/runtime").json()
    assert runtime["stage"] == "RUNTIME_ERROR"
    assert "within 3 s" in runtime["errorMessage"] and "warming up forever" in runtime["errorMessage"]


def test_an_app_that_prints_a_secret_and_dies_shows_stars_in_its_error(runner, images, server, tmp_path):
    prefix = images.sdk.split("/")[0]
    dockerfile = APP_DOCKERFILE.format(sdk=f"{prefix}/plain:1", python="python3")
    leaks = docker_build(f"{prefix}/leaks:1", dockerfile, {"app.py": LEAKS}, tmp_path / "leaks")
    space = deployed("leaky", "app", leaks)
    Variable.objects.create(space=space, key="API_KEY", value="sk-live-0123456789abcdef", is_secret=True)
    runner.converge()
    wait_for(lambda: Space.objects.get(pk=space.pk).stage == "RUNTIME_ERROR", 30, what="RUNTIME_ERROR")
    space.refresh_from_db()
    assert "connecting with ***" in space.stage_message
    runtime = server.api(f"spaces/{space.full_name}/runtime").json()
    assert "connecting with ***" in runtime["errorMessage"]
    page = requests.get(f"{server.url}/{space.full_name}", timeout=30)
    assert page.status_code == 200
    for shown in (space.stage_message, runtime["errorMessage"], page.text):
        assert "sk-live" not in shown
