"""The platform image holds no secret of the operator's: `deploy/Dockerfile` copied `.` and
`.dockerignore` lacked `.env`, so the image (which every worker runs) carried the production .env."""

import os
import shutil
import subprocess

from django.conf import settings

from tests.conftest import ROOT

SECRETS = {
    ".env": "SPACEDOCK_SECRET_KEY=env-canary-1\n",
    "deploy/.env": "POSTGRES_PASSWORD=env-canary-2\n",
    "tls.pem": "-----BEGIN PRIVATE KEY-----\nenv-canary-3\n",
    "data/secret_key": "env-canary-4\n",
}


def test_the_platform_image_leaves_the_operators_secrets_out(tmp_path, docker_client):
    # The operator's checkout: the code as committed, with their secrets beside it.
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    for name, text in SECRETS.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)

    tag = f"{settings.INSTANCE}-platform:secrets-test"
    result = subprocess.run(
        [
            "/usr/bin/docker", "build", "--file", "deploy/Dockerfile", "--tag", tag,
            "--build-arg", f"BASE_IMAGE={settings.BASE_IMAGE}",
            "--label", f"spacedock.instance={settings.INSTANCE}",
            "--secret", f"id=ca,src={settings.BUILD_CA_BUNDLE}", "--progress=plain", ".",
        ],
        cwd=checkout, capture_output=True, text=True, timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    try:
        found = docker_client.containers.run(
            tag, ["sh", "-c", "grep -rl env-canary / --exclude-dir=proc --exclude-dir=sys; true"],
            entrypoint=[], remove=True, network_disabled=True,
        ).decode()  # fmt: skip
        assert found.strip() == "", f"secrets copied into the platform image: {found}"
        # The code is there: the image still is the platform.
        listing = docker_client.containers.run(
            tag, ["ls", "/opt/spacedock"], entrypoint=[], remove=True, network_disabled=True
        ).decode()
        assert {"manage.py", "spacedock", "builder", "runner", "templates", "deploy"} <= set(listing.split())
    finally:
        docker_client.images.remove(tag, force=True)
