"""Which spaces a visitor sees, searched and filtered: shared by the gallery page and the API."""

import json

from django.db import connection
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from spacedock.spaces.models import Space

SORTS = {
    "trending": "-trending_score",
    "likes": "-likes",
    "updated": "-updated",
    "created": "-created",
}


def filter_spaces(user, *, search: str = "", tags=(), sdk: str = "", author: str = "") -> QuerySet:
    visible = Q(visibility="public")
    if user is not None and user.is_authenticated:
        # Their own private spaces, and those of the organizations they are members of.
        visible |= Q(owner=user) | Q(owner__organization__memberships__user=user)
    spaces = Space.objects.select_related("owner").filter(visible)
    if search := search.strip():
        # "owner/name" finds that space too, as on the Hub.
        who, slash, what = search.partition("/")
        if slash:
            spaces = spaces.filter(owner__username__iexact=who, name__icontains=what)
        else:
            spaces = spaces.filter(
                Q(name__icontains=search)
                | Q(title__icontains=search)
                | Q(short_description__icontains=search)
            )
    for tag in tags:
        spaces = spaces.filter(_has_tag(tag))
    if sdk:
        spaces = spaces.filter(sdk=sdk)
    if author:
        spaces = spaces.filter(owner__username=author)
    return spaces


def _has_tag(tag: str) -> Q:
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])
    # SQLite has no JSON containment: match the quoted tag in the stored JSON text.
    return Q(
        pk__in=Space.objects.annotate(t=Cast("tags", TextField()))
        .filter(t__contains=json.dumps(tag))
        .values("pk")
    )
