"""The Hub's organization routes: overview and members (HfApi.get_organization_overview,
list_organization_members). Members are changed on the organization's page or here by an admin."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from spacedock.accounts.auth import principal
from spacedock.accounts.models import Organization
from spacedock.api.protocol import ApiError, json_body, required, with_api_errors
from spacedock.api.serializers import member_json, org_json
from spacedock.spaces.access import acting_user


def _org(name: str) -> Organization:
    found = Organization.objects.select_related("account").filter(account__username=name).first()
    if found is None:
        raise ApiError(404, f"Organization {name} not found")
    return found


@with_api_errors
@require_GET
def overview(request, org: str):
    found = _org(org)
    data = org_json(found)
    data["numUsers"] = found.memberships.count()
    data["numSpaces"] = found.account.spaces.filter(visibility="public").count()
    return JsonResponse(data)


@csrf_exempt
@with_api_errors
@require_http_methods(["GET", "POST"])
def members(request, org: str):
    """GET lists the members (their names are public, as on the Hub); POST {"user", "role"} adds
    or changes one, by an admin's write token."""
    found = _org(org)
    if request.method == "POST":
        data = json_body(request)
        try:
            found.set_role(acting_user(request), required(data, "user"), required(data, "role"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    principal(request)  # a bad token is a 401 here too
    listing = found.memberships.select_related("user").order_by("user__username")
    return JsonResponse([member_json(m) for m in listing], safe=False)


@csrf_exempt
@with_api_errors
@require_http_methods(["DELETE"])
def member(request, org: str, username: str):
    found = _org(org)
    try:
        removed = found.remove(acting_user(request), username)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if not removed:
        raise ApiError(404, f"{username} is not a member of {org}")
    return JsonResponse({})
