"""Fixtures that run Spacedock's real processes: gunicorn, git, the Celery worker and Docker."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The test database, as a URL that the suite's own subprocesses can use."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**extra) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SPACEDOCK_DATA_DIR": str(settings.DATA_DIR),
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def wait_for_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before answering {url}")
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # a loaded machine: slow first answer
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url} within {seconds} s")


@dataclass
class Server:
    url: str
    port: int
    log: Path

    def api(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.url}/api/{path}", timeout=10, **kwargs)

    def git_url(self, owner: str, name: str, token: str = "", user: str = "") -> str:
        auth = f"{user or owner}:{token}@" if token else ""
        return f"http://{auth}127.0.0.1:{self.port}/spaces/{owner}/{name}"


@contextmanager
def gunicorn(tmp_path_factory, **env: str):
    """gunicorn serving the test database, as `make up` runs it, with `env` on top of the suite's."""
    port = free_port()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "spacedock.wsgi",
                "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
                "--threads", "16", "--timeout", "120",
            ],
            cwd=ROOT, env=process_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url, proc)
        yield Server(url=url, port=port, log=log)
    finally:
        proc.terminate()
        proc.wait(10)


def _delete_not_truncate(ops, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Empties the tables after each transactional test with DELETE instead of TRUNCATE.

    Postgres's TRUNCATE makes new files for every table (about 0.4 s a flush here, after each of the
    suite's ~200 tests on a live server); DELETE of the few rows a test leaves takes milliseconds.
    The tables end as empty either way. The lock keeps out other processes (gunicorn, the worker)
    as TRUNCATE's does, and every foreign key is DEFERRABLE INITIALLY DEFERRED (Django makes them
    so), so the order of the deletes does not matter within the flush's transaction.
    """
    if reset_sequences or not tables:
        return _truncate(ops, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    names = [ops.quote_name(table) for table in tables]
    return [f"LOCK TABLE {', '.join(names)} IN ACCESS EXCLUSIVE MODE;"] + [f"DELETE FROM {n};" for n in names]


if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    from django.db.backends.postgresql.operations import DatabaseOperations

    _truncate = DatabaseOperations.sql_flush
    DatabaseOperations.sql_flush = _delete_not_truncate


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker, tmp_path_factory, registry) -> Server:
    """The suite's gunicorn, with the registry that builds publish to running beside it."""
    with gunicorn(tmp_path_factory) as started:
        yield started


@pytest.fixture
def live(server, transactional_db) -> Server:
    """The server, with an empty database and no repositories left by other tests."""
    shutil.rmtree(settings.REPOS_DIR, ignore_errors=True)
    return server


@pytest.fixture
def token_for():
    """issue_token's token (its output's last line), the command run in this process.

    A process of its own per token cost a Django start-up (1-2 s here) some 95 times a run;
    tests/test_tokens.py and the README's test run the command as an operator does.
    """

    def issue(username: str, scope: str = "write") -> str:
        out = io.StringIO()
        call_command("issue_token", username, "--scope", scope, stdout=out, stderr=io.StringIO())
        return out.getvalue().strip().splitlines()[-1]

    return issue


class Repo:
    """A demo author's working copy, driven with the real git client."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org",
            "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org",
            "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false",
        }  # fmt: skip
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=check
        )

    def write(self, files: dict[str, str | bytes]) -> "Repo":
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        return self

    def commit(self, message: str = "update") -> str:
        self.git("add", "-A")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, url: str, check: bool = False) -> subprocess.CompletedProcess:
        return self.git("push", url, "main", check=check)


HELLO_README = """---
title: Hello
emoji: 👋
colorFrom: green
colorTo: blue
sdk: gradio
app_file: app.py
short_description: Says hello
tags: [demo, text]
---

# Hello
"""

HELLO_APP = """import gradio as gr


def greet(name):
    return f"Hello, {name}!"


gr.Interface(greet, "text", "text").launch()
"""


@pytest.fixture
def make_repo(tmp_path):
    count = 0

    def make(files: dict[str, str | bytes] | None = None, commit: bool = True) -> Repo:
        nonlocal count
        count += 1
        repo = Repo(tmp_path / f"repo{count}")
        repo.write({"README.md": HELLO_README, "app.py": HELLO_APP} if files is None else files)
        if commit:
            repo.commit("first")
        return repo

    return make


@pytest.fixture(scope="session")
def docker_proxy(tmp_path_factory):
    """`manage.py docker_proxy`: the build worker's only way to the two engines, as make up runs it."""
    log = tmp_path_factory.mktemp("docker-proxy") / "docker-proxy.log"
    sockets = [settings.DOCKER_PROXY_DIR / f"{engine}.sock" for engine in ("build", "runtime")]
    for path in sockets:
        path.unlink(missing_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "docker_proxy"],
            cwd=ROOT, env=process_env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ready = lambda: all(p.exists() for p in sockets) or proc.poll() is not None  # noqa: E731
        wait_until(ready, 30, "the docker proxy")
        assert proc.poll() is None, log.read_text()[-3000:]
        yield settings.DOCKER_PROXY_DIR
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def worker(server, docker_proxy, tmp_path_factory):
    """A Celery build worker on the test broker, as `make up` runs it: through the Docker proxy.

    One per test module: elsewhere a pushed build stays queued, as the tests there expect.
    """
    from spacedock.celery import app

    with app.connection_for_write() as conn:  # builds queued by earlier runs are not ours
        for queue in ("builds", "celery"):
            if _queue_exists(conn, queue):
                conn.default_channel.queue_purge(queue)
    for leftover in settings.BUILD_TMP_DIR.glob("build-*"):  # of runs killed before they cleaned up
        shutil.rmtree(leftover, ignore_errors=True)
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "spacedock", "worker",
                "--queues", "builds,celery", "--concurrency", "2",
                "--prefetch-multiplier", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            ],
            cwd=ROOT, env=process_env(SPACEDOCK_DOCKER_PROXY="true"), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for_log(log, "ready.", proc)
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _queue_exists(conn, queue: str) -> bool:
    try:
        conn.default_channel.queue_declare(queue, passive=True)
        return True
    except Exception:
        return False


def _wait_for_log(log: Path, text: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[2:5]} exited early:\n{log.read_text()[-3000:]}")
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{text!r} did not appear in {log} within {seconds} s")


def wait_until(check, seconds: float, what, every: float = 0.25):
    """Polls check() until it returns something true; fails with `what` (or what()) when time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds} s waiting for {what() if callable(what) else what}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """The registry between the build engine and the runtime engine, as make up runs it."""
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", "deploy/registry.sh"], cwd=ROOT, env=process_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_http(f"http://{settings.REGISTRY}/v2/", proc)
        yield settings.REGISTRY
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def build_engine():
    """The engine tenants' builds run on (deploy/build-engine.sh)."""
    import docker

    return docker.DockerClient(base_url=settings.BUILD_DOCKER_HOST)


@pytest.fixture(scope="session")
def docker_client():
    """The engine; at the end, this test instance's containers and images go (SDK images stay)."""
    import docker

    client = docker.from_env()
    yield client
    ours = {"label": f"spacedock.instance={settings.INSTANCE}"}
    for container in client.containers.list(all=True, filters=ours):
        container.remove(force=True)
    for image in client.images.list(filters=ours):
        for tag in image.tags:
            client.images.remove(tag, force=True)
    try:
        client.images.prune(filters={"dangling": True, **ours})
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: another prune runs on this shared engine
            raise


# Headless Chromium for the browser tests.
from tests.browser import browser, page  # noqa: E402, F401

# The runner's fixtures (images, a real Caddy, the in-process runner); at the end, as they use the above.
from tests.runner_fixtures import images, proxy, resolve_localhost, runner  # noqa: E402, F401
