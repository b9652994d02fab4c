"""The Hub's bucket routes, for huggingface_hub's create_bucket, bucket_info, list_buckets,
delete_bucket, update_bucket_settings, list_bucket_tree, get_bucket_paths_info and the delete
part of batch_bucket_files; GET/HEAD of a file; and a plain upload route of Spacedock's own,
since the client uploads bucket files only through Xet (docs/architecture.md, "Buckets").
"""

import json

from django.db import IntegrityError
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from spacedock.accounts.auth import principal
from spacedock.api.protocol import ApiError, api_error, json_body, with_api_errors
from spacedock.buckets import storage
from spacedock.buckets.models import Bucket, BucketInUse
from spacedock.buckets.serializers import bucket_json, entry_json
from spacedock.spaces.access import acting_user

MAX_PATHS = 1000
XET_MESSAGE = (
    "Spacedock stores bucket files as plain files and does not serve the Xet protocol, which "
    "huggingface_hub uses to upload and download bucket files. Upload with "
    "PUT /api/buckets/<namespace>/<name>/files/<path> (a write token, the bytes as the body), download "
    "with GET /buckets/<namespace>/<name>/resolve/<path>, or write the files from a space that mounts "
    "the bucket."
)


def _owner_name(request, namespace: str) -> str:
    if namespace == "me":
        user = principal(request).user
        if user is None:
            raise ApiError(401, "Authentication required: send a token as 'Authorization: Bearer <token>'")
        return user.username
    return namespace


def readable_bucket(request, namespace: str, name: str) -> Bucket:
    bucket = (
        Bucket.objects.select_related("owner")
        .filter(owner__username=_owner_name(request, namespace), name=name)
        .first()
    )
    if bucket is None or not bucket.can_read(principal(request).user):
        raise Http404(f"{namespace}/{name}")
    return bucket


def writable_bucket(request, namespace: str, name: str) -> Bucket:
    user = acting_user(request)
    bucket = readable_bucket(request, namespace, name)
    if not bucket.can_write(user):
        raise ApiError(
            403, f"You don't have the rights to change bucket {bucket.full_name}: only its owner does"
        )
    return bucket


@csrf_exempt
@require_http_methods(["GET", "POST", "DELETE"])
@with_api_errors
def bucket(request, namespace: str, name: str):
    if request.method == "GET":
        return JsonResponse(bucket_json(readable_bucket(request, namespace, name)))
    if request.method == "DELETE":
        found = writable_bucket(request, namespace, name)
        try:
            found.delete()
        except BucketInUse as exc:
            return api_error(409, str(exc), code="BucketInUse")
        return JsonResponse({})
    user = acting_user(request)
    if namespace not in ("me", user.username):
        return api_error(403, f"You can create buckets only in your own namespace ({user.username})")
    data = json_body(request)
    # The address the client used: huggingface_hub parses it back and accepts only its endpoint's host.
    url = request.build_absolute_uri(f"/buckets/{user.username}/{name}")
    if Bucket.objects.filter(owner=user, name=name).exists():
        return JsonResponse({"error": "Bucket already exists", "url": url}, status=409)
    try:
        created = Bucket.create(user, name, private=data.get("visibility") == "private")
    except ValueError as exc:
        return api_error(400, str(exc))
    except IntegrityError:
        return JsonResponse({"error": "Bucket already exists", "url": url}, status=409)
    return JsonResponse({"url": url, "id": created.full_name, "name": created.name})


@require_http_methods(["GET"])
@with_api_errors
def list_buckets(request, namespace: str):
    owner = _owner_name(request, namespace)
    user = principal(request).user
    rows = Bucket.objects.select_related("owner").filter(owner__username=owner)
    search = request.GET.get("search")
    if search:
        rows = rows.filter(name__icontains=search)
    return JsonResponse([bucket_json(b) for b in rows if b.can_read(user)], safe=False)


@csrf_exempt
@require_http_methods(["PUT"])
@with_api_errors
def bucket_settings(request, namespace: str, name: str):
    found = writable_bucket(request, namespace, name)
    private = json_body(request).get("private")
    if not isinstance(private, bool):
        return api_error(400, 'Send {"private": true} or {"private": false}')
    Bucket.objects.filter(pk=found.pk).update(visibility="private" if private else "public")
    return JsonResponse({})


@require_http_methods(["GET"])
@with_api_errors
def tree(request, namespace: str, name: str, prefix: str = ""):
    found = readable_bucket(request, namespace, name)
    recursive = request.GET.get("recursive", "").lower() in ("1", "true")
    try:
        entries = [entry_json(e) for e in storage.walk(found.path, prefix.strip("/"), recursive)]
    except storage.BadPath as exc:
        return api_error(400, str(exc))
    return JsonResponse(entries, safe=False)


@csrf_exempt
@require_POST
@with_api_errors
def paths_info(request, namespace: str, name: str):
    found = readable_bucket(request, namespace, name)
    paths = json_body(request).get("paths")
    if not isinstance(paths, list) or len(paths) > MAX_PATHS:
        return api_error(400, f'Send {{"paths": [...]}} with at most {MAX_PATHS} paths')
    found_entries = []
    for path in paths:
        try:
            entry = storage.stat_file(found.path, path)
        except storage.BadPath:
            continue
        if entry is not None:
            found_entries.append(entry_json(entry))
    return JsonResponse(found_entries, safe=False)


@csrf_exempt
@require_POST
@with_api_errors
def batch(request, namespace: str, name: str):
    """NDJSON operations: deleteFile is applied; addFile and copyFile name Xet hashes, which this
    server does not store, so each is reported failed with what to do instead."""
    found = writable_bucket(request, namespace, name)
    failed, done = [], 0
    for line in request.body.splitlines()[: 10 * MAX_PATHS]:
        if not line.strip():
            continue
        try:
            op = json.loads(line)
        except ValueError:
            return api_error(400, "Each line of the body is a JSON operation")
        path = op.get("path") if isinstance(op, dict) else None
        if not isinstance(path, str):
            return api_error(400, "Each operation has a type and a path")
        if op.get("type") == "deleteFile":
            try:
                storage.delete_file(found.path, path)
                done += 1
            except storage.BadPath as exc:
                failed.append({"path": path[:200], "error": str(exc)})
        else:
            failed.append({"path": path[:200], "error": XET_MESSAGE})
    return JsonResponse({"failed": failed}, status=422 if failed and not done else 200)


@csrf_exempt
@require_http_methods(["PUT"])
@with_api_errors
def upload(request, namespace: str, name: str, path: str):
    found = writable_bucket(request, namespace, name)
    length = request.META.get("CONTENT_LENGTH")
    stream = request.META["wsgi.input"] if request.META.get("wsgi.input_terminated") else request

    def chunks():
        while chunk := stream.read(1 << 20):
            yield chunk

    try:
        size = found.upload(path, chunks(), int(length) if length and length.isdigit() else None)
    except storage.BadPath as exc:
        return api_error(400, str(exc))
    except OSError:
        # A folder of the path is a link or a file (never followed: storage.open_dir).
        return api_error(400, f"Cannot write {path[:200]!r}: a part of the path is not a folder")
    return JsonResponse({"path": path, "size": size})


@require_http_methods(["GET"])
@with_api_errors
def xet_token(request, namespace: str, name: str, kind: str):
    readable_bucket(request, namespace, name)
    return api_error(501, XET_MESSAGE, code="XetNotSupported")


@require_http_methods(["GET", "HEAD"])
@with_api_errors
def resolve(request, namespace: str, name: str, path: str):
    found = readable_bucket(request, namespace, name)
    try:
        entry = storage.stat_file(found.path, path)
    except storage.BadPath:
        entry = None
    if entry is None:
        return api_error(404, f"{path[:200]} is not in bucket {found.full_name}", code="EntryNotFound")
    headers = {
        "ETag": f'"{entry.etag}"',
        "X-Content-Type-Options": "nosniff",
        # get_bucket_file_metadata needs these two to answer (size and hash); the route named answers
        # 501 with what to do, which is where the client's Xet download stops.
        "X-Xet-Hash": entry.etag,
        "X-Xet-Refresh-Route": request.build_absolute_uri(f"/api/buckets/{found.full_name}/xet-read-token"),
    }
    if request.method == "HEAD":
        response = HttpResponse(status=200, content_type="application/octet-stream")
        response["Content-Length"] = str(entry.size)
    else:
        try:
            handle = storage.open_file(found.path, path)
        except FileNotFoundError:
            return api_error(404, f"{path[:200]} is not in bucket {found.full_name}", code="EntryNotFound")
        response = FileResponse(handle, content_type="application/octet-stream")
    for key, value in headers.items():
        response[key] = value
    # Bytes an app wrote: never rendered by the browser on the platform's origin.
    response["Content-Disposition"] = "attachment"
    response["Content-Security-Policy"] = "sandbox"
    return response
