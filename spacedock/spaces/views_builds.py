"""The builds list's buttons: roll back to a build, pin it for papers, unpin it.

The same model methods as the API's `rollback` and `pin` routes (spacedock/api/views_runtime.py);
here each answer is a message on the page the form was on.
"""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from spacedock.accounts.models import QuotaExceeded
from spacedock.spaces.access import space_owner
from spacedock.spaces.models import Build, Space


def _posted_build(request, space: Space) -> Build:
    """The build of this space that the form names, in any state: the model says what it may do.
    Another space's build is a 404, as a build that does not exist."""
    build_id = request.POST.get("build", "")
    if not (build_id.isascii() and build_id.isdigit()):
        raise Http404
    return get_object_or_404(space.builds, pk=build_id)


def _back(request, space: Space) -> HttpResponseRedirect:
    # The Embed tab has a pin button too; everything else lives in the Logs tab's builds list.
    if request.POST.get("back") == "embed":
        return HttpResponseRedirect(reverse("space_embed", args=[space.owner.username, space.name]))
    return HttpResponseRedirect(reverse("space_logs", args=[space.owner.username, space.name]) + "#builds")


def build_action(action: Callable[[Space, Build], None], refused: str, done: str) -> Callable:
    """A view that does `action` to the posted build of the space, for those who may write it, and
    says on the page what came of it: `done` (formatted with the build) or, when the model refuses
    (a build that did not succeed, a quota), `refused` with its reason."""

    @login_required
    @require_POST
    @space_owner
    def view(request, space: Space):
        build = _posted_build(request, space)
        named = f"Build #{build.pk} ({build.commit_sha[:7]})"
        try:
            action(space, build)
        except (ValueError, QuotaExceeded) as exc:
            messages.error(request, f"{named} {refused}: {exc}")
        else:
            messages.success(request, f"{named} {done.format(build=build)}")
        return _back(request, space)

    return view


rollback = build_action(
    lambda space, build: space.rollback(build, check_quota=True),
    refused="was not rolled back to",
    done="takes over: it replaces the running app once it answers.",
)
pin = build_action(
    lambda space, build: build.pin(),
    refused="was not pinned",
    done="is pinned: its embed keeps showing it, at {build.pinned_host}.",
)
unpin = build_action(
    lambda space, build: build.unpin(),
    refused="was not unpinned",
    done="is unpinned: its image goes at the next prune, unless the space still runs it"
    " or keeps it among its latest builds.",
)
