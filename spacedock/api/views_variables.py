"""A space's variables and secrets, as the Hub's routes list, add and delete them (owner only)."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from spacedock.api.protocol import ApiError, json_body, required, with_api_errors
from spacedock.api.serializers import variables_json
from spacedock.spaces.access import space_owner
from spacedock.spaces.models import Space


@csrf_exempt
@with_api_errors
@require_http_methods(["GET", "POST", "DELETE"])
@space_owner
def space_variables(request, space: Space):
    return _env(request, space, secret=False)


@csrf_exempt
@with_api_errors
@require_http_methods(["GET", "POST", "DELETE"])
@space_owner
def space_secrets(request, space: Space):
    return _env(request, space, secret=True)


def _env(request, space: Space, secret: bool) -> JsonResponse:
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
    return JsonResponse(variables_json(space.variables.filter(is_secret=secret).order_by("key"), secret))
