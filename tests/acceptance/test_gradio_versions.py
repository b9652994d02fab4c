"""Spaces pinned to old Gradio versions run unchanged: the last 4.x, an early and the last 5.x, and
the default 6.x, each a hello world pushed with git, built by the real worker on its own shared SDK
image, run by the real runner behind the real Caddy, and used with the suite's gradio_client.

Each SDK image is built once, in this module (or reused from an earlier run: they are shared).
"""

import functools
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from gradio_client import Client

from spacedock.spaces.models import Build, RunLogLine, Space
from tests.conftest import ROOT, Repo, process_env, wait_until
from tests.runner_fixtures import DOCKER, runner_env

pytestmark = [pytest.mark.usefixtures("resolve_localhost"), pytest.mark.django_db]

OWNER = "versions"
BUILD_SECONDS = 1200  # four SDK images, two at a time, on a machine shared with other builds
START_SECONDS = 240
LOCK = "/opt/sdk/requirements.lock"
SETTLE_SECONDS = 8

# name -> sdk_version ("" is none: SPACEDOCK_GRADIO_VERSION).
VERSIONS = {
    "gradio4": "4.44.1",  # the last 4.x
    "gradio5-early": "5.9.1",
    "gradio5-late": "5.50.0",  # the last 5.x
    "gradio6": "",
}
REQUIREMENTS = {
    # Unpinned, as old Spaces list it: today's diffusers needs huggingface_hub >= 1.32, which has no
    # HfFolder, which Gradio 4 imports. Installed under the image's lock, an older diffusers fits.
    "gradio4": "diffusers\n",
    # An author's own pin of a locked package wins over the lock.
    "gradio5-early": "requests==2.32.4\n",
}

APP = """import gradio as gr
import huggingface_hub
import requests


def greet(name):
    versions = f"gradio {gr.__version__}, huggingface_hub {huggingface_hub.__version__}"
    return f"Hello, {name}! {versions}, requests {requests.__version__}"


gr.Interface(greet, "text", "text", api_name="greet").launch()
"""


def readme(version: str) -> str:
    pin = f"sdk_version: {version}\n" if version else ""
    return f"---\ntitle: Hello\nsdk: gradio\n{pin}app_file: app.py\n---\n"


@dataclass
class Hello:
    name: str
    gradio: str
    sha: str
    state: str = ""
    error: str = ""
    log: str = ""
    image: str = ""
    sdk_image: str = ""
    sdk_build_seconds: float | None = None


def _forget() -> None:
    for space in Space.objects.filter(owner__username=OWNER):
        space.delete()
    User.objects.filter(username=OWNER).delete()


def _token() -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "issue_token", OWNER],
        cwd=ROOT, env=process_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def _sdk_build_seconds(lines: list) -> float | None:
    """From the build log: building the shared image, to the space's own docker build after it."""
    start = next((line.time for line in lines if "Building the shared Gradio" in line.text), None)
    end = next(
        (line.time for line in lines if start and line.time >= start and "==> docker build" in line.text),
        None,
    )
    return (end - start).total_seconds() if start and end else None


@pytest.fixture(scope="module")
def spaces(server, worker, docker_client, django_db_blocker, tmp_path_factory) -> dict[str, Hello]:
    # docker_client: at the session's end, the spaces' images go (the shared SDK images stay).
    work = tmp_path_factory.mktemp("versions")
    with django_db_blocker.unblock():
        _forget()
        token = _token()
        started = time.monotonic()
        pushed = {}
        for name, version in VERSIONS.items():
            repo = Repo(work / name)
            files = {"README.md": readme(version), "app.py": APP}
            if name in REQUIREMENTS:
                files["requirements.txt"] = REQUIREMENTS[name]
            sha = repo.write(files).commit(f"hello on Gradio {version or 'default'}")
            result = repo.push(server.git_url(OWNER, name, token))
            assert result.returncode == 0, result.stderr
            pushed[name] = Hello(name, version or settings.DEFAULT_GRADIO_VERSION, sha)

        def all_done():
            states = Build.objects.filter(space__owner__username=OWNER).values_list("state", flat=True)
            return len(states) == len(VERSIONS) and not set(states) & set(Build.ACTIVE)

        wait_until(all_done, BUILD_SECONDS, "every version's space to build")
        print(f"\ngradio versions: {len(VERSIONS)} pushed and built in {time.monotonic() - started:.0f} s")
        for space in pushed.values():
            build = Build.objects.get(space__owner__username=OWNER, space__name=space.name)
            lines = list(build.lines.order_by("number"))
            space.state, space.error, space.image = build.state, build.error, build.image
            space.log = "\n".join(line.text for line in lines)
            found = re.search(r"shared Gradio \S+ image (spacedock-sdk:\S+)", space.log)
            space.sdk_image = found.group(1) if found else ""
            space.sdk_build_seconds = _sdk_build_seconds(lines)
            built = f"{space.sdk_build_seconds:.0f} s" if space.sdk_build_seconds else "reused"
            print(f"gradio versions: {space.name} (Gradio {space.gradio}): SDK image {built}")
    yield pushed
    with django_db_blocker.unblock():
        _forget()


def sdk_image_of(space: Hello) -> str:
    assert space.state == "succeeded", f"{space.name}: {space.state}: {space.error}\n{space.log[-3000:]}"
    return space.sdk_image


@functools.cache
def lock_of(sdk_image: str) -> dict[str, str]:
    # SDK images live on the build engine, where tenants' builds start from them. Read once per
    # image (its tag names its content): a container start each time cost seconds, ten times.
    text = subprocess.run(
        [DOCKER, "-H", settings.BUILD_DOCKER_HOST, "run", "--rm", "--entrypoint", "cat", sdk_image, LOCK],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(
        line.split("==", 1) for line in text.splitlines() if "==" in line and not line.startswith("#")
    )


@pytest.fixture(scope="module")
def reach(spaces, server, proxy, tmp_path_factory, django_db_blocker):
    """reach(name) -> the URL of that space through Caddy, once the real runner runs them all."""
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
        sdk_image_of(spaces[name])
        wait_until(lambda: all(running(n) for n in spaces), START_SECONDS, f"the spaces to run (log: {log})")
        subdomain = server.api(f"spaces/{OWNER}/{name}").json()["subdomain"]
        return f"http://{subdomain}.localhost:{proxy.port}"

    yield reach
    with django_db_blocker.unblock():
        Space.objects.filter(owner__username=OWNER).update(paused=True)
        wait_until(
            lambda: not Space.objects.filter(owner__username=OWNER).exclude(container_id="").exists(),
            120,
            "the spaces' containers to stop",
        )
    runner.terminate()
    runner.wait(60)


def test_each_version_has_a_shared_sdk_image_of_its_own_with_a_lock(spaces):
    images = {name: sdk_image_of(space) for name, space in spaces.items()}
    assert len(set(images.values())) == len(VERSIONS)
    for name, space in spaces.items():
        assert images[name].startswith(f"spacedock-sdk:gradio{space.gradio}-")
        lock = lock_of(images[name])
        assert lock["gradio"] == space.gradio and "spaces" in lock
    # As of its release, Gradio 4.44.1 gets a huggingface_hub 0.x, which still has the HfFolder it
    # imports (1.0 removed it); and Gradio 5.9.1 one that still brings requests.
    assert lock_of(images["gradio4"])["huggingface-hub"].startswith("0.")
    assert "requests" in lock_of(images["gradio5-early"])


@pytest.mark.parametrize("name", VERSIONS)
def test_hello_answers_gradio_client(reach, spaces, name):
    space = spaces[name]
    # What runs is the image's lock, but for what the space's requirements pin themselves.
    pinned = dict(line.split("==") for line in REQUIREMENTS.get(name, "").split() if "==" in line)
    expected = {**lock_of(sdk_image_of(space)), **pinned}
    answer = Client(reach(name), verbose=False).predict("Ada", api_name="/greet")
    assert answer == (
        f"Hello, Ada! gradio {space.gradio}, huggingface_hub {expected['huggingface-hub']}, "
        f"requests {expected['requests']}"
    )


@pytest.mark.parametrize("name", VERSIONS)
def test_every_requirement_in_the_space_image_is_met(spaces, name):
    space = spaces[name]
    sdk_image_of(space)
    check = subprocess.run(
        [DOCKER, "run", "--rm", space.image, "pip", "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    if name == "gradio4":
        # An unpinned diffusers came in, one that fits the locked huggingface_hub (which the app reports).
        show = subprocess.run(
            [DOCKER, "run", "--rm", space.image, "pip", "show", "diffusers"], capture_output=True, text=True
        )
        assert "Name: diffusers" in show.stdout, show.stdout + show.stderr


@pytest.mark.parametrize("name", VERSIONS)
def test_app_starts_clean_and_still_knows_it_runs_on_spaces(reach, name):
    url = reach(name)
    # SYSTEM=spaces holds: Gradio names the Space it runs as (and keeps its Spaces behaviour).
    assert requests.get(f"{url}/config", timeout=10).json()["space_id"] == f"{OWNER}/{name}"

    def settled_log():
        rows = list(
            RunLogLine.objects.filter(space__owner__username=OWNER, space__name=name).order_by("number")
        )
        ready = next((r for r in rows if "Running on local URL" in r.text), None)
        # Whatever the app logs in its first seconds (Gradio 6's reloader did, a few seconds in).
        if ready and (timezone.now() - ready.time).total_seconds() >= SETTLE_SECONDS:
            return "\n".join(r.text for r in rows)
        return None

    log = wait_until(settled_log, START_SECONDS, f"{name}'s run log to say it runs")
    assert "Traceback" not in log and "Exception ignored" not in log, log
