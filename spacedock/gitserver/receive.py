"""What git's pre- and post-receive hooks do, run inside the web process that serves the push.

git runs hooks as programs. They used to be `manage.py` commands, and a Django start-up costs
0.6 s on an idle machine here and 1.5 to 2 s on a busy one, twice a push: most of a code-only
push-to-live. Now the hooks (`hooks/relay.py`, a few lines of the standard library) hand git's
input to the request that runs `git http-backend`, over a Unix socket in a folder only this
user can open, and print what it answers; the work runs here, with Django already loaded.

The socket serves the one push of the one space its request authorized: the space is the
request's, never named by the hook. It is gone when git http-backend ends.
"""

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from spacedock.gitserver import lfs_storage
from spacedock.gitserver.lfs import pointers_in_push
from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.models import Deployment, Space

log = logging.getLogger(__name__)

ZERO_SHA = "0" * 40
SHOWN = 20
SOCKET_ENV = "SPACEDOCK_HOOK_SOCKET"
# The pushed objects, readable only through git's quarantine: the pre-receive hook's environment.
QUARANTINE_ENV = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")
# git's input to a hook is one line per ref: a push of a million refs is still under this.
MAX_REQUEST = 256 * 2**20


@dataclass
class Answer:
    out: str = ""
    err: str = ""
    code: int = 0


def pre_receive(space: Space, lines: list[str], git_env: dict[str, str]) -> Answer:
    """Refuses a push whose Git LFS pointers name objects this space never received."""
    new = [line.split()[1] for line in lines if line.strip() and line.split()[1] != ZERO_SHA]
    pointers = pointers_in_push(space.repo_path, new, env={**os.environ, **git_env})
    if not pointers:
        return Answer()
    known = set(space.lfs_objects.filter(oid__in={p.oid for p in pointers}).values_list("oid", "size"))
    missing = [p for p in pointers if (p.oid, p.size) not in known or not lfs_storage.has(p.oid, p.size)]
    if not missing:
        return Answer()
    said = [
        f"Spacedock: push refused: {len(missing)} Git LFS file(s) point to objects this space never received:"
    ]
    said += [f"  {p.path} (oid {p.oid[:12]}…, {p.size} bytes)" for p in missing[:SHOWN]]
    if len(missing) > SHOWN:
        said.append(f"  … and {len(missing) - SHOWN} more")
    said += [
        "Install Git LFS (`git lfs install`) and push again: git-lfs uploads the objects first.",
        "If the objects are lost, `git lfs push --all origin` from a clone that has them, or commit",
        "the real files again.",
    ]
    return Answer(err="\n".join(said) + "\n", code=1)


def post_receive(space: Space, lines: list[str]) -> Answer:
    """Queues a build for a new head of a branch (another branch than the default builds its
    preview), and removes a deleted branch's preview; says so to the pusher."""
    page = space.git_url.replace("/spaces/", "/", 1)
    said = []
    for line in lines:
        if not line.strip():
            continue
        old, new, ref = line.split()
        if not ref.startswith("refs/heads/"):
            # Said, so that a pushed tag is not taken for a deploy.
            kind, _, short = ref.removeprefix("refs/").partition("/")
            said.append(
                f"Spacedock: {kind.rstrip('s')} {short} is stored, not built: only branches build. "
                f"To deploy it: git push <remote> {short}:{DEFAULT_BRANCH}"
            )
            continue
        branch = ref.removeprefix("refs/heads/")
        if new == ZERO_SHA:
            if branch != DEFAULT_BRANCH and Deployment.branch_deleted(space, branch):
                said.append(f"Spacedock: the preview of {branch} is removed, with its images.")
            continue
        build = space.record_push(new, ref)
        preview = build.preview()
        if build.state == "failed":
            stage = preview.stage if preview else space.stage
            said.append(f"Spacedock: {stage} at {new[:7]}: {build.error}")
        else:
            said.append(f"Spacedock: build {build.pk} of {new[:7]} queued.")
        said.append(f"Spacedock: follow it at {page}")
        if preview is not None:
            said.append(
                f"Spacedock: the preview of {branch} will be at {preview.url} "
                f"({space.url} keeps serving {DEFAULT_BRANCH})"
            )
        else:
            said.append(f"Spacedock: the app will be at {space.url}")
    return Answer(out="".join(f"{line}\n" for line in said))


def run_hook(space_id: int, request: dict) -> Answer:
    hook = request.get("hook")
    lines = str(request.get("stdin", "")).splitlines()
    space = Space.objects.select_related("owner").get(pk=space_id)
    if hook == "pre-receive":
        given = request.get("env") or {}
        return pre_receive(space, lines, {k: str(given[k]) for k in QUARANTINE_ENV if k in given})
    if hook == "post-receive":
        return post_receive(space, lines)
    return Answer(err=f"Spacedock: no such hook {hook!r}\n", code=1)


class HookServer:
    """The socket one push's hooks reach this process by, served by a thread of its own while
    `git http-backend` runs."""

    def __init__(self, space_id: int):
        self.space_id = space_id
        self.folder = Path(tempfile.mkdtemp(prefix="spacedock-hooks-"))  # mode 700
        self.path = str(self.folder / "hooks.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(2)
        self.thread = threading.Thread(target=self._serve, name=f"git-hooks-{space_id}", daemon=True)
        self.thread.start()

    def env(self) -> dict[str, str]:
        return {SOCKET_ENV: self.path, "SPACEDOCK_PYTHON": sys.executable}

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _serve(self) -> None:
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return  # closed: git http-backend has ended
                with conn:
                    self._answer(conn)
        finally:
            connection.close()  # this thread's database connection

    def _answer(self, conn: socket.socket) -> None:
        data = bytearray()
        while chunk := conn.recv(65536):
            data += chunk
            if len(data) > MAX_REQUEST:
                break
        try:
            answer = run_hook(self.space_id, json.loads(data))
        except Exception:
            log.exception("space %s: a git hook failed", self.space_id)
            failed = "Spacedock: the server failed to process this push; the operator's log has more.\n"
            answer = Answer(err=failed, code=1)
        try:
            conn.sendall(json.dumps(answer.__dict__).encode())
        except OSError as exc:
            log.warning("space %s: the git hook went away before its answer: %s", self.space_id, exc)
