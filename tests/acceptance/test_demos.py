"""The acceptance suite: twelve demo repos of the kinds Gradio authors write, pushed with git,
built by the real worker, and used with the real gradio_client (or HTTP for static and docker).

All demos are pushed at once and built by one worker (module scope), then each test uses one.
How a test reaches a demo is decided in one place, `reach` (see its docstring).
"""

import hashlib
import hmac
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
from django.conf import settings
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import ROOT, Repo, process_env, wait_until
from tests.runner_fixtures import runner_env

# gradio_client follows the absolute *.localhost URLs the apps hand back. Every test carries the
# database mark: pytest-django runs marked tests first, and a mark on some only would split the
# module (and build the demos twice).
pytestmark = [pytest.mark.usefixtures("resolve_localhost"), pytest.mark.django_db]

DEMOS_DIR = Path(__file__).resolve().parent / "demos"
DEMOS = sorted(p.name for p in DEMOS_DIR.iterdir() if (p / "README.md").is_file())
OWNER = "demo"
SECRET_KEY_VALUE = f"acceptance-{uuid.uuid4().hex}"
BUILD_SECONDS = 900  # a cold machine builds the shared Gradio image first
START_SECONDS = 180  # twelve apps start at once on two cores


@dataclass
class Demo:
    name: str
    sha: str
    state: str = ""
    image: str = ""
    error: str = ""
    log: str = ""
    port: int = 7860
    env: dict[str, str] = field(default_factory=dict)


def _issue_token(username: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", username],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def _forget_demos() -> None:
    from django.contrib.auth.models import User

    from spacedock.spaces.models import Space

    for space in Space.objects.filter(owner__username=OWNER):
        space.delete()
    User.objects.filter(username=OWNER).delete()


@pytest.fixture(scope="module")
def demos(server, worker, django_db_blocker, tmp_path_factory) -> dict[str, Demo]:
    """Every demo pushed with git and built; the builds' outcomes, keyed by demo name."""
    from spacedock.spaces.models import Build, Space

    work = tmp_path_factory.mktemp("demos")
    with django_db_blocker.unblock():
        _forget_demos()
        token = _issue_token(OWNER)
        pushed: dict[str, Demo] = {}
        for name in DEMOS:
            repo = Repo(work / name)
            shutil.copytree(DEMOS_DIR / name, repo.path, dirs_exist_ok=True)
            dockerfile = repo.path / "Dockerfile"
            if dockerfile.exists():  # the base image is a setting: follow it
                dockerfile.write_text(
                    dockerfile.read_text().replace("spacedock/base:bookworm", settings.BASE_IMAGE)
                )
            sha = repo.commit(f"the {name} demo")
            if name == "secret":
                # The author sets the secret before the first build, as the Hub's settings page allows:
                # a first push of a tag creates the space without building it (a branch would build
                # its preview).
                repo.git("tag", "setup")
                repo.git("push", server.git_url(OWNER, name, token), "refs/tags/setup")
                answer = requests.post(
                    f"{server.url}/api/spaces/{OWNER}/{name}/secrets",
                    json={"key": "SIGNING_KEY", "value": SECRET_KEY_VALUE},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
            result = repo.push(server.git_url(OWNER, name, token))
            assert result.returncode == 0, result.stderr
            assert "queued" in result.stderr, result.stderr  # the hook's "remote:" lines
            pushed[name] = Demo(name, sha)

        def all_done():
            states = Build.objects.filter(space__owner__username=OWNER).values_list("state", flat=True)
            return len(states) == len(DEMOS) and not set(states) & set(Build.ACTIVE)

        started = time.monotonic()
        wait_until(all_done, BUILD_SECONDS, "every demo to build")
        print(f"\nacceptance: {len(DEMOS)} demos built in {time.monotonic() - started:.0f} s")
        for name, demo in pushed.items():
            build = Build.objects.get(space__owner__username=OWNER, space__name=name, commit_sha=demo.sha)
            space = Space.objects.get(owner__username=OWNER, name=name)
            demo.state, demo.image, demo.error = build.state, build.image, build.error
            demo.log = "\n".join(build.lines.order_by("number").values_list("text", flat=True))
            demo.port, demo.env = space.app_port, space.env()
    yield pushed
    with django_db_blocker.unblock():
        _forget_demos()


@pytest.fixture(scope="module")
def reach(demos, server, proxy, tmp_path_factory, django_db_blocker):
    """reach(name) -> the URL at which a visitor uses that demo: its subdomain, through Caddy.

    The real `./manage.py runner` process runs every built demo, as `make up` runs it.
    """
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    with open(log, "ab") as out:
        runner = subprocess.Popen(
            [sys.executable, "manage.py", "runner"], cwd=ROOT, env=runner_env(proxy),
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def running(name: str) -> bool:
        runtime = server.api(f"spaces/{OWNER}/{name}/runtime").json()
        assert runtime["stage"] != "RUNTIME_ERROR", f"{name}: {runtime['errorMessage']}"
        return runtime["stage"] == "RUNNING"

    def reach(name: str) -> str:
        demo = demos[name]
        assert demo.state == "succeeded", f"{demo.name}: {demo.state}: {demo.error}\n{demo.log[-3000:]}"
        # All twelve start together; the tests begin once every one runs, so no deploy
        # happens under a test's feet.
        built = [n for n, d in demos.items() if d.state == "succeeded"]
        wait_until(lambda: all(running(n) for n in built), START_SECONDS, f"the demos to run (log: {log})")
        subdomain = server.api(f"spaces/{OWNER}/{name}").json()["subdomain"]
        url = f"http://{subdomain}.localhost:{proxy.port}"
        wait_until(_answers(url), 60, f"the {name} demo to answer at {url}")
        return url

    yield reach
    # Retire the demos before the runner goes: nothing of theirs may outlive the suite.
    with django_db_blocker.unblock():
        from spacedock.spaces.models import Space

        Space.objects.filter(owner__username=OWNER).update(paused=True)
        wait_until(
            lambda: not Space.objects.filter(owner__username=OWNER).exclude(container_id="").exists(),
            120,
            "the demos' containers to stop",
        )
    runner.terminate()
    runner.wait(60)


def _answers(url: str):
    def check():
        try:
            return requests.get(url, timeout=3).status_code == 200
        except requests.RequestException:
            return False

    return check


def client(url: str) -> Client:
    return Client(url, verbose=False, download_files=str(Path(settings.DATA_DIR) / "downloads"))


def test_every_demo_builds(demos):
    failed = {n: f"{d.state}: {d.error}" for n, d in demos.items() if d.state != "succeeded"}
    assert not failed
    assert "==> Reusing the shared Gradio" in demos["text"].log or "Building the shared" in demos["text"].log


def test_text_interface(reach):
    assert client(reach("text")).predict("hello big world", api_name="/shout") == "HELLO BIG WORLD (3 words)"


def test_image_in_and_out(reach, tmp_path):
    pixels = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [200, 100, 50], [0, 0, 0]]], dtype=np.uint8
    )
    source = tmp_path / "in.png"
    Image.fromarray(pixels).save(source)
    result = client(reach("image")).predict(handle_file(str(source)), api_name="/invert")
    inverted = np.asarray(Image.open(result).convert("RGB"))
    assert inverted.shape == pixels.shape
    assert (inverted == 255 - pixels).all()


def _wav(path: Path, seconds: float, rate: int = 16000) -> list[int]:
    samples = [
        int(10000 * math.sin(2 * math.pi * 440 * i / rate)) + i % 7 for i in range(int(seconds * rate))
    ]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return samples


def test_audio_upload(reach, tmp_path):
    samples = _wav(tmp_path / "tone.wav", 0.5)
    summary, backwards = client(reach("audio")).predict(
        handle_file(str(tmp_path / "tone.wav")), api_name="/reverse"
    )
    assert summary == "rate=16000 channels=1 frames=8000 seconds=0.500"
    with wave.open(backwards, "rb") as got:
        assert (got.getframerate(), got.getnchannels(), got.getnframes()) == (16000, 1, 8000)
        frames = got.readframes(got.getnframes())
    assert list(struct.unpack(f"<{len(samples)}h", frames)) == samples[::-1]


def test_file_upload_and_download(reach, tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "data.bin").write_bytes(data)
    digest, path = client(reach("files")).predict(
        handle_file(str(tmp_path / "data.bin")), api_name="/reverse_file"
    )
    assert digest == hashlib.sha256(data).hexdigest()
    assert Path(path).name == "reversed-data.bin"
    assert Path(path).read_bytes() == data[::-1]


def test_blocks_state_is_kept_per_session(reach):
    url = reach("blocks-state")
    ada = client(url)
    assert ada.predict("milk", api_name="/add") == "1 items: milk"
    assert ada.predict("eggs", api_name="/add") == "2 items: milk, eggs"
    bob = client(url)  # another visitor: another session, another list
    assert bob.predict("bread", api_name="/add") == "1 items: bread"
    assert ada.predict(api_name="/clear") == "0 items"


def test_generator_streams_its_yields_in_order(reach):
    job = client(reach("streaming")).submit(5, api_name="/count")
    arrivals = []
    for output in job:
        arrivals.append((time.monotonic(), output))
    assert job.outputs() == ["1", "1 2", "1 2 3", "1 2 3 4", "1 2 3 4 5"]
    assert [o for _, o in arrivals] == job.outputs()
    # The yields come as they are made (0.2 s apart), not all at the end.
    assert arrivals[-1][0] - arrivals[0][0] >= 0.5


def test_chatbot(reach):
    # Gradio 6 names a ChatInterface's endpoint after its function.
    bot = client(reach("chatbot"))
    assert bot.predict("hello", api_name="/reply") == "Hello! Ask me to add two numbers: 'add 2 3'."
    assert bot.predict("add 2 3.5", api_name="/reply") == "The sum is 5.5."


def test_requirements_beyond_gradio(reach, demos):
    assert "pip install -r /tmp/requirements.txt" in demos["requirements"].log
    app = client(reach("requirements"))
    assert app.predict(42, "en", api_name="/spell") == "forty-two"
    assert app.predict(42, "fr", api_name="/spell") == "quarante-deux"


def test_system_packages_from_packages_txt(reach, demos):
    assert "apt-get install" in demos["packages"].log
    assert (
        client(reach("packages")).predict("2^100", api_name="/calculate") == "1267650600228229401496703205376"
    )


def test_docker_space_on_its_own_port(reach):
    url = reach("docker-port")
    assert "<h1>Docker space</h1>" in requests.get(url, timeout=5).text
    answer = requests.get(f"{url}/api/square", params={"n": 12}, timeout=5).json()
    assert answer == {"n": 12, "square": 144, "space": f"{OWNER}/docker-port", "uid": 1000}


def test_static_site(reach):
    url = reach("static")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "<h1>Static demo</h1>" in page.text
    assert "rebeccapurple" in requests.get(f"{url}/style.css", timeout=5).text
    assert "6 * 7" in requests.get(f"{url}/js/app.js", timeout=5).text
    assert requests.get(f"{url}/missing.html", timeout=5).status_code == 404


def test_app_reads_its_secret_which_is_shown_nowhere(reach, demos, server):
    signature = client(reach("secret")).predict("hello", api_name="/sign")
    assert signature == hmac.new(SECRET_KEY_VALUE.encode(), b"hello", hashlib.sha256).hexdigest()
    assert SECRET_KEY_VALUE not in demos["secret"].log
    listing = requests.get(f"{server.url}/api/spaces/{OWNER}/secret/secrets", timeout=10)
    # Anonymous visitors see nothing of it; and nowhere does its value appear.
    assert SECRET_KEY_VALUE not in listing.text
    page = requests.get(f"{server.url}/{OWNER}/secret", timeout=10)
    assert page.status_code == 200 and SECRET_KEY_VALUE not in page.text
    info = requests.get(f"{server.url}/api/spaces/{OWNER}/secret", timeout=10)
    assert SECRET_KEY_VALUE not in json.dumps(info.json())
