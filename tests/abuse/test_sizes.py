"""Big pushes, big READMEs, big files: refused or shown by size, never read whole into a web
process; a commit too big to build fails its build with the limit in the message."""

import hashlib
import os
import shutil

import pytest
import requests
from django.conf import settings

from builder import tasks
from spacedock.gitserver.models import LfsObject
from spacedock.spaces.models import Build, Space
from tests.conftest import HELLO_APP, HELLO_README, gunicorn


@pytest.fixture(scope="module")
def small(server, tmp_path_factory):
    with gunicorn(
        tmp_path_factory,
        SPACEDOCK_MAX_PUSH_MB="1",
        SPACEDOCK_MAX_README_KB="4",
        SPACEDOCK_LFS_MAX_OBJECT_MB="1",
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def no_repositories_left():
    # The database is emptied for each test; the repositories on disk must go with it, or a
    # space pushed by an earlier run refuses this run's first push.
    shutil.rmtree(settings.REPOS_DIR, ignore_errors=True)


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


def test_a_huge_readme_is_a_config_error_not_read_by_the_push_hook(
    small, transactional_db, token_for, make_repo
):
    readme = HELLO_README + "word " * 4000
    repo = make_repo({"README.md": readme, "app.py": HELLO_APP})
    assert repo.push(small.git_url("ada", "longread", token_for("ada"))).returncode == 0
    space = Space.objects.get(name="longread")
    assert space.stage == "CONFIG_ERROR"
    assert "README.md is 19 KiB; at most 4 KiB is read" in space.stage_message


def test_an_lfs_object_over_its_own_limit_is_refused_by_name(small, transactional_db, token_for, make_repo):
    token = token_for("ada")
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP}, commit=False)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.bin")
    repo.write({"weights.bin": os.urandom(2 * 2**20)})
    repo.commit("a 2 MiB LFS object")
    pushed = repo.push(small.git_url("ada", "heavylfs", token))
    assert pushed.returncode != 0
    assert "limited to 1 MiB (SPACEDOCK_LFS_MAX_OBJECT_MB)" in pushed.stderr
    assert not LfsObject.objects.exists()


def test_an_lfs_upload_that_skips_the_batch_answer_is_cut_at_the_limit(
    small, transactional_db, token_for, make_repo
):
    # The attacker asks for a link for a small object, then PUTs 2 MiB to it.
    token = token_for("ada")
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP})
    assert repo.push(small.git_url("ada", "sneaky", token)).returncode == 0
    data = os.urandom(2 * 2**20)
    oid = hashlib.sha256(data).hexdigest()
    batch = requests.post(
        f"{small.url}/spaces/ada/sneaky.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": 10}]},
        auth=("ada", token),
        headers={"Accept": "application/vnd.git-lfs+json"},
        timeout=10,
    ).json()
    link = batch["objects"][0]["actions"]["upload"]
    put = requests.put(link["href"], data=data, headers=link["header"], timeout=30)
    assert put.status_code == 413 and "limited to 1 MiB" in put.json()["message"]
    assert not LfsObject.objects.exists()


def test_a_commit_too_big_to_build_fails_its_build_with_the_limit(live, token_for, make_repo, settings):
    # Built in this process with a 1 MiB limit; a tag push queues nothing for a worker.
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP, "model.bin": b"\0" * (2 * 2**20)})
    repo.git("tag", "wip")
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
