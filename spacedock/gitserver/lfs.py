"""Git LFS pointer files: finding them in commits and pushes, and what each one names.

A pointer is a small blob (at most 1024 bytes, per the spec) of the form
`version https://git-lfs.github.com/spec/v1` / `oid sha256:<hex>` / `size <bytes>`.
"""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

POINTER_MAX = 1024
_POINTER = re.compile(
    rb"^version https://(?:git-lfs\.github\.com/spec/v1|hawser\.github\.com/spec/v1)\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>[0-9]+)\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*$"
)


@dataclass(frozen=True)
class Pointer:
    path: str
    oid: str
    size: int


def parse_pointer(data: bytes) -> tuple[str, int] | None:
    """(oid, size) when data is an LFS pointer file, else None."""
    if len(data) > POINTER_MAX or not data.startswith(b"version "):
        return None
    match = _POINTER.match(data)
    if not match:
        return None
    return match["oid"].decode(), int(match["size"])


def _git(path: Path, *args: str, env: dict | None = None, input: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={path}", *args], input=input, env=env, capture_output=True, check=True
    ).stdout


def _read_pointers(path: Path, candidates: list[tuple[str, str]], env: dict | None = None) -> list[Pointer]:
    """The pointers among (blob sha, file path) candidates, read with one `git cat-file --batch`."""
    if not candidates:
        return []
    out = _git(
        path, "cat-file", "--batch", env=env, input="".join(f"{sha}\n" for sha, _ in candidates).encode()
    )
    pointers, pos = [], 0
    for _, file in candidates:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split(b" ")
        if len(header) != 3:  # "<sha> missing"
            pos = header_end + 1
            continue
        _, kind, length = header
        start = header_end + 1
        body = out[start : start + int(length)]
        pos = start + int(length) + 1
        parsed = parse_pointer(body) if kind == b"blob" else None
        if parsed:
            pointers.append(Pointer(file, *parsed))
    return pointers


def pointers_in_commit(path: Path, sha: str) -> list[Pointer]:
    """Every LFS pointer file in one commit's tree."""
    listing = _git(path, "ls-tree", "-r", "-l", "-z", sha)
    candidates = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, file = entry.partition(b"\t")
        mode, kind, blob, size = meta.split()
        if kind == b"blob" and mode != b"120000" and size.isdigit() and int(size) <= POINTER_MAX:
            candidates.append((blob.decode(), file.decode("utf-8", "surrogateescape")))
    return _read_pointers(path, candidates)


def pointers_in_push(path: Path, new_shas: list[str], env: dict | None = None) -> list[Pointer]:
    """The LFS pointers among the blobs a push brings that the repository did not have.

    Run from the pre-receive hook: git's quarantine environment (env) makes the pushed objects
    readable, and `--not --all` leaves out what the current refs already reach (checked before).
    """
    if not new_shas:
        return []
    listing = _git(path, "rev-list", "--objects", *new_shas, "--not", "--all", env=env).decode(
        "utf-8", "surrogateescape"
    )
    named = [line.partition(" ") for line in listing.splitlines()]
    named = [(sha, file) for sha, _, file in named if file]
    if not named:
        return []
    checks = _git(
        path, "cat-file", "--batch-check=%(objecttype) %(objectsize)", env=env,
        input="".join(f"{sha}\n" for sha, _ in named).encode(),
    ).decode().splitlines()  # fmt: skip
    candidates = [
        (sha, file)
        for (sha, file), check in zip(named, checks, strict=True)
        if check.split()[0] == "blob" and int(check.split()[1]) <= POINTER_MAX
    ]
    return _read_pointers(path, candidates, env)


def lfs_pointer_of(space, sha: str, path: str) -> tuple[str, int] | None:
    """(oid, size) when the file is an LFS pointer whose object this space may read."""
    from spacedock.gitserver import lfs_storage, repo

    info = repo.blob_info(space.repo_path, sha, path)
    if info is None or info[1] > 1024:
        return None
    pointer = parse_pointer(repo.read_file(space.repo_path, sha, path) or b"")
    if pointer and space.lfs_objects.filter(oid=pointer[0]).exists() and lfs_storage.has(*pointer):
        return pointer
    return None
