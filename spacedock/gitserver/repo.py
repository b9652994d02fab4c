"""The bare repositories on disk, one per space."""

import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import git
from django.conf import settings

from spacedock.gitserver.lfs import Pointer, pointers_in_commit

DEFAULT_BRANCH = "main"


def path_for(owner: str, name: str) -> Path:
    root = Path(settings.REPOS_DIR).resolve()
    path = (root / owner / f"{name}.git").resolve()
    # Names are checked before they get here; this is the last line against "../".
    if root not in path.parents:
        raise ValueError(f"repository path escapes the repository folder: {owner}/{name}")
    return path


def init(path: Path) -> None:
    if (path / "HEAD").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(path)],
        check=True,
    )


def _blob(path: Path, sha: str, file: str):
    try:
        return git.Repo(path).commit(sha).tree / file
    except (KeyError, ValueError, git.BadName):
        return None


class TooLarge(Exception):
    """A file or a commit bigger than what may be read or built; the message gives both sizes."""


def read_file(path: Path, sha: str, file: str, max_bytes: int | None = None) -> bytes | None:
    """The file's bytes at `sha`, None when there is no such file; TooLarge, before anything is
    read, when it is over `max_bytes`."""
    blob = _blob(path, sha, file)
    if blob is None or blob.type != "blob":
        return None
    if max_bytes is not None and blob.size > max_bytes:
        raise TooLarge(f"{file} is {blob.size // 1024} KiB; at most {max_bytes // 1024} KiB is read")
    return blob.data_stream.read()


def expanded_size(path: Path, sha: str) -> int:
    """The bytes a commit's files take once written out (blobs only, from the tree's sizes)."""
    listing = subprocess.run(
        ["git", f"--git-dir={path}", "ls-tree", "-r", "-l", "-z", sha], capture_output=True, check=True
    ).stdout
    total = 0
    for entry in listing.split(b"\0"):
        fields = entry.split(None, 4)
        if len(fields) >= 4 and fields[1] == b"blob" and fields[3].isdigit():
            total += int(fields[3])
    return total


def has_file(path: Path, sha: str, file: str) -> bool:
    blob = _blob(path, sha, file)
    return blob is not None and blob.type == "blob"


# Given the pointers of a commit, yields each with a stream of its object's bytes, or None when
# the object cannot be had.
LfsObjects = Callable[[list[Pointer]], Iterator[tuple[Pointer, BinaryIO | None]]]


def stored_lfs_objects(pointers: list[Pointer]) -> Iterator[tuple[Pointer, BinaryIO | None]]:
    """The objects in this host's store."""
    from spacedock.gitserver import lfs_storage

    for pointer in pointers:
        stored = lfs_storage.has(pointer.oid, pointer.size)
        yield pointer, lfs_storage.open_object(pointer.oid) if stored else None


def export(path: Path, sha: str, dest: Path, lfs_objects: LfsObjects | None = None) -> list[str]:
    """Writes the files of one commit to dest; returns warnings about what was left out.

    A commit, not a working copy: a push during the build cannot change what is built.
    Links that point outside the repository are left out, not followed. Git LFS objects come
    from `lfs_objects`, by default this host's object store.
    """
    size = expanded_size(path, sha)
    if size > settings.MAX_EXPORT_MB * 1024 * 1024:
        raise TooLarge(
            f"commit {sha[:7]} holds {size / 2**20:.0f} MiB of files; builds take at most "
            f"{settings.MAX_EXPORT_MB} MiB (SPACEDOCK_MAX_EXPORT_MB). Keep large files out of the "
            "repository: download models and data when the app starts."
        )
    skipped: list[str] = []

    def only_inside(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
        try:
            return tarfile.data_filter(member, dest_path)
        except tarfile.FilterError as exc:
            skipped.append(f"left out {member.name}: {exc}")
            return None

    # Pointers are exported as they are and filled below: a git-lfs installed on the host
    # (its smudge filter in the global config) must not run, or try to download, here.
    no_lfs_filter = [
        "-c",
        "filter.lfs.process=",
        "-c",
        "filter.lfs.smudge=cat",
        "-c",
        "filter.lfs.required=false",
    ]
    archive = subprocess.Popen(
        ["git", *no_lfs_filter, f"--git-dir={path}", "archive", "--format=tar", sha], stdout=subprocess.PIPE
    )
    with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
        tar.extractall(dest, filter=only_inside)
    if archive.wait() != 0:
        raise ValueError(f"git archive of {sha} failed")
    return skipped + _fill_lfs_pointers(path, sha, dest, lfs_objects or stored_lfs_objects)


def _fill_lfs_pointers(path: Path, sha: str, dest: Path, lfs_objects: LfsObjects) -> list[str]:
    """Puts each Git LFS object where its pointer file was exported.

    The pre-receive hook let no pointer in without its object, so a missing one is a lost
    object (a warning, the pointer stays), not a user's mistake.
    """
    exported = [
        pointer
        for pointer in pointers_in_commit(path, sha)
        if (dest / pointer.path).is_file() and not (dest / pointer.path).is_symlink()  # else left out above
    ]
    warnings = []
    for pointer, source in lfs_objects(exported):
        if source is None:
            warnings.append(
                f"Git LFS object of {pointer.path} ({pointer.oid[:12]}) is missing: kept the pointer"
            )
            continue
        with source, (dest / pointer.path).open("wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
    return warnings


def list_files(path: Path, sha: str) -> list[str]:
    """Every file path in a commit, sorted; empty for a repository with no commit yet."""
    if not sha:
        return []
    try:
        tree = git.Repo(path).commit(sha).tree
    except (ValueError, git.BadName, git.NoSuchPathError):
        return []
    return sorted(item.path for item in tree.traverse() if item.type == "blob")


def tree_entries(path: Path, sha: str, folder: str = "") -> list[tuple[str, str, int]] | None:
    """(name, "tree" or "blob", size) of one folder in a commit; None when there is no such folder."""
    try:
        tree = git.Repo(path).commit(sha).tree
        if folder:
            tree = tree / folder
    except (KeyError, ValueError, git.BadName, git.NoSuchPathError):
        return None
    if tree.type != "tree":
        return None
    entries = [(item.name, item.type, item.size if item.type == "blob" else 0) for item in tree]
    return sorted(entries, key=lambda e: (e[1] != "tree", e[0].lower()))


def resolve(path: Path, rev: str) -> str | None:
    """The commit a branch, tag or sha names; None when it names none."""
    if not rev or rev.startswith("-") or not (path / "HEAD").exists():
        return None
    result = subprocess.run(
        ["git", f"--git-dir={path}", "rev-parse", "--verify", "--quiet", "--end-of-options",
         f"{rev}^{{commit}}"],
        capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip() or None


def blob_info(path: Path, sha: str, file: str) -> tuple[str, int] | None:
    """(blob sha, size) of a file in a commit; None when it is not a file there."""
    blob = _blob(path, sha, file)
    if blob is None or blob.type != "blob":
        return None
    return blob.hexsha, blob.size


def open_blob(path: Path, sha: str, file: str):
    """A stream of a file's bytes in a commit (the pointer, for an LFS file)."""
    return _blob(path, sha, file).data_stream
