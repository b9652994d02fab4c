"""The suite's settings: spacedock's own, with a data folder of its own."""

import os
import secrets
import socket
from pathlib import Path


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


# The suite's Caddy listens here; set once in the test process, inherited by the processes it
# starts, so every page and every process agrees on the spaces' URLs.
os.environ.setdefault("SPACEDOCK_PORT", _free_port())
# The suite's own registry (the `registry` fixture starts it), as make up's is its own.
os.environ.setdefault("SPACEDOCK_REGISTRY", f"127.0.0.1:{_free_port()}")
os.environ.setdefault("SPACEDOCK_INSTANCE", "sdtest")
# The suite signs up, pushes and calls the API from 127.0.0.1 far faster than any person; the
# abuse tests start a server of their own with low limits.
for _rate in ("LOGIN", "SIGNUP", "TOKENS", "API", "GIT"):
    os.environ.setdefault(f"SPACEDOCK_RATE_{_rate}", "100000/60")
# The same for quotas: the quota tests set a user's own (accounts.Quota), as an administrator would.
for _quota in (
    "SPACES",
    "CONCURRENT_BUILDS",
    "RUNNING_SPACES",
    "RUNNING_MEMORY_MB",
    "NEVER_SLEEP",
    "PINNED_BUILDS",
    "SDK_VERSIONS",
    "BUCKETS",
    "GPUS",
):
    os.environ.setdefault(f"SPACEDOCK_QUOTA_{_quota}", "100000")
# A screenshot per app that goes live costs Chromium a few seconds; the thumbnail test turns it on.
os.environ.setdefault("SPACEDOCK_THUMBNAILS", "false")
# The warm pool's idle containers cost a Gradio import each; tests/test_pool.py turns it on.
os.environ.setdefault("SPACEDOCK_WARM_POOL", "false")
# The suite's own process talks to the engines directly; its build worker goes through the Docker
# proxy, as in production (tests/conftest.py's worker fixture).
os.environ.setdefault("SPACEDOCK_DOCKER_PROXY", "false")
# The key build workers make their fetch tokens with: the suite's platform takes them, as a
# cluster's does (tests/test_remote_builds.py); its own worker reads the repositories on disk.
os.environ.setdefault("SPACEDOCK_BUILD_FETCH_KEYS", secrets.token_urlsafe(32))
os.environ.setdefault("SPACEDOCK_DATA_DIR", str(Path(__file__).resolve().parent.parent / "data" / "test"))

from spacedock.settings import *  # noqa: E402, F403

# Django's default hasher takes most of a second per password on a small machine, and the suite
# creates users by the dozen; what is tested is who may do what, never the hash's strength.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
