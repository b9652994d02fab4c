"""Where a build's files come from (SPACEDOCK_BUILD_SOURCE).

"local": the space's repository in this host's data folder, so a worker beside the platform
reads it directly. "http": the platform's own git server, over git's smart HTTP, with a token
made for this one build (spacedock/gitserver/buildtoken.py), so a worker on any host with
no repository of its own builds the same commit (docs/cluster.md).
"""

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import requests
from django.conf import settings

from builder.buildlog import BuildLog
from builder.docker_build import BuildError
from spacedock.gitserver import buildtoken
from spacedock.gitserver import repo as gitrepo
from spacedock.gitserver.lfs import Pointer
from spacedock.spaces.models import Build

LFS_MEDIA = "application/vnd.git-lfs+json"


def export_commit(build: Build, dest: Path, workdir: Path, buildlog: BuildLog, deadline: float) -> list[str]:
    """Writes the build's commit to dest, Git LFS objects filled in; returns warnings."""
    space, sha = build.space, build.commit_sha
    if settings.BUILD_SOURCE == "local":
        return gitrepo.export(space.repo_path, sha, dest)
    token = buildtoken.make(build)
    buildlog.secrets.append(token)  # git prints no header, but nothing of it may reach the log
    url = f"{settings.BUILD_SOURCE_URL}/spaces/{space.owner.username}/{space.name}"
    buildlog.write(f"==> Fetching {sha[:7]} from {url}")
    git_dir = workdir / "source.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], check=True, capture_output=True)
    try:
        fetched = subprocess.run(
            ["git", f"--git-dir={git_dir}", "fetch", "--quiet", "--no-tags", "--depth=1", url, sha],
            env=_git_env(token),
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1),
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"Fetching {sha[:7]} from {url} did not finish in the build's time") from None
    if fetched.returncode != 0:
        raise BuildError(
            f"Fetching {sha[:7]} from {url} failed: {buildlog.redact(fetched.stderr.strip())}. "
            "The worker's SPACEDOCK_BUILD_SOURCE_URL and SPACEDOCK_BUILD_FETCH_KEYS must match the "
            "platform's."
        )
    return gitrepo.export(git_dir, sha, dest, lambda pointers: _lfs_over_http(url, token, pointers))


def _git_env(token: str) -> dict[str, str]:
    # The token goes in a header set through the environment: never in a URL git could print, nor
    # on a command line other users of the host can read.
    basic = base64.b64encode(f"{buildtoken.USER}:{token}".encode()).decode()
    return {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        # No helper of the host's may store or offer credentials here.
        "GIT_CONFIG_KEY_1": "credential.helper",
        "GIT_CONFIG_VALUE_1": "",
    }


def _lfs_over_http(
    url: str, token: str, pointers: list[Pointer]
) -> Iterator[tuple[Pointer, BinaryIO | None]]:
    """The objects from the platform's Git LFS batch API, as git-lfs would download them."""
    if not pointers:
        return
    asked = requests.post(
        f"{url}.git/info/lfs/objects/batch",
        json={
            "operation": "download",
            "transfers": ["basic"],
            "objects": [{"oid": p.oid, "size": p.size} for p in pointers],
        },
        headers={"Authorization": f"Bearer {token}", "Accept": LFS_MEDIA, "Content-Type": LFS_MEDIA},
        timeout=60,
    )
    if asked.status_code != 200:
        raise BuildError(f"The Git LFS batch API at {url} answered {asked.status_code}: {asked.text[:300]}")
    answers = asked.json().get("objects", [])
    links = {item.get("oid"): (item.get("actions") or {}).get("download") for item in answers}
    for pointer in pointers:
        link = links.get(pointer.oid)
        if not link:
            yield pointer, None
            continue
        # The link carries its own short-lived grant for this one object; the token stays here.
        response = requests.get(link["href"], headers=link.get("header") or {}, stream=True, timeout=60)
        if response.status_code != 200:
            response.close()
            yield pointer, None
            continue
        response.raw.decode_content = True
        yield pointer, response.raw
