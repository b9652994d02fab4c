"""The gallery card's picture: a headless Chromium screenshot of the app, taken once per build
soon after it first answers, kept beside the data folder's other files.

Chromium's own `--screenshot` is enough (no driver): it loads the page, lets its scripts run for
a bounded virtual time, and writes a PNG. Only public spaces get one; a private app's picture
would show its content on the public gallery.
"""

import logging
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 1280, 720
SCRIPT_MILLISECONDS = 15_000  # virtual time for the app's scripts: Gradio renders within a few seconds


def enabled() -> bool:
    return settings.THUMBNAILS and Path(settings.THUMBNAIL_CHROMIUM).exists()


def path_for(build_id: int) -> Path:
    return Path(settings.THUMBNAILS_DIR) / f"{int(build_id)}.png"


def capture(url: str, dest: Path, timeout: float = 60) -> bool:
    """Writes a screenshot of `url` to dest; False (and a log line) when Chromium could not."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="thumbnail-") as profile:
        shot = Path(profile) / "shot.png"
        command = [
            settings.THUMBNAIL_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", f"--virtual-time-budget={SCRIPT_MILLISECONDS}",
            f"--screenshot={shot}", url,
        ]  # fmt: skip
        try:
            subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            log.warning("thumbnail of %s: Chromium took over %s s", url, timeout)
            return False
        if not shot.exists() or shot.stat().st_size == 0:
            log.warning("thumbnail of %s: Chromium wrote no picture", url)
            return False
        shot.replace(dest)  # whole or not at all: a card never shows half a file
    return True
