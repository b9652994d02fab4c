"""The pages, through Django's test client: gallery, space page, settings, accounts, embeds."""

import re
import shutil

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import Build, Space

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_repos_left():
    shutil.rmtree(settings.REPOS_DIR, ignore_errors=True)  # bare repos outlive the rolled-back rows


def make_space(owner: User, name: str, **fields) -> Space:
    defaults = {"title": name.title(), "sdk": "gradio", "stage": "RUNNING"}
    return Space.objects.create(
        owner=owner, name=name, subdomain=f"{owner.username}-{name}", **{**defaults, **fields}
    )


@pytest.fixture
def ada():
    return User.objects.create_user("ada", password="a-long-password-1")


@pytest.fixture
def ada_client(ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    return client


def csrf(client: Client, url: str) -> str:
    client.get(url)
    return client.cookies["csrftoken"].value


def cards(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-space="')[1:]]


@pytest.mark.fast
def test_gallery_search_sort_filter_and_pages(ada, client):
    bob = User.objects.create_user("bob")
    make_space(ada, "chat", title="Chatter", short_description="Talks back", likes=5, tags=["nlp"])
    make_space(
        bob, "sorter", title="Image sorter", short_description="Sorts pictures", likes=9, tags=["vision"]
    )
    make_space(bob, "docker-thing", sdk="docker", likes=1)
    make_space(ada, "hidden", visibility="private", likes=100)

    assert cards(client.get("/?sort=likes").content.decode()) == [
        "bob/sorter",
        "ada/chat",
        "bob/docker-thing",
    ]
    assert cards(client.get("/?q=pictures").content.decode()) == ["bob/sorter"]
    assert cards(client.get("/?q=CHATTER").content.decode()) == ["ada/chat"]
    assert cards(client.get("/?q=bob/sort").content.decode()) == ["bob/sorter"]
    assert cards(client.get("/?tag=nlp").content.decode()) == ["ada/chat"]
    assert cards(client.get("/?sdk=docker").content.decode()) == ["bob/docker-thing"]
    page = client.get("/?sort=likes&size=2").content.decode()
    assert cards(page) == ["bob/sorter", "ada/chat"] and "Page 1 of 2" in page
    assert cards(client.get("/?sort=likes&size=2&page=2").content.decode()) == ["bob/docker-thing"]
    # The private space shows to its owner only.
    client.force_login(ada)
    assert cards(client.get("/?sort=likes").content.decode())[0] == "ada/hidden"


@pytest.mark.fast
def test_gallery_card_shows_what_the_hub_shows(ada, client):
    make_space(
        ada,
        "chat",
        title="Chatter",
        emoji="🦜",
        color_from="pink",
        color_to="purple",
        short_description="Talks back",
        likes=7,
        stage="BUILD_ERROR",
    )
    html = client.get("/").content.decode()
    for text in ("🦜", "Chatter", "Talks back", "ada", "♥ 7", "BUILD_ERROR", "from-pink to-purple"):
        assert text in html


@pytest.mark.fast
@pytest.mark.parametrize("sort", ["trending", "likes", "updated", "created"])
def test_gallery_queries_do_not_grow_with_the_page(ada, client, sort):
    for i in range(60):
        make_space(User.objects.create_user(f"user{i}"), f"space{i}")

    def count(size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/?sort={sort}&size={size}&q=space")
        assert len(cards(response.content.decode())) == size
        return len(queries)

    assert count(2) == count(48) <= 3


@pytest.mark.fast
def test_trending_favours_recent_likes_and_visits(ada, client):
    old, new = make_space(ada, "old"), make_space(ada, "new")
    fans = [User.objects.create_user(f"fan{i}") for i in range(3)]
    for fan in fans:
        old.like(fan)
    Space.objects.filter(pk=old.pk).update(trending_score=old.trending_score / 2**4)  # four weeks ago
    new.like(fans[0])
    client.get("/ada/new")
    assert cards(client.get("/?sort=trending").content.decode()) == ["ada/new", "ada/old"]
    assert cards(client.get("/?sort=likes").content.decode()) == ["ada/old", "ada/new"]
    assert Space.objects.get(pk=new.pk).visits == 1


def test_space_page_iframe_readme_and_no_script(live, token_for, make_repo):
    readme = (
        "---\ntitle: Hello\nemoji: 👋\nsdk: gradio\napp_file: app.py\n---\n\n# Greeter\n\n"
        "Says **hello**.<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        "[link](javascript:alert(3))\n"
    )
    repo = make_repo({"README.md": readme, "app.py": "print(1)\n", "src/util.py": "X = 1\n"})
    assert repo.push(live.git_url("alice", "hello", token_for("alice"))).returncode == 0
    client = Client()
    assert 'id="starting"' in client.get("/alice/hello").content.decode()  # BUILDING: no app yet
    space = Space.objects.get(name="hello")
    Space.objects.filter(pk=space.pk).update(stage="RUNNING")
    html = client.get("/alice/hello").content.decode()
    assert f'src="{space.url}"' in html
    assert 'allow="camera; microphone; clipboard-read; clipboard-write; fullscreen' in html
    assert "<h1>Greeter</h1>" in html and "<strong>hello</strong>" in html
    readme_part = html.split('id="readme"')[1].split("</article>")[0]
    assert "<script" not in readme_part and "onerror" not in readme_part and "javascript:" not in readme_part

    files = client.get("/alice/hello/files").content.decode()
    assert "app.py" in files and "src" in files
    blob = client.get("/alice/hello/files/src/util.py").content.decode()
    assert "X = 1" in re.sub(r"<[^>]+>", "", blob)  # highlighted: the text is split into spans
    assert client.get("/alice/hello/files/nope.txt").status_code == 404
    api = client.get("/alice/hello/api").content.decode()
    assert "from gradio_client import Client" in api and 'Client("alice/hello")' in api
    assert client.get("/spaces/alice/hello")["Location"] == "/alice/hello"


@pytest.mark.fast
def test_logs_page_streams_from_the_api(ada, client):
    space = make_space(ada, "chat", head_sha="a" * 40, container_id="c0ffee")
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="failed", error="pip failed")
    html = client.get("/ada/chat/logs").content.decode()
    assert f"/api/spaces/ada/chat/logs/build?build={build.pk}" in html
    # The error is the log's last line: the page shows the log once (tests/test_pages.py).
    assert "/api/spaces/ada/chat/logs/run" in html and "pip failed" not in html and "EventSource" in html


@pytest.mark.fast
def test_embeds_and_pins(ada, ada_client, client):
    space = make_space(ada, "chat", head_sha="a" * 40)
    build = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="img:1")
    Space.objects.filter(pk=space.pk).update(deployed_build=build)
    code = client.get("/ada/chat/embed").content.decode()
    assert f"&lt;iframe src=&quot;{space.url}&quot;" in code and "No build is pinned yet" in code
    assert 'id="pin"' not in code  # only the owner pins
    embed = client.get("/embed/ada/chat")
    assert "X-Frame-Options" not in embed and f'src="{space.url}"' in embed.content.decode()
    assert f'src="{space.url}"' in client.get(f"/embed/ada/chat/{'a' * 7}").content.decode()
    assert client.get("/embed/ada/chat/bbbbbbb").status_code == 404
    # Gradio's theme switch reaches the app; anything else in it does not.
    assert f'src="{space.url}?__theme=dark"' in client.get("/embed/ada/chat?__theme=dark").content.decode()
    assert "__theme" not in client.get("/embed/ada/chat?__theme=%22%3E%3Cscript%3E").content.decode()
    assert client.get("/ada/chat")["X-Frame-Options"] == "DENY"  # the platform's own pages never frame

    token = csrf(ada_client, "/ada/chat/embed")
    ada_client.post("/ada/chat/pin", {"build": build.pk, "csrfmiddlewaretoken": token})
    build.refresh_from_db()
    assert build.pinned and build.pinned_host == f"pin--{build.pk}.localhost"
    code = client.get("/ada/chat/embed").content.decode()
    assert f"/embed/ada/chat/{'a' * 40}" in code
    # A citation for the paper, pointing at the pinned embed page.
    assert (
        "@misc{ada_chat_" in code
        and f"\\url{{http://localhost:{settings.PORT}/embed/ada/chat/{'a' * 40}}}" in code
    )
    # A later push deploys another build; the pinned embed still frames the pinned one.
    newer = Build.objects.create(space=space, commit_sha="b" * 40, state="succeeded", image="img:2")
    Space.objects.filter(pk=space.pk).update(deployed_build=newer, head_sha="b" * 40)
    assert f'src="{build.pinned_url}"' in client.get(f"/embed/ada/chat/{'a' * 40}").content.decode()
    assert f'src="{space.url}"' in client.get("/embed/ada/chat").content.decode()
    failed = Build.objects.create(space=space, commit_sha="c" * 40, state="failed")
    refused = ada_client.post(
        "/ada/chat/pin", {"build": failed.pk, "csrfmiddlewaretoken": token}, follow=True
    ).content.decode()
    assert "only a succeeded build can be pinned; this one is failed" in refused
    assert not Build.objects.get(pk=failed.pk).pinned

    Space.objects.filter(pk=space.pk).update(disable_embedding=True)
    refused = client.get("/embed/ada/chat")
    assert refused.status_code == 403 and "does not allow" in refused.content.decode()


@pytest.mark.fast
def test_settings_owner_only_csrf_and_post_only(ada, ada_client):
    space = make_space(ada, "chat")
    base = "/ada/chat/settings"
    token = csrf(ada_client, base)
    assert (
        ada_client.post(f"{base}/variable", {"key": "MODEL", "value": "tiny"}).status_code == 403
    )  # no CSRF
    assert ada_client.get(f"{base}/variable").status_code == 405
    generation = Space.objects.get(pk=space.pk).generation
    ada_client.post(f"{base}/variable", {"key": "MODEL", "value": "tiny", "csrfmiddlewaretoken": token})
    ada_client.post(
        f"{base}/variable",
        {"key": "API_KEY", "value": "s3cret-value", "secret": "1", "csrfmiddlewaretoken": token},
    )
    page = ada_client.get(base).content.decode()
    assert "MODEL" in page and "tiny" in page and "API_KEY" in page and "s3cret-value" not in page
    assert Space.objects.get(pk=space.pk).generation == generation + 2
    bad = ada_client.post(
        f"{base}/variable", {"key": "9 bad", "value": "", "csrfmiddlewaretoken": token}, follow=True
    )
    assert "not a valid variable name" in bad.content.decode()

    ada_client.post(f"{base}/sleep", {"sleep_time": "3600", "csrfmiddlewaretoken": token})
    ada_client.post(f"{base}/visibility", {"visibility": "private", "csrfmiddlewaretoken": token})
    ada_client.post(f"{base}/pause", {"csrfmiddlewaretoken": token})
    space.refresh_from_db()
    assert (space.sleep_time, space.visibility, space.paused) == (3600, "private", True)
    ada_client.post(f"{base}/restart", {"csrfmiddlewaretoken": token})
    assert not Space.objects.get(pk=space.pk).paused

    stranger = Client()
    stranger.force_login(User.objects.create_user("eve"))
    assert stranger.get(base).status_code == 404
    assert stranger.get("/ada/chat").status_code == 404  # private now

    kept = ada_client.post(
        "/ada/chat/delete", {"confirm": "wrong", "csrfmiddlewaretoken": token}, follow=True
    )
    assert "type ada/chat exactly" in kept.content.decode() and Space.objects.filter(pk=space.pk).exists()
    ada_client.post("/ada/chat/delete", {"confirm": "ada/chat", "csrfmiddlewaretoken": token})
    assert not Space.objects.filter(pk=space.pk).exists()


@pytest.mark.fast
def test_like_button(ada, ada_client):
    space = make_space(ada, "chat")
    token = csrf(ada_client, "/ada/chat")
    assert ada_client.get("/ada/chat/like").status_code == 405
    ada_client.post("/ada/chat/like", {"csrfmiddlewaretoken": token})
    assert (
        Space.objects.get(pk=space.pk).likes == 1
        and "♥ Liked" in ada_client.get("/ada/chat").content.decode()
    )
    ada_client.post("/ada/chat/like", {"csrfmiddlewaretoken": token})
    assert Space.objects.get(pk=space.pk).likes == 0
    anonymous = Client().post("/ada/chat/like")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login")


@pytest.mark.fast
def test_signup_signin_profile_and_tokens():
    client = Client(enforce_csrf_checks=True)
    token = csrf(client, "/signup")
    reserved = client.post(
        "/signup",
        {
            "username": "api",
            "password1": "x-long-pass-42",
            "password2": "x-long-pass-42",
            "csrfmiddlewaretoken": token,
        },
    )
    assert "reserved" in reserved.content.decode()
    client.post(
        "/signup",
        {
            "username": "grace",
            "password1": "x-long-pass-42",
            "password2": "x-long-pass-42",
            "csrfmiddlewaretoken": token,
        },
    )
    grace = User.objects.get(username="grace")
    token = client.cookies["csrftoken"].value
    client.post("/settings/tokens/new", {"name": "laptop", "scope": "read", "csrfmiddlewaretoken": token})
    shown = client.get("/settings/tokens").content.decode()
    raw = shown.split('id="token-value">')[1].split("<")[0]
    made = AccessToken.authenticate(raw)
    assert made.user == grace and made.scope == "read"
    assert raw not in client.get("/settings/tokens").content.decode()  # shown once
    client.post(f"/settings/tokens/{made.pk}/revoke", {"csrfmiddlewaretoken": token})
    assert AccessToken.authenticate(raw) is None

    make_space(grace, "mine")
    make_space(grace, "secret", visibility="private")
    assert cards(client.get("/grace").content.decode()) == ["grace/secret", "grace/mine"] or cards(
        client.get("/grace").content.decode()
    ) == ["grace/mine", "grace/secret"]
    assert cards(Client().get("/grace").content.decode()) == ["grace/mine"]

    assert client.get("/logout").status_code == 405
    client.post("/logout", {"csrfmiddlewaretoken": token})
    assert client.get("/settings/tokens").status_code == 302
    again = Client(enforce_csrf_checks=True)
    token = csrf(again, "/login")
    wrong = again.post("/login", {"username": "grace", "password": "nope", "csrfmiddlewaretoken": token})
    assert "correct username and password" in wrong.content.decode()
    ok = again.post(
        "/login?next=/grace",
        {"username": "grace", "password": "x-long-pass-42", "next": "/grace", "csrfmiddlewaretoken": token},
    )
    assert ok["Location"] == "/grace"


@pytest.mark.fast
def test_new_space_form(ada, ada_client):
    token = csrf(ada_client, "/new")
    bad = ada_client.post("/new", {"name": "../x", "csrfmiddlewaretoken": token})
    assert "Use letters, digits" in bad.content.decode() and not Space.objects.exists()
    made = ada_client.post("/new", {"name": "demo", "visibility": "private", "csrfmiddlewaretoken": token})
    assert made["Location"] == "/ada/demo"
    space = Space.objects.get(name="demo")
    assert space.is_private and space.repo_path.exists()
    page = ada_client.get("/ada/demo").content.decode()
    assert "Nothing pushed yet" in page and f"git remote add space {space.git_url}" in page
    again = ada_client.post("/new", {"name": "demo", "csrfmiddlewaretoken": token})
    assert "already have a space named demo" in again.content.decode()
    assert Client().get("/new")["Location"].startswith("/login")
