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
