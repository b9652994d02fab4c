from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from spacedock.gitserver.repo import DEFAULT_BRANCH

register = template.Library()


@register.simple_tag
def default_branch() -> str:
    """The branch that builds, for the push instructions on the pages."""
    return DEFAULT_BRANCH


@register.filter
def ago(moment: datetime | None) -> str:
    """'3 days ago', 'just now': the largest unit only, as a card has room for."""
    if moment is None:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment, depth=1)} ago"
