"""Spaces made with the real clients, built by the real worker, run by the runner behind Caddy, and
called with gradio_client: an app that reads Git LFS files pushed with git-lfs (its answer depends
on the objects' bytes), a Space laid out as a clone from the Hub gives it (LFS examples), and an
app uploaded with HfApi.upload_folder into an empty space."""

import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
import requests
from django.conf import settings
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


def running(name: str) -> Space:
    """The space once its build and start have ended, asserted RUNNING (else its message)."""
    settled = ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR")
    wait_for(lambda: Space.objects.get(name=name).stage in settled, 900, what=f"{name} to run")
    space = Space.objects.get(name=name)
    assert space.stage == "RUNNING", space.stage_message
    return space


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
        space = running("digest")
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
        space = running("uploaded")
        assert api.get_space_runtime("alice/uploaded").stage == "RUNNING"
        client = Client(f"http://{space.subdomain}.localhost:{proxy.port}", verbose=False)
        assert client.predict("Ada", api_name="/greet") == "Hello, Ada!"


# A Space as `git clone` from the Hub gives it: the Hub's own .gitattributes for a new repo, the
# lines its web upload adds for each binary file, front matter as the Hub writes it, and Gradio's
# image_mod demo (`app_file: run.py`, examples from the repo, cached at start as on Spaces).
HUB_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        *"*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model".split(),
        *"*.msgpack *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar".split(),
        "*.safetensors",
        *"saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*".split(),
        "images/cheetah1.jpg",
        "images/lion.jpg",
    )
)
IMAGE_MOD_README = """---
title: image_mod
emoji: 🔥
colorFrom: indigo
colorTo: indigo
sdk: gradio
sdk_version: {version}
app_file: run.py
pinned: false
hf_oauth: false
---
"""
IMAGE_MOD_APP = """import gradio as gr
import os


def image_mod(image):
    return image.rotate(45)


demo = gr.Interface(
    image_mod,
    gr.Image(type="pil"),
    "image",
    flagging_mode="never",
    examples=[
        os.path.join(os.path.dirname(__file__), "images/cheetah1.jpg"),
        os.path.join(os.path.dirname(__file__), "images/lion.jpg"),
    ],
    cache_examples=True,
)

if __name__ == "__main__":
    demo.launch()
"""


def jpeg(seed: int) -> bytes:
    from PIL import Image

    pixels = bytes((seed * 37 + i * 11) % 256 for i in range(64 * 48 * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (64, 48), pixels).save(out, format="JPEG")
    return out.getvalue()


def test_a_hub_space_with_lfs_examples_runs_unchanged(runner, proxy, worker, live, token_for, make_repo):
    """The examples are read at start (a pointer file there would stop the app: PIL cannot open
    it), the examples gallery serves their real bytes, and a prediction is the demo's own."""
    from gradio_client import handle_file
    from PIL import Image

    token, images = token_for("alice"), {"images/cheetah1.jpg": jpeg(1), "images/lion.jpg": jpeg(2)}
    readme = IMAGE_MOD_README.format(version=settings.DEFAULT_GRADIO_VERSION)
    repo = make_repo({".gitattributes": HUB_GITATTRIBUTES, "README.md": readme, "run.py": IMAGE_MOD_APP})
    repo.git("lfs", "install", "--local")
    repo.write(images).commit("Upload 2 files")
    assert "oid sha256:" in repo.git("show", "HEAD:images/lion.jpg").stdout  # a pointer in git
    pushed = repo.push(live.git_url("alice", "image_mod", token))
    assert pushed.returncode == 0, pushed.stderr
    with runner_loop(runner):
        space = running("image_mod")
        base = f"http://{space.subdomain}.localhost:{proxy.port}"
        config = requests.get(f"{base}/config", timeout=30).json()
        urls = re.findall(r'"url": "([^"]+/(?:cheetah1|lion)\.jpg)"', json.dumps(config))
        assert {url.rsplit("/", 1)[1] for url in urls} == {"cheetah1.jpg", "lion.jpg"}, config
        for url in urls:
            served = requests.get(url if url.startswith("http") else base + url, timeout=30)
            assert served.content == images[f"images/{url.rsplit('/', 1)[1]}"]
        local = Path(repo.path) / "images" / "lion.jpg"
        result = Client(base, verbose=False).predict(handle_file(str(local)), api_name="/image_mod")
        expected = Image.open(io.BytesIO(images["images/lion.jpg"])).rotate(45)
        assert Image.open(result).size == expected.size
