"""Buckets and volumes in the Hub's JSON shapes (huggingface_hub's BucketInfo, BucketFile, Volume)."""

from datetime import UTC, datetime

from spacedock.buckets import storage
from spacedock.spaces.models import Space


def _time(moment: datetime | float) -> str:
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def bucket_json(bucket) -> dict:
    size, files = bucket.usage()
    return {
        "id": bucket.full_name,
        "name": bucket.name,
        "author": bucket.owner.username,
        "private": bucket.is_private,
        "createdAt": _time(bucket.created),
        "size": size,
        "totalFiles": files,
        "maxSize": bucket.max_mb * 2**20,
    }


def entry_json(entry: storage.Entry) -> dict:
    if entry.is_dir:
        return {"type": "directory", "path": entry.path, "uploadedAt": _time(entry.mtime)}
    return {
        "type": "file",
        "path": entry.path,
        "size": entry.size,
        # Not a Xet hash: Spacedock stores plain files (docs/architecture.md, "Buckets").
        "xetHash": entry.etag,
        "mtime": _time(entry.mtime),
        "uploadedAt": _time(entry.mtime),
    }


def volumes_json(space: Space) -> list[dict] | None:
    """runtime.volumes as the Hub reports it: None when the space has none."""
    volumes = [volume.as_hub() for volume in space.volumes.all()]
    return volumes or None
