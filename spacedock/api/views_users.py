"""People: who is calling (whoami), and likes, by space and by user."""

from django.contrib.auth.models import User
from django.db.models import Q
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from spacedock.accounts.auth import principal
from spacedock.api.protocol import ApiError, with_api_errors
from spacedock.api.serializers import liked_repo_json, liker_json, whoami_json
from spacedock.spaces.access import acting_user, readable_space, space_reader
from spacedock.spaces.models import Space


@with_api_errors
@require_GET
def whoami(request):
    token = principal(request).token
    if token is None:
        raise ApiError(401, "Invalid credentials in Authorization header")
    return JsonResponse(whoami_json(token))


@csrf_exempt
@with_api_errors
@require_http_methods(["POST", "DELETE"])
def like(request, owner: str, name: str):
    user = acting_user(request)
    space = readable_space(request, owner, name)
    if request.method == "POST":
        space.like(user)
    else:
        space.unlike(user)
    return JsonResponse({"likes": space.likes})


@with_api_errors
@require_GET
@space_reader
def space_likers(request, space: Space):
    users = User.objects.filter(like__space=space).order_by("username")
    return JsonResponse([liker_json(u) for u in users], safe=False)


@with_api_errors
@require_GET
def user_likes(request, username: str):
    viewer = principal(request).user
    likes = (
        Space.objects.select_related("owner")
        .filter(like_set__user__username=username)
        .filter(Q(visibility="public") | Q(owner__pk=getattr(viewer, "pk", None)))
    )
    return JsonResponse([liked_repo_json(s) for s in likes], safe=False)
