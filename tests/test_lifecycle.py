"""The space lifecycle with the real runner, Caddy, gunicorn and (for the rollback) builder:
RUNNING means the app answers at its URL, and each build runs with its own config."""

import time

import pytest
import requests
from django.conf import settings

from builder.images import image_tag
from runner.models import Runtime
from spacedock.accounts.models import AccessToken
from spacedock.spaces.models import Build, Space
from spacedock.spaces.stages import Stage
from tests.conftest import wait_until
from tests.runner_fixtures import deployed, docker_build, docker_ids, publish, runner_loop, wait_for

# Starts in a blink, so many deploys fit in one test; answers every path with its own marker.
QUICK_APP = """import http.server

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"quick app answering"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", {port}), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def quick_image(tmp_path_factory) -> str:
    dockerfile = (
        f"FROM {settings.BASE_IMAGE}\nRUN useradd -m -u 1000 user\nWORKDIR /home/user\n"
        'COPY app.py .\nUSER 1000\nCMD ["python3", "app.py"]\n'
    )
    tag = f"{settings.INSTANCE}-runner-test/quick:1"
    return docker_build(
        tag, dockerfile, {"app.py": QUICK_APP.format(port=7860)}, tmp_path_factory.mktemp("q")
    )


def test_a_space_that_says_running_answers_at_its_url(runner, proxy, server, quick_image):
    """Polls the runtime API through ten starts (a restart after a pause, from nothing; a visit that
    wakes it from frozen, an unpause); the moment it says RUNNING, the app answers through Caddy,
    never the wake page."""
    space = deployed("ray", "quick", quick_image)
    _, token = AccessToken.issue(space.owner, "test")
    auth = {"Authorization": f"Bearer {token}"}
    api = f"{server.url}/api/spaces/{space.full_name}"
    session = requests.Session()

    def stage() -> str:
        return session.get(f"{api}/runtime", timeout=10).json()["stage"]

    def first_answer_when_running() -> tuple:
        deadline = time.monotonic() + 60
        while (now := stage()) != Stage.RUNNING:
            assert time.monotonic() < deadline, f"still {now} after 60 s"
        try:
            response = proxy.get(space.host, "/", timeout=10)
        except requests.RequestException as exc:  # a request Caddy cut: as bad as the wake page
            return (type(exc).__name__, None, "")
        return (response.status_code, response.headers.get("X-Spacedock-Wake"), response.text[:40])

    seen = []
    with runner_loop(runner):
        wait_for(lambda: stage() == Stage.RUNNING, 60, what="the first start")
        for round in range(10):
            if round % 2 == 0:
                assert requests.post(f"{api}/pause", headers=auth, timeout=10).status_code == 200
                wait_for(lambda: stage() == Stage.PAUSED, 30, what="paused")
                wait_for(lambda: docker_ids(space.pk) == [], 30, what="stopped")
                assert proxy.get(space.host, "/").status_code == 503  # down: the wake page
                assert requests.post(f"{api}/restart", headers=auth, timeout=10).status_code == 200
            else:
                Space.objects.filter(pk=space.pk).update(sleep_time=0)
                wait_for(lambda: stage() == Stage.SLEEPING, 30, what="asleep")
                Space.objects.filter(pk=space.pk).update(sleep_time=3600)
                wait_for(lambda: Runtime.objects.filter(pk=space.pk, sleep_tier="frozen").exists(), 30,
                         what="frozen")  # fmt: skip
                visit = proxy.get(space.host, "/")  # the visit that wakes it
                assert visit.status_code == 503 and visit.headers["X-Spacedock-Wake"] == Stage.APP_STARTING
            seen.append(first_answer_when_running())
    assert seen == [(200, None, "quick app answering")] * 10


# An sdk: docker space whose server listens on one fixed port, as its README says.
PORT_DOCKERFILE = """FROM {base}
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app
COPY --chown=1000:1000 server.py .
USER 1000
CMD ["python3", "server.py"]
"""
PORT_SERVER = """import http.server

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"{version} on port {port}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("0.0.0.0", {port}), Handler).serve_forever()
"""


def port_space(version: str, port: int) -> dict[str, str]:
    readme = f"---\ntitle: Ports\nsdk: docker\napp_port: {port}\nstartup_duration_timeout: 1m\n---\n"
    return {
        "README.md": readme,
        "Dockerfile": PORT_DOCKERFILE.format(base=settings.BASE_IMAGE),
        "server.py": PORT_SERVER.format(version=version, port=port),
    }


def test_a_rollback_runs_the_old_build_on_its_own_port(
    runner, proxy, live, worker, token_for, make_repo, docker_client
):
    token = token_for("alice")
    repo = make_repo(port_space("v1", 7860))
    url = live.git_url("alice", "ports", token)

    def pushed_and_running(version: str) -> Build:
        sha = repo.git("rev-parse", "HEAD").stdout.strip()
        assert repo.push(url).returncode == 0
        done = Build.objects.filter(space__name="ports", commit_sha=sha).exclude(state__in=Build.ACTIVE)
        build = wait_until(done.first, 300, f"the build of {version}")
        assert build.state == "succeeded", build.error
        runner.converge()
        return build

    first = pushed_and_running("v1")
    assert proxy.get(first.space.host, "/").text == "v1 on port 7860"
    repo.write(port_space("v2", 8000))
    repo.commit("v2 listens on 8000")
    second = pushed_and_running("v2")
    space = Space.objects.get(pk=first.space_id)
    assert space.stage == Stage.RUNNING, space.stage_message
    assert proxy.get(space.host, "/").text == "v2 on port 8000"
    # Each build's image is its own, by digest, in the registry the builder published it to.
    repository = image_tag(space, first.commit_sha).rpartition(":")[0]
    assert first.image.startswith(f"{repository}@sha256:") and first.image != second.image
    assert first.config["app_port"] == 7860 and second.config["app_port"] == 8000

    _, api_token = AccessToken.issue(space.owner, "test")
    response = requests.post(
        f"{live.url}/api/spaces/alice/ports/rollback",
        json={"build": first.pk},
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    runner.converge()
    space.refresh_from_db()
    # Run with the head's port (8000), the old build never answered and v2 kept serving.
    assert (space.stage, space.stage_message) == (Stage.RUNNING, "")
    assert space.running_image == first.image and space.deployed_build == first
    assert proxy.get(space.host, "/").text == "v1 on port 7860"
    assert live.api("spaces/alice/ports/runtime").json()["stage"] == "RUNNING"
    # The pages still describe the head: the latest push's config.
    assert space.app_port == 8000


def test_a_space_whose_build_is_gone_is_stopped_until_a_new_build(runner, proxy, quick_image):
    space = deployed("sid", "gone", quick_image)
    runner.converge()
    space.refresh_from_db()
    assert space.stage == Stage.RUNNING and proxy.get(space.host, "/").status_code == 200

    space.deployed_build.delete()  # an operator removes the build: there is nothing left to run
    runner.converge()
    space.refresh_from_db()
    assert space.stage == Stage.STOPPED and docker_ids(space.pk) == []
    visit = proxy.get(space.host, "/")  # a visit cannot wake it
    assert visit.status_code == 503 and visit.headers["X-Spacedock-Wake"] == Stage.STOPPED
    runner.converge()
    assert Space.objects.get(pk=space.pk).stage == Stage.STOPPED and docker_ids(space.pk) == []

    space = publish(space, quick_image)  # a new build starts it again
    assert space.stage == Stage.APP_STARTING
    runner.converge()
    space.refresh_from_db()
    assert space.stage == Stage.RUNNING and proxy.get(space.host, "/").text == "quick app answering"
