"""Git LFS with the real git-lfs client: push, refusal of missing objects, clone, per-space access."""

import base64
import hashlib
import json
import os

import requests

from spacedock.gitserver import lfs_storage
from spacedock.gitserver import repo as gitrepo
from tests.conftest import HELLO_APP, HELLO_README

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
BIN = os.urandom(200_000)


def lfs_repo(make_repo, files: dict) -> object:
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP}, commit=False)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.png", "*.bin")
    repo.write(files)
    repo.commit("with lfs files")
    return repo


def test_push_and_clone_with_git_lfs(live, token_for, make_repo, tmp_path):
    from spacedock.spaces.models import Space

    token = token_for("alice")
    repo = lfs_repo(make_repo, {"images/cat.png": PNG, "weights.bin": BIN})
    pushed = repo.push(live.git_url("alice", "lfs", token))
    assert pushed.returncode == 0, pushed.stderr

    space = Space.objects.get(owner__username="alice", name="lfs")
    oids = {hashlib.sha256(PNG).hexdigest(): len(PNG), hashlib.sha256(BIN).hexdigest(): len(BIN)}
    assert dict(space.lfs_objects.values_list("oid", "size")) == oids
    for oid in oids:
        assert lfs_storage.object_path(oid).read_bytes() in (PNG, BIN)
    # The repository holds pointers; the build export holds the bytes.
    assert gitrepo.read_file(space.repo_path, space.head_sha, "weights.bin").startswith(
        b"version https://git-lfs"
    )
    export = tmp_path / "export"
    export.mkdir()
    assert gitrepo.export(space.repo_path, space.head_sha, export) == []
    assert (export / "weights.bin").read_bytes() == BIN
    assert (export / "images/cat.png").read_bytes() == PNG

    clone = tmp_path / "clone"
    cloned = repo.git("clone", live.git_url("alice", "lfs", token), str(clone))
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "weights.bin").read_bytes() == BIN
    assert (clone / "images/cat.png").read_bytes() == PNG


def test_push_without_its_objects_is_refused(live, token_for, make_repo):
    from spacedock.spaces.models import Space

    token = token_for("alice")
    oid = hashlib.sha256(b"never uploaded").hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 14\n"
    # Committed without git-lfs installed, as a clone made with GIT_LFS_SKIP_SMUDGE would push.
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP, "model.bin": pointer})
    pushed = repo.push(live.git_url("alice", "broken", token))
    assert pushed.returncode != 0
    assert "push refused: 1 Git LFS file(s) point to objects this space never received" in pushed.stderr
    assert f"model.bin (oid {oid[:12]}" in pushed.stderr
    assert "git lfs install" in pushed.stderr
    space = Space.objects.get(owner__username="alice", name="broken")
    assert space.head_sha == "" and not space.builds.exists()


def test_another_space_cannot_read_an_object_by_its_oid(live, token_for, make_repo):
    alice, bob = token_for("alice"), token_for("bob")
    repo = lfs_repo(make_repo, {"secret.bin": BIN})
    assert repo.push(live.git_url("alice", "private-ish", alice)).returncode == 0
    oid = hashlib.sha256(BIN).hexdigest()
    batch = f"{live.url}/spaces/bob/mine.git/info/lfs/objects/batch"
    headers = {"Accept": "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json"}
    body = {"transfers": ["basic"], "objects": [{"oid": oid, "size": len(BIN)}]}

    # Bob's new space never referenced the object: a download is refused ...
    answer = requests.post(batch, json={**body, "operation": "upload"}, auth=("bob", bob), headers=headers)
    assert answer.status_code == 200
    upload = answer.json()["objects"][0]["actions"]["upload"]  # ... and an upload must bring the bytes
    down = requests.post(batch, json={**body, "operation": "download"}, auth=("bob", bob), headers=headers)
    assert down.json()["objects"][0]["error"]["code"] == 404
    wrong = requests.put(upload["href"], data=os.urandom(len(BIN)), headers=upload["header"])
    assert wrong.status_code == 422 and "sha256" in wrong.json()["message"]
    assert lfs_storage.object_path(oid).read_bytes() == BIN

    # A grant is for one object of one space: it does not open another oid.
    other = hashlib.sha256(b"x").hexdigest()
    forged = requests.get(upload["href"].replace(oid, other), headers=upload["header"])
    assert forged.status_code == 403

    # Alice's token does not upload to Bob's space; anonymous callers are asked for credentials.
    theirs = requests.post(
        batch, json={**body, "operation": "upload"}, auth=("alice", alice), headers=headers
    )
    assert theirs.status_code in (403, 404)
    anonymous = requests.post(batch, json={**body, "operation": "upload"}, headers=headers)
    assert anonymous.status_code == 401


def test_duplicate_keeps_the_objects(live, token_for, make_repo, tmp_path):
    from django.contrib.auth.models import User

    from spacedock.spaces.models import Space

    token = token_for("alice")
    repo = lfs_repo(make_repo, {"weights.bin": BIN})
    assert repo.push(live.git_url("alice", "src", token)).returncode == 0
    bob = User.objects.create(username="bob")
    copy = Space.objects.get(owner__username="alice", name="src").duplicate(bob, "copy")
    clone = tmp_path / "clone"
    cloned = repo.git("clone", live.git_url("bob", "copy"), str(clone))
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "weights.bin").read_bytes() == BIN
    assert copy.lfs_objects.count() == 1


def test_files_tab_shows_and_serves_lfs_files(live, token_for, make_repo):
    token = token_for("alice")
    repo = lfs_repo(make_repo, {"images/cat.png": PNG})
    assert repo.push(live.git_url("alice", "pics", token)).returncode == 0
    listing = requests.get(f"{live.url}/alice/pics/files/images")
    assert ">LFS</span> 2.9\xa0KB" in listing.text  # the object's 3008 bytes, not the pointer's
    page = requests.get(f"{live.url}/alice/pics/files/images/cat.png")
    assert "Stored with Git LFS" in page.text
    href = page.text.split('id="download" href="')[1].split('"')[0]
    download = requests.get(f"{live.url}{href}")
    assert download.status_code == 200 and download.content == PNG


def test_a_private_spaces_objects_are_for_its_readers_only(live, token_for, make_repo):
    from spacedock.spaces.models import Space

    alice, bob = token_for("alice"), token_for("bob")
    repo = lfs_repo(make_repo, {"weights.bin": BIN})
    assert repo.push(live.git_url("alice", "hidden", alice)).returncode == 0
    Space.objects.get(name="hidden").set_visibility("private")
    oid = hashlib.sha256(BIN).hexdigest()
    batch = f"{live.url}/spaces/alice/hidden/info/lfs/objects/batch"  # without .git, too
    body = {"operation": "download", "objects": [{"oid": oid, "size": len(BIN)}]}
    assert requests.post(batch, json=body).status_code == 401
    assert requests.post(batch, json=body, auth=("bob", bob)).status_code == 404
    resolve = f"{live.url}/spaces/alice/hidden/resolve/main/weights.bin"
    assert requests.get(resolve, headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    assert requests.get(resolve).status_code == 404
    mine = requests.post(batch, json=body, auth=("alice", token_for("alice", scope="read")))
    download = mine.json()["objects"][0]["actions"]["download"]
    assert requests.get(download["href"], headers=download["header"]).content == BIN
    assert requests.get(resolve, headers={"Authorization": f"Bearer {alice}"}).content == BIN


def test_a_pointer_to_another_spaces_object_is_refused(live, token_for, make_repo):
    """Bob knows the oid of Alice's file: a pointer naming it, pushed or committed, gets him nothing."""
    alice, bob = token_for("alice"), token_for("bob")
    repo = lfs_repo(make_repo, {"weights.bin": BIN})
    assert repo.push(live.git_url("alice", "owner", alice)).returncode == 0
    oid = hashlib.sha256(BIN).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(BIN)}\n"
    theft = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP, "stolen.bin": pointer})
    pushed = theft.push(live.git_url("bob", "thief", bob))
    assert pushed.returncode != 0 and "stolen.bin" in pushed.stderr

    lines = [
        {"key": "header", "value": {"summary": "steal"}},
        {"key": "lfsFile", "value": {"path": "stolen.bin", "algo": "sha256", "oid": oid, "size": len(BIN)}},
        {
            "key": "file",
            "value": {"path": "a.txt", "content": base64.b64encode(b"a").decode(), "encoding": "base64"},
        },
    ]
    answer = requests.post(
        f"{live.url}/api/spaces/bob/thief/commit/main",
        data="".join(json.dumps(line) + "\n" for line in lines),
        headers={"Authorization": f"Bearer {bob}", "Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 422 and "was not uploaded to this space" in answer.json()["error"]
    assert requests.get(f"{live.url}/spaces/bob/thief/resolve/main/stolen.bin").status_code == 404
