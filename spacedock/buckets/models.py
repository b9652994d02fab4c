"""Storage buckets, the Hub's way: a named folder of files with a size quota, mounted into spaces
as volumes (SpaceVolume). The runner asks mounts_for(space) what to mount; docs/architecture.md
("Hardware and volumes") says when.
"""

import os
import posixpath
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone
from docker.types import Mount

from spacedock.accounts.models import Quota, QuotaExceeded
from spacedock.buckets import storage
from spacedock.gitserver import repo as gitrepo
from spacedock.spaces.models import Space, valid_name


class BucketInUse(ValueError):
    """A bucket still mounted by spaces; the message names them."""


class BucketFull(QuotaExceeded):
    def __init__(self, bucket: "Bucket", needed: int):
        self.quota, self.limit, self.status = "bucket size", bucket.max_mb, 413
        super(QuotaExceeded, self).__init__(
            f"Quota exceeded: bucket size ({bucket.full_name} holds at most {bucket.max_mb} MB; this upload "
            f"would make it {needed / 2**20:.1f} MB). Delete files from it, or ask an administrator "
            "to raise it."
        )


class Bucket(models.Model):
    owner = models.ForeignKey(User, models.CASCADE, related_name="buckets")
    name = models.CharField(max_length=96)
    visibility = models.CharField(max_length=10, default="public")
    # Most megabytes the bucket may hold; empty: SPACEDOCK_BUCKET_MAX_MB.
    max_size_mb = models.IntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_bucket_per_owner")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def is_private(self) -> bool:
        return self.visibility == "private"

    @property
    def max_mb(self) -> int:
        return self.max_size_mb if self.max_size_mb is not None else settings.BUCKET_MAX_MB

    @property
    def path(self) -> Path:
        # By id, not name: a rename or a new bucket of an old name never meets old files.
        return settings.BUCKETS_DIR / str(self.pk)

    def can_read(self, user) -> bool:
        return not self.is_private or self.can_write(user)

    def can_write(self, user) -> bool:
        return bool(user and user.is_authenticated and (user.pk == self.owner_id or user.is_staff))

    @classmethod
    def create(cls, owner: User, name: str, private: bool = False) -> "Bucket":
        if not valid_name(name):
            raise ValueError(f"{name[:100]!r} is not a valid bucket name: letters, digits, '.', '_', '-'")
        Quota.require(owner, "buckets", owner.buckets.count())
        bucket = cls.objects.create(owner=owner, name=name, visibility="private" if private else "public")
        # A new bucket starts empty, whatever a database restored from backup left at its id's folder.
        shutil.rmtree(bucket.path, ignore_errors=True)
        bucket.path.mkdir(parents=True)
        return bucket

    def usage(self) -> tuple[int, int]:
        """(bytes, files) it holds now."""
        return storage.used_bytes(self.path) if self.path.exists() else (0, 0)

    def over_quota(self) -> bool:
        """True once the files (uploaded, or written by a space through its mount) pass the quota."""
        return self.usage()[0] > self.max_mb * 2**20

    def upload(self, path: str, chunks, length: int | None = None) -> int:
        """Stores `path` from `chunks`; BucketFull (naming the quota) when it would not fit."""
        limit = self.max_mb * 2**20
        used = self.usage()[0]
        existing = storage.stat_file(self.path, path)
        room = limit - used + (existing.size if existing else 0)
        if length is not None and length > room:
            raise BucketFull(self, used - (existing.size if existing else 0) + length)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            return storage.write_file(self.path, path, chunks, room)
        except OverflowError as exc:
            raise BucketFull(self, used + exc.args[0]) from None

    def spaces_using(self) -> list[str]:
        return sorted({v.space.full_name for v in self.volumes.select_related("space__owner")})

    def delete(self, *args, **kwargs):
        """Deletes the bucket and its files; BucketInUse while a space mounts it."""
        with transaction.atomic():
            using = self.spaces_using()
            if using:
                raise BucketInUse(
                    f"Bucket {self.full_name} is mounted by {', '.join(using)}. Remove it from their "
                    "volumes first (settings page, or HfApi.delete_space_volumes)."
                )
            path = self.path
            result = super().delete(*args, **kwargs)
        shutil.rmtree(path, ignore_errors=True)
        return result

    def prepare_mount(self, subpath: str = "") -> Path:
        """The host folder to bind-mount: made if missing, owned by the run user where this process may
        change owners (the runner as root), and never reached through a link an app left behind."""
        self.path.mkdir(parents=True, exist_ok=True)
        parts = storage.check_path(subpath) if subpath else []
        with storage.open_dir(self.path, parts, create=True) as fd:
            uid, _, gid = settings.RUN_USER.partition(":")
            try:
                os.fchown(fd, int(uid), int(gid or uid))
            except (PermissionError, ValueError):
                pass
        return self.path.joinpath(*parts)


VOLUME_TYPES = ("bucket", "space", "model", "dataset")
# Mount points that would hide what the container needs to run, or the platform's own.
RESERVED_MOUNTS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys",
                   "/usr", "/var", "/app", "/home/user/app")  # fmt: skip
MAX_VOLUMES = 10


class SpaceVolume(models.Model):
    """One volume of a space, as the Hub's Volume: type, source, mountPath, readOnly, path, revision."""

    space = models.ForeignKey(Space, models.CASCADE, related_name="volumes")
    type = models.CharField(max_length=10)
    source = models.CharField(max_length=200)
    mount_path = models.CharField(max_length=200)
    read_only = models.BooleanField(default=False)
    path = models.CharField(max_length=1024, blank=True)
    revision = models.CharField(max_length=100, blank=True)
    # The row a bucket volume names. RESTRICT: no delete of the bucket alone skips Bucket.delete's
    # check, while deleting a user takes their spaces and the buckets those spaces mount together.
    bucket = models.ForeignKey(Bucket, models.RESTRICT, null=True, blank=True, related_name="volumes")
    source_space = models.ForeignKey(Space, models.CASCADE, null=True, blank=True, related_name="mounted_by")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "mount_path"], name="unique_mount_per_space")]
        ordering = ["mount_path"]

    def as_hub(self) -> dict:
        data = {
            "type": self.type,
            "source": self.source,
            "mountPath": self.mount_path,
            "readOnly": self.read_only,
        }
        if self.path:
            data["path"] = self.path
        if self.revision:
            data["revision"] = self.revision
        return data


def _mount_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 200 or "\x00" in value:
        raise ValueError(f"mountPath {str(value)[:100]!r} must be an absolute path, e.g. /data")
    path = posixpath.normpath(value)
    if path != value.rstrip("/") or ":" in path or "," in path:
        raise ValueError(f"mountPath {value[:100]!r} must be a plain path without '..', ':' or ','")
    for reserved in RESERVED_MOUNTS:
        if path == reserved or (reserved != "/" and path.startswith(reserved + "/")):
            raise ValueError(f"mountPath {path!r} would hide {reserved}: mount under /data, /models or /mnt")
    return path


def _repo_folder(kind: str, source: str) -> str:
    base = {"model": settings.VOLUME_MODELS_DIR, "dataset": settings.VOLUME_DATASETS_DIR}[kind]
    if not base:
        raise ValueError(
            f"{kind} volumes are not available here: the operator has not configured where {kind}s come "
            f"from (SPACEDOCK_VOLUME_{kind.upper()}S_DIR). Use a bucket volume and download into it."
        )
    owner, _, name = source.partition("/")
    if not (valid_name(owner) and valid_name(name)):
        raise ValueError(f"{kind} volume source {source[:100]!r} must be owner/name")
    folder = Path(base) / owner / name
    if not folder.is_dir():
        raise ValueError(
            f"{kind} {source} is not available here (no folder for it under the operator's {kind}s)"
        )
    return str(folder)


def check_volume(space: Space, data: object) -> SpaceVolume:
    """An unsaved SpaceVolume for one entry of the Hub's payload; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("Each volume is an object with type, source and mountPath")
    kind, source = data.get("type", "model"), data.get("source")
    if kind not in VOLUME_TYPES:
        raise ValueError(f"Volume type {str(kind)[:20]!r} is not one of: {', '.join(VOLUME_TYPES)}")
    if not isinstance(source, str) or source.count("/") != 1:
        raise ValueError(f"Volume source {str(source)[:100]!r} must be owner/name")
    mount = _mount_path(data.get("mountPath", data.get("mount_path")))
    sub = data.get("path") or ""
    if sub:
        sub = "/".join(storage.check_path(sub))
    revision = data.get("revision") or ""
    if not isinstance(revision, str) or len(revision) > 100:
        raise ValueError("revision must be a branch name or a commit")
    read_only = data.get("readOnly", data.get("read_only"))
    if read_only is not None and not isinstance(read_only, bool):
        raise ValueError("readOnly must be true or false")
    volume = SpaceVolume(space=space, type=kind, source=source, mount_path=mount, path=sub, revision=revision)
    owner, _, name = source.partition("/")
    if kind == "bucket":
        bucket = Bucket.objects.filter(owner__username=owner, name=name).first()
        if bucket is None or not bucket.can_read(space.owner):
            raise ValueError(f"Bucket {source} not found")
        volume.bucket, volume.read_only = bucket, bool(read_only)
        if not volume.read_only and not bucket.can_write(space.owner):
            raise ValueError(f"Bucket {source} belongs to {owner}: mount it with readOnly: true")
    elif kind == "space":
        other = Space.objects.filter(owner__username=owner, name=name).first()
        if other is None or not other.can_read(space.owner):
            raise ValueError(f"Space {source} not found")
        if other.pk == space.pk:
            raise ValueError("A space cannot mount itself")
        volume.source_space, volume.read_only = other, True
    else:
        _repo_folder(kind, source)
        volume.read_only = True
    return volume


def set_volumes(space: Space, entries: object) -> list[SpaceVolume]:
    """Replaces the space's volumes (all checked first, then one transaction) and restarts it."""
    if space.sdk == "static":
        raise ValueError("Volumes are not supported on static spaces")
    if not isinstance(entries, list) or len(entries) > MAX_VOLUMES:
        raise ValueError(f'Send {{"volumes": [...]}} with at most {MAX_VOLUMES} volumes')
    volumes = [check_volume(space, entry) for entry in entries]
    mounts = [v.mount_path for v in volumes]
    for i, a in enumerate(mounts):
        for b in mounts[i + 1 :]:
            if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
                raise ValueError(f"mountPath {a} and {b} overlap: give each volume a folder of its own")
    with transaction.atomic():
        space.volumes.all().delete()
        SpaceVolume.objects.bulk_create(volumes)
        if space.deployed_build_id:
            space.request_restart()
    return volumes


def delete_volumes(space: Space) -> None:
    with transaction.atomic():
        if not space.volumes.exists():
            raise ValueError(f"{space.full_name} has no volumes")
        space.volumes.all().delete()
        if space.deployed_build_id:
            space.request_restart()


def export_space(source: Space, revision: str) -> Path:
    """Another space's files at `revision` (default main), written out once per commit (the builder's
    export: links out of the repository left out, LFS objects in place of their pointers)."""
    sha = gitrepo.resolve(source.repo_path, revision or gitrepo.DEFAULT_BRANCH)
    if sha is None:
        raise ValueError(f"Space {source.full_name} has no revision {revision or gitrepo.DEFAULT_BRANCH!r}")
    folder = settings.VOLUMES_DIR / f"space-{source.pk}-{sha}"
    if not folder.exists():
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        gitrepo.export(source.repo_path, sha, tmp)
        os.rename(tmp, folder)
    return folder


@dataclass
class VolumeMounts:
    """What the runner mounts for a space: the mounts, their environment, and what the owner must be
    told about them (a full bucket mounted read-only), for the stage message."""

    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Buckets mounted read-only only because they are past their quota (the runner watches them).
    full: set[int] = field(default_factory=set)


def full_message(bucket: Bucket, mount_path: str) -> str:
    used = bucket.usage()[0] / 2**20
    return (
        f"Bucket {bucket.full_name} is over its quota ({used:.1f} MB of {bucket.max_mb} MB): it is mounted "
        f"read-only at {mount_path} until files are deleted from it (HfApi.batch_bucket_files(..., "
        "delete=[...])) or an administrator raises its size."
    )


def volume_mounts(space: Space) -> VolumeMounts:
    """What the runner mounts for `space` and the environment that goes with it.

    docker-py's Mount (a dict of the engine's own keys: Target, Source, Type bind, ReadOnly), which
    containers.create(mounts=...) and a Swarm ContainerSpec both take. HF_HOME points into a
    writable bucket at /data (the Hub's convention), so model downloads land in the bucket and
    survive restarts, sleeps, rebuilds and rollbacks. Bind sources are folders on this host: on
    several nodes they must be on storage every node mounts at the same path (SPACEDOCK_BUCKETS_DIR).

    A writable bucket already past its size quota is mounted read-only, with a note saying so: what
    an app writes through its mount is checked by the runner (docs/architecture.md, "Hardware and
    volumes"), not stopped by the kernel.
    """
    found = VolumeMounts()
    for volume in space.volumes.select_related("bucket", "source_space__owner"):
        # Asked again at each start: the bucket or space may have turned private since it was mounted.
        if volume.bucket and not volume.bucket.can_read(space.owner):
            raise ValueError(f"Bucket {volume.source} is no longer readable by {space.owner.username}")
        if volume.bucket and not volume.read_only and not volume.bucket.can_write(space.owner):
            raise ValueError(f"Bucket {volume.source} is not {space.owner.username}'s: mount it read-only")
        if volume.source_space and not volume.source_space.can_read(space.owner):
            raise ValueError(f"Space {volume.source} is no longer readable by {space.owner.username}")
        read_only = volume.read_only
        if volume.type == "bucket":
            source = volume.bucket.prepare_mount(volume.path)
            if not read_only and volume.bucket.over_quota():
                read_only = True
                found.full.add(volume.bucket.pk)
                found.notes.append(full_message(volume.bucket, volume.mount_path))
        elif volume.type == "space":
            source = export_space(volume.source_space, volume.revision)
            if volume.path:
                source = source.joinpath(*storage.check_path(volume.path))
        else:
            source = Path(_repo_folder(volume.type, volume.source))
        found.mounts.append(Mount(volume.mount_path, str(source), type="bind", read_only=read_only))
        if volume.type == "bucket" and volume.mount_path == "/data" and not read_only:
            found.env["HF_HOME"] = "/data/.huggingface"
    return found


def mounts_for(space: Space) -> tuple[list[Mount], dict[str, str]]:
    """volume_mounts' mounts and environment."""
    found = volume_mounts(space)
    return found.mounts, found.env


def full_buckets(space: Space) -> set[int]:
    """The writable buckets `space` mounts that are past their quota now (the runner's watch)."""
    volumes = space.volumes.filter(type="bucket", read_only=False).select_related("bucket")
    return {v.bucket.pk for v in volumes if v.bucket.over_quota()}
