"""What a Hub user expects of the pages (issue 15), through Django's test client: stages in words,
the cause of a failure first, styled 404 and 500 pages, likes in place, Duplicate, a rebuild for a
failed build, private spaces. tests/test_browser_pages.py drives the same in Chromium."""

import shutil

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.template.loader import render_to_string
from django.test import Client

from runner.models import Runtime
from spacedock.spaces.causes import find_cause
from spacedock.spaces.models import Build, BuildLogLine, Space

pytestmark = [pytest.mark.django_db, pytest.mark.fast]

PIP_LOG = [
    "Step 5/9 : RUN pip install -r requirements.txt",
    "Collecting torchh==9.9",
    "ERROR: Could not find a version that satisfies the requirement torchh==9.9 (from versions: none)",
    "ERROR: No matching distribution found for torchh==9.9",
    "==> Build failed: The command '/bin/sh -c pip install -r requirements.txt' returned a non-zero code: 1",
]


@pytest.fixture(autouse=True)
def no_repos_left():
    yield
    shutil.rmtree(settings.REPOS_DIR, ignore_errors=True)


@pytest.fixture
def ada():
    return User.objects.create_user("ada", password="a-long-password-1")


@pytest.fixture
def ada_client(ada):
    client = Client()
    client.force_login(ada)
    return client


def failed_build(space: Space, lines: list[str], error: str) -> Build:
    build = Build.objects.create(space=space, commit_sha="a" * 40, ref="refs/heads/main")
    for line in lines:
        BuildLogLine.append(build, line)
    build.start()
    build.fail(error)
    space.refresh_from_db()
    return build


def test_causes_are_found_and_explained():
    cause = find_cause("\n".join(PIP_LOG))
    assert cause.line == "ERROR: No matching distribution found for torchh==9.9"
    assert "torchh==9.9" in cause.hint and "requirements.txt" in cause.hint
    crash = (
        'Traceback (most recent call last):\n  File "/app/app.py", line 3\nFileNotFoundError: [Errno 2] x.csv'
    )
    assert (
        find_cause(crash).line.startswith("FileNotFoundError")
        and "FileNotFoundError" in find_cause(crash).hint
    )
    assert "add its package" in find_cause("ModuleNotFoundError: No module named 'cv2'").hint
    assert "packages.txt" in find_cause("E: Unable to locate package libfoo").hint
    assert find_cause("all fine") is None


def test_stages_in_words_and_an_empty_space_is_not_an_error(ada, client):
    Space.create(ada, "empty")
    running = Space.create(ada, "live")
    Space.objects.filter(pk=running.pk).update(stage="RUNNING", head_sha="b" * 40)
    gallery = client.get("/").content.decode()
    assert ">Running<" in gallery and "RUNNING<" not in gallery
    page = client.get("/ada/empty").content.decode()
    assert 'class="badge EMPTY" id="stage"' in page and ">Empty<" in page
    body = page.split("<main>", 1)[1]
    assert "NO_APP_FILE" not in body.replace('data-stage="NO_APP_FILE"', "")
    # A sleeping space's page says which tier it sleeps in; the runtime API says SLEEPING for both.
    frozen, deep = Space.create(ada, "frozen"), Space.create(ada, "deep")
    Space.objects.filter(pk__in=[frozen.pk, deep.pk]).update(stage="SLEEPING", head_sha="c" * 40)
    Runtime.objects.create(space=frozen, sleep_tier="frozen")
    Runtime.objects.create(space=deep, sleep_tier="deep")
    assert ">Sleeping (frozen: wakes at once)<" in client.get("/ada/frozen").content.decode()
    deep_page = client.get("/ada/deep").content.decode()
    assert ">Sleeping<" in deep_page and "frozen" not in deep_page
    for name in ("frozen", "deep"):
        assert client.get(f"/api/spaces/ada/{name}/runtime").json()["stage"] == "SLEEPING"


def test_failed_build_shows_the_cause_first_and_the_log_once(ada, ada_client):
    space = Space.create(ada, "broken")
    Space.objects.filter(pk=space.pk).update(head_sha="a" * 40)
    error = "The build failed at step 5/9.\n\nLast lines of the log:\n" + "\n".join(PIP_LOG)
    failed_build(space, PIP_LOG, error)
    assert space.stage == "BUILD_ERROR"
    page = ada_client.get("/ada/broken").content.decode()
    assert page.index('id="cause"') < page.index('id="stage-message"')
    assert 'id="cause">ERROR: No matching distribution found for torchh==9.9<' in page
    assert page.count("Collecting torchh") == 1  # the raw message, once, folded away
    logs = ada_client.get("/ada/broken/logs").content.decode()
    assert "Collecting torchh" not in logs  # the log streams in once; no copy of it in the page
    assert 'id="cause"' in logs and 'id="run-log-none"' in logs  # no container panel waiting forever
    assert 'id="run-log"' not in logs
    settings_page = ada_client.get("/ada/broken/settings").content.decode()
    assert 'id="restart">Rebuild<' in settings_page


def test_restart_of_a_failed_build_builds_again(ada, ada_client):
    space = Space.create(ada, "broken")
    Space.objects.filter(pk=space.pk).update(head_sha="a" * 40)
    failed_build(space, PIP_LOG, "failed")
    answer = ada_client.post("/ada/broken/settings/restart")
    assert answer.status_code == 302
    # A second build of the head was queued (the suite's broker may run it at once: it has no repo).
    assert space.builds.count() == 2 and space.builds.filter(no_cache=True).count() == 1


def test_like_answers_json_for_the_page_script(ada, ada_client):
    Space.create(ada, "chat")
    json = {"HTTP_ACCEPT": "application/json"}
    assert ada_client.post("/ada/chat/like", **json).json() == {"liked": True, "likes": 1}
    assert ada_client.post("/ada/chat/like", **json).json() == {"liked": False, "likes": 0}


def test_duplicate_makes_a_copy_in_the_visitors_namespace(ada, ada_client):
    Space.create(ada, "chat")
    bob = User.objects.create_user("bob", password="a-long-password-2")
    bob_client = Client()
    bob_client.force_login(bob)
    assert 'id="duplicate"' in bob_client.get("/ada/chat").content.decode()
    form = bob_client.get("/ada/chat/duplicate")
    assert form.status_code == 200 and 'value="chat"' in form.content.decode()
    answer = bob_client.post("/ada/chat/duplicate", {"name": "my-chat", "visibility": "private"})
    assert answer.status_code == 302 and answer["Location"] == "/bob/my-chat"
    assert Space.objects.get(owner=bob, name="my-chat").visibility == "private"
    again = bob_client.post("/ada/chat/duplicate", {"name": "my-chat", "visibility": "public"})
    assert "You already have a space named my-chat" in again.content.decode()
    assert Client().get("/ada/chat/duplicate").status_code == 302  # sign in first


def test_private_space_pages(ada, ada_client):
    Space.create(ada, "secret", visibility="private", stage="RUNNING")
    Space.create(ada, "empty-one")
    assert 'id="open-app"' not in ada_client.get("/ada/empty-one").content.decode()  # nothing to open
    page = ada_client.get("/ada/secret").content.decode()
    assert (
        'id="open-app" href="http://ada-secret.localhost' in page
        and "?__sign=" in page.split('id="open-app"')[1]
    )
    embed = ada_client.get("/ada/secret/embed").content.decode()
    assert 'id="private-embed"' in embed
    stranger = Client().get("/ada/secret")
    body = stranger.content.decode()
    assert stranger.status_code == 404 and 'id="not-found"' in body
    assert 'id="sign-in" href="/login?next=/ada/secret"' in body
    assert "ada/secret" not in body.replace("/login?next=/ada/secret", "").replace(
        "<code>/ada/secret</code>", ""
    )


def test_styled_error_pages_and_favicon(client):
    missing = client.get("/no/such/page/here")
    assert missing.status_code == 404 and 'id="not-found"' in missing.content.decode()
    assert 'rel="icon"' in missing.content.decode()
    broken = render_to_string("500.html")
    assert 'id="server-error"' in broken and 'rel="icon"' in broken and "{%" not in broken


def test_signup_with_a_taken_name_is_a_form_error(ada, client):
    answer = client.post(
        "/signup", {"username": "ada", "password1": "a-long-password-9", "password2": "a-long-password-9"}
    )
    assert answer.status_code == 200 and "already exists" in answer.content.decode()


def test_space_page_shows_tags_license_and_sdk(ada, client):
    Space.create(ada, "tagged", sdk="gradio", sdk_version="5.9.1", license="mit", tags=["nlp", "demo"])
    meta = client.get("/ada/tagged").content.decode().split('id="space-meta"')[1].split("</div>")[0]
    assert "gradio 5.9.1" in meta and "⚖️ mit" in meta and 'href="/?tag=nlp"' in meta


def test_wake_page_in_the_app_frame_has_no_second_header(ada):
    space = Space.create(ada, "sleepy", stage="SLEEPING")
    html = render_to_string(
        "proxy/wake.html", {"space": space, "state": {"stage": "SLEEPING", "starting": True, "message": ""}}
    )
    assert 'class="top"' not in html and 'class="badge' not in html
    assert "Sleeping: this space is waking up" in html


def test_new_space_form_sets_what_the_hub_form_sets(ada, ada_client):
    page = ada_client.get("/new").content.decode()
    for field in (
        'name="title"',
        'name="emoji"',
        'name="color_from"',
        'name="sdk" value="docker"',
        'id="hardware"',
    ):
        assert field in page
    made = ada_client.post(
        "/new",
        {"name": "card", "title": "My card", "emoji": "🦜", "color_from": "pink", "color_to": "purple",
         "sdk": "static", "visibility": "public"},
    )  # fmt: skip
    assert made.status_code == 302
    space = Space.objects.get(name="card")
    assert (space.title, space.emoji, space.color_from, space.color_to, space.sdk) == (
        "My card", "🦜", "pink", "purple", "static"
    )  # fmt: skip
    bad = ada_client.post("/new", {"name": "x", "color_from": "chartreuse"})
    assert "Colours are" in bad.content.decode() and not Space.objects.filter(name="x").exists()
    # Hardware: the flavours this user may use, by default those without a GPU.
    assert 'value="cpu-upgrade"' in page and 'value="t4-small"' not in page
    upgraded = ada_client.post(
        "/new", {"name": "big", "sdk": "gradio", "visibility": "public", "hardware": "cpu-upgrade"}
    )
    assert upgraded.status_code == 302
    assert Space.objects.get(name="big").hardware.requested == "cpu-upgrade"
    refused = ada_client.post(
        "/new", {"name": "gpu", "sdk": "gradio", "visibility": "public", "hardware": "t4-small"}
    )
    assert "Hardware is one of: cpu-basic, cpu-upgrade" in refused.content.decode()
    assert not Space.objects.filter(name="gpu").exists()


def test_a_crash_shows_the_exception_first(ada, client):
    """The runner's message may carry a wrong exit code (see the report on issue 15); the page leads
    with what the app's own log says."""
    space = Space.create(ada, "crashy")
    message = (
        "The app exited with code 0 while starting.\n\nLast lines of the log:\n"
        "Traceback (most recent call last):\n"
        '  File "/home/user/app/app.py", line 3, in <module>\n'
        "FileNotFoundError: [Errno 2] No such file or directory: 'model.bin'"
    )
    Space.objects.filter(pk=space.pk).update(stage="RUNTIME_ERROR", head_sha="d" * 40, stage_message=message)
    page = client.get("/ada/crashy").content.decode()
    assert "Runtime error:" in page
    assert 'id="cause">FileNotFoundError: [Errno 2] No such file or directory: &#x27;model.bin&#x27;<' in page
