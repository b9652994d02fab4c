"""Commits made on the server, without a working copy: the Hub's commit API writes with git plumbing.

A temporary index starts from the parent's tree, takes the new blobs and the deletions, becomes
a tree and a commit; `update-ref` with the old value moves the branch only if nobody moved it
meanwhile, as a push's ref update does.
"""

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ZERO_SHA = "0" * 40


class CommitError(ValueError):
    """The commit cannot be made as asked; the message says why."""


class RefMoved(CommitError):
    """The branch moved while the commit was made (or is not at the parent the client named)."""


@dataclass
class Change:
    """What a commit does to the parent's files: blobs to write at paths, and paths or folders to remove."""

    files: dict[str, bytes] = field(default_factory=dict)
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or ".git" in parts:
        raise CommitError(f"{path!r} is not a file path inside a repository")
    if "\0" in path or "\n" in path:
        raise CommitError(f"{path!r} contains a forbidden character")
    return path


def _git(repo: Path, *args: str, env: dict | None = None, input: bytes | None = None) -> str:
    result = subprocess.run(["git", f"--git-dir={repo}", *args], input=input, env=env, capture_output=True)
    if result.returncode != 0:
        raise CommitError(f"git {args[0]}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode().strip()


def branch_head(repo: Path, branch: str) -> str | None:
    result = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
        capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip() or None


def commit(repo: Path, branch: str, change: Change, message: str, author: tuple[str, str],
           parent: str | None) -> str:  # fmt: skip
    """Makes the commit on top of `parent` (the branch's head, or None for its first) and moves the branch."""
    entries: dict[str, tuple[str, str]] = {}
    if parent:
        listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", parent)
        for entry in filter(None, listing.split("\0")):
            meta, _, path = entry.partition("\t")
            mode, _, sha = meta.split()
            entries[path] = (mode, sha)
    for path in change.deleted_files:
        if entries.pop(path, None) is None:
            raise CommitError(f"Cannot delete {path}: a file with this name doesn't exist")
    for folder in change.deleted_folders:
        prefix = folder.rstrip("/") + "/"
        gone = [p for p in entries if p.startswith(prefix)]
        if not gone:
            raise CommitError(f"Cannot delete {folder}: a folder with this name doesn't exist")
        for path in gone:
            del entries[path]
    for path, data in change.files.items():
        sha = _git(repo, "hash-object", "-w", "--stdin", input=data)
        entries[path] = ("100644", sha)
    for path in entries:
        parents = path.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            if "/".join(parents[:depth]) in entries:
                raise CommitError(f"{path} needs a folder where the file {'/'.join(parents[:depth])} is")

    name, email = author
    with tempfile.TemporaryDirectory(prefix="spacedock-commit-") as work:
        env = {
            **os.environ, "GIT_INDEX_FILE": str(Path(work) / "index"),
            "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
        }  # fmt: skip
        info = "".join(f"{mode} {sha}\t{path}\0" for path, (mode, sha) in entries.items())
        _git(repo, "update-index", "-z", "--index-info", env=env, input=info.encode())
        tree = _git(repo, "write-tree", env=env)
        args = ["commit-tree", tree, "-F", "-"] + (["-p", parent] if parent else [])
        sha = _git(repo, *args, env=env, input=message.encode())
        try:
            _git(repo, "update-ref", f"refs/heads/{branch}", sha, parent or ZERO_SHA, env=env)
        except CommitError as exc:
            raise RefMoved(f"{branch} moved while the commit was made; commit again ({exc})") from None
    return sha


@dataclass(frozen=True)
class LogEntry:
    sha: str
    author: str
    date: str
    title: str
    message: str


def history(repo: Path, sha: str, skip: int = 0, count: int = 50) -> list[LogEntry]:
    """The commits reachable from sha, newest first."""
    out = _git(repo, "log", "-z", f"--skip={skip}", f"--max-count={count}",
               "--format=%H%x1f%an%x1f%at%x1f%s%x1f%b", sha)  # fmt: skip
    entries = []
    for record in filter(None, out.split("\0")):
        commit_sha, author, date, title, body = record.strip("\n").split("\x1f", 4)
        # The Hub's date format, which huggingface_hub parses strictly.
        when = datetime.fromtimestamp(int(date), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        entries.append(LogEntry(commit_sha, author, when, title, body.strip()))
    return entries
