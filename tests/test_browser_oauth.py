"""gr.LoginButton signs a Spacedock user in: a real Gradio app with hf_oauth: true, built by the
builder, signs in through the real OAuth flow in Chromium, and shows gr.OAuthProfile's name and
what huggingface_hub.whoami says with gr.OAuthToken's token.

The app runs from its built image on the host's network, started by this test: under the runner,
the firewall keeps a container off the host, and the token exchange then cannot reach the
platform (docs/security.md, "Sign in for apps"). Everything else is the real thing: Gradio's
oauth.py, authlib, the platform's pages and provider."""

import pytest
import requests
from django.contrib.auth.models import User
from playwright.sync_api import expect

from builder import tasks
from spacedock.spaces.models import Build, Space
from tests.browser import screenshot
from tests.conftest import free_port
from tests.runner_fixtures import wait_for

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
    repo.git("checkout", "-q", "-b", "wip")  # built here, in this process; nothing queued for a worker
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
def run_app(live, docker_client):
    """Starts a space's built image on the host's network with the environment the runner gives it."""
    started = []

    def run(space: Space, build: Build) -> str:
        port = free_port()
        env = {
            **space.env(),
            # The test server's address; on the host's network it is the platform's, as a container
            # with the firewall's way through would reach it.
            "OPENID_PROVIDER_URL": live.url,
            "SPACE_HOST": f"{space.host}:{port}",
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
        }
        container = docker_client.containers.run(
            build.image, detach=True, network_mode="host", environment=env, labels={"sdtest": "1"}
        )
        started.append(container)

        def answers() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(answers, 120, what=lambda: f"the app to answer; its log: {container.logs()[-3000:]!r}")
        return f"http://{space.host}:{port}"

    yield run
    for container in started:
        container.remove(force=True)


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
