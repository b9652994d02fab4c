"""A space's settings, for its owner: variables, secrets, sleep time, visibility, lifecycle."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from spacedock.accounts.models import QuotaExceeded
from spacedock.spaces import webhooks
from spacedock.spaces.access import space_owner
from spacedock.spaces.models import Space, Webhook, WebhookDelivery
from spacedock.spaces.views import page_context

SLEEP_CHOICES = [
    (300, "5 minutes"),
    (900, "15 minutes"),
    (3600, "1 hour"),
    (14400, "4 hours"),
    (172800, "48 hours"),
    (-1, "never"),
]


def back(space):
    return redirect("space_settings", owner=space.owner.username, name=space.name)


@login_required
@space_owner
def settings_page(request, space: Space):
    context = page_context(request, space, "settings")
    variables = list(space.variables.order_by("key"))
    context.update(
        variables=[v for v in variables if not v.is_secret],
        secrets=[v for v in variables if v.is_secret],
        sleep_choices=SLEEP_CHOICES,
        webhooks=list(space.webhooks.all()),
        webhook_events=webhooks.EVENTS,
        deliveries=WebhookDelivery.objects.filter(webhook__space=space).select_related("webhook")[:20],
    )
    return render(request, "spaces/settings.html", context)


@login_required
@require_POST
@space_owner
def add_webhook(request, space: Space):
    try:
        Webhook.add(space, request.POST.get("url", ""), request.POST.getlist("events"))
    except ValueError as exc:  # WebhookRefused too
        messages.error(request, str(exc))
    else:
        messages.success(request, "Webhook added. Check each request's X-Webhook-Signature with its secret.")
    return back(space)


@login_required
@require_POST
@space_owner
def delete_webhook(request, space: Space, pk: int):
    space.webhooks.filter(pk=pk).delete()
    return back(space)


@login_required
@require_POST
@space_owner
def set_variable(request, space: Space):
    secret = request.POST.get("secret") == "1"
    key = request.POST.get("key", "")
    try:
        space.set_variable(
            key, request.POST.get("value", ""), secret=secret, description=request.POST.get("description", "")
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        kind = "Secret" if secret else "Variable"
        messages.success(request, f"{kind} {key.strip()} saved. The space restarts with it.")
    return back(space)


@login_required
@require_POST
@space_owner
def delete_variable(request, space: Space):
    key = request.POST.get("key", "")
    if space.delete_variable(key, secret=request.POST.get("secret") == "1"):
        messages.success(request, f"{key} deleted. The space restarts without it.")
    return back(space)


@login_required
@require_POST
@space_owner
def set_sleep_time(request, space: Space):
    try:
        seconds = int(request.POST.get("sleep_time", ""))
    except ValueError:
        seconds = None
    if seconds not in dict(SLEEP_CHOICES):
        messages.error(request, "Pick one of the offered sleep times.")
        return back(space)
    try:
        space.set_sleep_time(seconds)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return back(space)
    messages.success(request, f"Sleep time set to {dict(SLEEP_CHOICES)[seconds]}.")
    return back(space)


@login_required
@require_POST
@space_owner
def set_visibility(request, space: Space):
    visibility = request.POST.get("visibility", "")
    try:
        space.set_visibility(visibility)
    except ValueError as exc:
        messages.error(request, str(exc))
        return back(space)
    messages.success(request, f"The space is now {visibility}.")
    return back(space)


@login_required
@require_POST
@space_owner
def lifecycle(request, space: Space, action: str):
    if action == "restart" and space.stage == "BUILD_ERROR" and space.head_sha:
        # Nothing was built to restart: as on the Hub, a restart of a failed build builds again.
        space.factory_rebuild()
        messages.success(request, "The last build failed, so the restart builds the head again.")
    elif action == "restart":
        space.request_restart()
        messages.success(request, "Restarting: a fresh container replaces the running one.")
    elif action == "rebuild":
        if space.factory_rebuild() is None:
            messages.error(request, "Nothing to rebuild yet: push a commit first.")
        else:
            messages.success(request, "Factory rebuild queued: the head is built again without cache.")
    elif action == "pause":
        space.pause()
        messages.success(request, "Paused. Restart it to run it again.")
    else:
        raise Http404
    return back(space)


@login_required
@require_POST
@space_owner
def delete_space(request, space: Space):
    if request.POST.get("confirm", "").strip() != space.full_name:
        messages.error(request, f"To delete, type {space.full_name} exactly.")
        return back(space)
    space.require_delete(request.user)
    space.delete()
    messages.success(request, f"{space.full_name} is deleted, with its repository and logs.")
    return redirect("profile", username=request.user.username)
