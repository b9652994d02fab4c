"""Runtime controls, shaped like the Hub's: restart (or factory rebuild), pause, sleep time, rollback."""

from functools import wraps

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from spacedock.api.protocol import api_error, json_body, row_id, with_api_errors
from spacedock.api.serializers import pinned_json, runtime_json
from spacedock.spaces import stages
from spacedock.spaces.access import space_owner, space_reader
from spacedock.spaces.models import Build, Space


@with_api_errors
@space_reader
def space_runtime(request, space: Space):
    return JsonResponse(runtime_json(space))


def owner_action(view, methods: tuple[str, ...] = ("POST",)):
    """A POST by the space's owner (spaces.access: a write token, or a session with its CSRF token).

    One transaction: the runner is nudged (Space methods, on commit) once every change is in.
    """

    @csrf_exempt
    @require_http_methods(list(methods))
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
        space.check_run_quota()
        space.request_restart()
        # A sleeping space wakes for a restart; the runner replaces a running one.
        stages.wake(space)
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
        return api_error(
            400, 'Send {"seconds": N} with N at least 60 and at most 31536000 (a year), or -1 to never sleep'
        )
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


def _named_build(request, space: Space) -> Build | None:
    """The succeeded build of this space that the body's {"build": <id>} names."""
    build_id = row_id(json_body(request).get("build"))
    return space.builds.filter(pk=build_id, state="succeeded").exclude(image="").first() if build_id else None


NAME_A_BUILD = 'Send {"build": <id>} naming a succeeded build of this space'


@owner_action
def rollback(request, space: Space):
    build = _named_build(request, space)
    if build is None:
        return api_error(400, NAME_A_BUILD)
    space.rollback(build, check_quota=True)
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


def _pin(request, space: Space):
    """POST pins a succeeded build (its image is kept and served at its own host); DELETE unpins."""
    build = _named_build(request, space)
    if build is None:
        return api_error(400, NAME_A_BUILD)
    if request.method == "DELETE":
        build.unpin()
    else:
        build.pin()
    return JsonResponse(pinned_json(build))


pin = owner_action(_pin, methods=("POST", "DELETE"))
