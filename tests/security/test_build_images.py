"""A tenant's build cannot start from, or copy out of, the images the platform holds: builds ran on
the engine that holds the platform image (with the operator's .env) and every other space's image."""

import uuid

import pytest
from django.conf import settings

from tests.security.builds import build_now, docker_repo


@pytest.fixture
def platform_image(docker_client):
    """A stand-in for the platform image on the engine that runs the spaces, with a secret in it."""
    tag = f"{settings.INSTANCE}-platform:attack"
    container = docker_client.containers.create(
        settings.BASE_IMAGE, ["true"], labels={"spacedock.instance": settings.INSTANCE}
    )
    try:
        container.put_archive("/", _tar({"platform-secret": b"POSTGRES_PASSWORD=platform-canary\n"}))
        container.commit(*tag.split(":"), conf={"Labels": {"spacedock.instance": settings.INSTANCE}})
    finally:
        container.remove(force=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def _tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_build_cannot_start_from_the_platform_image(live, token_for, make_repo, platform_image):
    dockerfile = f'FROM {platform_image}\nRUN cat /platform-secret\nCMD ["sleep", "1"]\n'
    build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", "from")
    assert build.state == "failed"
    assert "could not be pulled" in build.error and platform_image in build.error
    assert "platform-canary" not in build.error


def test_a_build_cannot_copy_out_of_the_platform_image(live, token_for, make_repo, platform_image):
    dockerfile = f'FROM BASE\nCOPY --from={platform_image} /platform-secret /stolen\nCMD ["sleep", "1"]\n'
    build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", "copy")
    assert build.state == "failed"
    assert "could not be pulled" in build.error and platform_image in build.error


def test_a_build_cannot_start_from_another_spaces_image(live, token_for, make_repo, docker_client):
    secret = f"alice-canary-{uuid.uuid4().hex}"
    alice = build_now(
        live,
        token_for("alice"),
        make_repo(docker_repo(f'FROM BASE\nRUN echo {secret} > /secret\nCMD ["sleep", "1"]\n')),
        "alice",
        "private",
    )
    assert alice.state == "succeeded", alice.error
    assert docker_client.images.get(alice.image)  # on the runtime engine, where spaces run

    for name, dockerfile in {
        "by-digest": f'FROM {alice.image}\nRUN cat /secret\nCMD ["sleep", "1"]\n',
        "by-tag": f'FROM {alice.image.split("@")[0]}:{alice.commit_sha[:12]}\nCMD ["sleep", "1"]\n',
        "copy-from": f'FROM BASE\nCOPY --from={alice.image} /secret /stolen\nCMD ["sleep", "1"]\n',
    }.items():
        build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", name)
        assert build.state == "failed", name
        assert "could not be pulled" in build.error, (name, build.error)
        assert secret not in build.error
