"""The Hub's commit routes: preupload, the NDJSON commit, and a branch's history.

preupload answers "regular" for every file up to SPACEDOCK_HUB_FILE_MAX_MB: the bytes travel
base64 in the commit itself, so huggingface_hub (which sends every "lfs" file through the Xet
protocol when hf_xet is installed) never needs a Xet server. Larger files are refused with a
message naming the limit and git-lfs as the way. An `lfsFile` line (from a client that uploaded
through the LFS batch API itself) becomes a pointer to an object this space already has.
"""

import base64
import binascii
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from spacedock.api.protocol import ApiError, json_body, with_api_errors
from spacedock.gitserver import commits, lfs_storage
from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.spaces.access import acting_user, space_owner, space_reader
from spacedock.spaces.models import Space

COMMITS_PAGE = 50


def _too_big(path: str, size: int) -> ApiError:
    return ApiError(
        413,
        f"{path} is {size / 1e6:.1f} MB; Spacedock's file API takes files up to "
        f"{settings.HUB_FILE_MAX_MB} MB "
        "(SPACEDOCK_HUB_FILE_MAX_MB). Push larger files with git and git-lfs: "
        "git lfs track '<pattern>', then git push.",
    )


@csrf_exempt
@with_api_errors
@require_POST
@space_owner
def preupload(request, space: Space, rev: str):
    if request.GET.get("create_pr"):
        raise ApiError(400, "Spacedock has no pull requests: commit to a branch instead")
    files = json_body(request).get("files")
    if not isinstance(files, list):
        raise ApiError(400, 'Send {"files": [{"path", "size", "sample"}, ...]}')
    answers = []
    for item in files:
        path = commits.check_path(str(item.get("path", ""))) if isinstance(item, dict) else ""
        size = int(item.get("size") or 0)
        if size > settings.HUB_FILE_MAX_MB * 1_000_000:
            raise _too_big(path, size)
        answers.append({"path": path, "uploadMode": "regular", "shouldIgnore": False})
    return JsonResponse({"files": answers, "commitOid": commits.branch_head(space.repo_path, rev)})


def _pointer(space: Space, value: dict) -> bytes:
    oid, size = value.get("oid", ""), value.get("size")
    if value.get("algo", "sha256") != "sha256" or not lfs_storage.valid_oid(oid):
        raise ApiError(400, f"lfsFile {value.get('path')}: give a sha256 oid")
    known = space.lfs_objects.filter(oid=oid).first()
    if known is None or not lfs_storage.has(oid, known.size):
        raise ApiError(
            422, f"lfsFile {value.get('path')}: object {oid} was not uploaded to this space's LFS storage"
        )
    size = known.size if size is None else int(size)
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _read_commit(request, space: Space) -> tuple[dict, commits.Change]:
    header, change = None, commits.Change()
    limit = settings.HUB_FILE_MAX_MB * 1_000_000
    for raw in request:  # one line at a time: the body can be far larger than Django's in-memory limit
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            key, value = line["key"], line["value"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, 'Each line must be a JSON object {"key": ..., "value": ...}') from None
        if key == "header":
            header = value
        elif key == "file":
            path = commits.check_path(value.get("path", ""))
            if value.get("encoding", "base64") != "base64":
                raise ApiError(400, f"{path}: only base64 content is accepted")
            try:
                data = base64.b64decode(value.get("content", ""), validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, f"{path}: the content is not valid base64") from None
            if len(data) > limit:
                raise _too_big(path, len(data))
            change.files[path] = data
        elif key == "lfsFile":
            change.files[commits.check_path(value.get("path", ""))] = _pointer(space, value)
        elif key == "deletedFile":
            change.deleted_files.append(commits.check_path(value.get("path", "")))
        elif key == "deletedFolder":
            change.deleted_folders.append(commits.check_path(value.get("path", "").rstrip("/")))
        else:
            raise ApiError(
                400, f"Unknown commit line {key!r}: use header, file, lfsFile, deletedFile, deletedFolder"
            )
    if not isinstance(header, dict) or not str(header.get("summary", "")).strip():
        raise ApiError(400, 'The first line must be {"key": "header", "value": {"summary": ...}}')
    return header, change


@csrf_exempt
@with_api_errors
@require_POST
@space_owner
def commit(request, space: Space, rev: str):
    if request.GET.get("create_pr"):
        raise ApiError(400, "Spacedock has no pull requests: commit to a branch instead")
    user = acting_user(request)
    header, change = _read_commit(request, space)
    head = commits.branch_head(space.repo_path, rev)
    if head is None and rev != DEFAULT_BRANCH:
        raise ApiError(404, f"Invalid rev id: {rev}: create the branch first", code="RevisionNotFound")
    parent = header.get("parentCommit")
    if parent and parent != head:
        raise ApiError(412, f"A commit has happened since {parent}: the head of {rev} is {head}")
    message = str(header["summary"]).strip()
    if header.get("description"):
        message += "\n\n" + str(header["description"]).strip()
    email = user.email or f"{user.username}@users.noreply.{settings.DOMAIN}"
    try:
        sha = commits.commit(space.repo_path, rev, change, message + "\n", (user.username, email), head)
    except commits.RefMoved as exc:
        raise ApiError(409, str(exc)) from None
    except commits.CommitError as exc:
        if "doesn't exist" in str(exc):
            raise ApiError(404, str(exc), code="EntryNotFound") from None
        raise ApiError(400, str(exc)) from None
    # The same bookkeeping as a git push: the build is queued (another branch's for its preview).
    space.record_push(sha, f"refs/heads/{rev}")
    return JsonResponse(
        {
            "success": True,
            "commitOid": sha,
            "commitUrl": request.build_absolute_uri(f"/spaces/{space.full_name}/commit/{sha}"),
            "pullRequestUrl": None,
        }
    )


@with_api_errors
@require_GET
@space_reader
def list_commits(request, space: Space, rev: str):
    from spacedock.api.views_files import resolve_commit

    sha = resolve_commit(space, rev)
    try:
        page = max(int(request.GET.get("p") or 0), 0)
    except ValueError:
        raise ApiError(400, "p must be a whole number") from None
    log = commits.history(space.repo_path, sha, skip=page * COMMITS_PAGE, count=COMMITS_PAGE + 1)
    items = [
        {
            "id": entry.sha,
            "title": entry.title,
            "message": entry.message,
            "authors": [{"user": entry.author}],
            "date": entry.date,
        }
        for entry in log[:COMMITS_PAGE]
    ]
    response = JsonResponse(items, safe=False)
    if len(log) > COMMITS_PAGE:
        query = request.GET.copy()
        query["p"] = str(page + 1)
        response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'
    return response
