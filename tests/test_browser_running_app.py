"""The running Gradio app in the space page's iframe, and a restart with new settings:
git push, the build worker, the runner and Caddy, all real, driven from Chromium."""

import functools
import html
import http.server
import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import docker
import pytest
import requests
from django.contrib.auth.models import User
from playwright.sync_api import expect

from spacedock.spaces.embed import embed_snippets
from spacedock.spaces.models import Build, Space
from tests.browser import screenshot, sign_in
from tests.runner_fixtures import runner_loop, wait_for

OWNER_PASSWORD = "a long pass phrase"


@pytest.fixture
def running_space(runner, proxy, worker, live, token_for, make_repo):
    """tests/conftest.py's hello app, pushed with git, built by the worker, RUNNING behind Caddy."""
    token = token_for("alice")
    owner = User.objects.get(username="alice")
    owner.set_password(OWNER_PASSWORD)
    owner.save()
    assert make_repo().push(live.git_url("alice", "hello", token)).returncode == 0
    with runner_loop(runner):
        wait_for(lambda: Space.objects.get(name="hello").stage == "RUNNING", 600, what="the app to run")
        yield SimpleNamespace(
            space=Space.objects.get(name="hello"),
            url=f"http://localhost:{proxy.port}",
            owner_password=OWNER_PASSWORD,
        )


def app_frame(page):
    return page.frame_locator("iframe#app")


def test_visitor_uses_the_running_app_in_the_iframe(running_space, page, tmp_path):
    space = running_space.space
    sign_in(page, running_space.url, space.owner.username, running_space.owner_password)
    page.goto(f"{running_space.url}/{space.full_name}")
    frame = app_frame(page)
    # Gradio's front end loads its bundle first; on a busy 2-core machine that takes a while.
    frame.locator("button:has-text('Submit')").wait_for(timeout=60_000)
    frame.locator("textarea").first.fill("Ada")
    frame.locator("button:has-text('Submit')").click()
    expect(frame.locator("textarea").nth(1)).to_have_value("Hello, Ada!", timeout=30_000)
    # The frame is as tall as the app, as Gradio's iframe-resizer child reports it, not 75 % of the window.
    expect(page.locator("iframe#app")).to_have_attribute("data-sized", "content")
    box = page.locator("iframe#app").bounding_box()
    content = frame.locator("body").evaluate("b => b.offsetHeight")
    assert abs(box["height"] - max(content, 320)) < 40, (box, content)
    screenshot(page, "space-running-desktop")

    # A like changes the count in place: what the visitor typed into the app stays.
    frame.locator("textarea").first.fill("typed before the like")
    page.click("#like")
    expect(page.locator("#likes")).to_have_text("1")
    expect(page.locator("#like")).to_contain_text("Liked")
    expect(frame.locator("textarea").first).to_have_value("typed before the like")

    # Use via API lists the app's own endpoints, and its Python snippet runs as shown.
    page.click(".tabs >> text=Use via API")
    section = page.locator("#endpoints .endpoint").first
    expect(section).to_be_visible()
    api_name = section.get_attribute("data-api-name")
    expect(section.locator("table")).to_contain_text("name")
    python = section.locator("pre.lang-python").inner_text()
    assert f'api_name="{api_name}"' in python and f'Client("{space.full_name}")' in python
    page.click("#lang-tabs >> text=cURL")
    expect(section.locator("pre.lang-curl")).to_be_visible()
    expect(section.locator("pre.lang-python")).to_be_hidden()
    curl = subprocess.run(
        ["bash", "-c", section.locator("pre.lang-curl").inner_text()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Hello, Hello!!!" in curl.stdout, (curl.stdout, curl.stderr)
    screenshot(page, "space-api-desktop")
    # This machine's Python does not resolve *.localhost; the page says to add the host to
    # /etc/hosts, which a sitecustomize stands in for here, so the suite leaves /etc alone.
    (tmp_path / "sitecustomize.py").write_text(
        "import socket\nreal = socket.getaddrinfo\n"
        "def getaddrinfo(host, *a, **k):\n"
        "    return real('127.0.0.1' if str(host).endswith('.localhost') else host, *a, **k)\n"
        "socket.getaddrinfo = getaddrinfo\n"
    )
    env = {**os.environ, "HF_ENDPOINT": running_space.url, "PYTHONPATH": str(tmp_path)}
    env.pop("HF_TOKEN", None)
    ran = subprocess.run([sys.executable, "-c", python], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Hello, Hello!!!" in ran.stdout


def test_owner_sets_secret_and_variable_and_the_app_restarts(running_space, page):
    space = running_space.space
    container = Space.objects.get(pk=space.pk).container_id
    sign_in(page, running_space.url, space.owner.username, running_space.owner_password)
    page.goto(f"{running_space.url}/{space.full_name}/settings")
    page.fill("#variables input[name=key]", "GREETING")
    page.fill("#variables input[name=value]", "Ahoy")
    page.click("#add-variable")
    page.fill("#secrets input[name=key]", "API_KEY")
    page.fill("#secrets input[name=value]", "hunter2-secret")
    page.click("#add-secret")
    expect(page.locator(".messages")).to_contain_text("Secret API_KEY saved")

    # The runner replaces the container; the page then shows the app again.
    deadline = time.monotonic() + 120
    while Space.objects.get(pk=space.pk).container_id in ("", container) and time.monotonic() < deadline:
        time.sleep(0.25)
    restarted = Space.objects.get(pk=space.pk)
    assert restarted.container_id and restarted.container_id != container, "the app did not restart"
    env = docker.from_env().containers.get(restarted.container_id).attrs["Config"]["Env"]
    assert "GREETING=Ahoy" in env and "API_KEY=hunter2-secret" in env
    api = f"/api/spaces/{space.full_name}/runtime"
    page.goto(f"{running_space.url}/{space.full_name}")
    page.wait_for_function(
        f"fetch('{api}').then(r => r.json()).then(r => r.stage === 'RUNNING')", timeout=120_000
    )
    page.reload()
    frame = app_frame(page)
    # Gradio's front end loads its bundle first; on a busy 2-core machine that takes a while.
    frame.locator("button:has-text('Submit')").wait_for(timeout=60_000)
    frame.locator("textarea").first.fill("Ada")
    frame.locator("button:has-text('Submit')").click()
    expect(frame.locator("textarea").nth(1)).to_have_value("Hello, Ada!", timeout=30_000)


def test_a_paper_page_embeds_the_app_as_a_web_component_without_a_cdn(running_space, page, tmp_path):
    """The Embed tab's <gradio-app> snippet, pasted into an outside page on another origin, runs the
    app with Gradio's front end served by the app itself (the test machine reaches no CDN)."""
    space = running_space.space
    build = wait_for(
        lambda: Build.objects.filter(pk=space.deployed_build_id).exclude(web_component_js="").first(),
        120,
        what="the app's web component script",
    )
    space.refresh_from_db()
    snippet = embed_snippets(space)["web_component"]
    assert f'src="{space.url}{build.web_component_js}"' in snippet and "amazonaws" not in snippet
    code = requests.get(f"{running_space.url}/{space.full_name}/embed", timeout=10).text
    assert html.escape(snippet).split("\n")[0] in code

    paper = tmp_path / "paper"
    paper.mkdir()
    (paper / "index.html").write_text(f"<!doctype html><h1>Our paper</h1>\n{snippet}\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(paper))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as outside:
        threading.Thread(target=outside.serve_forever, daemon=True).start()
        page.goto(f"http://127.0.0.1:{outside.server_address[1]}/index.html")
        app = page.locator("gradio-app")
        app.locator("button:has-text('Submit')").wait_for(timeout=60_000)
        app.locator("textarea").first.fill("Ada")
        app.locator("button:has-text('Submit')").click()
        expect(app.locator("textarea").nth(1)).to_have_value("Hello, Ada!", timeout=30_000)
        screenshot(page, "paper-web-component")
        outside.shutdown()
