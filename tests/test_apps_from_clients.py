"""Spaces made with the real clients, built by the real worker, run by the runner behind Caddy, and
called with gradio_client: an app that reads Git LFS files pushed with git-lfs (its answer depends
on the objects' bytes), and an app uploaded with HfApi.upload_folder into an empty space."""

import hashlib
import os

import pytest
from gradio_client import Client
from huggingface_hub import HfApi

from spacedock.spaces.models import Space
from tests.conftest import HELLO_APP, HELLO_README
from tests.runner_fixtures import runner_loop, wait_for

pytestmark = pytest.mark.usefixtures("resolve_localhost")

WEIGHTS = os.urandom(300_000)
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
DIGEST_APP = """import hashlib
from pathlib import Path

import gradio as gr


def digest(name):
    data = Path(name).read_bytes()
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


gr.Interface(digest, "text", "text").launch()
"""


def test_the_app_reads_the_lfs_objects_bytes(runner, proxy, worker, live, token_for, make_repo):
    token = token_for("alice")
    repo = make_repo({"README.md": HELLO_README, "app.py": DIGEST_APP}, commit=False)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.png", "*.bin")
    repo.write({"weights.bin": WEIGHTS, "examples/cat.png": PNG})
    repo.commit("app with lfs files")
    pushed = repo.push(live.git_url("alice", "digest", token))
    assert pushed.returncode == 0, pushed.stderr
    with runner_loop(runner):
        wait_for(
            lambda: Space.objects.get(name="digest").stage in ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"),
            900,
            what="the app to run",
        )
        space = Space.objects.get(name="digest")
        assert space.stage == "RUNNING", space.stage_message
        client = Client(f"http://{space.subdomain}.localhost:{proxy.port}", verbose=False)
        for name, data in (("weights.bin", WEIGHTS), ("examples/cat.png", PNG)):
            answer = client.predict(name, api_name="/digest")
            assert answer == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_upload_folder_into_an_empty_space_runs(runner, proxy, worker, live, token_for, tmp_path):
    api = HfApi(endpoint=live.url, token=token_for("alice"))
    api.create_repo("alice/uploaded", repo_type="space", space_sdk="gradio")
    assert Space.objects.get(name="uploaded").stage == "NO_APP_FILE"
    source = tmp_path / "app"
    source.mkdir()
    (source / "README.md").write_text(HELLO_README)
    (source / "app.py").write_text(HELLO_APP)
    api.upload_folder(repo_id="alice/uploaded", repo_type="space", folder_path=str(source))
    with runner_loop(runner):
        wait_for(
            lambda: Space.objects.get(name="uploaded").stage in ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"),
            900,
            what="the uploaded app to run",
        )
        space = Space.objects.get(name="uploaded")
        assert space.stage == "RUNNING", space.stage_message
        assert api.get_space_runtime("alice/uploaded").stage == "RUNNING"
        client = Client(f"http://{space.subdomain}.localhost:{proxy.port}", verbose=False)
        assert client.predict("Ada", api_name="/greet") == "Hello, Ada!"
