"""A paper's pinned build outlives its space: export_build writes it to one file, and import_build
brings it back where the space, its repository and its images are gone, at the same pinned host."""

import io
import json
import subprocess
import tarfile

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from builder import docker_build
from spacedock.labels import LABEL_INSTANCE, LABEL_SPACE
from spacedock.spaces.models import Build, Space
from tests.conftest import wait_until
from tests.test_lifecycle import port_space


def registry_has(image: str) -> bool:
    repository, _, digest = image.partition("@")
    name = repository.split("/", 1)[1]
    auth = docker_build.registry_auth()
    answer = requests.head(
        f"http://{settings.REGISTRY}/v2/{name}/manifests/{digest}",
        auth=(auth["username"], auth["password"]),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    return answer.status_code == 200


def test_an_exported_pinned_build_comes_back_after_its_space_and_images_are_gone(
    runner, proxy, live, worker, token_for, make_repo, docker_client, tmp_path
):
    token = token_for("alice")
    repo = make_repo(port_space("v1", 7860))
    sha = repo.git("rev-parse", "HEAD").stdout.strip()
    assert repo.push(live.git_url("alice", "paper", token)).returncode == 0
    done = Build.objects.filter(commit_sha=sha).exclude(state__in=Build.ACTIVE)
    build = wait_until(done.first, 300, "the build")
    assert build.state == "succeeded", build.error
    runner.converge()
    space = Space.objects.get(pk=build.space_id)
    assert proxy.get(space.host, "/").text == "v1 on port 7860"

    pinned = requests.post(
        f"{live.url}/api/spaces/alice/paper/pin",
        json={"build": build.pk},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["host"] == f"pin--{build.pk}.{settings.SPACES_DOMAIN}"
    listed = live.api("spaces/alice/paper").json()["pinnedBuilds"]
    assert [(p["build"], p["sha"]) for p in listed] == [(build.pk, sha)]

    archive = tmp_path / "paper.tar"
    call_command("export_build", str(build.pk), "--output", str(archive))
    with tarfile.open(archive) as members:
        assert sorted(members.getnames()) == ["build.json", "image.tar", "source.bundle"]

    # Everything of the space goes: its row and builds, its repository, its containers, its image
    # on the engine and in the registry.
    image = build.image
    space.delete()
    runner.converge()
    assert docker_build.remove_image(image)
    docker_build.unpublish(image)
    assert not registry_has(image)
    assert not (settings.REPOS_DIR / "alice" / "paper.git").exists()

    call_command("import_build", str(archive))
    restored = Build.objects.get(pk=build.pk)  # its id, so its pinned host, is the one the paper cites
    assert (restored.commit_sha, restored.state, restored.pinned) == (sha, "succeeded", True)
    assert restored.pinned_host == pinned.json()["host"]
    assert registry_has(restored.image)
    labels = docker_client.images.get(restored.image).labels
    assert labels[LABEL_INSTANCE] == settings.INSTANCE and labels[LABEL_SPACE] == str(restored.space_id)
    runner.converge()
    assert proxy.get(restored.space.host, "/").text == "v1 on port 7860"
    # The host the paper cites serves it again: the first visit wakes the pin's own deployment.
    assert proxy.get(restored.pinned_host, "/").headers["X-Spacedock-Wake"] == "APP_STARTING"
    runner.converge()
    assert proxy.get(restored.pinned_host, "/").text == "v1 on port 7860"

    clone = tmp_path / "clone"
    cloned = subprocess.run(
        ["git", "clone", "--quiet", live.git_url("alice", "paper"), str(clone)],
        capture_output=True,
        text=True,
    )
    assert cloned.returncode == 0, cloned.stderr
    assert (
        subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        == sha
    )

    # The next build made on this install does not take an id the import gave by hand.
    repo.write({"server.py": repo.path.joinpath("server.py").read_text().replace("v1", "v2")})
    sha2 = repo.commit("v2")
    assert repo.push(live.git_url("alice", "paper", token)).returncode == 0
    assert Build.objects.get(commit_sha=sha2).pk > restored.pk


def archive_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


MANIFEST = {
    "format": "spacedock-build/1",
    "space": {"owner": "alice", "name": "paper"},
    "build": {"id": 7, "commit_sha": "a" * 40, "config": {"sdk": "docker"}},
}


@pytest.mark.fast
@pytest.mark.django_db
@pytest.mark.parametrize(
    "content, says",
    [
        (b"not a tar file", "is not a build archive"),
        (archive_of({"image.tar": b"", "source.bundle": b""}), "the archive has no build.json"),
        (archive_of({"build.json": b"{", "image.tar": b"", "source.bundle": b""}), "build.json is not JSON"),
        (
            archive_of({"build.json": json.dumps({**MANIFEST, "format": "x"}).encode()}),
            "is not a spacedock-build/1 manifest",
        ),
        (
            archive_of(
                {
                    "build.json": json.dumps({**MANIFEST, "space": {"owner": "..", "name": "p"}}).encode(),
                    "source.bundle": b"",
                }
            ),
            "is not a valid space name",
        ),  # fmt: skip
        (
            archive_of(
                {
                    "build.json": json.dumps(
                        {**MANIFEST, "build": {**MANIFEST["build"], "commit_sha": "../x"}}
                    ).encode()
                }
            ),
            "names no commit",
        ),  # fmt: skip
    ],
)
def test_a_broken_archive_is_refused_with_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "build.tar"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=says):
        call_command("import_build", str(path))
    assert not Space.objects.exists() and not Build.objects.exists()
