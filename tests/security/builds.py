"""Builds for the attack tests: a tenant's repo pushed with real git, built by the real builder task."""

from django.conf import settings

from builder import tasks
from spacedock.spaces.models import Build, Space


def docker_repo(dockerfile: str, port: int = 8000) -> dict[str, str]:
    """An `sdk: docker` repo; BASE in the Dockerfile stands for the base image."""
    return {
        "README.md": f"---\ntitle: Attack\nsdk: docker\napp_port: {port}\n---\n",
        "Dockerfile": dockerfile.replace("BASE", settings.BASE_IMAGE),
    }


def build_now(live, token: str, repo, owner: str, name: str) -> Build:
    """Pushes the repo to a branch (which queues nothing) and builds its head in this process."""
    repo.git("checkout", "-q", "-B", "wip")
    pushed = repo.git("push", "-f", live.git_url(owner, name, token), "wip", check=False)
    assert pushed.returncode == 0, pushed.stderr
    space = Space.objects.get(owner__username=owner, name=name)
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
    tasks.build(build.pk)
    build.refresh_from_db()
    return build


def log_text(build: Build) -> str:
    return "\n".join(build.lines.order_by("number").values_list("text", flat=True))
