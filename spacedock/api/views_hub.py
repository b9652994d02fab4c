"""The Hub's space routes that list, change, copy and delete, for huggingface_hub.HfApi.

Changes are authorised by a write token only, never by a browser session: these views
skip CSRF, so a session must not be able to reach them. Pages have their own forms.
"""

import json

from django.contrib.auth.models import User
from django.db import IntegrityError
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from spacedock.accounts.auth import token_from_request
from spacedock.api.views import (
    ApiError,
    api_user,
    hub_time,
    readable_space,
    space_json,
    trending_now,
    with_api_errors,
)
from spacedock.spaces.gallery import filter_spaces
from spacedock.spaces.models import Space, check_sleep_time, check_variable_key, valid_name

LIST_PAGE = 1000
LIST_SORTS = {
    "likes": "-likes",
    "lastModified": "-updated",
    "createdAt": "-created",
    "trendingScore": "-trending_score",
    "id": "name",
}


def api_writer(request) -> User:
    token = token_from_request(request)
    if token is None:
        raise ApiError(401, "Authentication required: send a write token as 'Authorization: Bearer <token>'")
    if not token.can_write:
        raise ApiError(403, f"The token {token.name!r} has read scope; this needs a write token")
    return token.user


def owned_space(request, owner: str, name: str) -> Space:
    """The space, when the caller's write token may change it."""
    user = api_writer(request)
    space = get_object_or_404(Space.objects.select_related("owner"), owner__username=owner, name=name)
    if not space.can_read(user):
        raise Http404
    if not space.can_write(user):
        raise ApiError(403, f"You don't have the rights to change {space.full_name}: only its owner does")
    return space


def json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise ApiError(400, "The request body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return data


def required(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{key}' is required and must be a string")
    return value


def env_entries(data: dict, field: str) -> dict[str, str]:
    """A list of {"key", "value"} objects, every key checked before anything is stored."""
    entries = data.get(field) or []
    if not isinstance(entries, list):
        raise ApiError(400, f'\'{field}\' must be a list of {{"key": ..., "value": ...}} objects')
    checked = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ApiError(400, f"Each entry of '{field}' must be an object with 'key' and 'value'")
        try:
            key = check_variable_key(entry.get("key"))
        except ValueError as exc:
            raise ApiError(400, f"{field}: {exc}") from None
        checked[key] = str(entry.get("value", ""))
    return checked


def list_item(space: Space, full: bool) -> dict:
    item = {
        "_id": str(space.pk),
        "id": space.full_name,
        "author": space.owner.username,
        "likes": space.likes,
        "trendingScore": trending_now(space),
        "private": space.is_private,
        "sdk": space.sdk or None,
        "tags": space.tags,
        "createdAt": hub_time(space.created),
    }
    if full:
        item.update(
            lastModified=hub_time(space.updated),
            sha=space.head_sha or None,
            subdomain=space.subdomain,
            cardData=space_json(space, with_build=False)["cardData"],
        )
    return item


@with_api_errors
@require_GET
def list_spaces(request):
    spaces = filter_spaces(
        api_user(request),
        search=request.GET.get("search", ""),
        tags=request.GET.getlist("filter"),
        sdk=request.GET.get("sdk", ""),
        author=request.GET.get("author", ""),
    )
    sort = request.GET.get("sort", "")
    if sort and sort not in LIST_SORTS:
        raise ApiError(400, f"sort must be one of {', '.join(LIST_SORTS)}")
    order = LIST_SORTS.get(sort, "-trending_score")
    if request.GET.get("direction") == "1":
        order = order.lstrip("-") if order.startswith("-") else f"-{order}"
    try:
        limit = min(int(request.GET.get("limit") or LIST_PAGE), LIST_PAGE)
        offset = max(int(request.GET.get("offset") or 0), 0)
    except ValueError:
        raise ApiError(400, "limit and offset must be whole numbers") from None
    full = request.GET.get("full", "").lower() in ("1", "true")
    page = list(spaces.order_by(order, "pk")[offset : offset + limit + 1])
    response = JsonResponse([list_item(s, full) for s in page[:limit]], safe=False)
    if len(page) > limit and not request.GET.get("limit"):
        # huggingface_hub follows a GitHub-style Link header to the next page.
        query = request.GET.copy()
        query["offset"] = str(offset + limit)
        response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'
    return response


@csrf_exempt
@with_api_errors
@require_http_methods(["GET", "POST", "DELETE"])
def space_variables(request, owner: str, name: str):
    return _env(request, owner, name, secret=False)


@csrf_exempt
@with_api_errors
@require_http_methods(["GET", "POST", "DELETE"])
def space_secrets(request, owner: str, name: str):
    return _env(request, owner, name, secret=True)


def _env(request, owner: str, name: str, secret: bool) -> JsonResponse:
    space = owned_space(request, owner, name)
    if request.method == "POST":
        data = json_body(request)
        value = data.get("value", "")
        if not isinstance(value, str):
            raise ApiError(400, "'value' must be a string")
        try:
            space.set_variable(
                required(data, "key"), value, secret=secret, description=str(data.get("description") or "")
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    elif request.method == "DELETE":
        space.delete_variable(required(json_body(request), "key"), secret=secret)
    listing = {}
    for var in space.variables.filter(is_secret=secret).order_by("key"):
        entry = {"description": var.description or None, "updatedAt": hub_time(var.updated)}
        if not secret:  # a secret's value never leaves the server
            entry["value"] = var.value
        listing[var.key] = entry
    return JsonResponse(listing)


@csrf_exempt
@with_api_errors
@require_POST
def duplicate_space(request, owner: str, name: str):
    user = api_writer(request)
    source = readable_space(request, owner, name)
    data = json_body(request)
    target = required(data, "repository")
    to_owner, _, to_name = target.rpartition("/")
    to_owner = to_owner or user.username
    if to_owner != user.username:
        raise ApiError(403, f"You can only duplicate into your own namespace ({user.username}/...)")
    if not valid_name(to_name):
        raise ApiError(400, f"{to_name!r} is not a valid space name: letters, digits, '-', '_' and '.'")
    if Space.objects.filter(owner=user, name=to_name).exists():
        raise ApiError(409, f"You already have a space named {user.username}/{to_name}")
    visibility = data.get("visibility")
    private = None if visibility is None else visibility != "public"
    secrets = env_entries(data, "secrets")
    variables = env_entries(data, "variables")
    sleep_time = data.get("sleepTimeSeconds")
    if sleep_time is not None:
        try:
            check_sleep_time(sleep_time)
        except ValueError as exc:
            raise ApiError(400, f"sleepTimeSeconds: {exc}") from None
    try:
        copy = source.duplicate(user, to_name, private=private, secrets=secrets)
    except IntegrityError:
        raise ApiError(409, f"You already have a space named {user.username}/{to_name}") from None
    for key, value in variables.items():
        copy.set_variable(key, value)
    if sleep_time is not None:
        copy.set_sleep_time(sleep_time)
    # The client checks that the URL is on the host it called.
    return JsonResponse({"url": request.build_absolute_uri(f"/spaces/{copy.full_name}")})


@csrf_exempt
@with_api_errors
@require_http_methods(["DELETE"])
def delete_repo(request):
    user = api_writer(request)
    data = json_body(request)
    if data.get("type") != "space":
        raise ApiError(400, "Spacedock holds spaces only: send type 'space'")
    owner = data.get("organization") or user.username
    return _delete(request, owner, required(data, "name"))


def _delete(request, owner: str, name: str) -> JsonResponse:
    space = owned_space(request, owner, name)
    space.delete()
    return JsonResponse({})


@csrf_exempt
@with_api_errors
@require_http_methods(["POST", "DELETE"])
def like(request, owner: str, name: str):
    user = api_writer(request)
    space = readable_space(request, owner, name)
    if request.method == "POST":
        space.like(user)
    else:
        space.unlike(user)
    return JsonResponse({"likes": space.likes})


@with_api_errors
@require_GET
def space_likers(request, owner: str, name: str):
    space = readable_space(request, owner, name)
    users = User.objects.filter(like__space=space).order_by("username")
    return JsonResponse(
        [{"user": u.username, "fullname": u.get_full_name() or u.username, "avatarUrl": None} for u in users],
        safe=False,
    )


@with_api_errors
@require_GET
def user_likes(request, username: str):
    viewer = api_user(request)
    likes = (
        Space.objects.select_related("owner")
        .filter(like_set__user__username=username)
        .filter(Q(visibility="public") | Q(owner__pk=getattr(viewer, "pk", None)))
    )
    return JsonResponse(
        [{"createdAt": hub_time(s.created), "repo": {"name": s.full_name, "type": "space"}} for s in likes],
        safe=False,
    )


@with_api_errors
@require_GET
def whoami(request):
    token = token_from_request(request)
    if token is None:
        raise ApiError(401, "Invalid credentials in Authorization header")
    user = token.user
    return JsonResponse(
        {
            "type": "user",
            "id": str(user.pk),
            "name": user.username,
            "fullname": user.get_full_name() or user.username,
            "email": user.email or None,
            "isPro": False,
            "orgs": [],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": token.name, "role": token.scope},
            },
        }
    )
