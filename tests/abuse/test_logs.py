"""An app or a build that floods its log: a megabyte-long line, a secret printed to stdout, years of
lines. The log keeps a cut line that says so, shows *** for the secret, and keeps only the recent
part; the space's log page and API still answer."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from builder.tasks import prune_logs
from spacedock.spaces.models import Build, BuildLogLine, RunLogLine, Space, Variable

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


@pytest.fixture
def space():
    owner = User.objects.create_user("ada")
    return Space.objects.create(owner=owner, name="noisy", subdomain="ada-noisy")


def streamed(client, path: str) -> list[str]:
    body = b"".join(client.get(path).streaming_content).decode()
    return [json.loads(line[6:])["data"] for line in body.splitlines() if line.startswith("data: ")]


def test_a_megabyte_line_is_cut_and_says_so(space, client):
    build = Build.objects.create(space=space, commit_sha="a" * 40)
    RunLogLine.append(space, "r" * 2**20)
    BuildLogLine.append(build, "b" * 2**20)
    for line in (RunLogLine.objects.get(), BuildLogLine.objects.get()):
        assert len(line.text) < 16 * 1024 + 100
        assert line.text.endswith(f"[{2**20 - 16 * 1024} more characters cut]")
    (shown,) = streamed(client, "/api/spaces/ada/noisy/logs/run")
    assert shown.startswith("r" * 100) and "more characters cut" in shown


def test_an_app_that_prints_its_secrets_shows_stars(space, client):
    Variable.objects.create(space=space, key="API_KEY", value="sk-live-0123456789", is_secret=True)
    Variable.objects.create(space=space, key="GREETING", value="hello there")  # not a secret
    RunLogLine.append(space, "env: API_KEY=sk-live-0123456789 GREETING=hello there")
    lines = streamed(client, "/api/spaces/ada/noisy/logs/run")
    assert lines == ["env: API_KEY=*** GREETING=hello there\n"]
    assert "sk-live" not in client.get("/ada/noisy/logs").content.decode()


def test_old_run_lines_and_old_builds_logs_are_pruned(space, settings):
    settings.LOG_RUN_LINES_KEPT, settings.LOG_BUILDS_KEPT = 10, 2
    for i in range(30):
        RunLogLine.append(space, f"line {i}")
    builds = [Build.objects.create(space=space, commit_sha=f"{i:040d}", state="succeeded") for i in range(5)]
    for build in builds:
        BuildLogLine.append(build, f"built {build.commit_sha[-1]}")
    Space.objects.filter(pk=space.pk).update(deployed_build=builds[0])  # the oldest still serves
    prune_logs()
    assert list(RunLogLine.objects.values_list("text", flat=True).order_by("number")) == [
        f"line {i}" for i in range(20, 30)
    ]
    kept = set(BuildLogLine.objects.values_list("build_id", flat=True))
    assert kept == {builds[0].pk, builds[3].pk, builds[4].pk}
    RunLogLine.append(space, "after pruning")  # numbering goes on
    assert RunLogLine.objects.order_by("-number").first().number == 30


def test_pruning_runs_on_beats_schedule():
    assert django_settings.CELERY_BEAT_SCHEDULE["prune-logs"]["task"] == "builder.tasks.prune_logs"
