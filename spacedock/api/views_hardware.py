"""The Hub's hardware request (HfApi.request_space_hardware): POST {"flavor", "sleepTimeSeconds"}."""

from django.http import JsonResponse

from spacedock.api.protocol import api_error, json_body
from spacedock.api.serializers import runtime_json
from spacedock.api.views_runtime import owner_action
from spacedock.hardware.models import SpaceHardware, UnknownFlavour
from spacedock.spaces.models import Space


@owner_action
def request_hardware(request, space: Space):
    data = json_body(request)
    try:
        SpaceHardware.request(space, data.get("flavor"), space.owner)
    except UnknownFlavour as exc:
        return api_error(400, str(exc))
    if "sleepTimeSeconds" in data and data["sleepTimeSeconds"] is not None:
        try:
            space.set_sleep_time(data["sleepTimeSeconds"])
        except ValueError as exc:
            return api_error(400, str(exc))
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))
