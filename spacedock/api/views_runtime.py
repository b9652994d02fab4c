"""Runtime controls, shaped like the Hub's: restart (or factory rebuild), pause, sleep time, rollback."""

from functools import wraps

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from spacedock.api.protocol import api_error, json_body, with_api_errors
from spacedock.api.serializers import runtime_json
from spacedock.spaces.access import space_owner, space_reader
from spacedock.spaces.models import Space


@with_api_errors
@space_reader
def space_runtime(request, space: Space):
    return JsonResponse(runtime_json(space))


def owner_action(view):
    """A POST by the space's owner (spaces.access: a write token, or a session with its CSRF token).

    One transaction: the runner is nudged (Space methods, on commit) once every change is in.
    """

    @csrf_exempt
    @require_POST
    @with_api_errors
    @space_owner
    @wraps(view)
    def wrapper(request, space: Space):
        with transaction.atomic():
            return view(request, space)

    return wrapper


@owner_action
def restart(request, space: Space):
    if request.GET.get("factory", "").lower() in ("1", "true"):
        if space.factory_rebuild() is None:
            return api_error(400, "Nothing to rebuild: push a commit first")
    else:
        space.request_restart()
        # A sleeping space wakes for a restart; the runner replaces a running one.
        Space.objects.filter(pk=space.pk, stage__in=("SLEEPING", "STOPPED")).update(
            stage="APP_STARTING", stage_message=""
        )
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


@owner_action
def pause(request, space: Space):
    space.pause()
    return JsonResponse(runtime_json(space))


@owner_action
def sleeptime(request, space: Space):
    try:
        space.set_sleep_time(json_body(request).get("seconds"))
    except ValueError:
        return api_error(400, 'Send {"seconds": N} with N at least 60, or -1 to never sleep')
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


@owner_action
def rollback(request, space: Space):
    build_id = str(json_body(request).get("build", ""))
    build = (
        space.builds.filter(pk=build_id, state="succeeded").exclude(image="").first()
        if build_id.isascii() and build_id.isdigit()
        else None
    )
    if build is None:
        return api_error(400, 'Send {"build": <id>} naming a succeeded build of this space')
    space.rollback(build)
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))
