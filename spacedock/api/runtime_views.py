"""Runtime controls, shaped like the Hub's: restart (or factory rebuild), pause, sleep time, rollback."""

import json

from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from runner import notify
from spacedock.accounts.auth import token_from_request
from spacedock.api.views import api_error, readable_space, runtime_json, with_api_errors
from spacedock.spaces import stages
from spacedock.spaces.models import Space


def owner_action(view):
    """Owner only; a token from scripts, or a browser session with its CSRF token."""

    @csrf_exempt
    @require_POST
    @with_api_errors
    def wrapper(request, owner: str, name: str):
        token = token_from_request(request)
        if token is None and request.user.is_authenticated:
            rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
            if rejected is not None:
                return api_error(403, "CSRF check failed: send the csrftoken cookie's value as X-CSRFToken")
        user = token.user if token else (request.user if request.user.is_authenticated else None)
        if user is None:
            return api_error(401, "Sign in or send an access token as Authorization: Bearer <token>")
        if token is not None and token.scope != "write":
            return api_error(403, "This token is read-only: use a write token")
        space = readable_space(request, owner, name)
        if not space.can_write(user):
            return api_error(403, f"Only the owner of {space.full_name} can do that")
        response = view(request, space)
        notify.poke()
        return response

    wrapper.__name__ = view.__name__
    return wrapper


def _body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@owner_action
def restart(request, space: Space):
    if request.GET.get("factory", "").lower() in ("1", "true"):
        if space.factory_rebuild() is None:
            return api_error(400, "Nothing to rebuild: push a commit first")
    else:
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
    seconds = _body(request).get("seconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or (seconds < 60 and seconds != -1):
        return api_error(400, 'Send {"seconds": N} with N at least 60, or -1 to never sleep')
    Space.objects.filter(pk=space.pk).update(sleep_time=seconds)
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))


@owner_action
def rollback(request, space: Space):
    build_id = _body(request).get("build")
    build = (
        space.builds.filter(pk=build_id, state="succeeded").exclude(image="").first() if build_id else None
    )
    if build is None:
        return api_error(400, 'Send {"build": <id>} naming a succeeded build of this space')
    space.rollback(build)
    space.refresh_from_db()
    return JsonResponse(runtime_json(space))
