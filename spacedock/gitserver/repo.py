"""The bare repositories on disk, one per space."""

import subprocess
from pathlib import Path

import git
from django.conf import settings

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


def read_file(path: Path, sha: str, file: str) -> bytes | None:
    blob = _blob(path, sha, file)
    if blob is None or blob.type != "blob":
        return None
    return blob.data_stream.read()


def has_file(path: Path, sha: str, file: str) -> bool:
    blob = _blob(path, sha, file)
    return blob is not None and blob.type == "blob"


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
