"""What Caddy sends to the platform for a space's host: the wake page, the private-space check
(forward_auth), and the on-demand TLS question."""

import time

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from spacedock.accounts.models import QuotaExceeded
from spacedock.api.streams import StreamsExhausted, take_stream_slot
from spacedock.clients import LOOPBACK, client_ip
from spacedock.health.models import Counter
from spacedock.proxy import access, hosts, paths
from spacedock.spaces import notify, stages
from spacedock.spaces.models import Deployment, Space, site_origin
from spacedock.spaces.stages import Stage


def _gate(request, space: Space, uri: str) -> HttpResponse | None:
    """None when the visitor may go on; else the answer that sends them away (or sets the cookie)."""
    if not space.is_private:
        return None
    verdict, detail = access.decide(request, space, uri)
    if verdict == "allow":
        return None
    if verdict == "redirect":
        response = HttpResponseRedirect(detail)
        access.set_cookie(response, request, space)
        return response
    context = {"space": space, "why": detail, "site_url": settings.SITE_URL}
    response = render(request, "proxy/private.html", context, status=403)
    return response


@xframe_options_exempt
def forward_auth(request):
    target = hosts.lookup(request.get_host())
    if target is None:
        return HttpResponse("no such space", status=404)
    return _gate(request, target.space, request.META.get("HTTP_X_FORWARDED_URI", "/")) or HttpResponse("ok")


def _over_run_quota(space: Space) -> str:
    """Why waking this space would pass its owner's running quotas, or ""."""
    try:
        space.check_run_quota()
    except QuotaExceeded as exc:
        return f"This space cannot wake now: its owner's {exc.quota} quota is full ({exc.limit})."
    return ""


# A held poll answers at the latest after this long, well inside Caddy's and gunicorn's timeouts;
# the page then asks again.
HOLD_SECONDS = 15.0
STARTING = ("APP_STARTING", "RUNNING_APP_STARTING", "BUILDING", "RUNNING_BUILDING")


def held_until_moved(request, space: Space | Deployment) -> tuple[Space | Deployment, bool]:
    """The wake page's poll waits here while the space starts, and answers the moment its stage
    or message moves: the page reloads into the app as soon as the route is in (RUNNING is
    published only after Caddy has it), instead of on its next poll. Holding takes one of this
    process's stream slots, so held polls never take every web thread; with none free, the poll
    is answered at once, as a plain poll (False: not held)."""
    try:
        release = take_stream_slot(client_ip(request))
    except StreamsExhausted:
        return space, False
    try:
        seen = (space.stage, space.stage_message)
        deadline = time.monotonic() + HOLD_SECONDS
        with notify.stage_watch(space._meta.model_name, space.pk) as wait:
            while True:
                now = type(space).objects.filter(pk=space.pk).values_list("stage", "stage_message").first()
                if now != seen:
                    space.refresh_from_db()
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait(left)  # until the runner moves its stage (notify.stage_moved), not on a timer
    finally:
        release()
    return space, True


@xframe_options_exempt
def wake(request, rest: str = ""):
    """Every request to a subdomain whose app is not serving: wake it, or say why it cannot serve."""
    target = hosts.lookup(request.get_host())
    if target is None:
        name = hosts.parse(request.get_host())
        context = {"host": request.get_host(), "site_url": settings.SITE_URL, "name": name}
        return render(request, "proxy/missing.html", context, status=404)
    space = target.space
    uri = request.get_full_path()[len(paths.WAKE_PREFIX) :] or "/"
    if denied := _gate(request, space, uri):
        return denied
    # A pin's or a preview's host wakes that deployment alone: the space's own stage stays.
    row = target.deployment or space
    over_quota = _over_run_quota(space) if row.stage == Stage.SLEEPING and row is space else ""
    if not over_quota and stages.wake(row):
        Counter.bump("wakes")
        notify.poke()
    polled, held = bool(request.headers.get("X-Spacedock-Poll")), False
    if polled and not over_quota and row.stage in STARTING:
        row, held = held_until_moved(request, row)
    starting = row.stage in (*STARTING, "RUNNING")
    state = {"stage": row.stage, "message": over_quota or row.stage_message, "starting": starting}
    # How long the page waits before its next poll: at once after a held one.
    state["retry_ms"] = 100 if held else 700
    if polled:
        response = JsonResponse(state)
    else:
        context = {
            "space": space,
            "deployment": target.deployment,
            "subject": row,
            "what": "space" if row is space else "deployment",
            "state": state,
            "site_url": settings.SITE_URL,
        }
        response = render(request, "proxy/wake.html", context, status=503)
        response["Retry-After"] = "2"
    response["X-Spacedock-Wake"] = row.stage
    response["Cache-Control"] = "no-store"
    # An app that may not be framed elsewhere is not framed elsewhere while it wakes either
    # (spacedock/middleware.py adds it to the page's policy).
    served = target.build if target.deployment is not None else space.deployed_build
    if served is not None and served.space_config().disable_embedding:
        response.frame_ancestors = site_origin()
    return response


@never_cache
@require_GET
def tls_ask(request):
    """Caddy's on-demand TLS asks here before it requests a certificate for a name.

    200 only for the platform's own domain, an existing space's host, or a pinned build's
    host: nobody can make this server ask a CA for certificates of names it does not serve.
    """
    if request.META.get("REMOTE_ADDR") not in LOOPBACK or "HTTP_X_FORWARDED_FOR" in request.META:
        # Only the local Caddy asks, directly; through the proxy this would list which names exist.
        return HttpResponse("only the local Caddy asks here\n", status=403, content_type="text/plain")
    domain = request.GET.get("domain", "").strip().lower().rstrip(".")
    if domain == settings.DOMAIN.lower() or hosts.lookup(domain) is not None:
        return HttpResponse("ok\n", content_type="text/plain")
    return HttpResponse(
        f"{domain or '(no domain)'} is not served here\n", status=404, content_type="text/plain"
    )
