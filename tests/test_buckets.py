"""Storage buckets and space volumes through the real huggingface_hub client, against the live server.

huggingface_hub moves bucket file bytes only through Xet; Spacedock stores plain files, so bytes go
in through PUT .../files/<path> (or a space's mount) and out through GET /buckets/.../resolve/<path>,
while listing, metadata, deletes and everything about buckets and volumes go through the client.
"""

import os

import pytest
import requests
from django.contrib.auth.models import User
from huggingface_hub import HfApi, Volume
from huggingface_hub.errors import BucketNotFoundError, HfHubHTTPError

from spacedock.accounts.models import Quota
from spacedock.buckets.models import Bucket, mounts_for
from spacedock.spaces.models import Space


@pytest.fixture
def alice(live, token_for):
    return HfApi(endpoint=live.url, token=token_for("alice"))


def put(live, api: HfApi, bucket: str, path: str, data: bytes) -> requests.Response:
    return requests.put(
        f"{live.url}/api/buckets/{bucket}/files/{path}",
        data=data,
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=30,
    )


def test_bucket_lifecycle_listing_and_download(live, alice, tmp_path):
    url = alice.create_bucket("alice/cache")
    assert url.bucket_id == "alice/cache"
    alice.create_bucket("alice/cache", exist_ok=True)
    with pytest.raises(HfHubHTTPError) as again:
        alice.create_bucket("alice/cache")
    assert again.value.response.status_code == 409
    assert alice.create_bucket("me-too").bucket_id == "alice/me-too"  # no namespace: the caller's

    assert put(live, alice, "alice/cache", "models/weights.bin", b"w" * 1000).status_code == 200
    assert put(live, alice, "alice/cache", "notes.txt", b"hello").status_code == 200
    assert put(live, alice, "alice/cache", "empty", b"").status_code == 200

    info = alice.bucket_info("alice/cache")
    assert (info.id, info.private, info.size, info.total_files) == ("alice/cache", False, 1005, 3)
    assert {b.id for b in alice.list_buckets()} == {"alice/cache", "alice/me-too"}
    assert [b.id for b in alice.list_buckets(search="too")] == ["alice/me-too"]

    top = {(e.type, e.path) for e in alice.list_bucket_tree("alice/cache")}
    assert top == {("directory", "models"), ("file", "notes.txt"), ("file", "empty")}
    files_by_path = {e.path: e for e in alice.list_bucket_tree("alice/cache", recursive=True)}
    assert {p: e.size for p, e in files_by_path.items()} == {
        "empty": 0,
        "models/weights.bin": 1000,
        "notes.txt": 5,
    }
    assert [e.path for e in alice.list_bucket_tree("alice/cache", prefix="models", recursive=True)] == [
        "models/weights.bin"
    ]
    infos = list(alice.get_bucket_paths_info("alice/cache", ["notes.txt", "missing", "models"]))
    assert [(f.path, f.size) for f in infos] == [("notes.txt", 5)] and infos[0].xet_hash

    got = requests.get(f"{live.url}/buckets/alice/cache/resolve/models/weights.bin", timeout=10)
    assert got.status_code == 200 and got.content == b"w" * 1000
    assert got.headers["Content-Disposition"] == "attachment"
    head = requests.head(f"{live.url}/buckets/alice/cache/resolve/notes.txt", timeout=10)
    assert head.headers["Content-Length"] == "5" and head.headers["ETag"]
    meta = alice.get_bucket_file_metadata("alice/cache", "models/weights.bin")
    assert meta.size == 1000 and meta.xet_file_data.file_hash == files_by_path["models/weights.bin"].xet_hash
    alice.download_bucket_files("alice/cache", [("empty", tmp_path / "empty")])  # empty: no Xet needed
    assert (tmp_path / "empty").read_bytes() == b""
    with pytest.raises(Exception) as xet:  # noqa: B017 (hf_xet's own error type)
        alice.download_bucket_files("alice/cache", [("notes.txt", tmp_path / "notes.txt")])
    # hf_xet's message names the route, whose 501 answer says how to download instead.
    assert "501" in str(xet.value) and "xet-read-token" in str(xet.value)
    missing = requests.get(f"{live.url}/buckets/alice/cache/resolve/nope", timeout=10)
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"

    alice.batch_bucket_files("alice/cache", delete=["notes.txt"])
    assert alice.bucket_info("alice/cache").total_files == 2

    alice.update_bucket_settings("alice/cache", private=True)
    assert alice.bucket_info("alice/cache").private
    with pytest.raises(BucketNotFoundError):
        HfApi(endpoint=live.url, token=False).bucket_info("alice/cache")
    assert requests.get(f"{live.url}/buckets/alice/cache/resolve/empty", timeout=10).status_code == 404

    alice.delete_bucket("alice/me-too")
    with pytest.raises(BucketNotFoundError):
        alice.bucket_info("alice/me-too")
    alice.delete_bucket("alice/me-too", missing_ok=True)


def test_client_uploads_say_xet_is_not_served(live, alice):
    alice.create_bucket("alice/up")
    with pytest.raises(Exception) as refused:  # noqa: B017 (hf_xet's own error type)
        alice.batch_bucket_files("alice/up", add=[(b"data", "a.txt")])
    assert alice.bucket_info("alice/up").total_files == 0
    token_url = f"{live.url}/api/buckets/alice/up/xet-write-token"
    answer = requests.get(token_url, headers={"Authorization": f"Bearer {alice.token}"}, timeout=10)
    assert answer.status_code == 501 and "PUT /api/buckets/" in answer.json()["error"]
    assert "501" in str(refused.value) and "xet-write-token" in str(refused.value)


def test_bucket_quotas_say_which(live, alice, token_for):
    alice.create_bucket("alice/small")
    Bucket.objects.filter(name="small").update(max_size_mb=1)
    assert put(live, alice, "alice/small", "a.bin", b"x" * 600_000).status_code == 200
    full = put(live, alice, "alice/small", "b.bin", b"x" * 600_000)
    assert full.status_code == 413
    assert full.json()["error"].startswith("Quota exceeded: bucket size (alice/small holds at most 1 MB")
    # Replacing a file counts its new size, not both.
    assert put(live, alice, "alice/small", "a.bin", b"y" * 900_000).status_code == 200
    assert alice.bucket_info("alice/small").size == 900_000

    Quota.objects.create(user=User.objects.get(username="alice"), buckets=2)
    alice.create_bucket("alice/second")
    with pytest.raises(HfHubHTTPError) as third:
        alice.create_bucket("alice/third")
    assert "Quota exceeded: buckets (at most 2 storage buckets)" in str(third.value)


def test_a_link_left_in_a_bucket_is_never_followed(live, alice, tmp_path):
    """An app writes symbolic links into its mounted bucket; the platform must not serve their targets."""
    alice.create_bucket("alice/links")
    root = Bucket.objects.get(name="links").path
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink("/etc", root / "etc")
    (tmp_path / "secret").write_text("host secret")
    os.symlink(tmp_path, root / "outside")
    for path in ("passwd", "etc/passwd", "outside/secret"):
        answer = requests.get(f"{live.url}/buckets/alice/links/resolve/{path}", timeout=10)
        assert answer.status_code == 404, path
    assert list(alice.list_bucket_tree("alice/links", recursive=True)) == []
    assert list(alice.get_bucket_paths_info("alice/links", ["passwd", "etc/passwd", "outside/secret"])) == []
    # Uploads never write through a link either, nor outside the bucket.
    assert put(live, alice, "alice/links", "outside/planted", b"x").status_code == 400
    assert not (tmp_path / "planted").exists()
    assert put(live, alice, "alice/links", "..%2F..%2Fescape", b"x").status_code == 400
    alice.batch_bucket_files("alice/links", delete=["outside/secret"])
    assert (tmp_path / "secret").read_text() == "host secret"


def test_volumes_hardware_and_the_runtime(live, alice, token_for, make_repo):
    assert make_repo().push(live.git_url("alice", "hello", alice.token)).returncode == 0
    assert make_repo().push(live.git_url("alice", "other", alice.token)).returncode == 0
    alice.create_bucket("alice/data")
    HfApi(endpoint=live.url, token=token_for("bob")).create_bucket("bob/theirs")

    runtime = alice.get_space_runtime("alice/hello")
    assert (runtime.hardware, runtime.requested_hardware, runtime.volumes) == (None, "cpu-basic", None)

    alice.set_space_volumes(
        "alice/hello",
        [
            Volume(type="bucket", source="alice/data", mount_path="/data"),
            Volume(type="space", source="alice/other", mount_path="/mnt/other"),
        ],
    )
    volumes = alice.get_space_runtime("alice/hello").volumes
    assert [(v.type, v.source, v.mount_path, v.read_only) for v in volumes] == [
        ("bucket", "alice/data", "/data", False),
        ("space", "alice/other", "/mnt/other", True),
    ]
    mounts, env = mounts_for(Space.objects.get(name="hello"))
    assert env == {"HF_HOME": "/data/.huggingface"}
    bucket_dir = str(Bucket.objects.get(name="data").path)
    assert mounts[0] == {"Target": "/data", "Source": bucket_dir, "Type": "bind", "ReadOnly": False}
    # The other space's files at its main, written out once.
    assert mounts[1]["ReadOnly"] and os.path.isfile(os.path.join(mounts[1]["Source"], "app.py"))

    model = Volume(type="model", source="org/model", mount_path="/models")
    for volumes, says in [
        ([model], "model volumes are not available here"),
        ([Volume(type="bucket", source="alice/data", mount_path="/etc")], "would hide /etc"),
        ([Volume(type="bucket", source="alice/data", mount_path="/data/../etc")], "plain path"),
        ([Volume(type="bucket", source="bob/theirs", mount_path="/data")], "mount it with readOnly: true"),
        ([Volume(type="bucket", source="alice/nope", mount_path="/data")], "Bucket alice/nope not found"),
        ([Volume(type="nfs", source="a/b", mount_path="/data")], "is not one of: bucket, space, model"),
        (
            [Volume(type="bucket", source="alice/data", mount_path="/data"),
             Volume(type="space", source="alice/other", mount_path="/data/x")],
            "overlap",
        ),
    ]:  # fmt: skip
        with pytest.raises(HfHubHTTPError) as bad:
            alice.set_space_volumes("alice/hello", volumes)
        assert bad.value.response.status_code == 400 and says in str(bad.value), says
    assert len(alice.get_space_runtime("alice/hello").volumes) == 2  # a refused change changes nothing

    with pytest.raises(HfHubHTTPError) as in_use:
        alice.delete_bucket("alice/data")
    assert in_use.value.response.status_code == 409
    assert "Bucket alice/data is mounted by alice/hello" in str(in_use.value)

    runtime = alice.request_space_hardware("alice/hello", "cpu-upgrade", sleep_time=3600)
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.sleep_time == 3600
    with pytest.raises(HfHubHTTPError) as gpu:
        alice.request_space_hardware("alice/hello", "t4-small")
    assert gpu.value.response.status_code == 403
    assert "Quota exceeded: hardware (t4-small is not among the flavours you may use" in str(gpu.value)
    with pytest.raises(HfHubHTTPError) as unknown:
        alice.request_space_hardware("alice/hello", "h100-huge")
    assert "is not a hardware flavour here" in str(unknown.value)
    with pytest.raises(HfHubHTTPError) as other:
        HfApi(endpoint=live.url, token=token_for("bob")).request_space_hardware("alice/hello", "cpu-upgrade")
    assert other.value.response.status_code in (403, 404)
    with pytest.raises(HfHubHTTPError) as short:
        alice.request_space_hardware("alice/hello", "cpu-basic", sleep_time=5)
    assert "from 60 to" in str(short.value)  # and the flavour did not change either:
    assert alice.get_space_runtime("alice/hello").requested_hardware == "cpu-upgrade"

    alice.delete_space_volumes("alice/hello")
    assert alice.get_space_runtime("alice/hello").volumes is None
    with pytest.raises(HfHubHTTPError):
        alice.delete_space_volumes("alice/hello")  # none left: a 400, as on the Hub
    alice.delete_bucket("alice/data")


def test_create_and_duplicate_carry_hardware_and_volumes(live, alice, token_for):
    alice.create_bucket("alice/weights")
    weights = Volume(type="bucket", source="alice/weights", mount_path="/data")
    alice.create_repo(
        "alice/big", repo_type="space", space_sdk="gradio", space_hardware="cpu-upgrade",
        space_volumes=[weights],
    )  # fmt: skip
    runtime = alice.get_space_runtime("alice/big")
    assert runtime.requested_hardware == "cpu-upgrade"
    assert [(v.source, v.mount_path) for v in runtime.volumes] == [("alice/weights", "/data")]

    with pytest.raises(HfHubHTTPError) as gpu:
        alice.create_repo("alice/gpu", repo_type="space", space_sdk="gradio", space_hardware="t4-small")
    assert gpu.value.response.status_code == 403 and "Quota exceeded: hardware" in str(gpu.value)
    with pytest.raises(HfHubHTTPError) as unknown:
        alice.create_repo("alice/huge", repo_type="space", space_sdk="gradio", space_hardware="h100-huge")
    assert unknown.value.response.status_code == 400
    assert "is not a hardware flavour here" in str(unknown.value)
    hiding = Volume(type="bucket", source="alice/weights", mount_path="/etc")
    with pytest.raises(HfHubHTTPError) as bad:
        alice.create_repo("alice/vols", repo_type="space", space_sdk="gradio", space_volumes=[hiding])
    assert bad.value.response.status_code == 400 and "would hide /etc" in str(bad.value)
    assert not Space.objects.filter(name__in=["gpu", "huge", "vols"]).exists()  # nothing half made

    # A duplicate runs on its source's flavour where the new owner may use it; asked for, one is checked.
    bob = HfApi(endpoint=live.url, token=token_for("bob"))
    bob.duplicate_repo("alice/big", "bob/big", repo_type="space")
    assert bob.get_space_runtime("bob/big").requested_hardware == "cpu-upgrade"
    bob.duplicate_repo("alice/big", "bob/small", repo_type="space", space_hardware="cpu-basic")
    assert bob.get_space_runtime("bob/small").requested_hardware == "cpu-basic"
    with pytest.raises(HfHubHTTPError) as refused:
        bob.duplicate_repo("alice/big", "bob/gpu", repo_type="space", space_hardware="t4-small")
    assert refused.value.response.status_code == 403 and not Space.objects.filter(name="gpu").exists()
