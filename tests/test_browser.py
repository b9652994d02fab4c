"""What people see in a real browser: the gallery, a space page, settings and the live build log."""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import Build, BuildLogLine, Space
from tests.browser import PHONE, screenshot, sign_in

CARDS = [
    ("ada", "chat", "Chatter", "🦜", "pink", "purple", "Talks back, politely", 42, "RUNNING"),
    ("ada", "sorter", "Image sorter", "🖼️", "blue", "indigo", "Sorts your pictures by colour", 17, "RUNNING"),
    ("bob", "whisper-live", "Live transcription", "🎙️", "green", "blue", "Speech to text in the browser", 9,
     "SLEEPING"),
    ("bob", "pdf-qa", "PDF questions", "📄", "yellow", "red", "Ask a question about a paper", 5, "BUILDING"),
    ("cy", "tiny-gan", "Tiny GAN", "🎨", "purple", "pink", "", 3, "BUILD_ERROR"),
    ("cy", "weather", "Weather", "⛅", "gray", "blue", "Forecasts from open data", 1, "PAUSED"),
]  # fmt: skip


@pytest.fixture
def gallery(live, token_for, make_repo):
    """A few spaces as a gallery shows them, and alice's pushed hello-world."""
    for owner, name, title, emoji, c_from, c_to, desc, likes, stage in CARDS:
        user, _ = User.objects.get_or_create(username=owner)
        Space.create(user, name, title=title, emoji=emoji, color_from=c_from, color_to=c_to,
                     short_description=desc, likes=likes, stage=stage, sdk="gradio")  # fmt: skip
    assert make_repo().push(live.git_url("alice", "hello", token_for("alice"))).returncode == 0
    user = User.objects.get(username="alice")
    user.set_password("alice-password-1")
    user.save()
    return live


def test_visitor_finds_a_space_by_search_and_opens_it(gallery, page, browser):
    page.goto(gallery.url)
    expect(page.locator(".card")).to_have_count(7)
    screenshot(page, "gallery-desktop")

    page.fill("main input[name=q]", "says hello")
    page.click("main button:has-text('Search')")
    expect(page.locator(".card")).to_have_count(1)
    page.click(".card >> text=Hello")
    page.wait_for_url(re.compile(r"/alice/hello$"))
    expect(page.locator("#starting")).to_contain_text("queued, waiting for a builder")  # no worker here
    expect(page.locator("#readme h1")).to_have_text("Hello")
    screenshot(page, "space-building-desktop")

    # What the runner reports once the app runs (the running-app tests check the real thing).
    space = Space.objects.get(name="hello")
    Space.objects.filter(pk=space.pk).update(stage="RUNNING")
    page.reload()
    expect(page.locator("iframe#app")).to_have_attribute("src", space.url)
    allow = page.locator("iframe#app").get_attribute("allow")
    for feature in ("camera", "microphone", "clipboard-write", "fullscreen"):
        assert feature in allow
    expect(page.locator("#readme h1")).to_have_text("Hello")
    screenshot(page, "space-desktop")

    page.click(".tabs >> text=Files")
    expect(page.locator("#files")).to_contain_text("app.py")
    page.click("#files >> text=app.py")
    expect(page.locator("#blob")).to_contain_text("gr.Interface(greet")
    expect(page.locator("#blob.highlighted span").first).to_be_visible()  # Pygments coloured it
    page.click("#history")
    expect(page.locator("#commits tr")).to_have_count(1)
    head = Space.objects.get(name="hello").head_sha
    expect(page.locator("#commits")).to_contain_text(head[:7])

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    phone.goto(gallery.url)
    expect(phone.locator(".card").first).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the gallery scrolls sideways on a phone ({width}px)"
    screenshot(phone, "gallery-phone")
    phone.goto(f"{gallery.url}/alice/hello")
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "space-phone")
    phone.context.close()


def test_owner_signs_in_sets_a_secret_and_a_variable(gallery, page):
    space = Space.objects.get(name="hello")
    generation = space.generation
    sign_in(page, gallery.url, "alice", "alice-password-1")
    page.goto(f"{gallery.url}/alice/hello")
    page.click(".tabs >> text=Settings")

    page.fill("#variables input[name=key]", "GREETING")
    page.fill("#variables input[name=value]", "Ahoy")
    page.click("#add-variable")
    expect(page.locator(".messages")).to_contain_text("Variable GREETING saved")
    page.fill("#secrets input[name=key]", "API_KEY")
    page.fill("#secrets input[name=value]", "hunter2-secret")
    page.click("#add-secret")
    expect(page.locator(".messages")).to_contain_text("Secret API_KEY saved")

    expect(page.locator("#variables")).to_contain_text("Ahoy")
    expect(page.locator("#secrets")).to_contain_text("API_KEY")
    assert "hunter2-secret" not in page.content()
    screenshot(page, "settings-desktop")
    space.refresh_from_db()
    assert space.generation == generation + 2
    assert space.env()["GREETING"] == "Ahoy" and space.env()["API_KEY"] == "hunter2-secret"

    page.click("#like")
    expect(page.locator("#likes")).to_have_text("1")

    page.set_viewport_size(PHONE)
    page.goto(f"{gallery.url}/alice/hello/settings")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "settings-phone")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("header >> text=Tokens")
    page.fill("input[name=name]", "laptop")
    page.select_option("select[name=scope]", "read")
    page.click("text=Create token")
    raw = page.locator("#token-value").inner_text().strip()
    assert AccessToken.authenticate(raw).scope == "read"
    screenshot(page, "tokens-desktop")
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)  # shown once
    page.click("#tokens >> tr:has-text('laptop') >> text=Revoke")
    expect(page.locator(".messages")).to_contain_text("laptop revoked")
    assert AccessToken.authenticate(raw) is None


def test_live_log_shows_build_lines_while_the_build_runs(gallery, page):
    # The test writes the lines a build writes, as the builder's log does, so that it controls
    # when each appears; test_builder follows a real build's log stream.
    build = Build.objects.get(space__name="hello")
    assert build.start()
    BuildLogLine.append(build, "Step 1/4 : FROM spacedock/base:bookworm")
    page.goto(f"{gallery.url}/alice/hello/logs")
    log = page.locator("#build-log")
    expect(log).to_contain_text("Step 1/4")
    for step in range(2, 5):
        BuildLogLine.append(build, f"Step {step}/4 : line written while the page is open")
        expect(log).to_contain_text(f"Step {step}/4")
    build.succeed("sdweb/hello:1")
    expect(page.locator("#build-state")).to_have_text("succeeded")
    expect(page.locator("#stage")).to_have_text("Starting")
    page.wait_for_timeout(4000)  # the stream ends and the browser reconnects: nothing may repeat
    assert log.inner_text().count("Step 3/4") == 1
    screenshot(page, "logs-desktop")


def test_pages_a_hub_user_expects_on_desktop_and_phone(gallery, browser):
    """Issue 15's page items that need no running app: stages in words, a failed build's cause,
    copy buttons, Duplicate, private spaces, the 404 page, the favicon, and the phone layout."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    url = gallery.url
    ada = User.objects.get(username="ada")
    ada.set_password("ada-password-1")
    ada.save()
    Space.objects.filter(name="tiny-gan").update(
        head_sha="c" * 40,
        stage_message="Build failed.\nERROR: No matching distribution found for torchh==9.9",
    )
    Space.create(ada, "vault", visibility="private", title="Vault", stage="SLEEPING")

    page.goto(url)
    expect(page.locator(".card[data-space='cy/tiny-gan'] .badge")).to_have_text("Build error")
    expect(page.locator("link[rel=icon]")).to_have_count(1)
    page.goto(f"{url}/cy/tiny-gan")
    expect(page.locator("#stage")).to_have_text("Build error")
    expect(page.locator("#open-app")).to_have_count(0)  # nothing to open
    expect(page.locator("#cause")).to_have_text("ERROR: No matching distribution found for torchh==9.9")
    expect(page.locator("#hint")).to_contain_text("requirements.txt")
    screenshot(page, "space-build-error-desktop")

    # A signed-out visitor: a private space is a styled 404 with a way to sign in.
    page.goto(f"{url}/ada/vault")
    expect(page.locator("#not-found")).to_be_visible()
    page.click("#not-found >> #sign-in")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "ada-password-1")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r"/ada/vault$"))
    assert "__sign=" in page.locator("#open-app").get_attribute("href")
    page.click(".tabs >> text=Embed")
    expect(page.locator("#private-embed")).to_contain_text("private")
    page.locator("#iframe-snippet + button.copy").click()
    expect(page.locator("#iframe-snippet + button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#iframe-snippet").inner_text()
    screenshot(page, "embed-private-desktop")

    page.goto(f"{url}/alice/hello")
    page.click("#duplicate")
    page.fill("input[name=name]", "hello-copy")
    page.click("#duplicate-submit")
    page.wait_for_url(re.compile(r"/ada/hello-copy$"))
    expect(page.locator(".messages")).to_contain_text("Duplicated alice/hello")
    assert (
        Space.objects.get(owner=ada, name="hello-copy").head_sha == Space.objects.get(name="hello").head_sha
    )

    page.goto(f"{url}/no/such/thing/here")
    expect(page.locator("#not-found h1")).to_have_text("Nothing here")
    screenshot(page, "404-desktop")

    # A phone: the tabs scroll sideways with a cue, the tokens table keeps its words whole.
    page.set_viewport_size(PHONE)
    page.goto(f"{url}/ada/vault/embed")
    tabs = page.locator(".tabs-wrap .tabs")
    assert tabs.evaluate("t => t.scrollWidth > t.clientWidth"), "the tabs fit: no cue needed at this width"
    expect(page.locator(".tabs-wrap")).to_have_class(re.compile(r"\bmore\b"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "space-tabs-phone")
    tabs.evaluate("t => t.scrollTo(t.scrollWidth, 0)")
    expect(page.locator(".tabs-wrap")).not_to_have_class(re.compile(r"\bmore\b"))
    page.goto(f"{url}/settings/tokens")
    page.fill("input[name=name]", "a-laptop-with-a-long-name")
    page.click("text=Create token")
    hint = page.locator("#tokens code").first
    assert hint.evaluate("c => c.getClientRects().length") == 1, "the token's hint broke over lines"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "tokens-phone")
    context.close()
