"""Pins and previews served by the runner: real Docker, real Caddy, gradio_client at their own hosts."""

import os

from django.conf import settings
from gradio_client import Client
from playwright.sync_api import expect

from spacedock.accounts.models import AccessToken
from spacedock.spaces.config import SpaceConfig
from spacedock.spaces.embed import pinned_embed_page
from spacedock.spaces.models import Build, Deployment, Space, site_origin
from tests.browser import outside_site
from tests.runner_fixtures import DOCKER, deployed, publish, runner_loop, wait_for


def deployment_containers(space: Space) -> list[str]:
    import subprocess

    out = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"label=spacedock.instance={settings.INSTANCE}",
         "--filter", f"label=spacedock.space={space.pk}", "--filter", "label=spacedock.deployment"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split()


def test_a_pin_and_a_preview_serve_their_own_builds_sleep_and_wake(
    runner, proxy, images, resolve_localhost, browser, tmp_path
):
    """v1 pinned, v2 pushed: the space serves v2 and the pin host v1; a branch's preview serves its
    build beside them; an idle pin sleeps (no container) and a visit wakes it; a private space's pin
    and preview hosts ask the same gate; deleting the branch and unpinning remove their containers."""
    space = deployed("ada", "paper", images.hello)  # v1: "Hello"
    v1 = space.deployed_build
    v1.pin()
    space = publish(space, images.hello2)  # v2: "Howdy"
    pin = Deployment.objects.get(kind="pin")
    preview = Deployment.objects.create(
        space=space, kind="preview", branch="try", label=Deployment.preview_label(space, "try")
    )
    # The branch's README says disable_embedding: its host, and only its, tells browsers so.
    config = SpaceConfig(disable_embedding=True, custom_headers={"cross-origin-opener-policy": "same-origin"})
    branch = Build.objects.create(
        space=space, commit_sha=os.urandom(20).hex(), ref="refs/heads/try", config=config.as_dict()
    )
    assert branch.start()
    branch.succeed(images.hello)
    runner.converge()

    space.refresh_from_db()
    pin.refresh_from_db()
    preview.refresh_from_db()
    assert (space.stage, preview.stage, pin.stage) == ("RUNNING", "RUNNING", "SLEEPING"), (
        preview.stage_message
    )
    assert len(deployment_containers(space)) == 1  # the pin costs nothing until visited
    assert Client(proxy.url(space), verbose=False).predict("Ada", api_name="/predict") == "Howdy, Ada!"
    preview_url = f"http://{preview.host}:{proxy.port}/"
    assert Client(preview_url, verbose=False).predict("Ada", api_name="/predict") == "Hello, Ada!"
    framed = proxy.get(preview.host).headers
    assert framed["Content-Security-Policy"] == f"frame-ancestors {site_origin()}"
    assert framed["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Content-Security-Policy" not in proxy.get(space.host).headers

    # A visit to the pin's host wakes the pin alone.
    woken = proxy.get(pin.host)
    assert woken.status_code == 503 and woken.headers["X-Spacedock-Wake"] == "APP_STARTING"
    runner.converge()
    pin.refresh_from_db()
    assert pin.stage == "RUNNING", pin.stage_message
    pin_url = f"http://{pin.host}:{proxy.port}/"
    assert Client(pin_url, verbose=False).predict("Ada", api_name="/predict") == "Hello, Ada!"

    # Private: the pin's and the preview's routes ask the platform first, as the space's does.
    space.set_visibility("private")
    runner.sync_proxy()
    for host in (space.host, pin.host, preview.host):
        assert proxy.get(host).status_code == 403, host
    token = AccessToken.issue(space.owner, "pin-test", "read")[1]
    assert proxy.get(pin.host, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    space.set_visibility("public")

    # Idle past its sleep time, the pin sleeps and its container goes; the next visit wakes it again.
    settings.DEPLOYMENT_SLEEP_TIME = 1
    try:
        wait_for(lambda: runner.tick(wait=True) or Deployment.objects.get(pk=pin.pk).stage == "SLEEPING", 30,
                 what="the pin asleep")  # fmt: skip
    finally:
        settings.DEPLOYMENT_SLEEP_TIME = 900
    runner.converge()
    assert Deployment.objects.get(pk=pin.pk).container_id == ""
    # A paper's page frames the pinned embed in Chromium: the visit wakes the pin, the page moves on
    # to the app by itself, and it is v1 that answers.
    url, site = outside_site(tmp_path, f'<iframe id="paper" src="{pinned_embed_page(space, v1)}"></iframe>')
    page = browser.new_page()
    try:
        with runner_loop(runner):
            page.goto(url)
            app = page.frame_locator("#paper").frame_locator("iframe")
            app.get_by_role("button", name="Greet").wait_for(timeout=60_000)
            app.get_by_role("textbox").first.fill("Ada")
            app.get_by_role("button", name="Greet").click()
            expect(app.get_by_role("textbox").nth(1)).to_have_value("Hello, Ada!", timeout=20_000)
    finally:
        page.close()
        site.shutdown()
    assert proxy.get(pin.host).status_code == 200
    assert Space.objects.get(pk=space.pk).stage == "RUNNING"  # the space never slept or moved

    # The branch deleted and the build unpinned: their containers and routes go.
    Deployment.branch_deleted(space, "try")
    Build.objects.get(pk=v1.pk).unpin()
    runner.converge()
    assert deployment_containers(space) == []
    gone = proxy.get(preview.host)
    assert gone.status_code == 404 and "that branch was deleted" in gone.text
    assert proxy.get(pin.host).status_code == 404
    assert Client(proxy.url(space), verbose=False).predict("Ada", api_name="/predict") == "Howdy, Ada!"
