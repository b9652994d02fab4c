"""A build in one file: its image, its source commit and what it was built with, so that a
paper's pinned demo can move to another install, or come back after the data folder is lost.

The archive is a tar of three members, read by name and never extracted:
  build.json     the space and the build (format, commit, config, pinned, the build's id)
  source.bundle  a git bundle of the commit, with its history
  image.tar      the image, as `docker save` writes it
"""

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from builder import docker_build
from builder.images import image_tag
from spacedock.accounts.names import username_problem
from spacedock.labels import LABEL_BUILD, LABEL_COMMIT, LABEL_INSTANCE, LABEL_SPACE
from spacedock.spaces.config import ConfigError, SpaceConfig
from spacedock.spaces.models import NAME_RE, Build, BuildState, Space, valid_name

FORMAT = "spacedock-build/1"
MEMBERS = ("build.json", "source.bundle", "image.tar")
EXPORT_REF = "refs/spacedock/export"


class ArchiveError(Exception):
    """The archive cannot be written or read back; the text says why and what to do."""


def export_build(build: Build, dest: Path) -> None:
    if build.state != BuildState.SUCCEEDED or not build.image:
        raise ArchiveError(
            f"build {build.pk} is {build.state}: only a succeeded build has an image to export"
        )
    space = build.space
    manifest = {
        "format": FORMAT,
        "space": {"owner": space.owner.username, "name": space.name, "visibility": space.visibility},
        "build": {
            "id": build.pk,
            "commit_sha": build.commit_sha,
            "ref": build.ref,
            "config": build.config or build.space_config().as_dict(),
            "pinned": build.pinned,
            "created": build.created.isoformat(),
            "finished": build.finished.isoformat() if build.finished else None,
        },
    }
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        work = Path(tmp)
        _bundle(space.repo_path, build.commit_sha, work / "source.bundle")
        with open(work / "image.tar", "wb") as out:
            try:
                docker_build.save_image(build.image, out)
            except docker_build.BuildError as exc:
                raise ArchiveError(str(exc)) from None
        (work / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            for name in MEMBERS:
                archive.add(work / name, arcname=name)
        partial.rename(dest)  # a half-written archive never carries the final name


def _bundle(repo: Path, sha: str, dest: Path) -> None:
    # A bundle needs a ref; a scratch repository that borrows the space's objects holds it, so the
    # space's own repository is only read.
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        git = ["git", f"--git-dir={tmp}"]
        subprocess.run(["git", "init", "--quiet", "--bare", tmp], check=True)
        Path(tmp, "objects", "info", "alternates").write_text(f"{repo / 'objects'}\n")
        made = subprocess.run([*git, "update-ref", EXPORT_REF, sha], capture_output=True, text=True)
        if made.returncode != 0:
            raise ArchiveError(f"commit {sha[:7]} is not in {repo}: {made.stderr.strip()}")
        subprocess.run([*git, "bundle", "create", "--quiet", str(dest), EXPORT_REF], check=True)


def import_build(source: Path, owner: str | None = None, name: str | None = None) -> Build:
    """Restores an exported build: the space (made when missing), the commit in its repository, the
    image in the registry, and the build row, pinned as it was. On an install where the build's
    id is free the build keeps it, so its pinned address (pin--<id>) is the same as before."""
    try:
        archive = tarfile.open(source, "r")
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{source} is not a build archive ({exc}); make one with export_build") from None
    with archive, tempfile.TemporaryDirectory(prefix="import-") as tmp:
        manifest = _manifest(archive)
        owner = owner or manifest["space"]["owner"]
        name = name or manifest["space"]["name"]
        bundle = Path(tmp) / "source.bundle"
        with _member(archive, "source.bundle") as data, open(bundle, "wb") as out:
            shutil.copyfileobj(data, out)
        with transaction.atomic():
            space, made = _space(owner, name, manifest)
            try:
                build = _build_row(space, manifest)
                _fetch(space, bundle, build)
                labels = {
                    LABEL_INSTANCE: settings.INSTANCE,
                    LABEL_SPACE: str(space.pk),
                    LABEL_BUILD: str(build.pk),
                    LABEL_COMMIT: build.commit_sha,
                }
                with _member(archive, "image.tar") as image:
                    build.image = docker_build.load_image(image, image_tag(space, build.commit_sha), labels)
                build.save(update_fields=["image"])
            except BaseException:
                if made:
                    shutil.rmtree(space.repo_path, ignore_errors=True)
                raise
            if space.deployed_build_id is None:
                space.rollback(build)  # a space that came back with its build serves it
    return build


def _manifest(archive: tarfile.TarFile) -> dict:
    with _member(archive, "build.json") as data:
        try:
            manifest = json.loads(data.read(1024 * 1024))
        except ValueError as exc:
            raise ArchiveError(f"build.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"build.json is not a {FORMAT} manifest; this install reads only that format")
    try:
        sha = manifest["build"]["commit_sha"]
        SpaceConfig.from_dict(manifest["build"]["config"])
        manifest["space"]["owner"], manifest["space"]["name"], int(manifest["build"]["id"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ArchiveError(f"build.json lacks or garbles {exc}") from None
    if not (isinstance(sha, str) and len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)):
        raise ArchiveError(f"build.json names no commit: {sha!r}")
    return manifest


def _member(archive: tarfile.TarFile, name: str):
    try:
        member = archive.getmember(name)
    except KeyError:
        raise ArchiveError(f"the archive has no {name}; an exported build has {', '.join(MEMBERS)}") from None
    if not member.isfile():
        raise ArchiveError(f"{name} in the archive is not a plain file")
    return archive.extractfile(member)


def _space(owner: str, name: str, manifest: dict) -> tuple[Space, bool]:
    if not NAME_RE.fullmatch(owner) or not valid_name(name):
        raise ArchiveError(f"{owner}/{name} is not a valid space name")
    user = User.objects.filter(username=owner).first()
    if user is None:
        if problem := username_problem(owner):
            raise ArchiveError(problem)
        user = User.objects.create(username=owner)
        user.set_unusable_password()
        user.save()
    space = Space.objects.filter(owner=user, name=name).first()
    if space is not None:
        return space, False
    visibility = "private" if manifest["space"].get("visibility") == "private" else "public"
    space = Space.create(user, name, visibility=visibility)
    space.apply_config(SpaceConfig.from_dict(manifest["build"]["config"]))
    space.save()
    return space, True


def _build_row(space: Space, manifest: dict) -> Build:
    """A build that arrives built: made in its final state, not moved through the build states."""
    wanted = int(manifest["build"]["id"])
    fields = {
        "space": space,
        "commit_sha": manifest["build"]["commit_sha"],
        "ref": str(manifest["build"].get("ref") or "refs/heads/main")[:200],
        "config": manifest["build"]["config"],
        "state": BuildState.SUCCEEDED,
        "pinned": bool(manifest["build"].get("pinned")),
        "finished": timezone.now(),
    }
    if Build.objects.filter(pk=wanted).exists():
        return Build.objects.create(**fields)
    build = Build.objects.create(pk=wanted, **fields)
    # An id given by hand does not move the sequence: the next build would be given it again.
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [Build]):
            cursor.execute(sql)
    return build


def _fetch(space: Space, bundle: Path, build: Build) -> None:
    # Kept under a ref of its own, so the commit outlives force pushes and git's garbage collection.
    keep = f"refs/spacedock/builds/{build.pk}"
    fetched = subprocess.run(
        ["git", f"--git-dir={space.repo_path}", "fetch", "--quiet", str(bundle), f"{EXPORT_REF}:{keep}"],
        capture_output=True,
        text=True,
    )
    if fetched.returncode != 0:
        raise ArchiveError(f"source.bundle does not restore: {fetched.stderr.strip()}")
    if not space.head_sha:  # a space made by the import shows the build's files
        subprocess.run(
            ["git", f"--git-dir={space.repo_path}", "update-ref", "refs/heads/main", build.commit_sha],
            check=True,
        )
        Space.objects.filter(pk=space.pk).update(head_sha=build.commit_sha)
        space.head_sha = build.commit_sha
