"""A build's cache mounts and index credentials are its own: one pip cache mount served every build
(and the shared SDK image), so a docker-sdk build could plant a wheel that other builds install,
and the operator's pip.conf (an index URL with credentials) was mounted into tenants' Dockerfiles."""

import uuid

from tests.security.builds import build_now, docker_repo, log_text

MOUNTS = (
    "--mount=type=cache,target=/root/.cache/pip "
    "--mount=type=cache,id=pip,target=/cache-pip "
    "--mount=type=cache,id=/root/.cache/pip,target=/cache-default"
)
FILES = "/root/.cache/pip/planted /cache-pip/planted /cache-default/planted"


def planting(marker: str) -> str:
    return f"""FROM BASE
RUN {MOUNTS} sh -c 'for f in {FILES}; do echo {marker} > $f; done'
CMD ["sleep", "1"]
"""


def looking(fresh: str) -> str:
    # Fails the build when any cache mount holds another build's file.
    return f"""FROM BASE
RUN {MOUNTS} sh -c 'echo {fresh}; if cat {FILES} 2>/dev/null | grep -q .; then \\
    echo "FOUND: $(cat {FILES} 2>/dev/null | head -n 1)"; exit 1; fi; echo "no planted file here"'
CMD ["sleep", "1"]
"""


def test_a_cache_planted_by_one_tenant_is_not_seen_by_another(live, token_for, make_repo):
    marker = f"planted-{uuid.uuid4().hex}"
    mallory = build_now(live, token_for("mallory"), make_repo(docker_repo(planting(marker))), "mallory", "a")
    assert mallory.state == "succeeded", mallory.error

    alice = build_now(
        live, token_for("alice"), make_repo(docker_repo(looking(uuid.uuid4().hex))), "alice", "b"
    )
    assert alice.state == "succeeded", alice.error
    assert "no planted file here" in log_text(alice)
    assert marker not in log_text(alice)

    # The cache still works within one space: mallory's next build finds what the first left.
    again = build_now(
        live, token_for("mallory"), make_repo(docker_repo(looking(uuid.uuid4().hex))), "mallory", "a"
    )
    assert again.state == "failed"
    assert f"FOUND: {marker}" in log_text(again)


def test_a_tenant_dockerfile_gets_no_index_credentials(live, token_for, make_repo, settings, docker_client):
    settings.PIP_INDEX_URL = "https://spacedock:index-s3cret-42@pypi.invalid/simple"
    dockerfile = f"""FROM BASE
RUN echo {uuid.uuid4().hex}
RUN --mount=type=secret,id=pipconf --mount=type=secret,id=pipconf,target=/etc/pip.conf \\
    sh -c 'cat /run/secrets/pipconf /etc/pip.conf > /leak 2>/dev/null; cat /leak; true'
CMD ["sleep", "1"]
"""
    build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", "index")
    assert build.state == "succeeded", build.error
    assert "index-s3cret-42" not in log_text(build)
    leak = docker_client.containers.run(build.image, ["cat", "/leak"], remove=True, network_disabled=True)
    assert b"index-s3cret-42" not in leak


def test_a_gradio_space_build_gets_the_index_without_its_credentials(live, token_for, make_repo, settings):
    """A space's requirements may name a source distribution: its setup.py runs while pip.conf is
    mounted, and could send it anywhere. What the builder hands BuildKit for that build is read
    here as it goes in (the build itself is real); the SDK image, Spacedock's own recipe, keeps
    the full index URL."""
    from builder import docker_build

    repo = make_repo()  # a Gradio app without requirements: a code-only build on the SDK image
    first = build_now(live, token_for("mallory"), repo, "mallory", "pipconf")  # the SDK image, if missing
    assert first.state == "succeeded", first.error
    settings.PIP_INDEX_URL = "https://spacedock:index-s3cret-42@pypi.invalid:8443/simple"
    settings.PIP_EXTRA_INDEX_URL = "https://token-s3cret-43@extra.invalid/simple"
    handed: list[str] = []
    real_build = docker_build.build

    def build(*args, secrets=None, **kwargs):
        handed.extend(path.read_text() for key, path in (secrets or {}).items() if key == "pipconf")
        return real_build(*args, secrets=secrets, **kwargs)

    docker_build.build = build
    try:
        repo.write({"app.py": repo_app(uuid.uuid4().hex)})
        repo.commit("code only")
        build = build_now(live, token_for("mallory"), repo, "mallory", "pipconf")
    finally:
        docker_build.build = real_build
    assert build.state == "succeeded", build.error
    assert handed, "the space's build got no pip.conf"
    assert "index-url = https://pypi.invalid:8443/simple" in handed[-1]
    assert "extra-index-url = https://extra.invalid/simple" in handed[-1]
    assert not any("s3cret" in text for text in handed)
    assert "s3cret" not in log_text(build)


def repo_app(marker: str) -> str:
    return f'import gradio as gr\n\n# {marker}\ngr.Interface(lambda n: n, "text", "text").launch()\n'
