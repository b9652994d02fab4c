"""The Hub's routes for spaces as a whole: list, one space's info, duplicate, delete."""

from django.db import IntegrityError
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from spacedock.accounts.auth import principal
from spacedock.accounts.models import Quota, creatable_namespace
from spacedock.api.protocol import ApiError, json_body, required, with_api_errors
from spacedock.api.serializers import list_item, space_json
from spacedock.gitserver import repo as gitrepo
from spacedock.hardware.models import SpaceHardware, UnknownFlavour, flavour_named
from spacedock.spaces.access import acting_user, owned_space, readable_space, space_reader
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


@with_api_errors
@require_GET
def list_spaces(request):
    spaces = filter_spaces(
        principal(request).user,
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
        if limit < 1 or offset > 10**9:
            raise ValueError
    except ValueError:
        raise ApiError(400, "limit must be a whole number from 1, offset one from 0 to 10**9") from None
    full = request.GET.get("full", "").lower() in ("1", "true")
    page = list(spaces.order_by(order, "pk")[offset : offset + limit + 1])
    response = JsonResponse([list_item(s, full) for s in page[:limit]], safe=False)
    if len(page) > limit and not request.GET.get("limit"):
        # huggingface_hub follows a GitHub-style Link header to the next page.
        query = request.GET.copy()
        query["offset"] = str(offset + limit)
        response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'
    return response


@with_api_errors
@space_reader
def space_info(request, space: Space):
    info = space_json(space)
    info["siblings"] = [{"rfilename": path} for path in gitrepo.list_files(space.repo_path, space.head_sha)]
    return JsonResponse(info)


def sleep_time_of(data: dict) -> int | None:
    """The body's sleepTimeSeconds, checked; None when it names none."""
    sleep_time = data.get("sleepTimeSeconds")
    if sleep_time is not None:
        try:
            check_sleep_time(sleep_time)
        except ValueError as exc:
            raise ApiError(400, f"sleepTimeSeconds: {exc}") from None
    return sleep_time


def hardware_of(data: dict, account) -> str | None:
    """The body's hardware flavour (create_repo and duplicate_repo's space_hardware), checked before
    anything is made: 400 for a flavour not in the table, 403 outside the account's hardware quota.
    None when it names none."""
    name = data.get("hardware")
    if name is None:
        return None
    try:
        flavour = flavour_named(name)
    except UnknownFlavour as exc:
        raise ApiError(400, str(exc)) from None
    Quota.require_hardware(account, flavour.name)
    return flavour.name


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
        value = entry.get("value", "")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ApiError(400, f"{field}: the value of {key} must be a string")
        checked[key] = str(value)
    return checked


@csrf_exempt
@with_api_errors
@require_POST
def duplicate_space(request, owner: str, name: str):
    user = acting_user(request)
    source = readable_space(request, owner, name)
    data = json_body(request)
    target = required(data, "repository")
    to_owner, _, to_name = target.rpartition("/")
    to_owner = to_owner or user.username
    account = creatable_namespace(user, to_owner)
    if account is None:
        raise ApiError(
            403,
            f"You can only duplicate into your own namespace ({user.username}/...) or an organization "
            "where you have write",
        )
    if not valid_name(to_name):
        raise ApiError(400, f"{to_name!r} is not a valid space name: letters, digits, '-', '_' and '.'")
    if Space.objects.filter(owner=account, name=to_name).exists():
        raise ApiError(409, f"{to_owner}/{to_name} already exists")
    visibility = data.get("visibility")
    private = None if visibility is None else visibility != "public"
    secrets = env_entries(data, "secrets")
    variables = env_entries(data, "variables")
    sleep_time = sleep_time_of(data)
    hardware = hardware_of(data, account)
    if hardware is None:  # the source's flavour comes along, where the new owner may use it
        inherited = SpaceHardware.of(source).requested
        hardware = inherited if inherited in Quota.hardware_allowed(account) else None
    try:
        copy = source.duplicate(account, to_name, private=private, secrets=secrets)
    except IntegrityError:
        raise ApiError(409, f"{to_owner}/{to_name} already exists") from None
    for key, value in variables.items():
        copy.set_variable(key, value)
    if sleep_time is not None:
        copy.set_sleep_time(sleep_time)
    if hardware is not None:
        SpaceHardware.request(copy, hardware, user)
    # The client checks that the URL is on the host it called.
    return JsonResponse({"url": request.build_absolute_uri(f"/spaces/{copy.full_name}")})


@csrf_exempt
@with_api_errors
@require_http_methods(["DELETE"])
def delete_repo(request):
    user = acting_user(request)
    data = json_body(request)
    if data.get("type") != "space":
        raise ApiError(400, "Spacedock holds spaces only: send type 'space'")
    owner = data.get("organization") or user.username
    space = owned_space(request, owner, required(data, "name"))
    space.require_delete(user)
    space.delete()
    return JsonResponse({})
