"""The suite's settings: spacedock's own, with a data folder of its own."""

import os
from pathlib import Path

os.environ.setdefault("SPACEDOCK_INSTANCE", "sdtest")
os.environ.setdefault("SPACEDOCK_DATA_DIR", str(Path(__file__).resolve().parent.parent / "data" / "test"))

from spacedock.settings import *  # noqa: E402, F403
