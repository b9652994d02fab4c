"""A space's files by revision, as the Hub serves them: `/spaces/<o>/<n>/resolve/<rev>/<path>`.

hf_hub_download and file_exists send HEAD, then GET; they read ETag, X-Repo-Commit and
Content-Length, and for an LFS file X-Linked-Etag (its sha256) and X-Linked-Size. The Files
tab links here for downloads. LFS files are served as their objects, never as pointers.
"""

import subprocess

from django.http import FileResponse, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_http_methods

from spacedock.api.protocol import ApiError, with_api_errors
from spacedock.api.revisions import split_rev
from spacedock.gitserver import lfs_storage
from spacedock.gitserver import repo as gitrepo
from spacedock.gitserver.lfs import lfs_pointer_of, pointers_in_commit
from spacedock.spaces.access import space_reader
from spacedock.spaces.models import Space


def resolve_commit(space: Space, rev: str) -> str:
    sha = gitrepo.resolve(space.repo_path, rev)
    if sha is None:
        raise ApiError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
    return sha


@with_api_errors
@require_http_methods(["GET", "HEAD"])
@space_reader
def resolve(request, space: Space, rev: str, path: str):
    rev, path = split_rev(request, space.repo_path, rev, path)
    sha = resolve_commit(space, rev)
    info = gitrepo.blob_info(space.repo_path, sha, path)
    if info is None:
        raise ApiError(404, f"Entry not found: {path} at {rev}", code="EntryNotFound")
    blob_sha, size = info
    pointer = lfs_pointer_of(space, sha, path)
    head = request.method == "HEAD"
    if pointer:
        oid, size = pointer
        response = HttpResponse() if head else FileResponse(lfs_storage.open_object(oid))
        response["ETag"] = f'"{oid}"'
        response["X-Linked-Etag"] = f'"{oid}"'
        response["X-Linked-Size"] = str(size)
    else:
        response = HttpResponse(b"" if head else gitrepo.read_file(space.repo_path, sha, path))
        response["ETag"] = f'"{blob_sha}"'
    response["Content-Type"] = "application/octet-stream"
    response["Content-Length"] = str(size)
    response["X-Repo-Commit"] = sha
    response["Content-Disposition"] = f'inline; filename="{path.rsplit("/", 1)[-1]}"'
    return response


def _tree_items(space: Space, sha: str, folder: str, recursive: bool) -> list[dict]:
    args = ["ls-tree", "-l", "-z", *(["-r", "-t"] if recursive else []), sha]
    if folder:
        args += ["--", f"{folder}/"]
    out = subprocess.run(
        ["git", f"--git-dir={space.repo_path}", *args], capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    pointers = {p.path: p for p in pointers_in_commit(space.repo_path, sha)}
    readable = set(
        space.lfs_objects.filter(oid__in={p.oid for p in pointers.values()}).values_list("oid", flat=True)
    )
    items = []
    for entry in filter(None, out.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, oid, size = meta.split()
        if kind == "tree":
            items.append({"type": "directory", "oid": oid, "size": 0, "path": path})
        elif kind == "blob":
            item = {"type": "file", "oid": oid, "size": int(size), "path": path}
            pointer = pointers.get(path)
            if pointer and pointer.oid in readable:
                item["size"] = pointer.size
                item["lfs"] = {"oid": pointer.oid, "size": pointer.size, "pointerSize": int(size)}
            items.append(item)
    return items


@with_api_errors
@require_GET
@space_reader
def tree(request, space: Space, rev: str, path: str = ""):
    rev, path = split_rev(request, space.repo_path, rev, path)
    sha = resolve_commit(space, rev)
    path = path.strip("/")
    if path and gitrepo.tree_entries(space.repo_path, sha, path) is None:
        raise ApiError(404, f"Entry not found: {path} at {rev}", code="EntryNotFound")
    recursive = request.GET.get("recursive", "").lower() in ("1", "true")
    return JsonResponse(_tree_items(space, sha, path, recursive), safe=False)
