"""The Dockerfiles Spacedock writes: layers in the order that keeps a code-only push cheap, the app
reachable from outside its container, pip's CA a secret, and nothing from a README turned into an
instruction. What the images do when built and run is tested in test_builder."""

import pytest

from builder.dockerfiles import gradio_dockerfile, sdk_dockerfile, static_dockerfile
from spacedock.spaces.config import parse

pytestmark = pytest.mark.fast

EVERY_FILE = {"README.md", "app.py", "packages.txt", "pre-requirements.txt", "requirements.txt"}


def instructions(dockerfile: str) -> list[str]:
    """One string per instruction, continuation lines joined, as Docker reads them."""
    joined = dockerfile.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def keywords(dockerfile: str) -> list[str]:
    return [line.split()[0] for line in instructions(dockerfile)]


def test_gradio_layers_go_from_what_changes_least_to_the_app_files():
    config = parse("---\nsdk: gradio\nsdk_version: 5.9.1\napp_file: main.py\n---\n")
    steps = instructions(gradio_dockerfile("sdk:img", config, EVERY_FILE, {"SPACE_ID": "ada/hi"}))
    order = [
        next(i for i, step in enumerate(steps) if marker in step)
        for marker in (
            "/tmp/packages.txt",
            "/tmp/pre-requirements.txt",
            "/tmp/requirements.txt",
            "COPY --chown",
        )
    ]
    assert order == sorted(order)
    app_copy = order[-1]
    assert not any(step.startswith(("RUN", "COPY")) for step in steps[app_copy + 1 :])  # the last layer
    requirements = next(step for step in steps if "-r /tmp/requirements.txt" in step)
    # A requirements file installs under the SDK image's lock: it cannot swap Gradio under the app.
    assert "-c /tmp/requirements-constraints.txt" in requirements
    assert steps[0] == "FROM sdk:img"
    assert steps[-1] == 'CMD ["python", "main.py"]'
    assert "USER 1000" in steps


def test_gradio_without_extra_files_is_the_sdk_image_plus_the_app():
    config = parse("---\nsdk: gradio\napp_port: 8080\n---\n")
    dockerfile = gradio_dockerfile("sdk:img", config, {"README.md", "app.py"}, {})
    assert keywords(dockerfile) == ["FROM", "USER", "COPY", "USER", "ENV", "EXPOSE", "CMD"]
    assert 'GRADIO_SERVER_PORT="8080"' in dockerfile and "EXPOSE 8080" in dockerfile


def test_the_sdk_image_listens_on_every_interface_as_an_unprivileged_user():
    dockerfile = sdk_dockerfile("spacedock/base:bookworm", "6.31.0")
    assert "GRADIO_SERVER_NAME=0.0.0.0" in dockerfile  # Gradio binds 127.0.0.1 unless told
    assert "--uid 1000" in dockerfile and "install.py 6.31.0" in dockerfile
    install = next(step for step in instructions(dockerfile) if "python3 /opt/sdk/install.py" in step)
    # pip trusts the host's CA through a BuildKit secret: the bundle is in no layer.
    assert "--mount=type=secret,id=ca" in install
    # The only files copied in are Spacedock's own install scripts.
    assert [step for step in instructions(dockerfile) if step.startswith("COPY")] == [
        "COPY install.py constraints.py /opt/sdk/"
    ]


def test_a_readme_cannot_add_an_instruction():
    config = parse('---\nsdk: gradio\ntitle: "x\\"\\nRUN touch /pwned #"\n---\n')
    env = {"SPACE_TITLE": config.title, "SPACE_ID": "ada/hi"}
    dockerfile = gradio_dockerfile("sdk:img", config, {"app.py"}, env)
    assert keywords(dockerfile) == ["FROM", "USER", "COPY", "USER", "ENV", "EXPOSE", "CMD"]
    assert "touch /pwned" not in "".join(s for s in instructions(dockerfile) if not s.startswith("ENV"))


def test_static_site_is_served_on_its_port_on_every_interface():
    config = parse("---\nsdk: static\napp_port: 8001\n---\n")
    dockerfile = static_dockerfile("spacedock/base:bookworm", config)
    assert instructions(dockerfile)[-1] == (
        'CMD ["python3", "-m", "http.server", "--bind", "0.0.0.0", "8001"]'
    )
    assert "USER 1000" in instructions(dockerfile) and "EXPOSE 8001" in instructions(dockerfile)
