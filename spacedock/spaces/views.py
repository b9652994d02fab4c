from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from spacedock.spaces.models import Space


def index(request):
    spaces = Space.objects.select_related("owner").filter(visibility="public")
    if request.user.is_authenticated:
        spaces = Space.objects.select_related("owner").filter(Q(visibility="public") | Q(owner=request.user))
    return render(request, "spaces/index.html", {"spaces": spaces[:60]})


def space_page(request, owner: str, name: str):
    space = get_object_or_404(Space.objects.select_related("owner"), owner__username=owner, name=name)
    if not space.can_read(request.user):
        raise Http404
    builds = space.builds.all()[:10]
    return render(request, "spaces/space.html", {"space": space, "builds": builds})
