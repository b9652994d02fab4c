"""The Logs tab's builds list (issue 14): which build serves the space, which are pinned and where,
and the rollback, pin and unpin buttons for those who may write the space; readers see the list
without them. Django's test client against the suite's database, and one phone check in Chromium."""

import re
import shutil

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import expect

from spacedock.accounts.models import Organization, Quota
from spacedock.spaces.models import Build, Space
from tests.browser import screenshot, sign_in

PHONE_375 = {"width": 375, "height": 812}


@pytest.fixture(autouse=True)
def no_repos_left():
    yield
    shutil.rmtree(settings.REPOS_DIR, ignore_errors=True)


def space_with_builds(owner: User, name: str = "chat") -> tuple[Space, dict[str, Build]]:
    """A space serving build "new", an older succeeded "old", and a "failed" one."""
    space = Space.create(owner, name, sdk="gradio")
    old = Build.objects.create(space=space, commit_sha="a" * 40, state="succeeded", image="img@old")
    failed = Build.objects.create(space=space, commit_sha="b" * 40, state="failed", error="pip")
    new = Build.objects.create(space=space, commit_sha="c" * 40, state="succeeded", image="img@new")
    Space.objects.filter(pk=space.pk).update(deployed_build=new, head_sha="c" * 40, stage="RUNNING")
    space.refresh_from_db()
    return space, {"old": old, "failed": failed, "new": new}


def signed_in(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post(client: Client, path: str, build: Build, **extra) -> str:
    """Posts the list's form as the page does (with its CSRF token) and returns the page it lands on."""
    client.get("/ada/chat/logs")
    token = client.cookies["csrftoken"].value
    page = client.post(path, {"build": build.pk, "csrfmiddlewaretoken": token, **extra}, follow=True)
    assert page.status_code == 200, page.status_code
    return page.content.decode()


def messages_of(html: str) -> list[str]:
    """The messages the page shows, as text."""
    if 'class="messages"' not in html:
        return []
    box = html.split('class="messages"', 1)[1].split("</ul>", 1)[0]
    return [re.sub(r"\s+", " ", text).strip() for text in re.findall(r"<li[^>]*>(.*?)</li>", box, re.S)]


def item(html: str, build: Build) -> str:
    """One build's entry of the list."""
    return html.split(f'id="build-{build.pk}"')[1].split("</li>")[0]


@pytest.mark.django_db
def test_owner_rolls_back_pins_and_unpins_from_the_builds_list():
    ada = User.objects.create_user("ada")
    space, b = space_with_builds(ada)
    client = signed_in(ada)
    html = client.get("/ada/chat/logs").content.decode()

    # What serves the space, and a button for each succeeded build only.
    assert "serves the space" in item(html, b["new"]) and "serves the space" not in item(html, b["old"])
    assert 'class="rollback"' in item(html, b["old"]) and 'class="pin"' in item(html, b["old"])
    assert 'class="rollback"' not in item(html, b["new"])  # it serves already
    assert 'class="pin"' in item(html, b["new"])
    assert "<button" not in item(html, b["failed"])

    page = post(client, "/ada/chat/rollback", b["old"])
    space.refresh_from_db()
    assert space.deployed_build_id == b["old"].pk and space.generation == 1
    assert messages_of(page) == [
        f"Build #{b['old'].pk} (aaaaaaa) takes over: it replaces the running app once it answers."
    ]
    assert "serves the space" in item(page, b["old"]) and 'class="rollback"' in item(page, b["new"])

    page = post(client, "/ada/chat/pin", b["new"])
    assert Build.objects.get(pk=b["new"].pk).pinned
    host = f"pin--{b['new'].pk}.localhost"
    assert f"is pinned: its embed keeps showing it, at {host}" in messages_of(page)[0]
    pinned = item(page, b["new"])
    assert '<span class="badge pinned">pinned</span>' in pinned and 'class="unpin"' in pinned
    assert f'href="http://{host}:{settings.PORT}/">{host}</a>' in pinned
    assert f'href="http://localhost:{settings.PORT}/embed/ada/chat/{"c" * 40}"' in pinned
    # The embed tab lists the same pin.
    assert f"/embed/ada/chat/{'c' * 40}" in client.get("/ada/chat/embed").content.decode()

    page = post(client, "/ada/chat/unpin", b["new"])
    assert not Build.objects.get(pk=b["new"].pk).pinned
    assert "is unpinned" in messages_of(page)[0] and "pinned</span>" not in item(page, b["new"])

    # What went wrong, said on the page: a build that did not succeed, then the quotas.
    page = post(client, "/ada/chat/rollback", b["failed"])
    assert "was not rolled back to" in messages_of(page)[0] and "(it is failed)" in messages_of(page)[0]
    page = post(client, "/ada/chat/pin", b["failed"])
    assert "only a succeeded build can be pinned; this one is failed" in messages_of(page)[0]
    assert Space.objects.get(pk=space.pk).deployed_build_id == b["old"].pk
    assert not Build.objects.get(pk=b["failed"].pk).pinned
    Quota.objects.create(user=ada, pinned_builds=0, running_spaces=0)
    page = post(client, "/ada/chat/pin", b["new"])
    assert "Quota exceeded: pinned_builds (at most 0 pinned builds)" in messages_of(page)[0]
    page = post(client, "/ada/chat/rollback", b["new"])
    assert "Quota exceeded: running_spaces" in messages_of(page)[0]
    assert Space.objects.get(pk=space.pk).deployed_build_id == b["old"].pk
    assert not Build.objects.get(pk=b["new"].pk).pinned

    # Past the 20 latest builds, the one that serves and the pinned ones are still listed.
    Build.objects.filter(pk=b["new"].pk).update(pinned=True)
    Build.objects.bulk_create(Build(space=space, commit_sha="d" * 40, state="failed") for _ in range(20))
    html = client.get("/ada/chat/logs").content.decode()
    assert "serves the space" in item(html, b["old"]) and "pinned</span>" in item(html, b["new"])
    assert f'id="build-{b["failed"].pk}"' not in html

    # The Embed tab's pin button lands back on the Embed tab.
    Quota.objects.filter(user=ada).delete()
    client.get("/ada/chat/embed")
    token = client.cookies["csrftoken"].value
    back = client.post("/ada/chat/pin", {"build": b["old"].pk, "csrfmiddlewaretoken": token, "back": "embed"})
    assert back["Location"] == "/ada/chat/embed"


@pytest.mark.django_db
def test_only_writers_get_the_buttons_and_only_by_post_with_csrf():
    ada = User.objects.create_user("ada")
    bob, cy, eve = (User.objects.create_user(n) for n in ("bob", "cy", "eve"))
    space, b = space_with_builds(ada)

    for reader in (Client(), signed_in(eve)):
        html = reader.get("/ada/chat/logs").content.decode()
        assert "serves the space" in item(html, b["new"]) and "<button" not in html.split('id="builds"')[1]
    refused = signed_in(eve).post("/ada/chat/rollback", {"build": b["old"].pk})
    assert refused.status_code == 403  # the CSRF check, before anything else
    eve_client = signed_in(eve)
    for path in ("rollback", "pin", "unpin"):
        eve_client.get("/ada/chat/logs")
        token = eve_client.cookies["csrftoken"].value
        answer = eve_client.post(f"/ada/chat/{path}", {"build": b["old"].pk, "csrfmiddlewaretoken": token})
        assert answer.status_code == 403 and "only its owner does" in answer.content.decode(), path
        anonymous = Client().post(f"/ada/chat/{path}", {"build": b["old"].pk})
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login"), path
    owner = signed_in(ada)
    assert owner.post("/ada/chat/rollback", {"build": b["old"].pk}).status_code == 403  # no CSRF token
    assert owner.get("/ada/chat/rollback").status_code == 405
    other, _ = space_with_builds(ada, "other")
    assert post(owner, "/ada/chat/pin", b["old"]) and Build.objects.get(pk=b["old"].pk).pinned
    stranger = other.builds.get(state="succeeded", commit_sha="a" * 40)
    owner.get("/ada/chat/logs")
    token = owner.cookies["csrftoken"].value
    not_ours = owner.post("/ada/chat/rollback", {"build": stranger.pk, "csrfmiddlewaretoken": token})
    assert not_ours.status_code == 404  # another space's build is not this space's to run
    assert Space.objects.get(pk=space.pk).deployed_build_id == b["new"].pk

    # The same policy as everywhere (spaces.access): an organization's write members roll back,
    # its read members only look.
    lab = Organization.create("lab", ada)
    lab.set_role(ada, "bob", "write")
    lab.set_role(ada, "cy", "read")
    lab_space, lb = space_with_builds(lab.account, "demo")
    writer, reader = signed_in(bob), signed_in(cy)
    assert 'class="rollback"' in item(writer.get("/lab/demo/logs").content.decode(), lb["old"])
    assert "<button" not in reader.get("/lab/demo/logs").content.decode().split('id="builds"')[1]
    for client in (writer, reader):
        client.get("/lab/demo/logs")
    token = reader.cookies["csrftoken"].value
    refused = reader.post("/lab/demo/rollback", {"build": lb["old"].pk, "csrfmiddlewaretoken": token})
    assert refused.status_code == 403
    token = writer.cookies["csrftoken"].value
    writer.post("/lab/demo/rollback", {"build": lb["old"].pk, "csrfmiddlewaretoken": token})
    assert Space.objects.get(pk=lab_space.pk).deployed_build_id == lb["old"].pk


def test_builds_list_on_a_375_px_phone(live, browser):
    """The owner pins and rolls back on a phone; nothing scrolls sideways."""
    ada = User.objects.create_user("ada", password="ada-password-1")
    space, b = space_with_builds(ada)
    context = browser.new_context(viewport=PHONE_375, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, live.url, "ada", "ada-password-1")
        page.goto(f"{live.url}/ada/chat/logs#builds")
        page.locator(f"#build-{b['old'].pk} button.pin").click()
        # The answer shows where the button was, not at the top of a page scrolled to the list.
        expect(page.locator("#builds .messages")).to_contain_text("is pinned")
        expect(page.locator("#builds .messages")).to_be_in_viewport()
        header = page.locator("header.top").bounding_box()
        message = page.locator("#builds .messages").bounding_box()
        assert message["y"] >= header["y"] + header["height"], "the sticky header hides the answer"
        expect(page.locator(f"#build-{b['old'].pk} .pin-links")).to_contain_text(f"pin--{b['old'].pk}.")
        page.locator(f"#build-{b['old'].pk} button.rollback").click()
        expect(page.locator("#builds .messages")).to_contain_text("takes over")
        expect(page.locator(f"#build-{b['old'].pk} .current")).to_have_text("serves the space")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_375["width"], f"the builds list scrolls sideways on a phone ({width}px)"
        screenshot(page, "builds-phone")
    finally:
        context.close()
    assert Space.objects.get(pk=space.pk).deployed_build_id == b["old"].pk
