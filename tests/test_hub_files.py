"""The Hub's file API with the real huggingface_hub client (hf_xet installed, as users have it)."""

import hashlib
import importlib.util
import os

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from spacedock.spaces.models import Space
from tests.conftest import HELLO_APP, HELLO_README

BIN = os.urandom(150_000)


@pytest.fixture
def api(live, token_for) -> HfApi:
    return HfApi(endpoint=live.url, token=token_for("alice"))


def folder(tmp_path, files: dict) -> str:
    for name, data in files.items():
        target = tmp_path / "upload" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(tmp_path / "upload")


def test_hf_xet_is_installed_as_users_have_it():
    # huggingface_hub 2.x sends "lfs" files through Xet when hf_xet is present: preupload must say "regular".
    assert importlib.util.find_spec("hf_xet") is not None


def test_create_upload_list_download(api, live, tmp_path):
    url = api.create_repo("alice/files", repo_type="space", space_sdk="gradio")
    assert url.endswith("/spaces/alice/files")
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo("alice/files", repo_type="space", space_sdk="gradio")
    assert exists.value.response.status_code == 409
    api.create_repo("alice/files", repo_type="space", space_sdk="gradio", exist_ok=True)

    info = api.upload_folder(
        repo_id="alice/files", repo_type="space", commit_message="first upload",
        folder_path=folder(tmp_path, {"README.md": HELLO_README, "app.py": HELLO_APP, "data/w.bin": BIN}),
    )  # fmt: skip
    space = Space.objects.get(owner__username="alice", name="files")
    assert info.oid == space.head_sha and space.builds.count() == 1  # bookkept like a push
    assert sorted(api.list_repo_files("alice/files", repo_type="space")) == [
        "README.md",
        "app.py",
        "data/w.bin",
    ]
    assert {s.rfilename for s in api.space_info("alice/files").siblings} == {
        "README.md",
        "app.py",
        "data/w.bin",
    }
    tree = {f.path: f for f in api.list_repo_tree("alice/files", repo_type="space", path_in_repo="data")}
    assert tree["data/w.bin"].size == len(BIN)

    path = hf_hub_download(
        "alice/files",
        "data/w.bin",
        repo_type="space",
        endpoint=live.url,
        token=api.token,
        cache_dir=tmp_path / "c",
    )
    assert open(path, "rb").read() == BIN
    assert api.file_exists("alice/files", "app.py", repo_type="space")
    assert not api.file_exists("alice/files", "nope.py", repo_type="space")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            "alice/files",
            "nope.py",
            repo_type="space",
            endpoint=live.url,
            token=api.token,
            cache_dir=tmp_path / "c",
        )

    api.upload_file(
        path_or_fileobj=b"print('v2')\n", path_in_repo="extra.py", repo_id="alice/files", repo_type="space"
    )
    api.create_commit(
        "alice/files", repo_type="space", commit_message="tidy",
        operations=[CommitOperationDelete("data/"), CommitOperationAdd("notes.txt", b"hello")],
    )  # fmt: skip
    files = sorted(api.list_repo_files("alice/files", repo_type="space"))
    assert files == ["README.md", "app.py", "extra.py", "notes.txt"]
    commits = api.list_repo_commits("alice/files", repo_type="space")
    assert [c.title for c in commits] == ["tidy", "Upload extra.py with huggingface_hub", "first upload"]
    assert commits[0].authors == ["alice"]


def test_hf_hub_download_of_an_lfs_file(api, live, make_repo, tmp_path):
    token = api.token
    repo = make_repo({"README.md": HELLO_README, "app.py": HELLO_APP}, commit=False)
    repo.git("lfs", "install", "--local")
    repo.git("lfs", "track", "*.bin")
    repo.write({"model.bin": BIN})
    repo.commit("lfs")
    assert repo.push(live.git_url("alice", "lfsdl", token)).returncode == 0
    meta = api.get_hf_file_metadata(url=f"{live.url}/spaces/alice/lfsdl/resolve/main/model.bin")
    assert meta.etag == hashlib.sha256(BIN).hexdigest() and meta.size == len(BIN)
    path = hf_hub_download(
        "alice/lfsdl",
        "model.bin",
        repo_type="space",
        endpoint=live.url,
        token=token,
        cache_dir=tmp_path / "c",
    )
    assert open(path, "rb").read() == BIN
    [item] = [f for f in api.list_repo_tree("alice/lfsdl", repo_type="space") if f.path == "model.bin"]
    assert item.lfs.sha256 == hashlib.sha256(BIN).hexdigest() and item.size == len(BIN)


def test_refs_branches_settings_and_move(api, live, tmp_path):
    api.create_repo("alice/refs", repo_type="space", space_sdk="gradio")
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="alice/refs", repo_type="space")
    head = Space.objects.get(name="refs").head_sha
    api.create_branch("alice/refs", repo_type="space", branch="dev")
    refs = api.list_repo_refs("alice/refs", repo_type="space")
    assert {(b.name, b.target_commit) for b in refs.branches} == {("main", head), ("dev", head)}
    dev = api.upload_file(
        path_or_fileobj=b"y", path_in_repo="b.txt", repo_id="alice/refs", repo_type="space", revision="dev"
    )
    assert Space.objects.get(name="refs").head_sha == head  # only main builds
    assert "b.txt" in api.list_repo_files("alice/refs", repo_type="space", revision="dev")
    assert dev.oid != head
    api.delete_branch("alice/refs", repo_type="space", branch="dev")
    assert [b.name for b in api.list_repo_refs("alice/refs", repo_type="space").branches] == ["main"]

    api.update_repo_settings("alice/refs", repo_type="space", private=True)
    assert Space.objects.get(name="refs").visibility == "private"
    assert HfApi(endpoint=live.url).file_exists("alice/refs", "a.txt", repo_type="space") is False

    api.move_repo("alice/refs", "alice/renamed", repo_type="space")
    assert api.list_repo_files("alice/renamed", repo_type="space") == ["a.txt"]
    assert not api.repo_exists("alice/refs", repo_type="space")


def test_a_branch_with_a_slash_in_its_name_is_a_rev_everywhere(api, live, tmp_path):
    # huggingface_hub sends the rev as quote(rev, safe=""): feature%2Fsound, which WSGI decodes.
    api.create_repo("alice/slash", repo_type="space", space_sdk="gradio")
    api.upload_file(
        path_or_fileobj=b"main", path_in_repo="dir/a.txt", repo_id="alice/slash", repo_type="space"
    )
    api.create_branch("alice/slash", repo_type="space", branch="feature/sound")
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_branch("alice/slash", repo_type="space", branch="feature")  # git's folder clash
    rev = "feature/sound"
    done = api.upload_file(
        path_or_fileobj=b"branch", path_in_repo="dir/a.txt", repo_id="alice/slash", repo_type="space",
        revision=rev,
    )  # fmt: skip
    assert {b.name for b in api.list_repo_refs("alice/slash", repo_type="space").branches} >= {"main", rev}
    assert api.list_repo_files("alice/slash", repo_type="space", revision=rev) == ["dir/a.txt"]
    [entry] = api.list_repo_tree("alice/slash", "dir", repo_type="space", revision=rev)
    assert entry.path == "dir/a.txt" and entry.size == len(b"branch")
    assert [c.commit_id for c in api.list_repo_commits("alice/slash", repo_type="space", revision=rev)][
        0
    ] == done.oid
    path = hf_hub_download(
        "alice/slash", "dir/a.txt", repo_type="space", revision=rev, endpoint=live.url, token=api.token,
        cache_dir=tmp_path / "c",
    )  # fmt: skip
    assert open(path, "rb").read() == b"branch"
    assert api.file_exists("alice/slash", "dir/a.txt", repo_type="space", revision=rev)
    # main is untouched, and only main builds.
    main = hf_hub_download(
        "alice/slash", "dir/a.txt", repo_type="space", endpoint=live.url, token=api.token,
        cache_dir=tmp_path / "d",
    )  # fmt: skip
    assert open(main, "rb").read() == b"main"


def test_a_file_past_the_limit_is_refused_with_the_way_to_push_it(api, live, settings, tmp_path):
    api.create_repo("alice/big", repo_type="space", space_sdk="gradio")
    with pytest.raises(HfHubHTTPError) as refused:
        api.upload_file(
            path_or_fileobj=os.urandom(101 * 1_000_000 + 1), path_in_repo="huge.bin",
            repo_id="alice/big", repo_type="space",
        )  # fmt: skip
    assert refused.value.response.status_code == 413
    assert "up to 100 MB (SPACEDOCK_HUB_FILE_MAX_MB)" in str(refused.value)
    assert "git-lfs" in str(refused.value)


def test_others_cannot_commit(api, live, token_for):
    api.create_repo("alice/mine", repo_type="space", space_sdk="gradio")
    bob = HfApi(endpoint=live.url, token=token_for("bob"))
    with pytest.raises(HfHubHTTPError) as refused:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="alice/mine", repo_type="space")
    assert refused.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError):
        bob.create_repo("alice/other", repo_type="space", space_sdk="gradio")


def test_a_commit_on_a_stale_parent_is_refused(api, live):
    api.create_repo("alice/race", repo_type="space", space_sdk="gradio")
    first = api.upload_file(
        path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/race", repo_type="space"
    )
    api.upload_file(path_or_fileobj=b"2", path_in_repo="a.txt", repo_id="alice/race", repo_type="space")
    with pytest.raises(HfHubHTTPError) as stale:
        api.create_commit(
            "alice/race", repo_type="space", commit_message="late", parent_commit=first.oid,
            operations=[CommitOperationAdd("b.txt", b"b")],
        )  # fmt: skip
    assert stale.value.response.status_code == 412
    assert "b.txt" not in api.list_repo_files("alice/race", repo_type="space")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.txt", repo_id="alice/race", repo_type="space")
