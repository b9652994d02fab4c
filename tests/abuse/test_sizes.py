"""Big pushes, big READMEs, big files: refused or shown by size, never read whole into a web
process; a commit too big to build fails its build with the limit in the message."""

import os

import pytest
import requests

from builder import tasks
from spacedock.spaces.models import Build, Space
from tests.conftest import HELLO_APP, HELLO_README, gunicorn


@pytest.fixture(scope="module")
def small(server, tmp_path_factory):
    with gunicorn(tmp_path_factory, SPACEDOCK_MAX_PUSH_MB="1", SPACEDOCK_MAX_README_KB="4") as started:
        yield started


def test_a_push_over_the_size_limit_is_refused_by_git_with_the_limit(
    small, transactional_db, token_for, make_repo
):
    token = token_for("ada")
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP, "weights.bin": os.urandom(3 * 2**20)})
    pushed = repo.push(small.git_url("ada", "big", token))
    assert pushed.returncode != 0
    assert (
        "pack exceeds maximum allowed size" in pushed.stderr or "pushes are limited to 1 MiB" in pushed.stderr
    )
    assert not Build.objects.exists()
    # Without the big file the same space takes the push.
    repo.git("rm", "--quiet", "weights.bin")
    repo.git("commit", "--quiet", "--amend", "-m", "small")
    assert repo.push(small.git_url("ada", "big", token)).returncode == 0


def test_a_huge_readme_and_file_are_shown_by_size_not_read(small, transactional_db, token_for, make_repo):
    token = token_for("ada")
    readme = HELLO_README + "word " * 4000  # 20 KB, over the 4 KiB this server renders
    repo = make_repo({"README.md": readme, "app.py": HELLO_APP, "data.txt": "x" * (600 * 1024)})
    assert repo.push(small.git_url("ada", "wordy", token)).returncode == 0
    page = requests.get(f"{small.url}/ada/wordy", timeout=10)
    assert (
        page.status_code == 200
        and "README.md is 19 KiB; at most 4 KiB is read: too large to show" in page.text
    )
    listing = requests.get(f"{small.url}/ada/wordy/files/data.txt", timeout=10)
    assert listing.status_code == 200 and "x" * 100 not in listing.text


def test_a_commit_too_big_to_build_fails_its_build_with_the_limit(live, token_for, make_repo, settings):
    # Built in this process with a 1 MiB limit; the branch push queues nothing for a worker.
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP, "model.bin": b"\0" * (2 * 2**20)})
    repo.git("checkout", "-q", "-b", "wip")
    assert (
        repo.git("push", live.git_url("ada", "heavy", token_for("ada")), "wip", check=False).returncode == 0
    )
    space = Space.objects.get(name="heavy")
    build = Build.objects.create(space=space, commit_sha=repo.git("rev-parse", "HEAD").stdout.strip())
    settings.MAX_EXPORT_MB = 1
    tasks.build(build.pk)
    build.refresh_from_db()
    assert build.state == "failed" and "holds 2 MiB of files; builds take at most 1 MiB" in build.error
    assert "SPACEDOCK_MAX_EXPORT_MB" in Space.objects.get(pk=space.pk).stage_message
