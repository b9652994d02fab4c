"""The gallery card shows a picture of the app, taken by the worker's Chromium once the app answers."""

import io

import pytest
import requests
from django.conf import settings
from PIL import Image

from spacedock.spaces.models import Build, Space
from tests.conftest import wait_until
from tests.runner_fixtures import runner_loop

RED_PAGE = {
    "README.md": "---\ntitle: Red\nemoji: 🟥\nsdk: static\n---\n",
    "index.html": '<!doctype html><body style="margin:0;background:#e11d48"><h1>red</h1></body>\n',
}


@pytest.fixture
def thumbnails_on(monkeypatch):
    # The suite turns them off (tests/settings.py); the runner, in this process, is what asks.
    monkeypatch.setattr(settings, "THUMBNAILS", True)


def test_the_gallery_card_shows_a_picture_of_the_running_app(
    thumbnails_on, runner, proxy, live, worker, token_for, make_repo
):
    token = token_for("alice")
    assert make_repo(RED_PAGE).push(live.git_url("alice", "red", token)).returncode == 0
    secret = {**RED_PAGE, "README.md": RED_PAGE["README.md"].replace("Red", "Hidden")}
    private = make_repo(secret)
    assert private.push(live.git_url("alice", "hidden", token)).returncode == 0
    Space.objects.filter(name="hidden").update(visibility="private")
    with runner_loop(runner):
        build = wait_until(
            lambda: Build.objects.filter(space__name="red", thumbnail_taken__isnull=False).first(),
            300,
            "the red space's picture",
        )
        wait_until(lambda: Space.objects.get(name="hidden").stage == "RUNNING", 300, "the private space")

    def get(path: str) -> requests.Response:
        return requests.get(f"{live.url}{path}", timeout=10)

    picture = get(f"/thumbnails/{build.pk}.png")
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(picture.content)).convert("RGB")
    assert image.size == (1280, 720)
    # What the app shows, not the wake page: the page's own red fills the picture.
    assert image.getpixel((640, 600)) == (0xE1, 0x1D, 0x48)
    gallery = get("/").text
    assert f'src="/thumbnails/{build.pk}.png"' in gallery

    # A private app's picture would show its content to everyone: none is taken or served.
    hidden = Space.objects.get(name="hidden")
    assert hidden.deployed_build.thumbnail_taken is None
    assert get(f"/thumbnails/{hidden.deployed_build_id}.png").status_code == 404
    assert get("/thumbnails/999999.png").status_code == 404
