"""The Dockerfiles Spacedock writes for `sdk: gradio` and `sdk: static` spaces.

Layers go from what changes least to what changes most, so that a push that
changes only code rebuilds only the last layer: the shared SDK image (base, venv,
Gradio), then system packages, then Python requirements, then the app files.
"""

import json

from spacedock.spaces.config import SpaceConfig

APP_DIR = "/home/user/app"

# Host CA bundle and optional pip.conf reach pip as BuildKit secrets: never in a layer. The cache
# id is namespaced per space by the build (BUILDKIT_CACHE_MOUNT_NS): no build sees another's cache.
PIP_MOUNTS = (
    "--mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt "
    "--mount=type=secret,id=pipconf,target=/etc/pip.conf "
    "--mount=type=cache,id=pip,target=/root/.cache/pip"
)
PIP = "PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 pip install"


def sdk_dockerfile(base_image: str, gradio_version: str) -> str:
    return f"""\
FROM {base_image}
RUN python3 -m venv /opt/venv && useradd --create-home --uid 1000 user \
    && mkdir {APP_DIR} && chown 1000:1000 {APP_DIR}
WORKDIR {APP_DIR}
ENV PATH=/opt/venv/bin:$PATH \\
    PYTHONUNBUFFERED=1 \\
    GRADIO_SERVER_NAME=0.0.0.0 \\
    GRADIO_ANALYTICS_ENABLED=False \\
    HF_HUB_DISABLE_TELEMETRY=1
RUN {PIP_MOUNTS} \\
    {PIP} gradio=={gradio_version}
"""


def gradio_dockerfile(sdk_image: str, config: SpaceConfig, files: set[str], env: dict[str, str]) -> str:
    lines = [f"FROM {sdk_image}", "USER root"]
    if "packages.txt" in files:
        lines += [
            "COPY packages.txt /tmp/packages.txt",
            "RUN apt-get update && xargs -r -a /tmp/packages.txt apt-get install -y --no-install-recommends "
            "&& rm -rf /var/lib/apt/lists/*",
        ]
    if "pre-requirements.txt" in files:
        lines += [
            "COPY pre-requirements.txt /tmp/pre-requirements.txt",
            f"RUN {PIP_MOUNTS} \\\n    {PIP} -r /tmp/pre-requirements.txt",
        ]
    if "requirements.txt" in files:
        # gradio stays pinned: a requirements file must not swap the SDK version under the app.
        lines += [
            "COPY requirements.txt /tmp/requirements.txt",
            f"RUN {PIP_MOUNTS} \\\n    {PIP} -r /tmp/requirements.txt gradio=={config.sdk_version}",
        ]
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
