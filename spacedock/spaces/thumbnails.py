"""What a live app shows, read once per build soon after it first answers: the gallery card's
picture (a headless Chromium screenshot, kept in the data folder), and the script Gradio's page
loads, which is also the <gradio-app> web component's.

Chromium's own `--screenshot` is enough (no driver): it loads the page, lets its scripts run for
a bounded virtual time, and writes a PNG. Only public spaces get one; a private app's picture
would show its content on the public gallery.
"""

import logging
import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
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


# Gradio's page loads its front end as one module from the app: <script type="module" crossorigin
# src="./assets/index-<hash>.js">. The same module defines <gradio-app>, as the CDN's gradio.js
# (a one-line import of it) does.
GRADIO_SCRIPT = re.compile(r'<script type="module"[^>]*\ssrc="\./(assets/index-[\w-]+\.js)"')


def gradio_script(url: str) -> str:
    """The app's front-end module ("assets/index-<hash>.js"), or "" when its page names none."""
    parts = urlsplit(url)
    headers = {"Accept": "text/html"}
    if (parts.hostname or "").endswith(".localhost"):
        # Names under .localhost are loopback (RFC 6761), as browsers and curl resolve them;
        # glibc does not, so the request goes to 127.0.0.1 with the name as its Host.
        headers["Host"] = parts.netloc
        url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"))
    try:
        page = requests.get(url, timeout=15, headers=headers)
    except requests.RequestException as exc:
        log.warning("web component of %s: %s", url, exc)
        return ""
    found = GRADIO_SCRIPT.search(page.text[:200_000]) if page.ok else None
    return found.group(1) if found else ""
