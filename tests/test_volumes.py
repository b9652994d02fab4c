"""Space volumes against the database and the data folder: what mounts_for gives the runner, and who
may still mount what when things change after the volume was set."""

import pytest
from django.contrib.auth.models import User

from spacedock.buckets.models import Bucket, BucketInUse, SpaceVolume, mounts_for, set_volumes
from spacedock.spaces.models import Space

pytestmark = [pytest.mark.fast, pytest.mark.django_db]


def make_space(owner: str, name: str = "demo", **fields) -> Space:
    user = User.objects.get_or_create(username=owner)[0]
    return Space.objects.create(owner=user, name=name, subdomain=f"{owner}-{name}", **fields)


def test_hf_home_only_for_a_writable_bucket_at_data():
    space = make_space("ada")
    Bucket.create(space.owner, "cache")
    set_volumes(space, [{"type": "bucket", "source": "ada/cache", "mountPath": "/data", "readOnly": True}])
    mounts, env = mounts_for(space)
    assert env == {} and mounts[0]["ReadOnly"] is True
    set_volumes(space, [{"type": "bucket", "source": "ada/cache", "mountPath": "/data", "path": "models/v1"}])
    mounts, env = mounts_for(space)
    assert env == {"HF_HOME": "/data/.huggingface"}
    assert mounts[0]["Source"].endswith("/models/v1") and mounts[0]["ReadOnly"] is False


def test_a_bucket_turned_private_is_not_mounted_again_by_another_owner():
    bucket = Bucket.create(User.objects.create(username="ada"), "shared")
    space = make_space("bob")
    set_volumes(space, [{"type": "bucket", "source": "ada/shared", "mountPath": "/shared", "readOnly": True}])
    assert len(mounts_for(space)[0]) == 1
    Bucket.objects.filter(pk=bucket.pk).update(visibility="private")
    with pytest.raises(ValueError, match="Bucket ada/shared is no longer readable by bob"):
        mounts_for(space)


def test_a_private_space_is_not_mounted_by_another_owner():
    make_space("ada", "weights", visibility="private")
    space = make_space("bob")
    with pytest.raises(ValueError, match="Space ada/weights not found"):
        set_volumes(space, [{"type": "space", "source": "ada/weights", "mountPath": "/w"}])


def test_static_spaces_have_no_volumes_and_a_mounted_bucket_stays():
    static = make_space("ada", "site", sdk="static")
    Bucket.create(static.owner, "cache")
    with pytest.raises(ValueError, match="not supported on static spaces"):
        set_volumes(static, [{"type": "bucket", "source": "ada/cache", "mountPath": "/data"}])
    space = make_space("ada")
    set_volumes(space, [{"type": "bucket", "source": "ada/cache", "mountPath": "/data"}])
    with pytest.raises(BucketInUse, match="mounted by ada/demo"):
        Bucket.objects.get(name="cache").delete()


def test_deleting_a_user_takes_their_spaces_and_the_buckets_they_mount():
    space = make_space("ada")
    Bucket.create(space.owner, "cache")
    set_volumes(space, [{"type": "bucket", "source": "ada/cache", "mountPath": "/data"}])
    User.objects.get(username="ada").delete()
    assert not Bucket.objects.exists() and not SpaceVolume.objects.exists()
