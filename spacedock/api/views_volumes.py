"""The Hub's space volumes: PUT (HfApi.set_space_volumes) replaces them, DELETE removes them all."""

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from spacedock.api.protocol import api_error, json_body, with_api_errors
from spacedock.api.serializers import runtime_json
from spacedock.buckets.models import delete_volumes, set_volumes
from spacedock.buckets.storage import BadPath
from spacedock.spaces.access import space_owner, space_reader
from spacedock.spaces.models import Space


@space_reader
def _read(request, space: Space):
    return JsonResponse({"volumes": [v.as_hub() for v in space.volumes.all()]})


@space_owner
def _change(request, space: Space):
    try:
        with transaction.atomic():
            if request.method == "PUT":
                set_volumes(space, json_body(request).get("volumes"))
            else:
                delete_volumes(space)
    except (ValueError, BadPath) as exc:
        return api_error(400, str(exc))
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


@csrf_exempt
@require_http_methods(["GET", "PUT", "DELETE"])
@with_api_errors
def space_volumes(request, owner: str, name: str):
    view = _read if request.method == "GET" else _change
    return view(request, owner, name)
