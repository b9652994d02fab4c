"""gr.LoginButton signs a Spacedock user in: a real Gradio app with hf_oauth: true, built by the
builder and run by the runner behind Caddy, its firewall in place, signs in through the real OAuth
flow in Chromium, and shows gr.OAuthProfile's name and what huggingface_hub.whoami says with
gr.OAuthToken's token.

The app's server reaches the provider through the firewall's one door into the host, Caddy's
public port (docs/security.md, "Sign in for apps"). The site's domain is localhost here, which
in a container is the container itself: with nothing set, the space is told
http://host.docker.internal:<port>, which the runner points at the spaces' bridge gateway, as on
any localhost install; Caddy listens there too, as make up's `:8080` does."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from builder import tasks
from runner import firewall
from spacedock.spaces.models import Build, Space
from tests.browser import screenshot

PASSWORD = "a long pass phrase for ada"
README = "---\ntitle: Who am I\nsdk: gradio\nhf_oauth: true\n---\n"
APP = """import os

import gradio as gr
from huggingface_hub import HfApi


def hello(profile: gr.OAuthProfile | None, token: gr.OAuthToken | None) -> str:
    if profile is None or token is None:
        return "Signed out"
    me = HfApi(endpoint=os.environ["OPENID_PROVIDER_URL"]).whoami(token.token)
    return f"Hello {profile.name} ({profile.username}); whoami says {me['name']}"


with gr.Blocks() as demo:
    gr.LoginButton()
    who = gr.Markdown(elem_id="who")
    demo.load(hello, None, who)
demo.launch()
"""


def built_app(live, token_for, make_repo, readme: str, name: str) -> tuple[Space, Build]:
    repo = make_repo({"README.md": readme, "app.py": APP})
    repo.git("tag", "wip")  # a tag is stored, not built: built here, in this process
    assert repo.git("push", live.git_url("alice", name, token_for("alice")), "wip").returncode == 0
    space = Space.objects.get(name=name)
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
    tasks.build(build.pk)
    build.refresh_from_db()
    assert build.state == "succeeded", build.error
    Space.objects.filter(pk=space.pk).update(deployed_build=build)
    space.refresh_from_db()
    return space, build


@pytest.fixture
def door(proxy, live):
    """The platform as a container reaches it by default: Caddy also on the spaces' bridge gateway,
    where host.docker.internal leads. Nothing else is set: the suite's own gunicorn answers there.
    Restored here, not by monkeypatch, whose undo may come after the runner's last pass: Caddy would
    keep listening on the gateway for the tests that follow."""
    saved = settings.LISTEN
    settings.LISTEN = f"127.0.0.1:{proxy.port},{firewall.gateway()}:{proxy.port}"
    try:
        yield f"http://host.docker.internal:{proxy.port}"
    finally:
        settings.LISTEN = saved


@pytest.fixture
def run_app(runner, proxy, door):
    """Runs a built space under the real runner (firewall, hardened container, Caddy's route)."""

    def run(space: Space, build: Build) -> str:
        assert firewall.ensure(), "the runner could not install its firewall (it runs as root here)"
        runner.converge()
        space.refresh_from_db()
        assert space.stage == "RUNNING", (space.stage, space.stage_message)
        assert space.env()["OPENID_PROVIDER_URL"] == door
        return proxy.url(space).rstrip("/")

    return run


@pytest.fixture
def ada(live):
    return User.objects.create_user("ada", password=PASSWORD, first_name="Ada", last_name="Lovelace")


def test_login_button_signs_in_through_spacedock(live, token_for, make_repo, run_app, ada, page):
    url = run_app(*built_app(live, token_for, make_repo, README, "whoami"))
    page.goto(url)
    expect(page.locator("#who")).to_contain_text("Signed out")
    page.get_by_role("button", name="Sign in").first.click()
    page.wait_for_url(lambda u: "/login?next=" in u)
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    expect(page.locator("#oauth-consent")).to_contain_text("The app alice/whoami")
    page.click("#oauth-allow")
    page.wait_for_url(lambda u: u.startswith(url))
    expect(page.locator("#who")).to_contain_text("Hello Ada Lovelace (ada); whoami says ada", timeout=30_000)
    screenshot(page, "oauth-signed-in")


def test_a_login_button_without_hf_oauth_starts_and_says_what_to_write(
    live, token_for, make_repo, run_app, ada, page
):
    # On SYSTEM=spaces, Gradio refuses to start a LoginButton app without the OAuth variables.
    url = run_app(*built_app(live, token_for, make_repo, README.replace("hf_oauth: true\n", ""), "nooauth"))
    page.goto(url)
    expect(page.locator("#who")).to_contain_text("Signed out")
    # The provider says so before anyone signs in.
    page.get_by_role("button", name="Sign in").first.click()
    expect(page.locator("#oauth-consent")).to_contain_text("needs hf_oauth: true")
