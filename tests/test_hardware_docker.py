"""The container spec of spacedock.hardware and spacedock.buckets, given to the real Docker engine as
the runner will give it: a bucket at /data keeps what one container wrote for the next, a space
without one starts from a fresh /tmp, the flavour's limits are the container's, and a GPU request
on an engine without the NVIDIA runtime fails with the engine's own message (the runner's stage
message), which place() avoids by queueing when the host has no GPU."""

import os

import docker.errors
import pytest
from django.conf import settings
from django.contrib.auth.models import User

from spacedock.buckets.models import Bucket, SpaceVolume, mounts_for
from spacedock.hardware.models import SpaceHardware, place
from spacedock.hardware.resources import container_resources
from spacedock.labels import LABEL_INSTANCE
from spacedock.spaces.models import Space

pytestmark = pytest.mark.django_db


def run(client, command: str, **kwargs) -> tuple[str, dict]:
    """Runs `command` as the runner runs apps (uid 1000, no capabilities); its output and HostConfig."""
    container = client.containers.create(
        settings.BASE_IMAGE, ["sh", "-c", command], user=settings.RUN_USER, cap_drop=["ALL"],
        labels={LABEL_INSTANCE: settings.INSTANCE}, network_mode="none", **kwargs,
    )  # fmt: skip
    try:
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0, container.logs().decode()
        container.reload()
        return container.logs().decode(), container.attrs["HostConfig"]
    finally:
        container.remove(force=True)


def test_bucket_at_data_outlives_the_container_and_limits_are_the_flavours(docker_client):
    owner = User.objects.create(username="ada")
    space = Space.objects.create(owner=owner, name="demo", subdomain="ada-demo")
    bucket = Bucket.create(owner, "cache")
    SpaceVolume.objects.create(
        space=space, type="bucket", source="ada/cache", mount_path="/data", bucket=bucket
    )
    SpaceHardware.objects.create(space=space, requested="cpu-upgrade")

    mounts, env = mounts_for(space)
    resources = place(space).resources
    kwargs = {"mounts": mounts, "environment": {**env, **resources.env}, **resources.create_kwargs()}
    run(
        docker_client,
        'mkdir -p "$HF_HOME" && echo weights > "$HF_HOME/model.bin" && echo x > /tmp/scratch',
        **kwargs,
    )
    out, host = run(docker_client, 'cat "$HF_HOME/model.bin"; ls /tmp; echo "$SPACE_HARDWARE"', **kwargs)
    assert out.split() == ["weights", "cpu-upgrade"]  # the bucket's file is there, /tmp is new
    assert (host["NanoCpus"], host["Memory"]) == (min(8, os.cpu_count()) * 10**9, 32768 * 2**20)
    assert [(f.path, f.size) for f in bucket_files(bucket)] == [(".huggingface/model.bin", 8)]


def bucket_files(bucket: Bucket):
    from spacedock.buckets import storage

    return list(storage.walk(bucket.path))


def test_a_gpu_request_on_an_engine_without_gpus_fails_with_the_engines_message(docker_client):
    resources = container_resources(settings.HARDWARE["t4-small"], ["0"])
    with pytest.raises(docker.errors.APIError) as refused:
        run(docker_client, "true", **resources.create_kwargs())
    assert "could not select device driver" in str(refused.value)
