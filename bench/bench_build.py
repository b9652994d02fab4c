"""Build speed: Spacedock's builder against a hand-written Dockerfile, on this machine.

Reports median seconds for
  - a cold build of the hello-world Gradio space (no SDK image, no build cache),
  - the rebuild after a change to app.py only,
  - the same cold build done by hand with an equivalent plain Dockerfile,
and the ratios to the targets (code-only rebuild under 5 s; cold within 1.2x of by hand). Builds
run on the build engine (deploy/build-engine.sh) and go through a registry of the benchmark's own;
the code-only figure is split into the BuildKit build and the copy to the registry and the runtime
engine's pull by digest.

    .venv/bin/python bench/bench_build.py [--runs 3]

It empties the build engine's cache and removes the shared SDK image before each cold
run: run it on a machine where nobody else is building. The last line is the JSON result.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(tempfile.mkdtemp(prefix="spacedock-bench-build-"))
os.environ.update(
    SPACEDOCK_DATA_DIR=str(DATA), SPACEDOCK_INSTANCE="sdbench", DJANGO_SETTINGS_MODULE="spacedock.settings"
)
# The builder runs in this process, straight to the engines (no `manage.py docker_proxy` here).
os.environ.setdefault("SPACEDOCK_DOCKER_PROXY", "false")
os.environ.pop("DATABASE_URL", None)
with socket.socket() as _sock:
    _sock.bind(("127.0.0.1", 0))
    os.environ["SPACEDOCK_REGISTRY"] = f"127.0.0.1:{_sock.getsockname()[1]}"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from builder import docker_build, tasks  # noqa: E402
from builder.images import sdk_image_tag  # noqa: E402
from spacedock.spaces.models import Build, Space  # noqa: E402

DOCKER = ["/usr/bin/docker", "-H", settings.BUILD_DOCKER_HOST]
PUBLISH_TIMES: list[float] = []
_publish = docker_build.publish


def timed_publish(built: str, tag: str) -> str:
    start = time.monotonic()
    try:
        return _publish(built, tag)
    finally:
        PUBLISH_TIMES.append(time.monotonic() - start)


docker_build.publish = timed_publish
README = "---\ntitle: Hello\nsdk: gradio\n---\n"
APP = 'import gradio as gr\n\ngr.Interface(lambda name: f"Hello, {name}!", "text", "text").launch()\n'
BY_HAND = """FROM {base}
RUN python3 -m venv /opt/venv && useradd --create-home --uid 1000 user
ENV PATH=/opt/venv/bin:$PATH GRADIO_SERVER_NAME=0.0.0.0
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install gradio=={version}
COPY --chown=1000:1000 . /home/user/app
WORKDIR /home/user/app
USER 1000
CMD ["python", "app.py"]
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def make_cold() -> None:
    sdk = sdk_image_tag(settings.DEFAULT_GRADIO_VERSION)
    subprocess.run([*DOCKER, "rmi", "-f", sdk], capture_output=True)
    subprocess.run([*DOCKER, "builder", "prune", "-af"], check=True, capture_output=True)


def timed_build(space: Space, sha: str) -> float:
    build = Build.objects.create(space=space, commit_sha=sha)
    start = time.monotonic()
    tasks.build(build.pk)
    took = time.monotonic() - start
    build.refresh_from_db()
    if build.state != "succeeded":
        raise SystemExit(f"build failed: {build.error}")
    return took


def spacedock_runs(runs: int) -> tuple[list[float], list[float], list[float]]:
    owner, _ = User.objects.get_or_create(username="bench")
    cold, code_only, publish_only = [], [], []
    for run in range(runs):
        space = Space.create(owner, f"hello{run}-{int(time.time())}")
        work = DATA / f"work{run}"
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        (work / "README.md").write_text(README)
        (work / "app.py").write_text(APP)
        git(work, "add", "-A")
        git(work, "commit", "-qm", "first")
        git(work, "push", "-q", str(space.repo_path), "main")
        make_cold()
        cold.append(timed_build(space, git(work, "rev-parse", "HEAD").strip()))
        (work / "app.py").write_text(APP.replace("Hello", "Howdy"))
        git(work, "commit", "-qam", "code only")
        git(work, "push", "-q", str(space.repo_path), "main")
        code_only.append(timed_build(space, git(work, "rev-parse", "HEAD").strip()))
        publish_only.append(PUBLISH_TIMES[-1])
        print(
            f"run {run + 1}: cold {cold[-1]:.1f} s, code-only {code_only[-1]:.1f} s "
            f"(publish {publish_only[-1]:.2f} s)",
            file=sys.stderr,
        )
    return cold, code_only, publish_only


def by_hand_runs(runs: int) -> list[float]:
    context = DATA / "by-hand"
    context.mkdir()
    (context / "app.py").write_text(APP)
    (context / "README.md").write_text(README)
    dockerfile = DATA / "Dockerfile.by-hand"
    dockerfile.write_text(BY_HAND.format(base=settings.BASE_IMAGE, version=settings.DEFAULT_GRADIO_VERSION))
    times = []
    for run in range(runs):
        make_cold()
        start = time.monotonic()
        subprocess.run(
            [*DOCKER, "build", "-q", "-f", str(dockerfile), "--secret",
             f"id=ca,src={settings.BUILD_CA_BUNDLE}", "-t", "sdbench/by-hand:latest", str(context)],
            env={**os.environ, "DOCKER_BUILDKIT": "1"}, check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.monotonic() - start)
        print(f"run {run + 1}: by hand {times[-1]:.1f} s", file=sys.stderr)
    subprocess.run([*DOCKER, "rmi", "-f", "sdbench/by-hand:latest"], capture_output=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    registry = subprocess.Popen(["bash", str(ROOT / "deploy" / "registry.sh")], stderr=subprocess.DEVNULL)
    try:
        hand = by_hand_runs(args.runs)
        cold, code_only, publish_only = spacedock_runs(args.runs)
    finally:
        registry.terminate()
    ours = "label=spacedock.instance=sdbench"
    listing = ["/usr/bin/docker", "images", "--filter", ours, "--format", "{{.ID}}"]
    for image in set(subprocess.run(listing, capture_output=True, text=True).stdout.split()):
        subprocess.run(["/usr/bin/docker", "rmi", "-f", image], capture_output=True)
    result = {
        "benchmark": "build",
        "runs": args.runs,
        "figures": [
            {"name": "cold build, Spacedock (s, median)", "value": statistics.median(cold)},
            {"name": "cold build, plain Dockerfile by hand (s, median)", "value": statistics.median(hand)},
            {
                "name": "cold build ratio Spacedock / by hand",
                "value": statistics.median(cold) / statistics.median(hand),
                "target": "<= 1.2",
            },
            {"name": "code-only rebuild (s, median)", "value": statistics.median(code_only), "target": "< 5"},
            {
                "name": "code-only rebuild: BuildKit build (s, median)",
                "value": statistics.median(c - p for c, p in zip(code_only, publish_only, strict=True)),
            },
            {
                "name": "code-only rebuild: to registry and runtime (s, median)",
                "value": statistics.median(publish_only),
            },
        ],  # fmt: skip
        "samples": {"cold": cold, "by_hand": hand, "code_only": code_only, "publish": publish_only},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
