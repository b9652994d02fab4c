"""The Git LFS batch API (basic transfer) at a space's git URL.

git-lfs derives its endpoint from the remote: `http://host/spaces/<o>/<n>` becomes
`http://host/spaces/<o>/<n>.git/info/lfs`, so both spellings are served. The batch call takes
the same credentials and rules as git (readers download, a write token of the owner uploads);
the links it hands out carry a signed, short-lived grant for one object of one space, so the
transfers themselves need no token and no token is ever echoed back.
"""

import json

from django.conf import settings
from django.core import signing
from django.http import FileResponse, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from spacedock.accounts.auth import BadCredentials, principal
from spacedock.accounts.models import creatable_namespace
from spacedock.gitserver import buildtoken, lfs_storage
from spacedock.gitserver.models import LfsObject
from spacedock.spaces.models import Space, valid_name

MEDIA = "application/vnd.git-lfs+json"
GRANT_HEADER = "X-Spacedock-Lfs-Grant"
SALT = "spacedock.lfs"
CHUNK = 1024 * 1024


def _answer(status: int, payload: dict, **headers) -> JsonResponse:
    response = JsonResponse(payload, status=status, content_type=MEDIA)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


def _error(status: int, message: str) -> JsonResponse:
    if status == 401:
        return _answer(status, {"message": message}, LFS_Authenticate='Basic realm="Spacedock"')
    return _answer(status, {"message": message})


def _space_for_batch(request, owner: str, name: str, operation: str) -> Space | JsonResponse:
    """The space, when the caller may do `operation` on its objects; else the LFS error to send."""
    name = name.removesuffix(".git")
    if not (valid_name(owner) and valid_name(name)):
        return _error(404, f"'{owner}/{name}' is not a space name.")
    if (raw := buildtoken.presented(request)) is not None:
        if operation != "download":
            return _error(403, "A build token only downloads.")
        space = Space.objects.filter(owner__username=owner, name=name).first()
        if space is None or buildtoken.build_for(raw, space) is None:
            return _error(403, buildtoken.REFUSED)
        return space
    try:
        who = principal(request)
    except BadCredentials as exc:
        return _error(401, f"Authentication failed: {exc}.")
    token, user = who.token, who.user
    space = Space.objects.select_related("owner").filter(owner__username=owner, name=name).first()
    hidden = space is None or not space.can_read(user)
    if operation == "upload":
        if token is None:
            return _error(401, "Uploading Git LFS objects needs a write token, as pushing does.")
        if not token.can_write:
            return _error(403, f"The token '{token.name}' is read-only: uploading needs a write token.")
        if space is None and (account := creatable_namespace(user, owner)) is not None:
            # git-lfs uploads before git pushes: the first push of a new space starts here.
            return Space.create(account, name)
        if hidden:
            return _error(404, f"Space {owner}/{name} not found.")
        if not space.can_write(user):
            return _error(403, f"You ({user.username}) cannot push to {owner}/{name}: you lack write there.")
        return space
    if hidden:
        if token is None:
            return _error(401, f"Space {owner}/{name} not found, or you need to sign in.")
        return _error(404, f"Space {owner}/{name} not found.")
    return space


def _link(request, space: Space, oid: str, action: str) -> dict:
    grant = signing.dumps({"s": space.pk, "o": oid, "a": action}, salt=SALT)
    suffix = "verify" if action == "verify" else f"objects/{oid}"
    href = request.build_absolute_uri(f"/spaces/{space.owner.username}/{space.name}.git/info/lfs/{suffix}")
    return {"href": href, "header": {GRANT_HEADER: grant}, "expires_in": settings.LFS_LINK_MAX_AGE}


@csrf_exempt
def batch(request, owner: str, name: str):
    if request.method != "POST":
        return _error(405, "The batch API takes a POST.")
    try:
        data = json.loads(request.body)
        operation, objects = data["operation"], data["objects"]
    except (ValueError, KeyError, TypeError):
        operation, objects = None, None
    if not isinstance(objects, list):
        return _error(422, 'Send {"operation": "upload"|"download", "objects": [{"oid", "size"}, ...]}.')
    if operation not in ("upload", "download"):
        return _error(422, f"Unknown operation {operation!r}: use upload or download.")
    transfers = data.get("transfers") or ["basic"]
    if "basic" not in transfers:
        return _error(422, "Only the basic transfer adapter is served.")
    space = _space_for_batch(request, owner, name, operation)
    if isinstance(space, JsonResponse):
        return space

    wanted = {o.get("oid") for o in objects if isinstance(o, dict)}
    referenced = dict(space.lfs_objects.filter(oid__in=wanted).values_list("oid", "size"))
    answers = []
    for item in objects:
        oid, size = (item.get("oid"), item.get("size")) if isinstance(item, dict) else (None, None)
        answer = {"oid": oid, "size": size, "authenticated": True}
        if not lfs_storage.valid_oid(oid) or not isinstance(size, int) or size < 0:
            answer["error"] = {"code": 422, "message": "An object needs a sha256 oid and a size in bytes."}
        elif operation == "upload" and size > _max_object_bytes():
            answer["error"] = {"code": 422, "message": _too_large(oid, size)}
        elif operation == "upload":
            if not (referenced.get(oid) == size and lfs_storage.has(oid, size)):
                answer["actions"] = {
                    "upload": _link(request, space, oid, "upload"),
                    "verify": _link(request, space, oid, "verify"),
                }
        elif referenced.get(oid) == size and lfs_storage.has(oid, size):
            answer["actions"] = {"download": _link(request, space, oid, "download")}
        else:
            answer["error"] = {"code": 404, "message": f"Object {oid} is not stored for {space.full_name}."}
        answers.append(answer)
    return _answer(200, {"transfer": "basic", "objects": answers, "hash_algo": "sha256"})


def _max_object_bytes() -> int:
    return settings.LFS_MAX_OBJECT_MB * 1024 * 1024


def _too_large(oid: str, size: int) -> str:
    return (
        f"Object {oid} is {size // 2**20} MiB; Git LFS objects here are limited to "
        f"{settings.LFS_MAX_OBJECT_MB} MiB (SPACEDOCK_LFS_MAX_OBJECT_MB)."
    )


def _granted(request, action: str, oid: str) -> Space | None:
    try:
        grant = signing.loads(
            request.headers.get(GRANT_HEADER, ""), salt=SALT, max_age=settings.LFS_LINK_MAX_AGE
        )
    except signing.BadSignature:
        return None
    if grant.get("a") != action or grant.get("o") != oid:
        return None
    return Space.objects.filter(pk=grant.get("s")).first()


@csrf_exempt
def transfer(request, owner: str, name: str, oid: str):
    """PUT uploads an object (checked against its sha256 and size), GET downloads it."""
    action = {"PUT": "upload", "GET": "download"}.get(request.method)
    if action is None:
        return _error(405, "PUT uploads an object, GET downloads it.")
    space = _granted(request, action, oid)
    if space is None:
        return _error(403, "This link is invalid or expired: ask the batch API for a new one.")
    if action == "download":
        if not space.lfs_objects.filter(oid=oid).exists() or not lfs_storage.has(oid):
            return _error(404, f"Object {oid} is not stored.")
        return FileResponse(lfs_storage.open_object(oid), content_type="application/octet-stream")
    try:
        size = int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return _error(411, "An upload needs a Content-Length.")
    if size > _max_object_bytes():
        # A grant from before the limit was lowered, or a client that skipped the batch answer.
        return _error(413, _too_large(oid, size))
    try:
        lfs_storage.put(oid, size, iter(lambda: request.read(CHUNK), b""))
    except lfs_storage.BadObject as exc:
        return _error(422, f"Object {oid} refused: {exc}.")
    LfsObject.record(space, oid, size)
    return HttpResponse(status=200)


@csrf_exempt
def verify(request, owner: str, name: str):
    try:
        data = json.loads(request.body)
        oid, size = data["oid"], int(data["size"])
    except (ValueError, KeyError, TypeError):
        return _error(422, 'Send {"oid", "size"}.')
    space = _granted(request, "verify", oid)
    if space is None:
        return _error(403, "This link is invalid or expired: ask the batch API for a new one.")
    if not (space.lfs_objects.filter(oid=oid, size=size).exists() and lfs_storage.has(oid, size)):
        return _error(404, f"Object {oid} of {size} bytes was not received.")
    return _answer(200, {"message": "ok"})
