"""The Hub's hardware request (HfApi.request_space_hardware): POST {"flavor", "sleepTimeSeconds"}."""

from django.http import JsonResponse

from spacedock.api.protocol import ApiError, json_body
from spacedock.api.serializers import runtime_json
from spacedock.api.views_runtime import owner_action
from spacedock.hardware.models import SpaceHardware, UnknownFlavour
from spacedock.spaces.models import Space


@owner_action
def request_hardware(request, space: Space):
    """Raises rather than answers on an error: owner_action's transaction then keeps neither change."""
    data = json_body(request)
    try:
        SpaceHardware.request(space, data.get("flavor"), space.owner)
        if data.get("sleepTimeSeconds") is not None:
            space.set_sleep_time(data["sleepTimeSeconds"])
    except (UnknownFlavour, ValueError) as exc:
        raise ApiError(400, str(exc)) from None
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))
