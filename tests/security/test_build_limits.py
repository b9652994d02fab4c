"""A build cannot take the host's memory, processes or disk: builds ran with no limit, so one `RUN`
could OOM-kill Postgres, fork until the host could not, or fill /var/lib/docker."""

import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.conftest import wait_until
from tests.security.builds import build_now, docker_repo, log_text

CGROUP = os.environ.get("SPACEDOCK_BUILD_CGROUP", "spacedock-build")
GIB = 1 << 30


def engine_limit(controller: str, name: str) -> int:
    return int(Path(f"/sys/fs/cgroup/{controller}/{CGROUP}/{name}").read_text().split()[0])


def limit_hits() -> int:
    """How often the builds together reached their memory limit."""
    return engine_limit("memory", "memory.failcnt")


class Watch(threading.Thread):
    """Asks gunicorn (which asks Postgres) and Postgres itself, twice a second, while a build runs."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop, self.answers, self.failures = url, threading.Event(), 0, []

    def run(self):
        import psycopg2
        from django.conf import settings

        db = settings.DATABASES["default"]
        while not self.stop.is_set():
            try:
                assert requests.get(f"{self.url}/healthz", timeout=5).json()["checks"]["database"] == "ok"
                params = {"host": db["HOST"], "port": db["PORT"] or 5432, "user": db["USER"]}
                with psycopg2.connect(dbname=db["NAME"], connect_timeout=5, **params) as conn:
                    conn.cursor().execute("select 1")
                self.answers += 1
            except Exception as exc:  # noqa: BLE001 (any failure is what the test reports)
                self.failures.append(repr(exc))
            time.sleep(0.5)


@pytest.fixture
def watch(live):
    watcher = Watch(live.url)
    watcher.start()
    yield watcher
    watcher.stop.set()
    watcher.join(10)


HOG = """
import sys
a = []
for i in range(int(sys.argv[1])):
    a.append(b"x" * (256 << 20))  # written: every page is touched
    print("allocated", (i + 1) * 256, "MiB", flush=True)
"""

BOMB = """
import os, sys
n = 0
try:
    for _ in range(int(sys.argv[1])):
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "20"])
        n += 1
except OSError as exc:
    print("fork failed after", n, "processes:", exc, flush=True)
    sys.exit(3)
print("forked", n)
"""


def script_repo(script: str, argument: int) -> dict[str, str]:
    files = docker_repo(
        f"FROM BASE\nRUN echo {uuid.uuid4().hex}\nCOPY attack.py /attack.py\n"
        f'RUN python3 /attack.py {argument}\nCMD ["sleep", "1"]\n'
    )
    return {**files, "attack.py": script}


@pytest.fixture
def memory_limit():
    """The engine's memory limit lowered to 2 GiB for one test, as an operator may set it
    (SPACEDOCK_BUILD_MEMORY_MB): pages come slowly on this machine, and 8 GiB take minutes to fill."""
    path = Path(f"/sys/fs/cgroup/memory/{CGROUP}/memory.limit_in_bytes")
    default = int(path.read_text())
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert default <= total // 2, "the build engine's default memory limit must leave the host alive"
    path.write_text(str(2 * GIB))
    yield 2 * GIB
    path.write_text(str(default))


def test_a_build_that_allocates_past_its_memory_limit_is_killed_and_the_host_keeps_answering(
    live, token_for, make_repo, watch, memory_limit
):
    limit = engine_limit("memory", "memory.limit_in_bytes")
    assert limit == memory_limit
    hits = limit_hits()
    # Bounded: past the limit by 1 GiB, never more, in case the limit did not hold.
    repo = make_repo(script_repo(HOG, (limit + GIB) // (256 << 20)))
    build = build_now(live, token_for("mallory"), repo, "mallory", "hog")

    assert build.state == "failed"
    assert "going past the memory that builds may use" in build.error, build.error
    assert limit_hits() > hits
    assert watch.answers > 0 and watch.failures == []
    connection.ensure_connection()


def test_a_fork_bomb_stops_at_the_process_limit(live, token_for, make_repo, watch):
    limit = engine_limit("pids", "pids.max")
    # Bounded: at most 512 past the limit, each child a `sleep` that ends by itself.
    repo = make_repo(script_repo(BOMB, limit + 512))
    build = build_now(live, token_for("mallory"), repo, "mallory", "bomb")

    assert build.state == "failed"
    log = log_text(build)
    assert "fork failed after" in log and "Resource temporarily unavailable" in log, log[-2000:]
    forked = int(log.split("fork failed after", 1)[1].split()[0])
    assert forked < limit
    assert subprocess.run(["true"]).returncode == 0  # the host still starts processes
    assert watch.answers > 0 and watch.failures == []


def test_a_build_cannot_fill_the_hosts_disk(live, token_for, make_repo, docker_client):
    host_free = shutil.disk_usage("/var/lib/docker").free
    dockerfile = f"""FROM BASE
RUN echo {uuid.uuid4().hex}
RUN fallocate -l {(host_free + 64 * GIB) // GIB}G /fill
CMD ["sleep", "1"]
"""
    build = build_now(live, token_for("mallory"), make_repo(docker_repo(dockerfile)), "mallory", "fill")

    assert build.state == "failed"
    assert "No space left on device" in build.error
    # The host's disk did not fill: the build had a file system of its own.
    assert shutil.disk_usage("/var/lib/docker").free > host_free - 4 * GIB
    # And the build engine's own disk is freed again for the next build.
    probe = docker_repo(f'FROM BASE\nRUN echo {uuid.uuid4().hex} > /ok\nCMD ["sleep", "1"]\n')
    after = wait_until(
        lambda: (
            (b := build_now(live, token_for("mallory"), make_repo(probe), "mallory", "fill")).state
            == "succeeded"
            and b
        ),
        60,
        "a build to succeed after the disk was freed",
        every=2,
    )
    assert after.state == "succeeded"
