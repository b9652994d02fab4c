"""The builder, end to end: git push, a real Celery worker, real BuildKit builds."""

import hashlib
import io
import json
import subprocess
import tarfile
import uuid

import pytest
import requests
from django.conf import settings
from gradio_client import Client

from builder import docker_build, tasks
from builder.images import image_tag, prune_images, sdk_image_tag
from spacedock.labels import LABEL_INSTANCE, LABEL_POOL, LABEL_SDK, LABEL_SPACE, LABEL_WARM
from spacedock.spaces.models import Build, Deployment, Space, Variable
from tests.conftest import HELLO_APP, HELLO_README, wait_until

BUILD_SECONDS = 600  # a cold machine installs Gradio into the shared SDK image first


def finished(space_name: str, sha: str, seconds: float = BUILD_SECONDS) -> Build:
    def done():
        build = Build.objects.filter(space__name=space_name, commit_sha=sha).first()
        return build if build and build.state not in Build.ACTIVE else None

    return wait_until(done, seconds, f"the build of {space_name} at {sha[:7]}")


def log_text(build: Build) -> str:
    return "\n".join(build.lines.order_by("number").values_list("text", flat=True))


@pytest.fixture
def run_image(docker_client):
    """Starts an image as a throwaway container published on 127.0.0.1; removes it after the test."""
    started = []

    def run(image: str, port: int) -> str:
        container = docker_client.containers.run(
            image, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)}, labels={"sdtest": "1"}
        )
        started.append(container)
        container.reload()
        host_port = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"]
        return f"http://127.0.0.1:{host_port}"

    yield run
    for container in started:
        container.remove(force=True)


def answers(url: str):
    def check():
        try:
            response = requests.get(url, timeout=2)
            return response if response.status_code == 200 else None
        except requests.RequestException:
            return None

    return check


REQS_APP = HELLO_APP.replace("import gradio as gr", "import gradio as gr\nimport six")


def test_gradio_space_builds_in_layers_and_its_image_answers(
    live, worker, token_for, make_repo, run_image, docker_client, build_engine, settings
):
    token = token_for("alice")
    repo = make_repo({"README.md": HELLO_README, "app.py": REQS_APP, "requirements.txt": "six==1.17.0\n"})
    first = repo.commit("with a requirement")
    assert repo.push(live.git_url("alice", "hello", token)).returncode == 0

    build = finished("hello", first)
    assert build.state == "succeeded", build.error + log_text(build)
    # In the registry, and on the runtime engine by digest.
    repository = image_tag(build.space, first).rsplit(":", 1)[0]
    assert build.image.startswith(f"{repository}@sha256:")
    space = Space.objects.get(name="hello")
    assert space.stage == "APP_STARTING" and space.deployed_build == build

    image = docker_client.images.get(build.image)
    assert image.labels[LABEL_INSTANCE] == settings.INSTANCE
    assert image.labels[LABEL_POOL] == ""  # its own requirements: no warm pool container runs it
    assert image.attrs["Config"]["User"] == "1000"
    env = dict(line.split("=", 1) for line in image.attrs["Config"]["Env"])
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    assert env["SPACE_ID"] == "alice/hello" and env["SYSTEM"] == "spaces"
    assert env["GRADIO_ANALYTICS_ENABLED"] == "False"

    # The log, as the Hub's SSE endpoint serves it.
    stream = requests.get(f"{live.url}/api/spaces/alice/hello/logs/build", timeout=30)
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
    assert events and all(set(e) == {"data", "timestamp"} for e in events)
    assert any("Built " in e["data"] for e in events)
    assert any("pip install -r /tmp/requirements.txt" in e["data"] for e in events)

    # A push that changes only code reuses every layer but the app's files.
    repo.write({"app.py": REQS_APP.replace("Hello", "Howdy")})
    second = repo.commit("code only")
    assert repo.push(live.git_url("alice", "hello", token)).returncode == 0
    rebuilt = finished("hello", second)
    assert rebuilt.state == "succeeded", rebuilt.error
    old_layers = docker_client.images.get(build.image).attrs["RootFS"]["Layers"]
    new_layers = docker_client.images.get(rebuilt.image).attrs["RootFS"]["Layers"]
    assert len(new_layers) == len(old_layers)
    assert new_layers[:-1] == old_layers[:-1]
    assert new_layers[-1] != old_layers[-1]
    assert "Reusing the shared Gradio" in log_text(rebuilt)
    # Once in the registry, the build engine keeps no name of either image: a later build's FROM
    # cannot start from it (its layers stay in BuildKit's cache).
    ours = [f"{LABEL_INSTANCE}={settings.INSTANCE}", f"{LABEL_SPACE}={space.pk}"]
    assert build_engine.images.list(filters={"label": ours}) == []

    # Old images go beyond the last few kept; nothing that is not ours is touched.
    someone_else = docker_client.images.get(settings.BASE_IMAGE)
    someone_else.tag("someone/else", "keep")
    try:
        settings.IMAGES_KEPT = 1
        Build.objects.filter(pk=build.pk).update(pinned=True)  # a paper embeds it for good
        assert prune_images(Space.objects.get(name="hello")) == []
        Build.objects.filter(pk=build.pk).update(pinned=False)
        removed = prune_images(Space.objects.get(name="hello"))
        assert removed == [build.image]
        docker_client.images.get(rebuilt.image)
        docker_client.images.get("someone/else:keep")
    finally:
        docker_client.images.remove("someone/else:keep")

    # The image runs: Gradio answers, and the code of the second push is what runs.
    url = run_image(rebuilt.image, 7860)
    info = wait_until(answers(f"{url}/gradio_api/info"), 90, "the built app to answer").json()
    assert "/greet" in info["named_endpoints"]
    assert Client(url, verbose=False).predict("Ada", api_name="/greet") == "Howdy, Ada!"


def test_second_space_on_the_same_gradio_reuses_the_sdk_image(
    live, worker, token_for, make_repo, docker_client, build_engine
):
    token = token_for("bob")
    repos = [make_repo(), make_repo()]
    shas = []
    for name, repo in zip(("one", "two"), repos, strict=True):
        assert repo.push(live.git_url("bob", name, token)).returncode == 0
        shas.append(repo.git("rev-parse", "HEAD").stdout.strip())
    builds = [finished(name, sha) for name, sha in zip(("one", "two"), shas, strict=True)]
    assert [b.state for b in builds] == ["succeeded", "succeeded"], [b.error for b in builds]
    sdk = build_engine.images.get(sdk_image_tag(settings.DEFAULT_GRADIO_VERSION))
    assert sdk.labels[LABEL_SDK] == f"gradio-{settings.DEFAULT_GRADIO_VERSION}"
    sdk_layers = sdk.attrs["RootFS"]["Layers"]
    for build in builds:
        image = docker_client.images.get(build.image)
        layers = image.attrs["RootFS"]["Layers"]
        assert layers[: len(sdk_layers)] == sdk_layers
        # The SDK image and its files alone: the warm pool's image, by digest on the runtime engine,
        # is the SDK image's layers, which a pool container of it holds and the space's files join.
        assert image.labels[LABEL_WARM] == ""  # no container of it is ever a warm pool's
        pool_image = image.labels[LABEL_POOL]
        assert pool_image.startswith(f"{settings.REGISTRY}/{settings.INSTANCE}/spacedock-pool@sha256:")
        assert docker_client.images.get(pool_image).attrs["RootFS"]["Layers"] == sdk_layers == layers[:-1]
    assert "Reusing the shared Gradio" in log_text(builds[1])


def test_broken_requirements_end_in_build_error_with_pips_message(live, worker, token_for, make_repo):
    repo = make_repo(
        {
            "README.md": HELLO_README,
            "app.py": HELLO_APP,
            "requirements.txt": "spacedock-no-such-package-zz==1.0\n",
        }
    )
    sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "broken", token_for("alice"))).returncode == 0

    build = finished("broken", sha)
    assert build.state == "failed"
    assert "No matching distribution found for spacedock-no-such-package-zz" in log_text(build)
    runtime = live.api("spaces/alice/broken/runtime").json()
    assert runtime["stage"] == "BUILD_ERROR"
    assert "pip install -r /tmp/requirements.txt" in runtime["errorMessage"]  # the failing step
    assert "spacedock-no-such-package-zz" in runtime["errorMessage"]


def docker_space(dockerfile: str, port: int = 8000) -> dict[str, str]:
    return {
        "README.md": f"---\ntitle: Docker demo\nsdk: docker\napp_port: {port}\n---\n",
        "Dockerfile": dockerfile.replace("BASE", settings.BASE_IMAGE),
        "server.py": "print('hi')\n",
    }


def test_docker_space_gets_build_secrets_in_no_layer(
    live, worker, token_for, make_repo, docker_client, run_image
):
    secret = f"s3cret-{uuid.uuid4().hex}"
    # A fresh first step: BuildKit's cache keys ignore secret values, so a cached step would
    # show an earlier run's secret.
    dockerfile = f"""FROM BASE
RUN echo {uuid.uuid4().hex}
ARG GREETING
RUN --mount=type=secret,id=API_KEY sha256sum /run/secrets/API_KEY | cut -c1-64 > /secret.sha256
RUN --mount=type=secret,id=API_KEY echo "the key is $(cat /run/secrets/API_KEY)"
RUN echo "$GREETING" > /greeting && useradd -u 1000 user
USER 1000
WORKDIR /
CMD ["python3", "-m", "http.server", "8000"]
"""
    token = token_for("alice")
    repo = make_repo(docker_space(dockerfile))
    # The variables exist before the first build: set them on a space created by a first push
    # to another branch, as an author would in the settings page.
    repo.git("checkout", "-q", "-b", "setup")
    assert repo.git("push", live.git_url("alice", "dock", token), "setup", check=False).returncode == 0
    space = Space.objects.get(name="dock")
    Variable.objects.create(space=space, key="API_KEY", value=secret, is_secret=True)
    Variable.objects.create(space=space, key="GREETING", value="hello from a variable")
    repo.git("checkout", "-q", "main")
    sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "dock", token)).returncode == 0

    build = finished("dock", sha)
    assert build.state == "succeeded", build.error
    url = run_image(build.image, 8000)
    wait_until(answers(url), 30, "the docker space to answer")
    assert (
        requests.get(f"{url}/secret.sha256", timeout=5).text.strip()
        == hashlib.sha256(secret.encode()).hexdigest()
    )
    assert requests.get(f"{url}/greeting", timeout=5).text.strip() == "hello from a variable"

    saved = b"".join(docker_client.images.get(build.image).save())
    assert secret.encode() not in saved
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:  # layers are tars too; look inside them
        for member in tar.getmembers():
            if member.isfile():
                assert secret.encode() not in tar.extractfile(member).read()
    log = log_text(build)
    assert secret not in log
    assert "the key is ***" in log


def test_static_space_is_served(live, worker, token_for, make_repo, run_image):
    repo = make_repo(
        {"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "<h1>Static hello</h1>\n"}
    )
    sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "site", token_for("alice"))).returncode == 0
    build = finished("site", sha)
    assert build.state == "succeeded", build.error
    page = wait_until(answers(run_image(build.image, 7860)), 30, "the static site")
    assert "<h1>Static hello</h1>" in page.text


def slow_dockerfile() -> str:
    # A fresh token defeats the layer cache, so the sleep really runs.
    return f'FROM BASE\nRUN echo {uuid.uuid4().hex} && sleep 300\nCMD ["sleep", "1"]\n'


def leftovers(build: Build, docker_client) -> list[str]:
    """What a stopped build could leave: its temp folder, its image, its `docker build` process."""
    tag = image_tag(build.space, build.commit_sha)
    found = [str(p) for p in settings.BUILD_TMP_DIR.glob(f"build-{build.pk}-*")]
    found += [t for image in docker_client.images.list() for t in image.tags if t == tag]
    processes = subprocess.run(["pgrep", "-af", tag], capture_output=True, text=True).stdout
    found += [line for line in processes.splitlines() if "docker" in line and "pgrep" not in line]
    return found


def test_a_newer_push_cancels_a_running_build_and_leaves_nothing(
    live, worker, token_for, make_repo, docker_client
):
    token = token_for("alice")
    repo = make_repo(docker_space(slow_dockerfile()))
    first = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "slow", token)).returncode == 0
    wait_until(
        lambda: Build.objects.filter(commit_sha=first, lines__text__contains="sleep 300").exists(),
        120,
        "the slow step to start",
    )

    repo.write({"Dockerfile": docker_space('FROM BASE\nCMD ["sleep", "1"]\n')["Dockerfile"]})
    second = repo.commit("fast now")
    assert repo.push(live.git_url("alice", "slow", token)).returncode == 0

    cancelled = Build.objects.get(commit_sha=first)
    assert cancelled.state == "cancelled" and "superseded" in cancelled.error
    assert finished("slow", second).state == "succeeded"
    wait_until(lambda: not leftovers(cancelled, docker_client), 30, "the cancelled build to clean up")


def test_a_build_past_its_time_limit_is_stopped(live, token_for, make_repo, docker_client, settings):
    # Run in this process, with a 5-second limit; a tag push queues nothing for the worker (a
    # branch would build its preview there).
    token = token_for("alice")
    repo = make_repo(docker_space(slow_dockerfile()))
    repo.git("tag", "wip")
    assert repo.git("push", live.git_url("alice", "timeout", token), "wip", check=False).returncode == 0
    space = Space.objects.get(name="timeout")
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())

    settings.BUILD_TIMEOUT = 5
    tasks.build(build.pk)

    build.refresh_from_db()
    assert build.state == "failed"
    assert "stopped after 5 seconds, the time limit" in build.error
    space.refresh_from_db()
    assert space.stage == "BUILD_ERROR" and "SPACEDOCK_BUILD_TIMEOUT" in space.stage_message
    assert not leftovers(build, docker_client)


def test_reaper_fails_builds_whose_worker_died(live, token_for, make_repo):
    from datetime import timedelta

    from django.utils import timezone

    repo = make_repo()
    repo.git("tag", "wip")
    assert (
        repo.git("push", live.git_url("alice", "orphan", token_for("alice")), "wip", check=False).returncode
        == 0
    )
    space = Space.objects.get(name="orphan")
    stuck = Build.objects.create(space=space, commit_sha="a" * 40)
    assert stuck.start()
    alive = Build.objects.create(space=space, commit_sha="b" * 40)
    alive.start()
    Build.objects.filter(pk=stuck.pk).update(heartbeat=timezone.now() - timedelta(minutes=10))

    assert tasks.reap_stuck_builds() == 1

    stuck.refresh_from_db()
    alive.refresh_from_db()
    assert stuck.state == "failed" and "worker was killed" in stuck.error
    assert alive.state == "building"


def test_python_version_builds_from_that_pythons_base_image(
    live, token_for, make_repo, build_engine, docker_client, settings
):
    # A second interpreter is a second base image (SPACEDOCK_PYTHON_IMAGES). Stand one in that
    # says which it is, without downloading a Python: the base image plus a marker file.
    marker = f"{settings.INSTANCE}-test/base:py312"
    holder = build_engine.containers.create(settings.BASE_IMAGE, ["true"])
    try:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo("python-marker")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"3.12\n"))
        holder.put_archive("/etc", data.getvalue())
        holder.commit(*marker.split(":"))
    finally:
        holder.remove(force=True)
    settings.PYTHON_IMAGES = {settings.BASE_PYTHON: settings.BASE_IMAGE, "3.12": marker}
    try:
        # Built in this process (whose settings offer 3.12); the branch push queues nothing.
        readme = '---\ntitle: Site\nsdk: static\npython_version: "3.12"\n---\n'
        repo = make_repo({"README.md": readme, "index.html": "<h1>hi</h1>\n"})
        repo.git("tag", "wip")
        pushed = repo.git("push", live.git_url("alice", "py312", token_for("alice")), "wip", check=False)
        assert pushed.returncode == 0
        space = Space.objects.get(name="py312")
        build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
        tasks.build(build.pk)
        build.refresh_from_db()
        assert build.state == "succeeded", build.error
        assert f"==> Python 3.12 ({marker})" in log_text(build)
        out = docker_client.containers.run(build.image, ["cat", "/etc/python-marker"], remove=True)
        assert out == b"3.12\n"
    finally:
        build_engine.images.remove(marker, force=True)


@pytest.mark.fast
def test_pip_conf_keeps_the_index_credentials_for_the_sdk_image_only(settings, tmp_path):
    from builder.images import pip_secrets, without_credentials

    assert without_credentials("https://u:p@idx.example:8443/simple") == "https://idx.example:8443/simple"
    assert without_credentials("https://tok@[fd00::1]/simple") == "https://[fd00::1]/simple"
    assert without_credentials("https://idx.example/simple") == "https://idx.example/simple"
    settings.PIP_INDEX_URL, settings.PIP_EXTRA_INDEX_URL = "https://u:p@idx.example/simple", ""
    assert "u:p@" in pip_secrets(tmp_path, "full")["pipconf"].read_text()
    assert "u:p@" not in pip_secrets(tmp_path, "public")["pipconf"].read_text()
    assert "pipconf" not in pip_secrets(tmp_path, "none")
    settings.PIP_CREDENTIALS_IN_SPACE_BUILDS = True  # the operator's choice, for trusted tenants
    assert "u:p@" in pip_secrets(tmp_path, "public")["pipconf"].read_text()


def test_a_pin_and_a_branch_preview_serve_beside_the_space_and_a_deleted_branch_goes(
    live, worker, token_for, make_repo, runner, proxy
):
    """The issue's path, end to end with static sites (they start at once): v1 pushed and pinned, v2
    pushed, branch `try` pushed; the space serves v2, the pin host v1 once visited, the preview host
    the branch, and the space's page and JSON list the preview. Deleting the branch with git removes
    the preview (its host says so) and the worker prunes its image; the space's own stays."""
    token = token_for("alice")
    url = live.git_url("alice", "site", token)
    repo = make_repo({"README.md": "---\ntitle: Site\nsdk: static\n---\n", "index.html": "<h1>v1</h1>\n"})
    v1_sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(url).returncode == 0
    v1 = finished("site", v1_sha)
    assert v1.state == "succeeded", v1.error
    pinned = requests.post(
        f"{live.url}/api/spaces/alice/site/pin", json={"build": v1.pk},
        headers={"Authorization": f"Bearer {token}"}, timeout=10,
    ).json()  # fmt: skip
    assert pinned["host"] == f"pin--{v1.pk}.localhost"

    v2_sha = repo.write({"index.html": "<h1>v2</h1>\n"}).commit("v2")
    assert repo.push(url).returncode == 0
    # Both build at once (the worker takes two): a build of the branch never cancels main's.
    repo.git("checkout", "--quiet", "-b", "try")
    try_sha = repo.write({"index.html": "<h1>try</h1>\n"}).commit("try")
    pushed = repo.git("push", url, "try", check=False)
    assert pushed.returncode == 0, pushed.stderr
    preview = Deployment.objects.get(space__name="site", kind="preview")
    # git shows where the preview will be, and that the space keeps serving main.
    assert f"the preview of try will be at {preview.url}" in pushed.stderr
    assert preview.host == f"{Space.objects.get(name='site').subdomain}--try.localhost"
    v2, branch = finished("site", v2_sha), finished("site", try_sha)
    assert v2.state == "succeeded", v2.error
    assert branch.state == "succeeded", branch.error
    assert branch.ref == "refs/heads/try"

    space = Space.objects.get(name="site")
    assert space.deployed_build == v2 and space.head_sha == v2_sha  # a branch never moves the space
    runner.converge()
    assert "<h1>v2</h1>" in proxy.get(space.host).text
    assert "<h1>try</h1>" in proxy.get(preview.host).text
    woken = proxy.get(pinned["host"])  # a pin sleeps until visited
    assert woken.status_code == 503 and woken.headers["X-Spacedock-Wake"] == "APP_STARTING"
    runner.converge()
    assert "<h1>v1</h1>" in proxy.get(pinned["host"]).text
    info = requests.get(f"{live.url}/api/spaces/alice/site", timeout=10).json()
    assert info["build"]["commit"] == v2_sha
    assert [(p["branch"], p["host"], p["stage"], p["sha"]) for p in info["previews"]] == [
        ("try", preview.host, "RUNNING", try_sha)
    ]
    page = requests.get(f"{live.url}/alice/site", timeout=10).text
    assert 'id="previews"' in page and preview.host in page and "Running" in page
    kept = docker_build.space_images(space.pk)
    assert {v1.image, v2.image, branch.image} <= set(kept)

    deleted = repo.git("push", url, ":try", check=False)
    assert deleted.returncode == 0, deleted.stderr
    assert "the preview of try is removed" in deleted.stderr
    assert not Deployment.objects.filter(kind="preview").exists()
    runner.converge()
    gone = proxy.get(preview.host)
    assert gone.status_code == 404 and "that branch was deleted" in gone.text
    # The worker prunes the branch's image once the runner has stopped its container; the space's
    # own and the pinned one stay.
    wait_until(
        lambda: branch.image not in docker_build.space_images(space.pk), 60, "the preview's image pruned"
    )
    assert {v1.image, v2.image} <= set(docker_build.space_images(space.pk))
    assert "<h1>v2</h1>" in proxy.get(space.host).text
