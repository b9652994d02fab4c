"""What Caddy sends to the platform for a space's subdomain: the wake page, the private-space check
(forward_auth), and the on-demand TLS question."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_POST

from runner import caddy, embed, notify
from spacedock.health.models import Counter
from spacedock.spaces import stages
from spacedock.spaces.models import Build, Space


def space_for_host(request) -> Space | None:
    host = request.get_host().rsplit(":", 1)[0].lower()
    suffix = "." + settings.SPACES_DOMAIN
    if not host.endswith(suffix):
        return None
    return Space.objects.select_related("owner").filter(subdomain=host[: -len(suffix)]).first()


def _gate(request, space: Space, uri: str) -> HttpResponse | None:
    """None when the visitor may go on; else the answer that sends them away (or sets the cookie)."""
    if not space.is_private:
        return None
    verdict, detail = embed.decide(request, space, uri)
    if verdict == "allow":
        return None
    if verdict == "redirect":
        response = HttpResponseRedirect(detail)
        embed.set_cookie(response, request, space)
        return response
    response = render(request, "runner/private.html", {"space": space, "why": detail}, status=403)
    return response


@xframe_options_exempt
def forward_auth(request):
    space = space_for_host(request)
    if space is None:
        return HttpResponse("no such space", status=404)
    return _gate(request, space, request.META.get("HTTP_X_FORWARDED_URI", "/")) or HttpResponse("ok")


@xframe_options_exempt
def wake(request, rest: str = ""):
    """Every request to a subdomain whose app is not serving: wake it, or say why it cannot serve."""
    space = space_for_host(request)
    if space is None:
        return render(request, "runner/missing.html", {"host": request.get_host()}, status=404)
    uri = request.get_full_path()[len(caddy.WAKE_PREFIX) :] or "/"
    if denied := _gate(request, space, uri):
        return denied
    if stages.wake(space):
        Counter.bump("wakes")
        notify.poke()
    starting = space.stage in (
        "APP_STARTING",
        "RUNNING_APP_STARTING",
        "RUNNING",
        "BUILDING",
        "RUNNING_BUILDING",
    )
    state = {"stage": space.stage, "message": space.stage_message, "starting": starting}
    if request.headers.get("X-Spacedock-Poll"):
        response = JsonResponse(state)
    else:
        context = {"space": space, "state": state, "site_url": settings.SITE_URL}
        response = render(request, "runner/wake.html", context, status=503)
        response["Retry-After"] = "2"
    response["X-Spacedock-Wake"] = space.stage
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def rollback_form(request, owner: str, name: str):
    """The space page's rollback button: back to the space page, where the stage shows the swap."""
    space = get_object_or_404(Space, owner__username=owner, name=name)
    if not space.can_write(request.user):
        return HttpResponse("Only the owner can roll back this space.", status=403)
    build = get_object_or_404(Build, pk=request.POST.get("build"), space=space, state="succeeded")
    space.rollback(build)
    notify.poke()
    return HttpResponseRedirect(f"/{space.full_name}")
