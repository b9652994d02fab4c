"""The Dockerfiles Spacedock writes for `sdk: gradio` and `sdk: static` spaces.

Layers go from what changes least to what changes most, so that a push that
changes only code rebuilds only the last layer: the shared SDK image (base, venv,
Gradio), then system packages, then Python requirements, then the app files.
"""

import json
from pathlib import Path

from spacedock.spaces.config import SpaceConfig

APP_DIR = "/home/user/app"
# The scripts an SDK image is made with (builder/sdk/), copied into it at /opt/sdk.
SDK_SCRIPTS = ("install.py", "constraints.py")
UV_VERSION = "0.13.9"

# Host CA bundle and optional pip.conf reach pip as BuildKit secrets: never in a layer. The cache
# id is namespaced per space by the build (BUILDKIT_CACHE_MOUNT_NS): no build sees another's cache.
PIP_MOUNTS = (
    "--mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt "
    "--mount=type=secret,id=pipconf,target=/etc/pip.conf "
    "--mount=type=cache,id=pip,target=/root/.cache/pip"
)
PIP_ENV = "PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1"
PIP = f"{PIP_ENV} pip install"


def sdk_context(base_image: str, gradio_version: str) -> dict[str, str]:
    """Every file the SDK image is built from, by name: its Dockerfile and the scripts it runs."""
    scripts = Path(__file__).resolve().parent / "sdk"
    return {
        "Dockerfile": sdk_dockerfile(base_image, gradio_version),
        **{name: (scripts / name).read_text() for name in SDK_SCRIPTS},
    }


def sdk_dockerfile(base_image: str, gradio_version: str) -> str:
    # uv resolves as of a date (--exclude-newer), which pip cannot; it lives in a stage of its own,
    # cached across SDK images, and never enters one.
    return f"""\
FROM {base_image} AS uv
RUN {PIP_MOUNTS} \\
    python3 -m venv /opt/uv && {PIP_ENV} /opt/uv/bin/pip install uv=={UV_VERSION}

FROM {base_image}
RUN python3 -m venv /opt/venv && useradd --create-home --uid 1000 user \\
    && mkdir {APP_DIR} && chown 1000:1000 {APP_DIR}
WORKDIR {APP_DIR}
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    GRADIO_SERVER_NAME=0.0.0.0 \\
    GRADIO_ANALYTICS_ENABLED=False \\
    HF_HUB_DISABLE_TELEMETRY=1
COPY {" ".join(SDK_SCRIPTS)} /opt/sdk/
RUN {PIP_MOUNTS} \\
    --mount=type=bind,from=uv,source=/opt/uv,target=/opt/uv \\
    --mount=type=cache,target=/root/.cache/uv \\
    python3 /opt/sdk/install.py {gradio_version}
"""


def _constrained_install(name: str) -> list[str]:
    # The SDK image's lock holds Gradio's dependencies where its release left them (see
    # builder/sdk/constraints.py): a space's requirements install under it.
    constraints = f"/tmp/{name.removesuffix('.txt')}-constraints.txt"
    return [
        f"COPY {name} /tmp/{name}",
        f"RUN {PIP_MOUNTS} \\\n    python /opt/sdk/constraints.py /tmp/{name} > {constraints} \\\n"
        f"    && {PIP} -r /tmp/{name} -c {constraints}",
    ]


def adoptable(config: SpaceConfig, files: set[str]) -> bool:
    """Whether the image gradio_dockerfile makes is the SDK image and the app files alone, which a
    warm pool container (runner/pool.py) can run; the runner checks volumes, GPUs and the port."""
    return config.sdk == "gradio" and not files & {"packages.txt", "pre-requirements.txt", "requirements.txt"}


def gradio_dockerfile(sdk_image: str, config: SpaceConfig, files: set[str], env: dict[str, str]) -> str:
    lines = [f"FROM {sdk_image}", "USER root"]
    if "packages.txt" in files:
        lines += [
            "COPY packages.txt /tmp/packages.txt",
            "RUN apt-get update && xargs -r -a /tmp/packages.txt apt-get install -y --no-install-recommends "
            "&& rm -rf /var/lib/apt/lists/*",
        ]
    if "pre-requirements.txt" in files:
        lines += _constrained_install("pre-requirements.txt")
    if "requirements.txt" in files:
        lines += _constrained_install("requirements.txt")
    lines += [
        # The last layer, and the only one a code-only push changes.
        f"COPY --chown=1000:1000 . {APP_DIR}",
        "USER 1000",
        _env_line({**env, "HOME": "/home/user", "GRADIO_SERVER_PORT": str(config.app_port)}),
        f"EXPOSE {config.app_port}",
        f"CMD {json.dumps(['python', config.app_file])}",
    ]
    return "\n".join(lines) + "\n"


def static_dockerfile(base_image: str, config: SpaceConfig) -> str:
    return f"""\
FROM {base_image}
RUN useradd --create-home --uid 1000 user
COPY --chown=1000:1000 . {APP_DIR}
WORKDIR {APP_DIR}
USER 1000
EXPOSE {config.app_port}
CMD ["python3", "-m", "http.server", "--bind", "0.0.0.0", "{config.app_port}"]
"""


def _env_line(env: dict[str, str]) -> str:
    return "ENV " + " \\\n    ".join(f"{key}={json.dumps(value)}" for key, value in sorted(env.items()))
